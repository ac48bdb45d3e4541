import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../../testing/harness.js';

const loyalty = { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' } as const;
const offers = { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' } as const;
const support = {
  purpose: 'customer_support',
  noticeVersion: '1',
  method: 'phone',
  documentRef: 'CALL-2026-0001',
} as const;

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

let seq = 0;
function uniqueEmail(): string {
  seq += 1;
  return `person.${seq}.${Date.now()}@example.net`;
}

forEachDialect((dialect) => {
  describe(`customers API on ${dialect}`, () => {
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

    const post = (url: string, payload: object, token = agent) =>
      rt.app.inject({ method: 'POST', url, headers: authHeader(token), payload });
    const get = (url: string, token = agent) =>
      rt.app.inject({ method: 'GET', url, headers: authHeader(token) });
    const patch = (id: string, payload: object, token = agent) =>
      rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(token),
        payload,
      });
    const erase = (id: string, token = officer) =>
      rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(token),
      });

    async function create(body: object): Promise<string> {
      const res = await post('/api/v1/customers', body);
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }

    async function auditRows(customerId: string) {
      return rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('customer_id', '=', customerId)
        .orderBy('seq')
        .execute();
    }

    async function storedRowCount(
      table: 'customer' | 'customer_field' | 'blind_index' | 'consent_event',
    ) {
      const row = await rt.inspect.data
        .selectFrom(table)
        .select(sql<number>`count(*)`.as('n'))
        .executeTakeFirstOrThrow();
      return row.n;
    }

    it('creates a customer and reads back only the fields of the purpose', async () => {
      const id = await create({
        consents: [loyalty, offers],
        identity: { givenName: 'Lucía', familyName: 'Martín', birthDate: '1990-02-28' },
        contact: {
          email: ' Lucia@Example.ORG ',
          phone: '612 345 678',
          postalAddress: {
            lines: ['Calle Mayor 1'],
            locality: 'Madrid',
            postalCode: '28013',
            country: 'ES',
          },
        },
        preferences: { interests: ['wine', 'wine', 'books'], channels: ['email'] },
      });
      const read = await get(`/api/v1/customers/${id}?purpose=loyalty_program`);
      expect(read.statusCode).toBe(200);
      expect(read.headers['cache-control']).toBe('no-store');
      const body = read.json<Record<string, unknown>>();
      expect(body['identity']).toEqual({
        givenName: 'Lucía',
        familyName: 'Martín',
        birthDate: '1990-02-28',
      });
      expect(body['contact']).toEqual({
        email: 'lucia@example.org',
        phone: '+34612345678',
        postalAddress: {
          lines: ['Calle Mayor 1'],
          locality: 'Madrid',
          postalCode: '28013',
          country: 'ES',
        },
      });
      expect(body['preferences']).toBeUndefined();
      const offersRead = await get(`/api/v1/customers/${id}?purpose=personalized_offers`);
      expect(offersRead.json<Record<string, unknown>>()['identity']).toBeUndefined();
      expect(offersRead.json<Record<string, unknown>>()['preferences']).toEqual({
        interests: ['wine', 'books'],
        channels: ['email'],
      });
      const entries = await auditRows(id);
      expect(entries.map((e) => [e.action, e.outcome])).toEqual([
        ['customer.create', 'done'],
        ['customer.read', 'allowed'],
        ['customer.read', 'allowed'],
      ]);
      // The creation's entry also records each consent event it made, by id.
      const events = await rt.inspect.data
        .selectFrom('consent_event')
        .select(['id', 'purpose_key'])
        .where('customer_id', '=', id)
        .execute();
      expect(events).toHaveLength(2);
      for (const e of events) expect(entries[0]!.reason).toContain(`${e.id}@${e.purpose_key}/1/`);
      expect(JSON.parse(entries[1]!.fields)).toEqual([
        'birthDate',
        'email',
        'familyName',
        'givenName',
        'phone',
        'postalAddress',
      ]);
      expect(entries[1]!.purpose).toBe('loyalty_program');
      expect(entries[1]!.actor_role).toBe('agent');
    });

    it('refuses a field no consented purpose needs (409 consent_missing) and stores nothing', async () => {
      const before = await Promise.all([
        storedRowCount('customer'),
        storedRowCount('customer_field'),
        storedRowCount('blind_index'),
      ]);
      const keysBefore = await rt.inspect.keys.selectFrom('data_key').select('id').execute();
      const res = await post('/api/v1/customers', {
        consents: [loyalty],
        identity: { givenName: 'Nope' },
        preferences: { interests: ['cars'] },
      });
      expect(res.statusCode).toBe(409);
      const err = res.json<ErrorBody>();
      expect(err.error.code).toBe('consent_missing');
      expect(err.error.fields).toEqual(['preferences.interests']);
      expect(res.body).not.toContain('cars');
      const after = await Promise.all([
        storedRowCount('customer'),
        storedRowCount('customer_field'),
        storedRowCount('blind_index'),
      ]);
      expect(after).toEqual(before);
      expect(await rt.inspect.keys.selectFrom('data_key').select('id').execute()).toHaveLength(
        keysBefore.length,
      );
      const denial = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('action', '=', 'customer.create')
        .where('outcome', '=', 'denied')
        .execute();
      expect(
        denial.some((d) => d.reason === 'consent_missing' && d.fields.includes('interests')),
      ).toBe(true);
    });

    it.each([
      [{ contact: { email: 'not-an-email-canary-77' } }, 'contact.email'],
      [{ contact: { phone: '12-canary-88' } }, 'contact.phone'],
      [{ identity: { birthDate: '2999-01-01' } }, 'identity.birthDate'],
      [{ identity: { birthDate: '1990-02-30' } }, 'identity.birthDate'],
      [{ identity: { givenName: '' } }, 'body.identity.givenName'],
      [{ identity: { nickname: 'canary-99' } }, 'body.identity.nickname'],
      [
        {
          contact: { postalAddress: { lines: [], locality: 'X', postalCode: '1', country: 'ES' } },
        },
        'body.contact.postalAddress.lines',
      ],
    ])('rejects bad input %j naming the field, never echoing the value', async (fields, path) => {
      const res = await post('/api/v1/customers', { consents: [loyalty], ...fields });
      expect(res.statusCode).toBe(400);
      const err = res.json<ErrorBody>();
      expect(err.error.code).toBe('invalid_input');
      expect(err.error.fields).toContain(path);
      expect(res.body).not.toMatch(/canary|2999|1990-02-30/);
    });

    it('rejects consents that are empty, unknown, repeated or name an unknown notice version', async () => {
      for (const [consents, field] of [
        [[], 'body.consents'],
        [[{ ...loyalty, purpose: 'astrology' }], 'body.consents.0.purpose'],
        [[loyalty, loyalty], 'body.consents.1.purpose'],
        [[{ ...loyalty, noticeVersion: '7' }], 'body.consents.0.noticeVersion'],
        [[{ ...loyalty, method: 'telepathy' }], 'body.consents.0.method'],
      ] as const) {
        const res = await post('/api/v1/customers', { consents, identity: { givenName: 'A' } });
        expect(res.statusCode, JSON.stringify(consents)).toBe(400);
        expect(res.json<ErrorBody>().error.fields).toContain(field);
      }
    });

    it('requires a purpose to read, and answers a purpose not consented like a missing customer', async () => {
      const id = await create({ consents: [loyalty], identity: { givenName: 'Pilar' } });
      const noPurpose = await get(`/api/v1/customers/${id}`);
      expect(noPurpose.statusCode).toBe(400);
      expect(noPurpose.json<ErrorBody>().error.fields).toContain('querystring.purpose');
      const unknownPurpose = await get(`/api/v1/customers/${id}?purpose=astrology`);
      expect(unknownPurpose.statusCode).toBe(400);
      const notConsented = await get(`/api/v1/customers/${id}?purpose=customer_support`);
      const missing = await get(
        `/api/v1/customers/01939d4e-0000-7000-8000-000000000000?purpose=customer_support`,
      );
      expect(notConsented.statusCode).toBe(404);
      expect(missing.statusCode).toBe(404);
      expect(notConsented.json<ErrorBody>().error.message).toBe(
        missing.json<ErrorBody>().error.message,
      );
      expect(notConsented.body).not.toContain('Pilar');
      const denials = (await auditRows(id)).filter((e) => e.outcome === 'denied');
      expect(denials.map((d) => [d.purpose, d.reason])).toEqual([
        ['astrology', 'purpose_unknown'],
        ['customer_support', 'purpose_not_active'],
      ]);
    });

    it('searches by email and by phone through the blind index, only for customers under the purpose', async () => {
      const email = uniqueEmail();
      const a = await create({
        consents: [loyalty],
        identity: { givenName: 'Irene' },
        contact: { email, phone: '+34 699 000 111' },
      });
      const b = await create({ consents: [offers], contact: { email: email.toUpperCase() } });
      const byEmail = await post('/api/v1/customers/search', {
        email: `  ${email.toUpperCase()}`,
        purpose: 'loyalty_program',
      });
      expect(byEmail.statusCode).toBe(200);
      expect(byEmail.headers['cache-control']).toBe('no-store');
      const items = byEmail.json<{ items: { id: string; identity?: { givenName: string } }[] }>()
        .items;
      expect(items.map((i) => i.id)).toEqual([a]);
      expect(items[0]!.identity?.givenName).toBe('Irene');
      const both = await post('/api/v1/customers/search', {
        email,
        purpose: 'personalized_offers',
      });
      expect(both.json<{ items: { id: string }[] }>().items.map((i) => i.id)).toEqual([b]);
      const byPhone = await post('/api/v1/customers/search', {
        phone: '699000111',
        purpose: 'loyalty_program',
      });
      expect(byPhone.json<{ items: { id: string }[] }>().items.map((i) => i.id)).toEqual([a]);
      const none = await post('/api/v1/customers/search', {
        email: 'nobody@example.net',
        purpose: 'loyalty_program',
      });
      expect(none.json<{ items: unknown[] }>().items).toEqual([]);
      const unknown = await post('/api/v1/customers/search', { email, purpose: 'astrology' });
      expect(unknown.statusCode).toBe(400);
      const unknownAudit = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('action', '=', 'customer.search')
        .where('purpose', '=', 'astrology')
        .execute();
      expect(unknownAudit.map((e) => [e.outcome, e.reason])).toEqual([
        ['denied', 'purpose_unknown'],
      ]);
      const both2 = await post('/api/v1/customers/search', {
        email,
        phone: '699000111',
        purpose: 'loyalty_program',
      });
      expect(both2.statusCode).toBe(400);
      const blind = await rt.inspect.data
        .selectFrom('blind_index')
        .selectAll()
        .where('customer_id', '=', a)
        .execute();
      expect(blind).toHaveLength(2);
      for (const row of blind) expect(row.digest).toMatch(/^[0-9a-f]{64}$/);
    });

    it('updates fields under the consent rule; null removes a field and its index entry', async () => {
      const email = uniqueEmail();
      const id = await create({
        consents: [loyalty],
        identity: { givenName: 'Marta' },
        contact: { email },
      });
      const refused = await patch(id, { preferences: { channels: ['sms'] } });
      expect(refused.statusCode).toBe(409);
      expect(refused.json<ErrorBody>().error.fields).toEqual(['preferences.channels']);
      const newEmail = uniqueEmail();
      const ok = await patch(id, {
        identity: { familyName: 'Ruiz', givenName: null },
        contact: { email: newEmail },
      });
      expect(ok.statusCode, ok.body).toBe(200);
      const read = (await get(`/api/v1/customers/${id}?purpose=loyalty_program`)).json<
        Record<string, unknown>
      >();
      expect(read['identity']).toEqual({ familyName: 'Ruiz' });
      expect(read['contact']).toEqual({ email: newEmail });
      const oldSearch = await post('/api/v1/customers/search', {
        email,
        purpose: 'loyalty_program',
      });
      expect(oldSearch.json<{ items: unknown[] }>().items).toEqual([]);
      const newSearch = await post('/api/v1/customers/search', {
        email: newEmail,
        purpose: 'loyalty_program',
      });
      expect(newSearch.json<{ items: { id: string }[] }>().items.map((i) => i.id)).toEqual([id]);
      const removeEmail = await patch(id, { contact: { email: null } });
      expect(removeEmail.statusCode).toBe(200);
      const gone = await post('/api/v1/customers/search', {
        email: newEmail,
        purpose: 'loyalty_program',
      });
      expect(gone.json<{ items: unknown[] }>().items).toEqual([]);
      const missing = await patch('01939d4e-0000-7000-8000-000000000000', {
        identity: { givenName: 'X' },
      });
      expect(missing.statusCode).toBe(404);
      const empty = await patch(id, {});
      expect(empty.statusCode).toBe(400);
      const actions = (await auditRows(id)).map((e) => `${e.action}:${e.outcome}`);
      expect(actions).toContain('customer.update:denied');
      expect(actions.filter((a) => a === 'customer.update:done')).toHaveLength(2);
    });

    it('adds a category under a purpose that needs it, making a data key for it', async () => {
      const id = await create({ consents: [loyalty, support], identity: { givenName: 'Olga' } });
      const keysBefore = await rt.inspect.keys
        .selectFrom('data_key')
        .select('category')
        .where('customer_id', '=', id)
        .execute();
      expect(keysBefore.map((k) => k.category)).toEqual(['identity']);
      expect((await patch(id, { contact: { phone: '+44 20 7946 0958' } })).statusCode).toBe(200);
      const keysAfter = await rt.inspect.keys
        .selectFrom('data_key')
        .select('category')
        .where('customer_id', '=', id)
        .execute();
      expect(keysAfter.map((k) => k.category).sort()).toEqual(['contact', 'identity']);
      const read = (await get(`/api/v1/customers/${id}?purpose=customer_support`)).json<
        Record<string, unknown>
      >();
      expect(read['contact']).toEqual({ phone: '+442079460958' });
    });

    it('lets concurrent updates that open the same new category both succeed, under one data key', async () => {
      const id = await create({ consents: [loyalty, offers], identity: { givenName: 'Race' } });
      const results = await Promise.all([
        patch(id, { preferences: { channels: ['sms'] } }),
        patch(id, { preferences: { interests: ['tea'] } }),
        patch(id, { contact: { email: uniqueEmail() } }),
      ]);
      expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200]);
      const keys = await rt.inspect.keys
        .selectFrom('data_key')
        .select('category')
        .where('customer_id', '=', id)
        .execute();
      expect(keys.map((k) => k.category).sort()).toEqual(['contact', 'identity', 'preferences']);
      const read = (await get(`/api/v1/customers/${id}?purpose=personalized_offers`)).json<
        Record<string, unknown>
      >();
      expect(read['preferences']).toEqual({ channels: ['sms'], interests: ['tea'] });
    });

    it('lists customers with masked values only, paginated by cursor', async () => {
      const ids = [];
      for (let i = 0; i < 3; i += 1) {
        ids.push(
          await create({
            consents: [loyalty],
            identity: { givenName: `Zoë${i}`, familyName: 'Quintana' },
            contact: { email: uniqueEmail(), phone: '+34 612 000 00' + String(i) },
          }),
        );
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/api/v1/customers?limit=2${cursor === null ? '' : `&cursor=${cursor}`}`;
        const res = await get(url);
        expect(res.statusCode).toBe(200);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.body).not.toMatch(/Zoë\d|Quintana|example\.net|612000/);
        const page = res.json<{
          items: { id: string; masked: Record<string, string> }[];
          nextCursor: string | null;
        }>();
        expect(page.items.length).toBeLessThanOrEqual(2);
        for (const item of page.items) {
          seen.push(item.id);
          if (ids.includes(item.id)) {
            expect(item.masked['givenName']).toBe('Z•••');
            expect(item.masked['email']).toBe('p•••@•••.net');
            expect(item.masked['phone']).toMatch(/^•+0\d$/);
          }
        }
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 100);
      for (const id of ids) expect(seen).toContain(id);
      // Each customer shown, even masked, has its own audit entry naming the masked fields.
      for (const id of ids) {
        const listed = (await auditRows(id)).filter((e) => e.action === 'customer.list');
        expect(listed.length).toBeGreaterThan(0);
        expect(JSON.parse(listed[0]!.fields)).toEqual(
          expect.arrayContaining(['masked:email', 'masked:givenName']),
        );
      }
      expect(new Set(seen).size).toBe(seen.length);
      const tooMany = await get('/api/v1/customers?limit=1000');
      expect(tooMany.statusCode).toBe(400);
    });

    it('erases a customer: keys destroyed, rows and index gone, ledger entry returned, idempotently', async () => {
      const email = uniqueEmail();
      const id = await create({
        consents: [loyalty, offers],
        identity: { givenName: 'Berta' },
        contact: { email },
        preferences: { channels: ['post'] },
      });
      const keyIds = (
        await rt.inspect.keys
          .selectFrom('data_key')
          .select('id')
          .where('customer_id', '=', id)
          .execute()
      )
        .map((k) => k.id)
        .sort();
      expect(keyIds).toHaveLength(3);
      const agentTry = await erase(id, agent);
      expect(agentTry.statusCode).toBe(403);
      const res = await erase(id);
      expect(res.statusCode, res.body).toBe(200);
      const entry = res.json<{
        id: string;
        customerId: string;
        status: string;
        categories: string[];
        destroyedKeyIds: string[];
        completedAt: string | null;
      }>();
      expect(entry.customerId).toBe(id);
      expect(entry.status).toBe('completed');
      expect(entry.categories).toEqual(['contact', 'identity', 'preferences']);
      expect(entry.destroyedKeyIds).toEqual(keyIds);
      expect(entry.completedAt).not.toBeNull();
      expect(
        await rt.inspect.keys
          .selectFrom('data_key')
          .select('id')
          .where('customer_id', '=', id)
          .execute(),
      ).toEqual([]);
      for (const table of ['customer_field', 'blind_index', 'consent_event'] as const) {
        const rows = await rt.inspect.data
          .selectFrom(table)
          .select('customer_id')
          .where('customer_id', '=', id)
          .execute();
        expect(rows, table).toEqual([]);
      }
      expect((await get(`/api/v1/customers/${id}?purpose=loyalty_program`)).statusCode).toBe(404);
      const search = await post('/api/v1/customers/search', { email, purpose: 'loyalty_program' });
      expect(search.json<{ items: unknown[] }>().items).toEqual([]);
      const again = await erase(id);
      expect(again.statusCode).toBe(200);
      expect(again.json()).toEqual(entry);
      expect((await erase('01939d4e-0000-7000-8000-000000000000')).statusCode).toBe(404);
      const actions = (await auditRows(id)).map((e) => e.action);
      expect(actions).toContain('erasure.start');
      expect(actions).toContain('erasure.complete');
    });

    it('fails closed: when the audit entry cannot be written, no personal data is returned and nothing changes', async () => {
      const id = await create({
        consents: [loyalty],
        identity: { givenName: 'Canary-Audit-Closed' },
      });
      if (dialect === 'sqlite') {
        await sql`create trigger audit_down before insert on audit_entry begin select raise(abort, 'audit down'); end`.execute(
          rt.inspect.data,
        );
      } else {
        await sql`create function audit_down() returns trigger language plpgsql as $$ begin raise exception 'audit down'; end $$`.execute(
          rt.inspect.data,
        );
        await sql`create trigger audit_down before insert on audit_entry for each row execute function audit_down()`.execute(
          rt.inspect.data,
        );
      }
      try {
        const read = await get(`/api/v1/customers/${id}?purpose=loyalty_program`);
        expect(read.statusCode).toBe(503);
        expect(read.json<ErrorBody>().error.code).toBe('audit_unavailable');
        expect(read.body).not.toContain('Canary-Audit-Closed');
        const update = await patch(id, { identity: { givenName: 'Changed' } });
        expect(update.statusCode).toBe(503);
        const created = await post('/api/v1/customers', {
          consents: [loyalty],
          identity: { givenName: 'Never' },
        });
        expect(created.statusCode).toBe(503);
        const list = await get('/api/v1/customers');
        expect(list.statusCode).toBe(503);
        expect(list.body).not.toContain('C•••');
      } finally {
        if (dialect === 'sqlite') {
          await sql`drop trigger audit_down`.execute(rt.inspect.data);
        } else {
          await sql`drop trigger audit_down on audit_entry`.execute(rt.inspect.data);
          await sql`drop function audit_down()`.execute(rt.inspect.data);
        }
      }
      const read = (await get(`/api/v1/customers/${id}?purpose=loyalty_program`)).json<
        Record<string, unknown>
      >();
      expect(read['identity']).toEqual({ givenName: 'Canary-Audit-Closed' });
    });

    it('lets each role do only what it may, and audits refusals', async () => {
      const admin = await rt.token('admin');
      const marketer = await rt.token('marketer');
      const auditor = await rt.token('auditor');
      const id = await create({ consents: [loyalty], identity: { givenName: 'Role-Canary' } });
      for (const token of [admin, marketer, auditor]) {
        const read = await get(`/api/v1/customers/${id}?purpose=loyalty_program`, token);
        expect(read.statusCode).toBe(403);
        expect(read.body).not.toContain('Role-Canary');
        expect((await post('/api/v1/customers', { consents: [loyalty] }, token)).statusCode).toBe(
          403,
        );
        expect((await erase(id, token)).statusCode).toBe(403);
      }
      expect((await get('/api/v1/customers', marketer)).statusCode).toBe(200);
      expect((await get('/api/v1/customers', admin)).statusCode).toBe(403);
      const denied = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('action', '=', 'access.denied')
        .execute();
      expect(denied.length).toBeGreaterThanOrEqual(9);
      const unauth = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: { authorization: 'Bearer cust_forged' },
      });
      expect(unauth.statusCode).toBe(401);
      const none = await rt.app.inject({ url: `/api/v1/customers/${id}?purpose=loyalty_program` });
      expect(none.statusCode).toBe(401);
    });
  });
});
