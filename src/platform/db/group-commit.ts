import type { ControlledTransaction, Kysely, Transaction } from 'kysely';
import type { RowScope } from './row-scope.js';

/**
 * The transaction a unit of work runs in, with per-batch state that later work in the same
 * batch sees (the audit chain head, for one) and hooks that run once, just before commit.
 */
export interface BatchScope<DB> {
  readonly trx: Transaction<DB>;
  /** Values here are replaced, never mutated, so a failed unit's changes can be undone. */
  readonly state: Map<string, unknown>;
  beforeCommit(key: string, hook: (trx: Transaction<DB>) => Promise<void>): void;
}

export type Work<DB, T> = (scope: BatchScope<DB>) => Promise<T>;

interface Job<DB> {
  readonly rowScope: RowScope;
  readonly work: Work<DB, unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** A pre-commit hook runs in the row scope of the unit that registered it. */
interface Hook<DB> {
  readonly rowScope: RowScope;
  readonly run: (trx: Transaction<DB>) => Promise<void>;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Group commit: units of work that arrive while a commit is under way run together in the
 * next transaction, each inside its own savepoint, and share one durable commit (one fsync on
 * SQLite with synchronous=FULL, one WAL flush on PostgreSQL). A unit's promise settles only
 * after that commit, so nothing it produced leaves the server before it is durable. A unit that
 * fails is rolled back to its savepoint alone; a failed commit fails every unit in the batch.
 */
export class GroupCommit<DB> {
  readonly #db: Kysely<DB>;
  readonly #maxBatch: number;
  #queue: Job<DB>[] = [];
  #running = false;
  #closed = false;
  #idle: Promise<void> = Promise.resolve();
  #markIdle: () => void = () => undefined;

  readonly #onTransaction: (trx: Transaction<DB>) => void;
  readonly #onTransactionEnd: (trx: Transaction<DB>) => void;
  readonly #enterScope: ((trx: Transaction<DB>, scope: RowScope) => Promise<void>) | undefined;

  /**
   * `onTransaction` sees each transaction before any unit runs in it (to bind fast paths).
   * `enterScope`, when given, runs before each unit whose row scope differs from the one in
   * force (PostgreSQL's row-level security), and before each pre-commit hook.
   */
  constructor(
    db: Kysely<DB>,
    options: {
      readonly maxBatch?: number;
      readonly onTransaction?: (trx: Transaction<DB>) => void;
      readonly onTransactionEnd?: (trx: Transaction<DB>) => void;
      readonly enterScope?: (trx: Transaction<DB>, scope: RowScope) => Promise<void>;
    } = {},
  ) {
    this.#db = db;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#onTransaction = options.onTransaction ?? (() => undefined);
    this.#onTransactionEnd = options.onTransactionEnd ?? (() => undefined);
    this.#enterScope = options.enterScope;
  }

  /**
   * Runs `work` in the next batch, seeing only the rows of `rowScope`. Settles after the
   * batch's commit.
   */
  run<T>(rowScope: RowScope, work: Work<DB, T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('store closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        rowScope,
        work: work,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      if (!this.#running) {
        this.#running = true;
        this.#idle = new Promise((r) => (this.#markIdle = r));
        // Let the current tick's requests join the first batch.
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Waits for queued work to finish and refuses new work. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#idle;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const jobs = this.#queue.splice(0, this.#maxBatch);
        await this.#runBatch(jobs);
      }
    } finally {
      this.#running = false;
      this.#markIdle();
    }
  }

  async #runBatch(jobs: Job<DB>[]): Promise<void> {
    // First without savepoints (two statements a unit saved); should any unit fail, the batch
    // is rolled back and run again with a savepoint around each unit, so that only the failed
    // units fail. A unit may therefore run twice: it must act only through its scope.
    const retry = jobs.length > 1 ? await this.#attempt(jobs, false) : 'retry';
    if (retry === 'retry') await this.#attempt(jobs, true);
  }

