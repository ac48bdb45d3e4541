import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../staff/index.js';
import { seedDefaultPurposes } from '../purposes/index.js';
import { ensureWorkspace } from '../workspaces/index.js';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../../testing/harness.js';

interface EntryDto {
  seq: number;
  action: string;
  actorRole: string | null;
  customerId: string | null;
  outcome: string;
  fields: string[];
}

forEachDialect((dialect) => {
  describe(`audit API on ${dialect}`, () => {
    let rt: TestRuntime;
    let auditor: string;
    let agent: string;
    const canary = `Auditcanary${Date.now().toString(36)}`;
    const email = `audit.canary.${Date.now().toString(36)}@example.org`;

    beforeAll(async () => {
      rt = await startRuntime(dialect);
      auditor = await rt.token('auditor');
      agent = await rt.token('agent');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function newCustomer(): Promise<string> {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: canary },
          contact: { email },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }

    const get = (token: string, query = '') =>
      rt.app.inject({ url: `/api/v1/audit${query}`, headers: authHeader(token) });

    it('gives the auditor the chain in pages, with ids and outcomes and no personal value', async () => {
      const id = await newCustomer();
      const read = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: authHeader(agent),
      });
      expect(read.statusCode).toBe(200);

      const first = await get(auditor, '?limit=2');
      expect(first.statusCode, first.body).toBe(200);
      const page = first.json<{ items: EntryDto[]; nextAfterSeq: number | null }>();
      expect(page.items).toHaveLength(2);
      expect(page.nextAfterSeq).toBe(page.items[1]?.seq);

      const all = await get(auditor, '?limit=500');
      const items = all.json<{ items: EntryDto[] }>().items;
      expect(items.map((e) => e.seq)).toEqual(items.map((_, i) => i + 1));
      expect(items.find((e) => e.customerId === id && e.action === 'customer.read')).toMatchObject({
        actorRole: 'agent',
        outcome: 'allowed',
      });
      expect(countCanary(Buffer.from(all.body), canary)).toBe(0);
      expect(countCanary(Buffer.from(all.body), email)).toBe(0);
    });

    it("filters by customer, and the auditor's own reading is in the chain", async () => {
      const id = await newCustomer();
      const res = await get(auditor, `?customerId=${id}`);
      expect(res.statusCode, res.body).toBe(200);
      const items = res.json<{ items: EntryDto[] }>().items;
      expect(items.length).toBeGreaterThan(0);
      expect(items.every((e) => e.customerId === id)).toBe(true);
      // The read just made is recorded: a later page shows it.
      const again = (await get(auditor, `?customerId=${id}`)).json<{ items: EntryDto[] }>().items;
      expect(again.at(-1)).toMatchObject({ action: 'audit.read', actorRole: 'auditor' });
    });

    it('should not show another workspace’s entries, and refuses other roles', async () => {
      const { id: foreignId } = await ensureWorkspace(rt.ctx, 'audit-foreign');
      await seedDefaultPurposes(rt.ctx, foreignId);
      const foreignAgent = await createApiToken(
        rt.ctx,
        { type: 'system', id: 'test', role: null, workspaceId: foreignId, requestId: null },
        { role: 'agent', label: 'foreign' },
      );
      const created = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(foreignAgent.token),
        payload: {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: canary },
        },
      });
      const foreignCustomer = created.json<{ id: string }>().id;
      const all = await get(auditor, '?limit=500');
      expect(all.body).not.toContain(foreignCustomer);
      const filtered = await get(auditor, `?customerId=${foreignCustomer}`);
      expect(filtered.json<{ items: unknown[] }>().items).toEqual([]);

      for (const role of ['admin', 'agent', 'marketer'] as const) {
        const refused = await get(await rt.token(role));
        expect(refused.statusCode).toBe(403);
      }
      // And the auditor reads nothing but the audit log.
      const id = await newCustomer();
      for (const url of [`/api/v1/customers/${id}?purpose=loyalty_program`, '/api/v1/customers']) {
        const res = await rt.app.inject({ url, headers: authHeader(auditor) });
        expect(res.statusCode).toBe(403);
      }
    });

    it('refuses bad paging with 400', async () => {
      for (const q of ['?limit=0', '?limit=501', '?afterSeq=-1', '?customerId=nope', '?x=1']) {
        expect((await get(auditor, q)).statusCode, q).toBe(400);
      }
    });

    it('verifies the chain, and names the first entry that was changed', async () => {
      await newCustomer();
      const ok = await get(auditor, '/verify');
      expect(ok.statusCode, ok.body).toBe(200);
      expect(ok.json()).toMatchObject({ ok: true });
      const entries = ok.json<{ entries: number }>().entries;
      expect(entries).toBeGreaterThan(0);

      await rt.inspect.data
        .updateTable('audit_entry')
        .set({ outcome: 'denied' })
        .where('workspace_id', '=', rt.workspaceId)
        .where('seq', '=', 3)
        .execute();
      const bad = await get(auditor, '/verify');
      expect(bad.json()).toMatchObject({ ok: false, firstBadSeq: 3 });
    });
  });
});
