import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../../testing/harness.js';
import { newId } from '../../platform/ids.js';

const consents = [
  { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
  { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' },
];

forEachDialect((dialect) => {
  describe(`erasure on ${dialect}`, () => {
    let rt: TestRuntime;
    let agent: string;
    let officer: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect);
      agent = await rt.token('agent');
      officer = await rt.token('privacy_officer');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function createCustomer(): Promise<string> {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: {
          consents,
          identity: { givenName: 'Resume' },
          contact: { email: `r${Date.now()}${Math.random()}@example.com`.replace('0.', '') },
          preferences: { channels: ['sms'] },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }

    /** What a process that crashed right after recording the intent leaves behind. */
    async function recordIntentOnly(
      customerId: string,
    ): Promise<{ erasureId: string; keyIds: string[] }> {
      const keys = await rt.inspect.keys
        .selectFrom('data_key')
        .select(['id', 'category'])
        .where('customer_id', '=', customerId)
        .execute();
      const erasureId = newId();
      await rt.inspect.data
        .insertInto('erasure')
        .values({
          workspace_id: rt.workspaceId,
          id: erasureId,
          customer_id: customerId,
          status: 'pending',
          requested_at: new Date().toISOString(),
          completed_at: null,
          categories: JSON.stringify(keys.map((k) => k.category).sort()),
          destroyed_key_ids: JSON.stringify(keys.map((k) => k.id).sort()),
          actor_type: 'token',
          actor_id: 'crashed',
        })
        .execute();
      return { erasureId, keyIds: keys.map((k) => k.id).sort() };
    }

    async function assertErased(customerId: string, erasureId: string, keyIds: string[]) {
      const ledger = await rt.inspect.data
        .selectFrom('erasure')
        .selectAll()
        .where('id', '=', erasureId)
        .executeTakeFirstOrThrow();
      expect(ledger.status).toBe('completed');
      expect(JSON.parse(ledger.destroyed_key_ids)).toEqual(keyIds);
      expect(
        await rt.inspect.keys
          .selectFrom('data_key')
          .select('id')
          .where('customer_id', '=', customerId)
          .execute(),
      ).toEqual([]);
      expect(
        await rt.inspect.data
          .selectFrom('customer')
          .select('id')
          .where('id', '=', customerId)
          .execute(),
      ).toEqual([]);
      expect(
        await rt.inspect.data
          .selectFrom('customer_field')
          .select('field')
          .where('customer_id', '=', customerId)
          .execute(),
      ).toEqual([]);
      expect(
        await rt.inspect.data
          .selectFrom('blind_index')
          .select('field')
          .where('customer_id', '=', customerId)
          .execute(),
      ).toEqual([]);
    }

    it('finishes at start-up an erasure interrupted after its intent was recorded', async () => {
      const id = await createCustomer();
      const { erasureId, keyIds } = await recordIntentOnly(id);
      expect(keyIds).toHaveLength(3);
      rt = await rt.restart();
      await assertErased(id, erasureId, keyIds);
      const entries = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('customer_id', '=', id)
        .where('action', '=', 'erasure.complete')
        .execute();
      expect(entries).toHaveLength(1);
      expect(entries[0]!.actor_id).toBe('erasure-resume');
    });

    it('finishes an erasure interrupted after its keys were destroyed, when the request is repeated', async () => {
      const id = await createCustomer();
      // A read first, so that this process holds the unwrapped keys in its cache.
      const before = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: authHeader(agent),
      });
      expect(before.statusCode).toBe(200);
      const { erasureId, keyIds } = await recordIntentOnly(id);
      // Another process destroys the keys: this one must not go on using its cached copies.
      await rt.inspect.keys.deleteFrom('data_key').where('customer_id', '=', id).execute();
      // The rows are still there but unreadable: reads fail rather than return anything.
      const read = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: authHeader(agent),
      });
      expect(read.statusCode).toBe(500);
      expect(read.body).not.toContain('Resume');
      const res = await rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(officer),
      });
      expect(res.statusCode).toBe(200);
      expect(res.json<{ id: string; status: string; destroyedKeyIds: string[] }>()).toMatchObject({
        id: erasureId,
        status: 'completed',
        destroyedKeyIds: keyIds,
      });
      await assertErased(id, erasureId, keyIds);
    });

    it('makes the customer unreachable with the intent, even when the key store fails, and finishes later', async () => {
      const id = await createCustomer();
      const keys = rt.inspect.keys;
      if (dialect === 'sqlite') {
        await sql`create trigger keys_down before delete on data_key begin select raise(abort, 'keys down'); end`.execute(
          keys,
        );
      } else {
        await sql`create function keys_down() returns trigger language plpgsql as $$ begin raise exception 'keys down'; end $$`.execute(
          keys,
        );
        await sql`create trigger keys_down before delete on data_key for each row execute function keys_down()`.execute(
          keys,
        );
      }
      const failed = await rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(officer),
      });
      expect(failed.statusCode).toBe(500);
      expect(failed.body).not.toContain('Resume');
      // The intent committed with the deletion of the rows: nothing reads or writes them now.
      const read = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: authHeader(agent),
      });
      expect(read.statusCode).toBe(404);
      const update = await rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(agent),
        payload: { identity: { givenName: 'Again' } },
      });
      expect(update.statusCode).toBe(404);
      const pending = await rt.inspect.data
        .selectFrom('erasure')
        .selectAll()
        .where('customer_id', '=', id)
        .executeTakeFirstOrThrow();
      expect(pending.status).toBe('pending');
      expect(
        await keys.selectFrom('data_key').select('id').where('customer_id', '=', id).execute(),
      ).toHaveLength(3);
      if (dialect === 'sqlite') {
        await sql`drop trigger keys_down`.execute(keys);
      } else {
        await sql`drop trigger keys_down on data_key`.execute(keys);
        await sql`drop function keys_down()`.execute(keys);
      }
      rt = await rt.restart();
      await assertErased(id, pending.id, JSON.parse(pending.destroyed_key_ids) as string[]);
    });

    it('erases once when two requests race: the same entry for both, one completion audited', async () => {
      const id = await createCustomer();
      const [a, b] = await Promise.all(
        [0, 1].map(() =>
          rt.app.inject({
            method: 'DELETE',
            url: `/api/v1/customers/${id}`,
            headers: authHeader(officer),
          }),
        ),
      );
      expect([a!.statusCode, b!.statusCode]).toEqual([200, 200]);
      expect(a!.json()).toEqual(b!.json());
      const completions = await rt.inspect.data
        .selectFrom('audit_entry')
        .select('seq')
        .where('customer_id', '=', id)
        .where('action', '=', 'erasure.complete')
        .execute();
      expect(completions).toHaveLength(1);
      expect(
        await rt.inspect.data
          .selectFrom('erasure')
          .select('id')
          .where('customer_id', '=', id)
          .execute(),
      ).toHaveLength(1);
    });

    it('keeps the erasure ledger entry and the audit trail, which hold ids only', async () => {
      const id = await createCustomer();
      const res = await rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(officer),
      });
      const entry = res.json<{ id: string; categories: string[] }>();
      expect(entry.categories).toEqual(['contact', 'identity', 'preferences']);
      const rows = await rt.inspect.data
        .selectFrom('erasure')
        .selectAll()
        .where('customer_id', '=', id)
        .execute();
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain('Resume');
    });
  });
});