  /** Runs the batch once; settles every unit, or answers 'retry' (only when not isolated). */
  async #attempt(jobs: Job<DB>[], isolated: boolean): Promise<'retry' | 'settled'> {
    let trx: ControlledTransaction<DB>;
    try {
      trx = await this.#db.startTransaction().execute();
      this.#onTransaction(trx);
    } catch (error) {
      for (const job of jobs) job.reject(error);
      return 'settled';
    }
    try {
      return await this.#runIn(trx, jobs, isolated);
    } finally {
      this.#onTransactionEnd(trx);
    }
  }

  async #runIn(
    trx: ControlledTransaction<DB>,
    jobs: Job<DB>[],
    isolated: boolean,
  ): Promise<'retry' | 'settled'> {
    const state = new Map<string, unknown>();
    const hooks = new Map<string, Hook<DB>>();
    const outcomes: Outcome[] = [];
    let unitScope: RowScope | undefined;
    const scope: BatchScope<DB> = {
      trx,
      state,
      beforeCommit: (key, hook) => {
        if (unitScope !== undefined) hooks.set(key, { rowScope: unitScope, run: hook });
      },
    };
    // The row scope in force in the transaction; undefined when unknown (after a rollback to a
    // savepoint, which undoes a setting made inside it).
    let inForce: RowScope | undefined;
    const enter = async (rowScope: RowScope) => {
      if (this.#enterScope === undefined || inForce === rowScope) return;
      await this.#enterScope(trx, rowScope);
      inForce = rowScope;
    };
    const savepoints = isolated && jobs.length > 1;
    try {
      for (const job of jobs) {
        const savedState = new Map(state);
        const savedHooks = new Map(hooks);
        unitScope = job.rowScope;
        if (!savepoints) {
          try {
            await enter(job.rowScope);
            outcomes.push({ ok: true, value: await job.work(scope) });
          } catch (error) {
            if (!isolated) {
              await trx.rollback().execute();
              return 'retry';
            }
            // A single unit: the whole transaction is its savepoint.
            outcomes.push({ ok: false, error });
            restore(state, savedState);
            restore(hooks, savedHooks);
          }
          continue;
        }
        const sp = await trx.savepoint('unit').execute();
        try {
          await enter(job.rowScope);
          const value = await job.work(scope);
          await sp.releaseSavepoint('unit').execute();
          outcomes.push({ ok: true, value });
        } catch (error) {
          await sp.rollbackToSavepoint('unit').execute();
          await sp.releaseSavepoint('unit').execute();
          inForce = undefined;
          outcomes.push({ ok: false, error });
          restore(state, savedState);
          restore(hooks, savedHooks);
        }
      }
    } catch (error) {
      // The connection failed under a unit (a savepoint or rollback could not run): the whole
      // batch fails, and no unit is left waiting.
      try {
        await trx.rollback().execute();
      } catch {
        // The connection already ended the transaction.
      }
      for (const job of jobs) job.reject(error);
      return 'settled';
    }
    try {
      if (outcomes.some((o) => o.ok)) {
        for (const hook of hooks.values()) {
          await enter(hook.rowScope);
          await hook.run(trx);
        }
        await trx.commit().execute();
      } else {
        await trx.rollback().execute();
      }
    } catch (error) {
      try {
        await trx.rollback().execute();
      } catch {
        // The connection already ended the transaction.
      }
      for (const job of jobs) job.reject(error);
      return 'settled';
    }
    jobs.forEach((job, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok === true) job.resolve(outcome.value);
      else job.reject(outcome?.error);
    });
    return 'settled';
  }
}

/** Undoes a failed unit's changes in place: hooks of earlier units hold this very map. */
function restore<K, V>(target: Map<K, V>, saved: ReadonlyMap<K, V>): void {
  target.clear();
  for (const [k, v] of saved) target.set(k, v);
}
