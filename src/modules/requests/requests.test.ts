import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { seedDefaultPurposes } from '../purposes/index.js';
import { createApiToken } from '../staff/index.js';
import { ensureWorkspace } from '../workspaces/index.js';
import { addMonths, utcDateOf } from './requests.dates.js';

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

interface RequestDto {
  id: string;
  customerId: string | null;
  kind: string;
  channel: string;
  receivedOn: string;
  dueOn: string;
  extendedTo: string | null;
  effectiveDueOn: string;
  status: 'open' | 'completed' | 'refused';
  isOverdue: boolean;
  details: string | null;
  extensions: { months: number; reason: string; extendedAt: string; extendedBy: string }[];
  recordedBy: string;
  createdAt: string;
  closedAt: string | null;
  closedBy: string | null;
  outcomeNote: string | null;
}

interface Page {
  items: RequestDto[];
  nextCursor: string | null;
}

const BASE = '/api/v1/subject-requests';
const DAY = 24 * 60 * 60_000;
const REASON = 'Many records across several archived systems.';

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Math.random().toString(36).slice(2, 10)}`;
}

function errorOf(res: LightMyRequestResponse): ErrorBody['error'] {
  return res.json<ErrorBody>().error;
}

forEachDialect((dialect) => {
  describe(`data-subject requests received elsewhere, on ${dialect}`, () => {
    // Starts 2026-01-15T09:00Z; the tests that move it come last.
    const clock = new TestClock();
    let rt: TestRuntime;
    let officer: string;
    let agent: string;
    let customerId: string;
    let foreignOfficer: string;
    let foreignCustomerId: string;
    let foreignWorkspaceId: string;

    const today = () => utcDateOf(clock.now());
    const daysAgo = (n: number) => utcDateOf(new Date(clock.now().getTime() - n * DAY));

    function post(token: string, url: string, payload?: object) {
      return rt.app.inject({
        method: 'POST',
        url,
        headers: authHeader(token),
        ...(payload === undefined ? {} : { payload }),
      });
    }
    function get(token: string, url: string) {
      return rt.app.inject({ method: 'GET', url, headers: authHeader(token) });
    }

    async function record(body: object, token = officer): Promise<RequestDto> {
      const res = await post(token, BASE, { kind: 'access', channel: 'letter', ...body });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<RequestDto>();
    }
    async function read(id: string): Promise<RequestDto> {
      const res = await get(officer, `${BASE}/${id}`);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<RequestDto>();
    }
    function extend(id: string, body: object, token = officer) {
      return post(token, `${BASE}/${id}/extend`, body);
    }
    function close(id: string, body: object, token = officer) {
      return post(token, `${BASE}/${id}/close`, body);
    }
    async function list(query: string): Promise<Page> {
      const res = await get(officer, `${BASE}${query}`);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<Page>();
    }

    async function newCustomer(token: string): Promise<string> {
      const res = await post(token, '/api/v1/customers', {
        consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
        identity: { givenName: unique('Given') },
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }

    async function requestRows() {
      return rt.inspect.data.selectFrom('subject_request').selectAll().execute();
    }
    async function requestKeys() {
      return rt.inspect.keys
        .selectFrom('data_key')
        .select('id')
        .where('category', '=', 'requests')
        .execute();
    }
    async function auditOf(workspaceId: string, needle: string) {
      const rows = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('workspace_id', '=', workspaceId)
        .orderBy('seq')
        .execute();
      return rows.filter((r) => r.fields.includes(needle));
    }

    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      officer = await rt.token('privacy_officer');
      agent = await rt.token('agent');
      customerId = await newCustomer(agent);

      const { id } = await ensureWorkspace(rt.ctx, unique('elsewhere'));
      foreignWorkspaceId = id;
      await seedDefaultPurposes(rt.ctx, id);
      const foreignActor = {
        type: 'system' as const,
        id: 'test',
        role: null,
        workspaceId: id,
        requestId: null,
      };
      foreignOfficer = (
        await createApiToken(rt.ctx, foreignActor, { role: 'privacy_officer', label: 't' })
      ).token;
      const foreignAgent = (
        await createApiToken(rt.ctx, foreignActor, { role: 'agent', label: 't' })
      ).token;
      foreignCustomerId = await newCustomer(foreignAgent);
    });
    afterAll(async () => {
      await rt.close();
    });

    it('documents its five operations in the OpenAPI document', async () => {
      const res = await rt.app.inject({ url: '/docs/json' });
      expect(res.statusCode).toBe(200);
      const doc = res.json<{
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      }>();
      const mine = Object.entries(doc.paths).filter(([p]) => p.startsWith(BASE));
      const ops = mine.flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m} ${p}`));
      expect(ops.sort()).toEqual([
        `get ${BASE}`,
        `get ${BASE}/{id}`,
        `post ${BASE}`,
        `post ${BASE}/{id}/close`,
        `post ${BASE}/{id}/extend`,
      ]);
      for (const op of mine.flatMap(([, methods]) => Object.values(methods))) {
        expect(Object.keys(op.responses)).toEqual(
          expect.arrayContaining(['401', '403', '429', '500']),
        );
      }
    });

    it('records a request due one calendar month after receipt', async () => {
      const r = await record({
        customerId,
        kind: 'erasure',
        channel: 'phone',
        receivedOn: '2026-01-15',
        details: 'Called from the shop.',
      });
      expect(r).toMatchObject({
        customerId,
        kind: 'erasure',
        channel: 'phone',
        receivedOn: '2026-01-15',
        dueOn: '2026-02-15',
        extendedTo: null,
        effectiveDueOn: '2026-02-15',
        status: 'open',
        isOverdue: false,
        details: 'Called from the shop.',
        extensions: [],
        closedAt: null,
        closedBy: null,
        outcomeNote: null,
      });
      expect(r.createdAt).toBe(clock.now().toISOString());
      expect(await read(r.id)).toEqual(r);

      // A shorter next month ends the period on its last day.
      expect((await record({ receivedOn: '2025-10-31' })).dueOn).toBe('2025-11-30');
      expect((await record({ receivedOn: '2025-03-31' })).dueOn).toBe('2025-04-30');
      expect((await record({ receivedOn: '2025-12-31' })).dueOn).toBe('2026-01-31');
      const late = await record({ receivedOn: '2025-01-31', kind: 'objection' });
      expect(late).toMatchObject({ dueOn: '2025-02-28', isOverdue: true, details: null });
      // Exactly a year back is still accepted; without a customer, none is named.
      expect(await record({ receivedOn: '2025-01-15', channel: 'in_person' })).toMatchObject({
        customerId: null,
        dueOn: '2025-02-15',
      });
    });

    it('refuses a receipt date that is not a date, in the future or more than a year ago', async () => {
      const before = (await requestRows()).length;
      for (const receivedOn of [
        '2026-01-16',
        '2027-01-01',
        '2025-01-14',
        '2026-02-30',
        '2026-1-5',
        '2026-01-15T00:00:00Z',
      ]) {
        const res = await post(officer, BASE, { kind: 'access', channel: 'email', receivedOn });
        expect(res.statusCode, `${receivedOn}: ${res.body}`).toBe(400);
        expect(errorOf(res)).toMatchObject({ code: 'invalid_input', fields: ['body.receivedOn'] });
      }
      for (const body of [
        { kind: 'complaint', channel: 'letter', receivedOn: today() },
        { kind: 'access', channel: 'fax', receivedOn: today() },
        { kind: 'access', channel: 'letter' },
        { kind: 'access', channel: 'letter', receivedOn: today(), details: '' },
        { kind: 'access', channel: 'letter', receivedOn: today(), details: 'x'.repeat(2001) },
        { kind: 'access', channel: 'letter', receivedOn: today(), customerId: 'nope' },
        { kind: 'access', channel: 'letter', receivedOn: today(), status: 'completed' },
      ]) {
        const res = await post(officer, BASE, body);
        expect(res.statusCode, res.body).toBe(400);
        expect(errorOf(res).code).toBe('invalid_input');
      }
      expect((await requestRows()).length).toBe(before);
    });

    it('lets an agent record a request but not list, read, extend or close one', async () => {
      const r = await record({ receivedOn: today(), details: 'Letter at the front desk.' }, agent);
      for (const res of [
        await get(agent, BASE),
        await get(agent, `${BASE}?overdue=true`),
        await get(agent, `${BASE}/${r.id}`),
        await extend(r.id, { months: 1, reason: REASON }, agent),
        await close(r.id, { outcome: 'completed' }, agent),
      ]) {
        expect(res.statusCode, res.body).toBe(403);
        expect(errorOf(res).code).toBe('forbidden');
        expect(res.body).not.toContain('Letter at the front desk.');
      }
      for (const role of ['marketer', 'auditor', 'admin'] as const) {
        const token = await rt.token(role);
        const res = await post(token, BASE, {
          kind: 'access',
          channel: 'letter',
          receivedOn: today(),
        });
        expect(res.statusCode, `${role}: ${res.body}`).toBe(403);
        expect((await get(token, BASE)).statusCode).toBe(403);
      }
      const anonymous = await rt.app.inject({ method: 'GET', url: BASE });
      expect(anonymous.statusCode).toBe(401);
      // Untouched by the refused calls.
      expect(await read(r.id)).toMatchObject({ status: 'open', extendedTo: null });
    });

    it('answers 404 for a customer of another workspace, and writes no request', async () => {
      const rowsBefore = await requestRows();
      const keysBefore = await requestKeys();
      for (const id of [foreignCustomerId, '0190aaaa-0000-7000-8000-000000000000']) {
        const res = await post(officer, BASE, {
          customerId: id,
          kind: 'access',
          channel: 'letter',
          receivedOn: today(),
          details: 'Should never be stored.',
        });
        expect(res.statusCode, res.body).toBe(404);
        expect(errorOf(res).code).toBe('not_found');
        expect(res.body).not.toContain(id);
      }
      expect(await requestRows()).toEqual(rowsBefore);
      expect(await requestKeys()).toEqual(keysBefore);
      const denied = (await auditOf(rt.workspaceId, '"kind:access"')).filter(
        (e) => e.customer_id === foreignCustomerId,
      );
      expect(denied).toHaveLength(1);
      expect(denied[0]).toMatchObject({
        action: 'subject_request.record',
        outcome: 'denied',
        reason: 'not_found',
      });
      // The foreign workspace's chain heard nothing of it.
      expect(
        (await auditOf(foreignWorkspaceId, '')).filter((e) => e.action.startsWith('subject_')),
      ).toEqual([]);
    });

    it("answers 404 for another workspace's request, and changes nothing of it", async () => {
      const foreignRes = await post(foreignOfficer, BASE, {
        kind: 'rectification',
        channel: 'email',
        receivedOn: today(),
        details: 'Foreign details.',
      });
      expect(foreignRes.statusCode, foreignRes.body).toBe(201);
      const foreign = foreignRes.json<RequestDto>();
      const stored = await rt.inspect.data
        .selectFrom('subject_request')
        .selectAll()
        .where('id', '=', foreign.id)
        .executeTakeFirstOrThrow();
      expect(stored.workspace_id).toBe(foreignWorkspaceId);

      for (const id of [foreign.id, '0190aaaa-0000-7000-8000-000000000001']) {
        for (const res of [
          await get(officer, `${BASE}/${id}`),
          await extend(id, { months: 1, reason: REASON }),
          await close(id, { outcome: 'refused', note: 'Not ours.' }),
        ]) {
          expect(res.statusCode, res.body).toBe(404);
          expect(errorOf(res).code).toBe('not_found');
          expect(res.body).not.toContain('Foreign details.');
        }
      }
      expect((await get(officer, `${BASE}/not-a-uuid`)).statusCode).toBe(400);
      expect(
        await rt.inspect.data
          .selectFrom('subject_request')
          .selectAll()
          .where('id', '=', foreign.id)
          .executeTakeFirstOrThrow(),
      ).toEqual(stored);
      const ownList = await list('?limit=100');
      expect(ownList.items.map((i) => i.id)).not.toContain(foreign.id);
      const foreignList = await get(foreignOfficer, `${BASE}?limit=100`);
      expect(foreignList.json<Page>().items.map((i) => i.id)).toEqual([foreign.id]);
      // The refusals are on the own chain, as ids.
      const refusals = await auditOf(rt.workspaceId, foreign.id);
      expect(refusals.map((e) => [e.action, e.outcome, e.reason])).toEqual([
        ['subject_request.read', 'denied', 'not_found'],
        ['subject_request.extend', 'denied', 'not_found'],
        ['subject_request.close', 'denied', 'not_found'],
      ]);
    });

    it('extends by two months at most in total, counted from receipt, on a reason', async () => {
      const r = await record({ receivedOn: '2026-01-10' });
      expect(r.dueOn).toBe('2026-02-10');
      for (const body of [
        { months: 1 },
        { months: 1, reason: 'Too short' },
        { months: 1, reason: '          spaces   ' },
        { months: 3, reason: REASON },
        { months: 0, reason: REASON },
        { months: '1', reason: REASON },
        { months: 1, reason: REASON, extendedTo: '2026-06-01' },
        { months: 1, reason: 'x'.repeat(2001) },
      ]) {
        const res = await extend(r.id, body);
        expect(res.statusCode, `${JSON.stringify(body)}: ${res.body}`).toBe(400);
      }
      expect((await read(r.id)).extendedTo).toBeNull();

      const twice = await extend(r.id, { months: 2, reason: REASON });
      expect(twice.statusCode, twice.body).toBe(200);
      expect(twice.json<RequestDto>()).toMatchObject({
        dueOn: '2026-02-10',
        extendedTo: '2026-04-10',
        effectiveDueOn: '2026-04-10',
        extensions: [{ months: 2, reason: REASON, extendedAt: clock.now().toISOString() }],
      });
      const more = await extend(r.id, { months: 1, reason: REASON });
      expect(more.statusCode, more.body).toBe(409);
      expect(errorOf(more).code).toBe('conflict');
      expect((await read(r.id)).extendedTo).toBe('2026-04-10');

      const stepwise = await record({ receivedOn: '2025-12-31' });
      expect(stepwise.dueOn).toBe('2026-01-31');
      const first = await extend(stepwise.id, { months: 1, reason: 'First: archives offsite.' });
      expect(first.statusCode, first.body).toBe(200);
      expect(first.json<RequestDto>().extendedTo).toBe('2026-02-28');
      const second = await extend(stepwise.id, { months: 1, reason: 'Second: more boxes found.' });
      expect(second.statusCode, second.body).toBe(200);
      // From receipt, not from the clamped February date: 2025-12-31 + 3 months.
      expect(second.json<RequestDto>()).toMatchObject({
        extendedTo: '2026-03-31',
        extensions: [
          { months: 1, reason: 'First: archives offsite.' },
          { months: 1, reason: 'Second: more boxes found.' },
        ],
      });
      expect((await extend(stepwise.id, { months: 1, reason: REASON })).statusCode).toBe(409);

      const oneThenTwo = await record({ receivedOn: today() });
      expect((await extend(oneThenTwo.id, { months: 1, reason: REASON })).statusCode).toBe(200);
      expect((await extend(oneThenTwo.id, { months: 2, reason: REASON })).statusCode).toBe(409);
      expect((await read(oneThenTwo.id)).extensions).toHaveLength(1);
    });

    it('extends only while open and not past the current deadline', async () => {
      // Due today: still in time.
      const dueToday = await record({ receivedOn: addMonths(today(), -1) });
      expect(dueToday.dueOn).toBe(today());
      expect((await extend(dueToday.id, { months: 1, reason: REASON })).statusCode).toBe(200);

      // Due yesterday: too late.
      const pastDue = await record({ receivedOn: daysAgo(32) });
      expect(pastDue.isOverdue).toBe(true);
      const late = await extend(pastDue.id, { months: 1, reason: REASON });
      expect(late.statusCode, late.body).toBe(409);
      expect(errorOf(late).code).toBe('conflict');
      expect(await read(pastDue.id)).toMatchObject({ extendedTo: null, extensions: [] });

      const closed = await record({ receivedOn: today() });
      expect((await close(closed.id, { outcome: 'completed' })).statusCode).toBe(200);
      const afterClose = await extend(closed.id, { months: 1, reason: REASON });
      expect(afterClose.statusCode, afterClose.body).toBe(409);
      expect((await read(closed.id)).extendedTo).toBeNull();

      const reasons = (await auditOf(rt.workspaceId, pastDue.id))
        .concat(await auditOf(rt.workspaceId, closed.id))
        .filter((e) => e.action === 'subject_request.extend')
        .map((e) => [e.outcome, e.reason]);
      expect(reasons).toEqual([
        ['denied', 'past_due'],
        ['denied', 'closed'],
      ]);
    });

    it('closes a request once, as completed or refused', async () => {
      const r = await record({ receivedOn: today() });
      const done = await close(r.id, { outcome: 'completed', note: 'Copy sent by post.' });
      expect(done.statusCode, done.body).toBe(200);
      expect(done.json<RequestDto>()).toMatchObject({
        status: 'completed',
        closedAt: clock.now().toISOString(),
        outcomeNote: 'Copy sent by post.',
        isOverdue: false,
      });
      for (const body of [{ outcome: 'completed' }, { outcome: 'refused', note: 'Again.' }]) {
        const again = await close(r.id, body);
        expect(again.statusCode, again.body).toBe(409);
        expect(errorOf(again).code).toBe('conflict');
      }
      expect(await read(r.id)).toMatchObject({
        status: 'completed',
        outcomeNote: 'Copy sent by post.',
      });

      const refused = await record({ receivedOn: today(), kind: 'objection' });
      for (const body of [
        {},
        { outcome: 'open' },
        { outcome: 'refused', note: 'x'.repeat(2001) },
        { outcome: 'refused', reason: 'no' },
      ]) {
        expect((await close(refused.id, body)).statusCode).toBe(400);
      }
      const res = await close(refused.id, { outcome: 'refused' });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<RequestDto>()).toMatchObject({ status: 'refused', outcomeNote: null });
    });

    it('audits every action in ids and names, refusals included', async () => {
      const r = await record({ customerId, receivedOn: today(), details: 'Audit me.' });
      expect((await extend(r.id, { months: 2, reason: REASON })).statusCode).toBe(200);
      expect((await extend(r.id, { months: 1, reason: REASON })).statusCode).toBe(409);
      await read(r.id);
      expect((await close(r.id, { outcome: 'completed', note: 'Done.' })).statusCode).toBe(200);
      expect((await close(r.id, { outcome: 'completed' })).statusCode).toBe(409);

      const entries = await auditOf(rt.workspaceId, `subject_request:${r.id}`);
      expect(entries.map((e) => [e.action, e.outcome, e.reason])).toEqual([
        ['subject_request.record', 'done', null],
        ['subject_request.extend', 'done', null],
        ['subject_request.extend', 'denied', 'limit_reached'],
        ['subject_request.read', 'allowed', null],
        ['subject_request.close', 'done', 'completed'],
        ['subject_request.close', 'denied', 'closed'],
      ]);
      for (const e of entries) {
        expect(e.customer_id).toBe(customerId);
        expect(e.actor_role).toBe('privacy_officer');
      }
      // The chain keeps field names sorted.
      expect(JSON.parse(entries[0]?.fields ?? '[]')).toEqual(
        ['channel:letter', 'details', 'kind:access', `subject_request:${r.id}`].sort(),
      );
      expect(JSON.parse(entries[1]?.fields ?? '[]')).toContain('months:2');
      // A list is a read of every request it shows.
      const page = await list('?limit=5');
      const listed = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('workspace_id', '=', rt.workspaceId)
        .where('action', '=', 'subject_request.list')
        .orderBy('seq', 'desc')
        .executeTakeFirstOrThrow();
      expect(JSON.parse(listed.fields)).toEqual(
        page.items.map((i) => `subject_request:${i.id}`).sort(),
      );
    });

    it('keeps details, reasons and notes sealed: never in the stores or the logs', async () => {
      const details = unique('Canarydetails');
      const reason = unique('Canaryreason');
      const note = unique('Canarynote');
      const r = await record({ receivedOn: today(), details }, agent);
      expect(r.details).toBe(details);
      expect((await extend(r.id, { months: 1, reason })).statusCode).toBe(200);
      expect((await close(r.id, { outcome: 'refused', note })).statusCode).toBe(200);

      const shown = await get(officer, `${BASE}/${r.id}`);
      expect(shown.headers['cache-control']).toBe('no-store');
      expect(shown.json<RequestDto>()).toMatchObject({
        details,
        extensions: [{ months: 1, reason }],
        outcomeNote: note,
        status: 'refused',
      });
      const listed = await list('?status=refused&limit=100');
      expect(listed.items.find((i) => i.id === r.id)?.outcomeNote).toBe(note);

      const bytes = await rt.storeBytes();
      const logs = Buffer.from(rt.logs.text(), 'utf8');
      for (const canary of [details, reason, note]) {
        expect(countCanary(Buffer.from(shown.body, 'utf8'), canary)).toBeGreaterThan(0);
        expect(countCanary(bytes, canary), canary).toBe(0);
        expect(countCanary(logs, canary), canary).toBe(0);
      }
      // The texts are sealed under the request's own key, not the customer's.
      const keys = await rt.inspect.keys
        .selectFrom('data_key')
        .selectAll()
        .where('customer_id', '=', r.id)
        .execute();
      expect(keys.map((k) => k.category)).toEqual(['requests']);
    });

    it('lists by effective deadline and, once time passes, the overdue ones', async () => {
      // Today is 2026-01-15 until the clock moves below.
      expect(today()).toBe('2026-01-15');
      const a = await record({ receivedOn: '2025-12-26' }); // due 2026-01-26
      const b = await record({ receivedOn: '2026-01-15' }); // due 2026-02-15
      const c = await record({ receivedOn: '2025-12-21' }); // due 2026-01-21, closed
      const d = await record({ receivedOn: '2025-12-21' }); // extended to 2026-02-21
      const e = await record({ receivedOn: '2025-12-21' }); // due 2026-01-21, left open
      expect((await close(c.id, { outcome: 'completed' })).statusCode).toBe(200);
      expect((await extend(d.id, { months: 1, reason: REASON })).statusCode).toBe(200);
      const mine = [a.id, b.id, c.id, d.id, e.id];
      const order = (items: RequestDto[]) =>
        items.map((i) => i.id).filter((id) => mine.includes(id));

      const all = await list('?limit=100');
      expect(all.nextCursor).toBeNull();
      const [first, second] = [c.id, e.id].sort();
      expect(order(all.items)).toEqual([first, second, a.id, b.id, d.id]);
      const keys = all.items.map((i) => `${i.effectiveDueOn} ${i.id}`);
      expect(keys).toEqual([...keys].sort());
      expect(order((await list('?overdue=true&limit=100')).items)).toEqual([]);

      // Pages of one follow the same order, with nothing lost or repeated.
      const paged: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Page = await list(`?limit=1${cursor === null ? '' : `&cursor=${cursor}`}`);
        paged.push(...page.items.map((i) => i.id));
        cursor = page.nextCursor;
      } while (cursor !== null);
      expect(paged).toEqual(all.items.map((i) => i.id));

      clock.advance(17 * DAY); // 2026-02-01
      expect(today()).toBe('2026-02-01');
      const overdue = await list('?overdue=true&limit=100');
      expect(order(overdue.items)).toEqual([e.id, a.id]);
      for (const item of overdue.items) {
        expect(item.status).toBe('open');
        expect(item.isOverdue).toBe(true);
        expect(item.effectiveDueOn < today()).toBe(true);
      }
      const notOverdue = await list('?overdue=false&limit=100');
      expect(order(notOverdue.items)).toEqual([c.id, b.id, d.id]);
      expect(notOverdue.items.every((i) => !i.isOverdue)).toBe(true);
      expect(order((await list('?status=open&limit=100')).items)).toEqual([e.id, a.id, b.id, d.id]);
      expect(order((await list('?status=completed&limit=100')).items)).toEqual([c.id]);
      expect(await read(a.id)).toMatchObject({ isOverdue: true });
      expect(await read(d.id)).toMatchObject({ isOverdue: false, effectiveDueOn: '2026-02-21' });

      // Overdue now, so no longer extendable; closing late is still recorded.
      expect((await extend(a.id, { months: 1, reason: REASON })).statusCode).toBe(409);
      expect((await close(a.id, { outcome: 'completed' })).statusCode).toBe(200);
      expect(order((await list('?overdue=true&limit=100')).items)).toEqual([e.id]);

      for (const query of [
        '?overdue=yes',
        '?status=closed',
        '?limit=0',
        '?limit=101',
        '?cursor=x',
      ]) {
        const res = await get(officer, `${BASE}${query}`);
        expect(res.statusCode, `${query}: ${res.body}`).toBe(400);
      }
    });

    it('counts the month from a month end: 2026-01-31 is due 2026-02-28', async () => {
      expect(today()).toBe('2026-02-01');
      const r = await record({ receivedOn: '2026-01-31' });
      expect(r).toMatchObject({ dueOn: '2026-02-28', effectiveDueOn: '2026-02-28' });
      const res = await extend(r.id, { months: 2, reason: REASON });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<RequestDto>().extendedTo).toBe('2026-04-30');
      // A year back from 2026-02-01 is 2025-02-01.
      expect(
        (await post(officer, BASE, { kind: 'access', channel: 'letter', receivedOn: '2025-01-31' }))
          .statusCode,
      ).toBe(400);
      expect((await record({ receivedOn: '2025-02-01' })).dueOn).toBe('2025-03-01');
    });
  });
});
