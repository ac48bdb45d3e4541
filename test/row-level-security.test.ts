import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/platform/context.js';
import { EVERY_WORKSPACE, scopeValue, type RowScope } from '../src/platform/db/row-scope.js';
import { createApiToken } from '../src/modules/staff/index.js';
import { seedDefaultPurposes } from '../src/modules/purposes/index.js';
import { ensureWorkspace } from '../src/modules/workspaces/index.js';
import { authHeader, dialects, startRuntime, type TestRuntime } from '../src/testing/harness.js';

// Row-level security is PostgreSQL's; on SQLite the store says it is unavailable.
const hasPostgres = dialects.includes('postgres');

describe('row scope on sqlite', () => {
  it('reports row-level security as unavailable and still refuses a widening id', async () => {
    const rt = await startRuntime('sqlite');
    try {
      expect(rt.ctx.data.rowSecurity).toBe('unavailable');
      expect(rt.ctx.keys.rowSecurity).toBe('unavailable');
      for (const bad of ['', '*']) {
        expect(() => scopeValue(bad)).toThrow('invalid workspace scope');
        await expect(rt.ctx.data.batch.run(bad, () => Promise.resolve(1))).resolves.toBe(1);
      }
    } finally {
      await rt.close();
    }
  });
});

type Counts = Map<string, Map<string, number>>;

