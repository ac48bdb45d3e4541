import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { sql, type Migration } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVERY_WORKSPACE } from './row-scope.js';
import { createPgDatabases, dialects } from '../../testing/harness.js';
import { openStore, type Store, type StoreLocation } from './database.js';
import { GroupCommit, type BatchScope } from './group-commit.js';

/** Registers a test only in the PostgreSQL loop (it is about pg connections); nothing is skipped. */
function onPostgres(
  dialect: string,
): (name: string, fn: () => Promise<void>, timeout?: number) => void {
  return dialect === 'postgres' ? (name, fn, timeout) => it(name, fn, timeout) : () => undefined;
}

interface TestDb {
  t: { id: string; v: string | null };
}

function migrations(): Record<string, Migration> {
  return {
    '0001_t': {
      up: async (db) => {
        await db.schema
          .createTable('t')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('v', 'text')
          .execute();
      },
    },
  };
}

class UnitError extends Error {
  constructor(readonly unit: number) {
    super(`unit ${unit} failed`);
  }
}

let prefixCounter = 0;
/** A fresh id prefix, so each test (and each property run) makes its own rows. */
function freshPrefix(label: string): string {
  prefixCounter += 1;
  return `${label}-${process.pid}-${prefixCounter}-`;
}

async function insert(scope: BatchScope<TestDb>, id: string, v: string | null = null) {
  await scope.trx.insertInto('t').values({ id, v }).execute();
}

