import type { ControlledTransaction, Kysely, Transaction } from 'kysely';

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
  readonly work: Work<DB, unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
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

  /** `onTransaction` sees each transaction before any unit runs in it (to bind fast paths). */
  constructor(
    db: Kysely<DB>,
    maxBatch = 256,
    onTransaction: (trx: Transaction<DB>) => void = () => undefined,
    onTransactionEnd: (trx: Transaction<DB>) => void = () => undefined,
  ) {
    this.#onTransactionEnd = onTransactionEnd;
    this.#db = db;
    this.#maxBatch = maxBatch;
    this.#onTransaction = onTransaction;
  }

  run<T>(work: Work<DB, T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('store closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
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
    const hooks = new Map<string, (trx: Transaction<DB>) => Promise<void>>();
    const outcomes: Outcome[] = [];
    const scope: BatchScope<DB> = {
      trx,
      state,
      beforeCommit: (key, hook) => hooks.set(key, hook),
    };
    const savepoints = isolated && jobs.length > 1;
    try {
      for (const job of jobs) {
        const savedState = new Map(state);
        const savedHooks = new Map(hooks);
        if (!savepoints) {
          try {
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
          const value = await job.work(scope);
          await sp.releaseSavepoint('unit').execute();
          outcomes.push({ ok: true, value });
        } catch (error) {
          await sp.rollbackToSavepoint('unit').execute();
          await sp.releaseSavepoint('unit').execute();
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
        for (const hook of hooks.values()) await hook(trx);
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