describe.runIf(hasPostgres)(
  `workspace isolation by row-level security on PostgreSQL${hasPostgres ? '' : ' (skipped: CUSTODIA_TEST_PG_URL is not set)'}`,
  () => {
    let rt: TestRuntime;
    let wsA: string;
    let wsB: string;
    let customerA: string;
    let customerB: string;

    /** Tables of a store that hold workspace rows, and the column naming the workspace. */
    async function workspaceTables(db: Kysely<unknown>): Promise<Map<string, string>> {
      const rows = await sql<{ table_name: string; column_name: string }>`
        select table_name, column_name from information_schema.columns
        where table_schema = 'public'
          and (column_name = 'workspace_id' or (table_name = 'workspace' and column_name = 'id'))
        order by table_name`.execute(db);
      return new Map(rows.rows.map((r) => [r.table_name, r.column_name]));
    }

    /** Rows per table and workspace, as the given handle sees them. */
    async function countRows(db: Kysely<unknown>, tables: Map<string, string>): Promise<Counts> {
      const counts: Counts = new Map();
      for (const [table, column] of tables) {
        const rows = await sql<{ ws: string; n: number }>`
          select ${sql.ref(column)} as ws, count(*)::int as n from ${sql.table(table)}
          group by 1`.execute(db);
        counts.set(table, new Map(rows.rows.map((r) => [r.ws, r.n])));
      }
      return counts;
    }

    async function seedWorkspace(
      tokenFor: (role: 'agent' | 'privacy_officer' | 'admin') => Promise<string>,
    ): Promise<string> {
      const token = await tokenFor('agent');
      const created = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(token),
        payload: {
          consents: [
            { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
            { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' },
          ],
          identity: { givenName: 'Rowena' },
          contact: { email: `rowena.${Math.random().toString(36).slice(2)}@example.org` },
          preferences: { interests: ['tea'] },
        },
      });
      expect(created.statusCode, created.body).toBe(201);
      const id = created.json<{ id: string }>().id;
      // A withdrawal leaves a category erasure; erasing a second customer, an erasure.
      const withdrawn = await rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents/personalized_offers/withdraw`,
        headers: authHeader(token),
        payload: { method: 'web_form' },
      });
      expect(withdrawn.statusCode, withdrawn.body).toBe(200);
      const doomed = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(token),
        payload: {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: 'Doomed' },
        },
      });
      expect(doomed.statusCode, doomed.body).toBe(201);
      const erased = await rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/customers/${doomed.json<{ id: string }>().id}`,
        headers: authHeader(await tokenFor('privacy_officer')),
      });
      expect(erased.statusCode, erased.body).toBe(200);
      const invited = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/staff',
        headers: authHeader(await tokenFor('privacy_officer')),
        payload: {
          email: `staff.${Math.random().toString(36).slice(2)}@example.net`,
          displayName: 'Row Level',
          role: 'agent',
        },
      });
      expect(invited.statusCode, invited.body).toBe(201);
      return id;
    }

    beforeAll(async () => {
      rt = await startRuntime('postgres');
      wsA = rt.workspaceId;
      wsB = (await ensureWorkspace(rt.ctx, 'rls-other')).id;
      await seedDefaultPurposes(rt.ctx, wsB);
      const actorB: Actor = { ...rt.systemActor(), workspaceId: wsB };
      customerA = await seedWorkspace((role) => rt.token(role));
      customerB = await seedWorkspace(
        async (role) => (await createApiToken(rt.ctx, actorB, { role, label: 'b' })).token,
      );
    }, 60_000);
    afterAll(async () => {
      await rt.close();
    });

    it('binds the role Custodia runs as: neither superuser nor BYPASSRLS', () => {
      expect(rt.ctx.data.rowSecurity).toBe('enforced');
      expect(rt.ctx.keys.rowSecurity).toBe('enforced');
    });

    it('enables and forces a workspace policy on every table with workspace rows, in both stores', async () => {
      for (const db of [rt.inspect.data, rt.inspect.keys] as Kysely<unknown>[]) {
        const tables = await workspaceTables(db);
        expect(tables.size).toBeGreaterThan(0);
        const state = await sql<{
          relname: string;
          on: boolean;
          forced: boolean;
          policies: number;
        }>`
          select c.relname, c.relrowsecurity as on, c.relforcerowsecurity as forced,
            (select count(*)::int from pg_policy p where p.polrelid = c.oid) as policies
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind = 'r'`.execute(db);
        const byName = new Map(state.rows.map((r) => [r.relname, r]));
        for (const table of tables.keys()) {
          expect(byName.get(table), table).toMatchObject({ on: true, forced: true, policies: 1 });
        }
      }
    });

    it('shows a query that sets no workspace no row of any table', async () => {
      const dataTables = await workspaceTables(rt.inspect.data as Kysely<unknown>);
      const all = await countRows(rt.inspect.data as Kysely<unknown>, dataTables);
      // Not vacuous: most tables hold rows of both workspaces.
      const inBoth = [...all.values()].filter(
        (m) => (m.get(wsA) ?? 0) > 0 && (m.get(wsB) ?? 0) > 0,
      );
      expect(inBoth.length).toBeGreaterThanOrEqual(14);
      const unscoped = await countRows(rt.ctx.data.db as Kysely<unknown>, dataTables);
      for (const [table, m] of unscoped) expect([...m.entries()], table).toEqual([]);
      const keyTables = await workspaceTables(rt.inspect.keys as Kysely<unknown>);
      const keys = await countRows(rt.ctx.keys.db as Kysely<unknown>, keyTables);
      for (const [table, m] of keys) expect([...m.entries()], table).toEqual([]);
      const allKeys = await countRows(rt.inspect.keys as Kysely<unknown>, keyTables);
      expect(allKeys.get('data_key')?.get(wsA)).toBeGreaterThan(0);
      expect(allKeys.get('data_key')?.get(wsB)).toBeGreaterThan(0);
    });

    it("shows a read scoped to one workspace exactly that workspace's rows", async () => {
      const tables = await workspaceTables(rt.inspect.data as Kysely<unknown>);
      const all = await countRows(rt.inspect.data as Kysely<unknown>, tables);
      for (const ws of [wsA, wsB]) {
        const seen = await rt.ctx.data.read(ws, (db) => countRows(db as Kysely<unknown>, tables));
        for (const [table, m] of seen) {
          const expected = all.get(table)?.get(ws);
          expect([...m.entries()], table).toEqual(expected === undefined ? [] : [[ws, expected]]);
        }
      }
      const everything = await rt.ctx.data.read(EVERY_WORKSPACE, (db) =>
        countRows(db as Kysely<unknown>, tables),
      );
      expect(everything).toEqual(all);
    });

    it("refuses a unit of one workspace writing another's rows, and hides them from its updates", async () => {
      const now = new Date().toISOString();
      await expect(
        rt.ctx.data.batch.run(wsA, ({ trx }) =>
          trx
            .insertInto('customer')
            .values({ workspace_id: wsB, id: 'planted', created_at: now, updated_at: now })
            .execute(),
        ),
      ).rejects.toThrow(/row-level security/);
      const touched = await rt.ctx.data.batch.run(wsA, ({ trx }) =>
        trx
          .updateTable('customer')
          .set({ updated_at: now })
          .where('id', '=', customerB)
          .executeTakeFirst(),
      );
      expect(Number(touched.numUpdatedRows)).toBe(0);
      const deleted = await rt.ctx.data.batch.run(wsA, ({ trx }) =>
        trx.deleteFrom('customer_field').where('customer_id', '=', customerB).executeTakeFirst(),
      );
      expect(Number(deleted.numDeletedRows)).toBe(0);
      const planted = await rt.inspect.data
        .selectFrom('customer')
        .select('id')
        .where('id', '=', 'planted')
        .execute();
      expect(planted).toEqual([]);
    });

    it('gives each unit of a mixed batch its own workspace, also after a failed unit', async () => {
      const visible = (scope: RowScope, fail = false) =>
        rt.ctx.data.batch.run(scope, async ({ trx }) => {
          const rows = await trx.selectFrom('customer').select('workspace_id').distinct().execute();
          if (fail) throw new Error('unit fails after reading');
          return rows.map((r) => r.workspace_id).sort();
        });
      // Queued in one tick, so they share a batch: A, B failing, B, A, every workspace.
      const results = await Promise.allSettled([
        visible(wsA),
        visible(wsB, true),
        visible(wsB),
        visible(wsA),
        visible(EVERY_WORKSPACE),
      ]);
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'failed'))).toEqual([
        [wsA],
        'failed',
        [wsB],
        [wsA],
        [wsA, wsB].sort(),
      ]);
    });

    it("serves each workspace's API only its own customers", async () => {
      const agentA = await rt.token('agent');
      const res = await rt.app.inject({
        method: 'GET',
        url: `/api/v1/customers/${customerB}?purpose=loyalty_program`,
        headers: authHeader(agentA),
      });
      expect(res.statusCode).toBe(404);
      const own = await rt.app.inject({
        method: 'GET',
        url: `/api/v1/customers/${customerA}?purpose=loyalty_program`,
        headers: authHeader(agentA),
      });
      expect(own.statusCode, own.body).toBe(200);
    });
  },
);