/** Settles every promise and reports each as fulfilled or rejected, with a deadline. */
async function settleWithin<T>(
  promises: readonly Promise<T>[],
  ms: number,
): Promise<PromiseSettledResult<T>[]> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`units did not settle within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([Promise.allSettled(promises), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Errors that would end a production process: an uncaught exception or unhandled rejection. */
function watchProcessErrors(): { errors: unknown[]; stop: () => void } {
  const errors: unknown[] = [];
  const record = (error: unknown) => {
    errors.push(error);
  };
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    errors,
    stop: () => {
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

for (const dialect of dialects) {
  describe(`GroupCommit on ${dialect}`, () => {
    let store: Store<TestDb>;
    let dir: string;
    let location: StoreLocation;
    let drop: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'custodia-gc-'));
      if (dialect === 'postgres') {
        const dbs = await createPgDatabases();
        drop = dbs.drop;
        location = { kind: 'postgres', url: dbs.dataUrl };
      } else {
        location = { kind: 'sqlite', file: path.join(dir, 'data.db') };
      }
      store = await openStore<TestDb>(location, migrations);
    });

    afterAll(async () => {
      await store.close();
      await drop?.();
      await rm(dir, { recursive: true, force: true });
    });

    async function presentIds(prefix: string): Promise<string[]> {
      const rows = await store.read(EVERY_WORKSPACE, (db) =>
        db.selectFrom('t').select('id').where('id', 'like', `${prefix}%`).orderBy('id').execute(),
      );
      return rows.map((r) => r.id);
    }

    it('resolves many concurrent units, in few batches, with all their rows committed', async () => {
      const prefix = freshPrefix('many');
      let batches = 0;
      const unit = (i: number) =>
        store.batch.run(EVERY_WORKSPACE, async (scope) => {
          await insert(scope, `${prefix}${String(i).padStart(4, '0')}`, `v${i}`);
          scope.beforeCommit('count-batches', () => {
            batches += 1;
            return Promise.resolve();
          });
          return i;
        });
      const first = Array.from({ length: 600 }, (_, i) => unit(i));
      // More arrive while the first batches are being committed.
      const later: Promise<number>[] = [];
      for (let i = 600; i < 700; i += 1) {
        later.push(unit(i));
        if (i % 10 === 0) await nextTick();
      }
      const values = await Promise.all([...first, ...later]);
      expect(values).toEqual(Array.from({ length: 700 }, (_, i) => i));
      const ids = await presentIds(prefix);
      expect(ids).toHaveLength(700);
      const rows = await store.read(EVERY_WORKSPACE, (db) =>
        db.selectFrom('t').select(['id', 'v']).where('id', '=', `${prefix}0599`).execute(),
      );
      expect(rows).toEqual([{ id: `${prefix}0599`, v: 'v599' }]);
      // Grouped: at least 3 batches for 600 same-tick units (256 per batch), far fewer than 700.
      expect(batches).toBeGreaterThanOrEqual(3);
      expect(batches).toBeLessThan(100);
    });

    it('rejects a failing unit with its own error and keeps only the others’ rows', async () => {
      const prefix = freshPrefix('fail');
      const units = Array.from({ length: 8 }, (_, i) =>
        store.batch.run(EVERY_WORKSPACE, async (scope) => {
          const seen = (scope.state.get('count') as number | undefined) ?? 0;
          scope.state.set('count', seen + 1);
          await insert(scope, `${prefix}${i}`);
          await insert(scope, `${prefix}${i}-b`);
          if (i === 3) throw new UnitError(i);
          // A database error inside a unit (duplicate key) is rolled back to its savepoint too.
          if (i === 5) await insert(scope, `${prefix}0`);
          return seen;
        }),
      );
      const results = await settleWithin(units, 20_000);
      const error3 = (results[3] as PromiseRejectedResult).reason as unknown;
      expect(error3).toBeInstanceOf(UnitError);
      expect((error3 as UnitError).unit).toBe(3);
      expect(results[5]?.status).toBe('rejected');
      expect((results[5] as PromiseRejectedResult).reason).not.toBeInstanceOf(UnitError);
      // Units after a failure saw the successful units' state only: one shared batch.
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'x'))).toEqual([
        0,
        1,
        2,
        'x',
        3,
        'x',
        4,
        5,
      ]);
      const expected = [0, 1, 2, 4, 6, 7].flatMap((i) => [`${prefix}${i}`, `${prefix}${i}-b`]);
      expect(await presentIds(prefix)).toEqual(expected.sort());
    });

    it('rolls back a lone failing unit', async () => {
      const prefix = freshPrefix('lone');
      await expect(
        store.batch.run(EVERY_WORKSPACE, async (scope) => {
          await insert(scope, `${prefix}a`);
          throw new UnitError(1);
        }),
      ).rejects.toBeInstanceOf(UnitError);
      expect(await presentIds(prefix)).toEqual([]);
      // The queue keeps working afterwards.
      await store.batch.run(EVERY_WORKSPACE, (scope) => insert(scope, `${prefix}b`));
      expect(await presentIds(prefix)).toEqual([`${prefix}b`]);
    });

    it('commits exactly the successful units of a batch, whichever fail (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }), async (fails) => {
          const prefix = freshPrefix('prop');
          const units = fails.map((fail, i) =>
            store.batch.run(EVERY_WORKSPACE, async (scope) => {
              const before = (scope.state.get('chain') as readonly number[] | undefined) ?? [];
              scope.state.set('chain', [...before, i]);
              await insert(scope, `${prefix}${String(i).padStart(2, '0')}`);
              if (fail) throw new UnitError(i);
              return before;
            }),
          );
          const results = await settleWithin(units, 20_000);
          const succeeded: number[] = [];
          results.forEach((r, i) => {
            if (fails[i] === true) {
              expect(r.status).toBe('rejected');
              expect(((r as PromiseRejectedResult).reason as UnitError).unit).toBe(i);
            } else {
              // Each successful unit sees exactly the earlier successful units' state.
              expect(r).toEqual({ status: 'fulfilled', value: succeeded.slice() });
              succeeded.push(i);
            }
          });
          expect(await presentIds(prefix)).toEqual(
            succeeded.map((i) => `${prefix}${String(i).padStart(2, '0')}`),
          );
        }),
        { numRuns: 25 },
      );
    });

    it('undoes the state and hooks of a failed unit; later units see the successful ones', async () => {
      const prefix = freshPrefix('state');
      const seen: Record<string, unknown> = {};
      const hookRuns: string[] = [];
      const a = store.batch.run(EVERY_WORKSPACE, (scope) => {
        scope.state.set('head', 'a');
        scope.beforeCommit('from-a', () => {
          hookRuns.push('a');
          return Promise.resolve();
        });
        return Promise.resolve('a');
      });
      const b = store.batch.run(EVERY_WORKSPACE, async (scope) => {
        seen['b'] = scope.state.get('head');
        scope.state.set('head', 'b');
        scope.state.set('only-b', true);
        scope.beforeCommit('from-b', async (trx) => {
          hookRuns.push('b');
          await trx
            .insertInto('t')
            .values({ id: `${prefix}hook-b`, v: null })
            .execute();
        });
        // Replacing another unit's hook must be undone as well.
        scope.beforeCommit('from-a', () => {
          hookRuns.push('b-replaced-a');
          return Promise.resolve();
        });
        await sleep(1);
        throw new UnitError(2);
      });
      const c = store.batch.run(EVERY_WORKSPACE, (scope) => {
        seen['c'] = scope.state.get('head');
        seen['c-only-b'] = scope.state.get('only-b');
        scope.state.set('head', 'c');
        return Promise.resolve('c');
      });
      const d = store.batch.run(EVERY_WORKSPACE, (scope) => {
        seen['d'] = scope.state.get('head');
        return Promise.resolve('d');
      });
      const results = await settleWithin([a, b, c, d], 20_000);
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
      ]);
      expect(seen).toEqual({ b: 'a', c: 'a', 'c-only-b': undefined, d: 'c' });
      expect(hookRuns).toEqual(['a']);
      expect(await presentIds(prefix)).toEqual([]);
    });

    it('starts each batch with empty state', async () => {
      await store.batch.run(EVERY_WORKSPACE, (scope) => {
        scope.state.set('leak', 1);
        return Promise.resolve();
      });
      const next = await store.batch.run(EVERY_WORKSPACE, (scope) =>
        Promise.resolve(scope.state.get('leak')),
      );
      expect(next).toBeUndefined();
    });

    it('runs a beforeCommit hook once per batch, inside it, before any unit settles', async () => {
      const prefix = freshPrefix('hook');
      const runs: number[] = [];
      let settledBeforeHook = 0;
      let settled = 0;
      const wave = (n: number) =>
        Array.from({ length: n }, (_, i) =>
          store.batch
            .run(EVERY_WORKSPACE, async (scope) => {
              await insert(scope, `${prefix}${runs.length}-${i}`);
              scope.beforeCommit('head', async (trx) => {
                settledBeforeHook = settled;
                const rows = await trx
                  .selectFrom('t')
                  .select('id')
                  .where('id', 'like', `${prefix}%`)
                  .execute();
                runs.push(rows.length);
                await trx
                  .insertInto('t')
                  .values({ id: `${prefix}checkpoint-${runs.length}`, v: null })
                  .execute();
              });
              return i;
            })
            .finally(() => {
              settled += 1;
            }),
        );
      await Promise.all(wave(20));
      expect(runs).toEqual([20]);
      expect(settledBeforeHook).toBe(0);
      await Promise.all(wave(5));
      // One more run for the second batch; it sees the first batch, its checkpoint and its own 5.
      expect(runs).toEqual([20, 26]);
      expect(await presentIds(`${prefix}checkpoint-`)).toEqual([
        `${prefix}checkpoint-1`,
        `${prefix}checkpoint-2`,
      ]);
    });

    it('rejects every unit of a batch whose beforeCommit hook fails, and keeps none of its rows', async () => {
      const prefix = freshPrefix('hookfail');
      const hookError = new Error('checkpoint failed');
      const units = Array.from({ length: 10 }, (_, i) =>
        store.batch.run(EVERY_WORKSPACE, async (scope) => {
          await insert(scope, `${prefix}${i}`);
          if (i === 4) {
            scope.beforeCommit('bad', async (trx) => {
              await trx
                .insertInto('t')
                .values({ id: `${prefix}hook`, v: null })
                .execute();
              throw hookError;
            });
          }
          return i;
        }),
      );
      const results = await settleWithin(units, 20_000);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBe(hookError);
      }
      expect(await presentIds(prefix)).toEqual([]);
      // The next batch is not affected.
      await store.batch.run(EVERY_WORKSPACE, (scope) => insert(scope, `${prefix}after`));
      expect(await presentIds(prefix)).toEqual([`${prefix}after`]);
    });

    it('close() waits for queued work and then refuses more', async () => {
      const prefix = freshPrefix('close');
      const batch = new GroupCommit<TestDb>(store.db, { maxBatch: 16 });
      let done = 0;
      const work = (i: number) =>
        batch
          .run(EVERY_WORKSPACE, async (scope) => {
            if (i % 10 === 0) await sleep(5);
            await insert(scope, `${prefix}${String(i).padStart(3, '0')}`);
            return i;
          })
          .then((v) => {
            done += 1;
            return v;
          });
      const first = Array.from({ length: 50 }, (_, i) => work(i));
      await nextTick();
      await nextTick();
      // Queued while the first batch is under way.
      const second = Array.from({ length: 50 }, (_, i) => work(50 + i));
      await batch.close();
      expect(done).toBe(100);
      expect(await presentIds(prefix)).toHaveLength(100);
      await expect(Promise.all([...first, ...second])).resolves.toHaveLength(100);
      await expect(batch.run(EVERY_WORKSPACE, () => Promise.resolve(1))).rejects.toThrow(
        'store closed',
      );
      // Closing again, with nothing queued, returns at once.
      await batch.close();
    });

    onPostgres(dialect)(
      'settles every unit of a batch whose connection is lost, instead of hanging',
      async () => {
        // A second store on the same database, so that losing its connection spares the first.
        const lossy = await openStore<TestDb>(location, migrations);
        const crashes = watchProcessErrors();
        try {
          const prefix = freshPrefix('lost');
          const units = [0, 1, 2].map((i) =>
            lossy.batch.run(EVERY_WORKSPACE, async (scope) => {
              await insert(scope, `${prefix}${i}`);
              if (i === 1) {
                // The server ends the session mid-batch (restart, failover, idle timeout).
                await sql`select pg_terminate_backend(pg_backend_pid())`.execute(scope.trx);
              }
              return i;
            }),
          );
          const results = await settleWithin(units, 5_000);
          expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
          expect(await presentIds(prefix)).toEqual([]);
          // And the queue still serves the next unit on a fresh connection.
          await expect(
            settleWithin(
              [lossy.batch.run(EVERY_WORKSPACE, (scope) => insert(scope, `${prefix}after`))],
              10_000,
            ),
          ).resolves.toEqual([{ status: 'fulfilled', value: undefined }]);
          expect(crashes.errors).toEqual([]);
        } finally {
          crashes.stop();
          await Promise.race([lossy.close(), sleep(3_000)]);
        }
      },
    );

    onPostgres(dialect)(
      'keeps serving when the server ends an idle pooled connection',
      async () => {
        const lossy = await openStore<TestDb>(location, migrations);
        const crashes = watchProcessErrors();
        try {
          const prefix = freshPrefix('idle');
          await lossy.batch.run(EVERY_WORKSPACE, (scope) => insert(scope, `${prefix}before`));
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(
            lossy.db,
          );
          // From another connection, as a server restart or an idle timeout would.
          await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(store.db);
          await sleep(200);
          await expect(
            settleWithin(
              [lossy.batch.run(EVERY_WORKSPACE, (scope) => insert(scope, `${prefix}after`))],
              10_000,
            ),
          ).resolves.toEqual([{ status: 'fulfilled', value: undefined }]);
          expect(await presentIds(prefix)).toEqual([`${prefix}after`, `${prefix}before`]);
          expect(crashes.errors).toEqual([]);
        } finally {
          crashes.stop();
          await Promise.race([lossy.close(), sleep(3_000)]);
        }
      },
    );
  });
}
