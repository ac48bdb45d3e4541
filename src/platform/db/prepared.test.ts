import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Kysely, Migration } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVERY_WORKSPACE } from './row-scope.js';
import { createPgDatabases, dialects } from '../../testing/harness.js';
import { openStore, type Store, type StoreLocation } from './database.js';
import { prepared } from './prepared.js';

interface T {
  item: { id: string; owner: string; n: number; data: Uint8Array };
}

const migrations = (dialect: string): Record<string, Migration> => ({
  '0001': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('item')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('n', 'integer', (c) => c.notNull())
        .addColumn('data', dialect === 'sqlite' ? 'blob' : 'bytea', (c) => c.notNull())
        .execute();
    },
  },
});

const insertItems = prepared((db: Kysely<T>, rows: readonly T['item'][]) =>
  db.insertInto('item').values([...rows]),
);
const byIds = prepared((db: Kysely<T>, owner: string, ids: readonly string[]) =>
  db
    .selectFrom('item')
    .selectAll()
    .where('owner', '=', owner)
    .where('id', 'in', ids)
    .orderBy('id')
    .limit(50),
);
const count = prepared((db: Kysely<T>, owner: string) =>
  db
    .selectFrom('item')
    .select((eb) => eb.fn.countAll<number>().as('c'))
    .where('owner', '=', owner),
);

for (const dialect of dialects) {
  describe(`prepared queries on ${dialect}`, () => {
    let store: Store<T>;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      let location: StoreLocation;
      if (dialect === 'sqlite') {
        const dir = await mkdtemp(path.join(tmpdir(), 'custodia-prepared-'));
        location = { kind: 'sqlite', file: path.join(dir, 't.db') };
        cleanup = () => rm(dir, { recursive: true, force: true });
      } else {
        const dbs = await createPgDatabases();
        location = { kind: 'postgres', url: dbs.dataUrl };
        cleanup = dbs.drop;
      }
      store = await openStore<T>(location, migrations);
    });
    afterAll(async () => {
      await store.close();
      await cleanup();
    });

    it('binds each call its own values, for every shape of arrays and rows, in and out of batches', async () => {
      const rows = (owner: string, k: number) =>
        Array.from({ length: k }, (_, i) => ({
          id: `${owner}-${String(i).padStart(2, '0')}`,
          owner,
          n: i,
          data: Buffer.from([i, 255 - i]),
        }));
      await store.batch.run(EVERY_WORKSPACE, ({ trx }) => insertItems(trx, rows('a', 3)));
      await store.batch.run(EVERY_WORKSPACE, ({ trx }) => insertItems(trx, rows('b', 1)));
      await Promise.all([
        store.batch.run(EVERY_WORKSPACE, ({ trx }) => insertItems(trx, rows('c', 5))),
        store.batch.run(EVERY_WORKSPACE, ({ trx }) => insertItems(trx, rows('d', 2))),
      ]);
      for (const [owner, k] of [
        ['a', 3],
        ['b', 1],
        ['c', 5],
        ['d', 2],
      ] as const) {
        const all = await store.read(EVERY_WORKSPACE, (db) =>
          byIds(
            db,
            owner,
            rows(owner, k).map((r) => r.id),
          ),
        );
        expect(all.map((r) => [r.id, r.owner, r.n, [...r.data]])).toEqual(
          rows(owner, k).map((r) => [r.id, r.owner, r.n, [...r.data]]),
        );
        const some = await store.read(EVERY_WORKSPACE, (db) =>
          byIds(db, owner, [`${owner}-00`, 'missing']),
        );
        expect(some.map((r) => r.id)).toEqual([`${owner}-00`]);
        const counted = await store.batch.run(EVERY_WORKSPACE, ({ trx }) => count(trx, owner));
        expect(Number(counted[0]?.c)).toBe(k);
      }
      // The same query with another owner never sees the first owner's rows.
      expect(await store.read(EVERY_WORKSPACE, (db) => byIds(db, 'b', ['a-00', 'a-01']))).toEqual(
        [],
      );
    });

    it('runs inside the unit of work: a failed unit leaves no row behind', async () => {
      await expect(
        store.batch.run(EVERY_WORKSPACE, async ({ trx }) => {
          await insertItems(trx, [{ id: 'z-1', owner: 'z', n: 1, data: Buffer.from([1]) }]);
          throw new Error('unit fails');
        }),
      ).rejects.toThrow('unit fails');
      expect(await store.read(EVERY_WORKSPACE, (db) => byIds(db, 'z', ['z-1']))).toEqual([]);
    });
  });
}
