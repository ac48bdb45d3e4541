import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { verifyAuditChain } from '../audit/index.js';
import { createApiToken } from '../staff/index.js';
import { sweepAgreements } from './index.js';

const DAY = 24 * 60 * 60 * 1000;

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

interface ConsentState {
  purpose: string;
  state: 'active' | 'pending' | 'withdrawn' | 'expired';
  basis: string | null;
  noticeVersion: string;
  grantEventId: string;
  startsAt: string | null;
  expiresAt: string | null;
}

interface ConsentEvent {
  id: string;
  event: 'granted' | 'withdrawn' | 'expired';
  purpose: string;
  noticeVersion: string;
  basis: string | null;
  method: string;
  at: string;
  startsAt: string | null;
  expiresAt: string | null;
  reference: string | null;
  endsEventId: string | null;
  evidence: { staffId?: string; documentRef?: string; ipHash?: string; userAgentHash?: string };
}

interface Consents {
  customerId: string;
  current: ConsentState[];
  history: ConsentEvent[];
}

interface Granted {
  granted: { purpose: string; eventId: string; created: boolean }[];
}

interface Withdrawal {
  eventId: string;
  event: string;
  purpose: string;
  at: string;
  shredded: {
    id: string;
    customerId: string;
    purpose: string;
    cause: string;
    status: string;
    categories: string[];
    destroyedKeyIds: string[];
  } | null;
  erasure: {
    id: string;
    customerId: string;
    status: string;
    categories: string[];
    destroyedKeyIds: string[];
  } | null;
}

let seq = 0;
/** A value that occurs nowhere else, to look for in the stored bytes. */
function canary(label: string): string {
  seq += 1;
  return `${label}${seq}q${Math.random().toString(36).slice(2, 10)}`;
}

const hmacHex = expect.stringMatching(/^[0-9a-f]{64}$/) as unknown;

forEachDialect((dialect) => {
  describe(`agreements on ${dialect}`, () => {
    // Starts on 2026-01-15; the tests about time move it forward by days, never back.
    const clock = new TestClock();
    let rt: TestRuntime;
    let agent: string;
    let agentId: string;
    let marketer: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      ({ token: agent, id: agentId } = await createApiToken(rt.ctx, rt.systemActor(), {
        role: 'agent',
        label: 'test',
      }));
      marketer = await rt.token('marketer');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function createCustomer(body: object): Promise<string> {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: body,
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }
    const grant = (id: string, consents: object[], token = agent) =>
      rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents`,
        headers: authHeader(token),
        payload: { consents },
      });
    const withdraw = (id: string, purpose: string, body: object = { method: 'web_form' }) =>
      rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents/${purpose}/withdraw`,
        headers: authHeader(agent),
        payload: body,
      });
    const consentsOf = (id: string, token = agent) =>
      rt.app.inject({ url: `/api/v1/customers/${id}/consents`, headers: authHeader(token) });
    const read = (id: string, purpose: string) =>
      rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=${purpose}`,
        headers: authHeader(agent),
      });
    const patch = (id: string, payload: object) =>
      rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(agent),
        payload,
      });

    async function ledgerOf(id: string): Promise<Consents> {
      const res = await consentsOf(id);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<Consents>();
    }
    async function stateOf(id: string, purpose: string): Promise<string | undefined> {
      return (await ledgerOf(id)).current.find((c) => c.purpose === purpose)?.state;
    }
    const eventsOf = (id: string) =>
      rt.inspect.data
        .selectFrom('consent_event')
        .selectAll()
        .where('customer_id', '=', id)
        .orderBy('id')
        .execute();
    const auditOf = (id: string) =>
      rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('customer_id', '=', id)
        .orderBy('seq')
        .execute();
    const keysOf = (id: string) =>
      rt.inspect.keys
        .selectFrom('data_key')
        .select(['id', 'category'])
        .where('customer_id', '=', id)
        .orderBy('category')
        .execute();
    const fieldsOf = (id: string) =>
      rt.inspect.data
        .selectFrom('customer_field')
        .select(['field', 'category'])
        .where('customer_id', '=', id)
        .orderBy('field')
        .execute();
    const indexOf = (id: string) =>
      rt.inspect.data
        .selectFrom('blind_index')
        .select('field')
        .where('customer_id', '=', id)
        .execute();

    it('derives the current state and the full history from creation, a new grant and a withdrawal', async () => {
      const id = await createCustomer({ consents: [loyalty], identity: { givenName: 'Ana' } });
      const granted = await grant(id, [offers]);
      expect(granted.statusCode, granted.body).toBe(200);
      const offersGrantId = granted.json<Granted>().granted[0]!.eventId;
      expect(granted.json<Granted>()).toEqual({
        granted: [{ purpose: 'personalized_offers', eventId: offersGrantId, created: true }],
      });
      const withdrawn = await withdraw(id, 'personalized_offers');
      expect(withdrawn.statusCode, withdrawn.body).toBe(200);
      expect(withdrawn.json<Withdrawal>()).toMatchObject({
        event: 'withdrawn',
        purpose: 'personalized_offers',
        at: clock.now().toISOString(),
        // Loyalty still covers the only category held (identity): nothing to shred.
        shredded: null,
        erasure: null,
      });

      const ledger = await consentsOf(id);
      expect(ledger.headers['cache-control']).toBe('no-store');
      const { customerId, current, history } = ledger.json<Consents>();
      expect(customerId).toBe(id);
      const loyaltyGrantId = history[0]!.id;
      expect(current).toEqual([
        {
          purpose: 'loyalty_program',
          state: 'active',
          basis: 'contract',
          noticeVersion: '1',
          grantEventId: loyaltyGrantId,
          startsAt: null,
          expiresAt: null,
        },
        {
          purpose: 'personalized_offers',
          state: 'withdrawn',
          basis: 'consent',
          noticeVersion: '1',
          grantEventId: offersGrantId,
          startsAt: null,
          expiresAt: null,
        },
      ]);
      expect(history.map((e) => [e.event, e.purpose, e.basis, e.method, e.endsEventId])).toEqual([
        ['granted', 'loyalty_program', 'contract', 'web_form', null],
        ['granted', 'personalized_offers', 'consent', 'web_form', null],
        ['withdrawn', 'personalized_offers', 'consent', 'web_form', offersGrantId],
      ]);
      expect(history[1]!.id).toBe(offersGrantId);
      expect(history[2]!.id).toBe(withdrawn.json<Withdrawal>().eventId);

      // Every event is in the audit chain, exactly once, and so is the read of the ledger.
      const audit = await auditOf(id);
      // Grants made with the customer are recorded by the creation's entry, by event id.
      for (const e of history) {
        const entries = audit.filter(
          (a) =>
            (a.action === `consent.${e.event}` && a.reason?.includes(`event:${e.id}`)) ||
            (e.event === 'granted' &&
              a.action === 'customer.create' &&
              a.reason?.includes(`${e.id}@${e.purpose}/`)),
        );
        expect(entries.map((a) => a.outcome)).toEqual(['done']);
      }
      expect(audit.at(-1)).toMatchObject({ action: 'consent.read', outcome: 'allowed' });
    });

    it('keeps keyed hashes of the IP address and user agent of a web form, never the values', async () => {
      const userAgent = `Mozilla/5.0 (${canary('browser')})`;
      const ip = '198.51.100.73';
      const browser = {
        headers: { ...authHeader(agent), 'user-agent': userAgent },
        remoteAddress: ip,
      };
      const created = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        ...browser,
        payload: { consents: [loyalty] },
      });
      expect(created.statusCode, created.body).toBe(201);
      const id = created.json<{ id: string }>().id;
      const granted = await rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents`,
        ...browser,
        payload: { consents: [offers] },
      });
      expect(granted.statusCode, granted.body).toBe(200);
      const withdrawn = await rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents/personalized_offers/withdraw`,
        ...browser,
        payload: { method: 'portal' },
      });
      expect(withdrawn.statusCode, withdrawn.body).toBe(200);
      const elsewhere = await rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents`,
        headers: { ...authHeader(agent), 'user-agent': 'Other/1.0' },
        remoteAddress: '203.0.113.9',
        payload: { consents: [{ ...support, method: 'web_form' }] },
      });
      expect(elsewhere.statusCode, elsewhere.body).toBe(200);

      const ledger = await consentsOf(id);
      const [onCreate, onGrant, onWithdraw, fromElsewhere] = ledger.json<Consents>().history;
      expect(onCreate!.evidence).toMatchObject({ ipHash: hmacHex, userAgentHash: hmacHex });
      // The same origin gives the same hashes, another origin other hashes: they are of the origin.
      for (const same of [onGrant!, onWithdraw!]) {
        expect(same.evidence.ipHash).toBe(onCreate!.evidence.ipHash);
        expect(same.evidence.userAgentHash).toBe(onCreate!.evidence.userAgentHash);
      }
      expect(fromElsewhere!.evidence).toMatchObject({ ipHash: hmacHex, userAgentHash: hmacHex });
      expect(fromElsewhere!.evidence.ipHash).not.toBe(onCreate!.evidence.ipHash);
      expect(fromElsewhere!.evidence.userAgentHash).not.toBe(onCreate!.evidence.userAgentHash);

      for (const res of [created, granted, withdrawn, ledger]) {
        expect(res.body).not.toContain(userAgent);
        expect(res.body).not.toContain(ip);
      }
      const bytes = await rt.storeBytes();
      expect(countCanary(bytes, userAgent)).toBe(0);
      expect(countCanary(bytes, ip)).toBe(0);
      // The scan does see the evidence: its hashes are there.
      expect(countCanary(bytes, onCreate!.evidence.userAgentHash!)).toBeGreaterThan(0);
    });

    it('requires the document of a staff-recorded or paper agreement, and records who recorded it', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const staffRecorded = { ...offers, method: 'staff_recorded' };

      const undocumented = await grant(id, [staffRecorded]);
      expect(undocumented.statusCode).toBe(400);
      expect(undocumented.json<ErrorBody>().error).toMatchObject({
        code: 'invalid_input',
        fields: ['body.consents.0.documentRef'],
      });
      const documented = await grant(id, [{ ...staffRecorded, documentRef: 'FORM-2026-118' }]);
      expect(documented.statusCode, documented.body).toBe(200);

      const unsigned = await withdraw(id, 'personalized_offers', { method: 'paper' });
      expect(unsigned.statusCode).toBe(400);
      expect(unsigned.json<ErrorBody>().error).toMatchObject({
        code: 'invalid_input',
        fields: ['body.documentRef'],
      });
      const signed = await withdraw(id, 'personalized_offers', {
        method: 'paper',
        documentRef: 'LETTER-2026-7',
      });
      expect(signed.statusCode, signed.body).toBe(200);

      const { history } = await ledgerOf(id);
      expect(history.map((e) => [e.event, e.purpose, e.method, e.evidence])).toEqual([
        ['granted', 'loyalty_program', 'web_form', expect.anything()],
        [
          'granted',
          'personalized_offers',
          'staff_recorded',
          { staffId: agentId, documentRef: 'FORM-2026-118' },
        ],
        [
          'withdrawn',
          'personalized_offers',
          'paper',
          { staffId: agentId, documentRef: 'LETTER-2026-7' },
        ],
      ]);
    });

    it('answers a repeated active grant with the existing event and writes nothing new', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const [first] = await eventsOf(id);

      const repeated = await grant(id, [loyalty]);
      expect(repeated.statusCode, repeated.body).toBe(200);
      expect(repeated.json<Granted>()).toEqual({
        granted: [{ purpose: 'loyalty_program', eventId: first!.id, created: false }],
      });
      const mixed = await grant(id, [loyalty, offers]);
      expect(mixed.statusCode, mixed.body).toBe(200);
      expect(mixed.json<Granted>().granted).toEqual([
        { purpose: 'loyalty_program', eventId: first!.id, created: false },
        { purpose: 'personalized_offers', eventId: expect.any(String) as unknown, created: true },
      ]);

      const events = await eventsOf(id);
      expect(events.map((e) => [e.event, e.purpose_key])).toEqual([
        ['granted', 'loyalty_program'],
        ['granted', 'personalized_offers'],
      ]);
      const audit = await auditOf(id);
      const audited = audit.filter((a) => a.action === 'consent.granted');
      expect(audited.map((a) => a.purpose)).toEqual(['personalized_offers']);
      const created = audit.find((a) => a.action === 'customer.create');
      expect(created?.reason).toContain(`${first!.id}@loyalty_program/`);
    });

    it('records one event when the same grant or the same withdrawal arrives twice at once', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const grants = await Promise.all([grant(id, [offers]), grant(id, [offers])]);
      expect(grants.map((r) => r.statusCode)).toEqual([200, 200]);
      const answers = grants.map((r) => r.json<Granted>().granted[0]!);
      expect(answers.map((a) => a.created).sort()).toEqual([false, true]);
      expect(answers[0]!.eventId).toBe(answers[1]!.eventId);

      const withdrawals = await Promise.all([
        withdraw(id, 'personalized_offers'),
        withdraw(id, 'personalized_offers'),
      ]);
      expect(withdrawals.map((r) => r.statusCode).sort()).toEqual([200, 409]);
      expect((await eventsOf(id)).map((e) => [e.event, e.purpose_key])).toEqual([
        ['granted', 'loyalty_program'],
        ['granted', 'personalized_offers'],
        ['withdrawn', 'personalized_offers'],
      ]);
    });

    it('records a renewed contract under a new reference rather than taking it for a repeat', async () => {
      const contract = { ...loyalty, method: 'paper', documentRef: 'SCAN-2026-0001' };
      const id = await createCustomer({ consents: [{ ...contract, reference: 'C-2026-0001' }] });
      const renewed = await grant(id, [
        { ...contract, documentRef: 'SCAN-2027-0001', reference: 'C-2027-0001' },
      ]);
      expect(renewed.statusCode, renewed.body).toBe(200);
      expect(renewed.json<Granted>().granted[0]!.created).toBe(true);
      const { history } = await ledgerOf(id);
      expect(history.map((e) => [e.event, e.reference, e.evidence.documentRef])).toEqual([
        ['granted', 'C-2026-0001', 'SCAN-2026-0001'],
        ['granted', 'C-2027-0001', 'SCAN-2027-0001'],
      ]);
    });

    it('refuses to withdraw a purpose never granted or already withdrawn, and records nothing done', async () => {
      const id = await createCustomer({
        consents: [loyalty, offers],
        identity: { givenName: 'Eva' },
        preferences: { channels: ['sms'] },
      });
      const events = await eventsOf(id);
      const fields = await fieldsOf(id);
      const keys = await keysOf(id);

      const never = await withdraw(id, 'customer_support');
      expect(never.statusCode).toBe(409);
      expect(never.json<ErrorBody>().error.code).toBe('consent_not_active');
      expect(await eventsOf(id)).toEqual(events);
      expect(await fieldsOf(id)).toEqual(fields);
      expect(await keysOf(id)).toEqual(keys);
      const audit = await auditOf(id);
      expect(audit.filter((a) => a.action === 'consent.withdrawn')).toEqual([]);
      expect(audit.filter((a) => a.action.startsWith('shred.'))).toEqual([]);
      expect(audit.at(-1)).toMatchObject({
        action: 'consent.withdraw',
        purpose: 'customer_support',
        outcome: 'denied',
        reason: 'never_granted',
      });
      expect(
        await rt.inspect.data
          .selectFrom('category_erasure')
          .selectAll()
          .where('customer_id', '=', id)
          .execute(),
      ).toEqual([]);

      expect((await withdraw(id, 'personalized_offers')).statusCode).toBe(200);
      const twice = await withdraw(id, 'personalized_offers');
      expect(twice.statusCode).toBe(409);
      expect(twice.json<ErrorBody>().error.code).toBe('consent_not_active');
      expect((await eventsOf(id)).map((e) => e.event)).toEqual(['granted', 'granted', 'withdrawn']);
      expect((await auditOf(id)).filter((a) => a.action === 'consent.withdrawn')).toHaveLength(1);
      expect((await auditOf(id)).at(-1)).toMatchObject({
        action: 'consent.withdraw',
        outcome: 'denied',
        reason: 'already_withdrawn',
      });
    });

    it('refuses an unknown purpose or notice version with 400, naming the field, and records nothing', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const events = await eventsOf(id);
      const refusals = [
        [
          await grant(id, [{ ...offers, purpose: 'astrology' }]),
          'unknown_purpose',
          'body.consents.0.purpose',
        ],
        [
          await grant(id, [support, { ...offers, noticeVersion: '7' }]),
          'unknown_notice_version',
          'body.consents.1.noticeVersion',
        ],
        [await withdraw(id, 'astrology'), 'unknown_purpose', 'params.purpose'],
        [
          await rt.app.inject({
            method: 'POST',
            url: '/api/v1/customers',
            headers: authHeader(agent),
            payload: { consents: [{ ...loyalty, noticeVersion: '2' }] },
          }),
          'unknown_notice_version',
          'body.consents.0.noticeVersion',
        ],
      ] as const;
      for (const [res, code, field] of refusals) {
        expect(res.statusCode, res.body).toBe(400);
        expect(res.json<ErrorBody>().error).toMatchObject({ code, fields: [field] });
      }
      // All or nothing: the valid customer_support grant beside the bad one was not recorded.
      expect(await eventsOf(id)).toEqual(events);
    });

    it('withdrawing one purpose shreds exactly the categories that no remaining purpose covers', async () => {
      const givenName = canary('Given');
      const email = `${canary('mail')}@example.org`;
      const interest = canary('interest');
      const id = await createCustomer({
        consents: [loyalty, offers],
        identity: { givenName },
        contact: { email },
        preferences: { interests: [interest], channels: ['email'] },
      });
      const keys = await keysOf(id);
      expect(keys.map((k) => k.category)).toEqual(['contact', 'identity', 'preferences']);
      const preferencesKey = keys.find((k) => k.category === 'preferences')!.id;

      const res = await withdraw(id, 'personalized_offers');
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json<Withdrawal>();
      expect(body.erasure).toBeNull();
      expect(body.shredded).toMatchObject({
        customerId: id,
        purpose: 'personalized_offers',
        cause: 'withdrawn',
        status: 'completed',
        categories: ['preferences'],
        destroyedKeyIds: [preferencesKey],
      });

      // Only the preferences key, fields and nothing else are gone; the email stays searchable.
      expect(await keysOf(id)).toEqual(keys.filter((k) => k.category !== 'preferences'));
      expect(await fieldsOf(id)).toEqual([
        { field: 'email', category: 'contact' },
        { field: 'givenName', category: 'identity' },
      ]);
      expect(await indexOf(id)).toEqual([{ field: 'email' }]);
      const ledger = await rt.inspect.data
        .selectFrom('category_erasure')
        .selectAll()
        .where('customer_id', '=', id)
        .execute();
      expect(ledger).toHaveLength(1);
      expect(ledger[0]).toMatchObject({
        id: body.shredded!.id,
        event_id: body.eventId,
        purpose_key: 'personalized_offers',
        status: 'completed',
      });
      expect(JSON.parse(ledger[0]!.categories)).toEqual(['preferences']);
      expect(JSON.parse(ledger[0]!.destroyed_key_ids)).toEqual([preferencesKey]);

      const kept = await read(id, 'loyalty_program');
      expect(kept.statusCode, kept.body).toBe(200);
      expect(kept.json<Record<string, unknown>>()).toMatchObject({
        identity: { givenName },
        contact: { email },
      });
      const found = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers/search',
        headers: authHeader(agent),
        payload: { email, purpose: 'loyalty_program' },
      });
      expect(found.statusCode, found.body).toBe(200);
      expect(found.json<{ items: { id: string }[] }>().items.map((c) => c.id)).toEqual([id]);

      const audit = await auditOf(id);
      const shredding = audit.filter((a) => a.action.startsWith('shred.'));
      expect(
        shredding.map((a) => [a.action, a.purpose, JSON.parse(a.fields) as unknown, a.outcome]),
      ).toEqual([
        ['shred.start', 'personalized_offers', ['preferences'], 'done'],
        ['shred.complete', 'personalized_offers', ['preferences'], 'done'],
      ]);

      // No plaintext anywhere: not of the shredded category, nor of the kept (encrypted) ones.
      const bytes = await rt.storeBytes();
      expect(countCanary(bytes, id)).toBeGreaterThan(0);
      for (const value of [interest, givenName, email]) {
        expect(countCanary(bytes, value), value).toBe(0);
      }
    });

    it('withdrawing the last purpose erases the customer entirely', async () => {
      const givenName = canary('Last');
      const email = `${canary('last')}@example.org`;
      const id = await createCustomer({
        consents: [loyalty, offers],
        identity: { givenName },
        contact: { email },
        preferences: { channels: ['sms'] },
      });
      expect((await withdraw(id, 'personalized_offers')).statusCode).toBe(200);
      const keys = await keysOf(id);

      const res = await withdraw(id, 'loyalty_program');
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json<Withdrawal>();
      expect(body.shredded).toBeNull();
      expect(body.erasure).toMatchObject({
        customerId: id,
        status: 'completed',
        categories: ['contact', 'identity'],
        destroyedKeyIds: keys.map((k) => k.id).sort(),
      });

      expect((await read(id, 'loyalty_program')).statusCode).toBe(404);
      expect((await consentsOf(id)).statusCode).toBe(404);
      expect(
        await rt.inspect.data.selectFrom('customer').select('id').where('id', '=', id).execute(),
      ).toEqual([]);
      expect(await fieldsOf(id)).toEqual([]);
      expect(await keysOf(id)).toEqual([]);
      expect(await indexOf(id)).toEqual([]);
      expect(await eventsOf(id)).toEqual([]);
      const erasure = await rt.inspect.data
        .selectFrom('erasure')
        .selectAll()
        .where('customer_id', '=', id)
        .executeTakeFirstOrThrow();
      expect(erasure).toMatchObject({ id: body.erasure!.id, status: 'completed' });
      const actions = (await auditOf(id)).map((a) => a.action);
      expect(actions).toContain('erasure.start');
      expect(actions).toContain('erasure.complete');
      expect(actions.filter((a) => a === 'consent.withdrawn')).toHaveLength(2);

      const bytes = await rt.storeBytes();
      expect(countCanary(bytes, givenName)).toBe(0);
      expect(countCanary(bytes, email)).toBe(0);
    });

    it('after a withdrawal refuses writes of the shredded category, and reads for that purpose', async () => {
      const id = await createCustomer({
        consents: [loyalty, offers],
        identity: { givenName: 'Marta' },
        preferences: { channels: ['email'] },
      });
      expect((await withdraw(id, 'personalized_offers')).statusCode).toBe(200);
      const keys = await keysOf(id);
      expect(keys.map((k) => k.category)).toEqual(['identity']);

      const write = await patch(id, { preferences: { interests: ['cycling'] } });
      expect(write.statusCode).toBe(409);
      expect(write.json<ErrorBody>().error).toMatchObject({
        code: 'consent_missing',
        fields: ['preferences.interests'],
      });
      expect(await fieldsOf(id)).toEqual([{ field: 'givenName', category: 'identity' }]);
      expect(await keysOf(id)).toEqual(keys);
      expect((await auditOf(id)).at(-1)).toMatchObject({
        action: 'customer.update',
        outcome: 'denied',
        reason: 'consent_missing',
      });

      const readWithdrawn = await read(id, 'personalized_offers');
      expect(readWithdrawn.statusCode).toBe(404);
      expect(readWithdrawn.json<ErrorBody>().error.code).toBe('not_found');
      expect((await auditOf(id)).at(-1)).toMatchObject({
        action: 'customer.read',
        purpose: 'personalized_offers',
        outcome: 'denied',
        reason: 'purpose_not_active',
      });

      // What the remaining purpose covers is still writable.
      expect((await patch(id, { identity: { familyName: 'Ruiz' } })).statusCode).toBe(200);
    });

    it('records a contract with its reference and validity, visible in the history', async () => {
      const id = await createCustomer({ consents: [support] });
      const contract = {
        purpose: 'loyalty_program',
        noticeVersion: '1',
        method: 'paper',
        documentRef: 'SCAN-2026-0042',
        reference: 'C-2026-0042',
        startsAt: '2026-01-01T00:00:00+01:00',
        expiresAt: '2028-01-01T00:00:00Z',
      };
      const res = await grant(id, [contract]);
      expect(res.statusCode, res.body).toBe(200);
      const eventId = res.json<Granted>().granted[0]!.eventId;

      const { current, history } = await ledgerOf(id);
      expect(current.find((c) => c.purpose === 'loyalty_program')).toEqual({
        purpose: 'loyalty_program',
        state: 'active',
        basis: 'contract',
        noticeVersion: '1',
        grantEventId: eventId,
        startsAt: '2025-12-31T23:00:00.000Z',
        expiresAt: '2028-01-01T00:00:00.000Z',
      });
      expect(history.find((e) => e.id === eventId)).toMatchObject({
        event: 'granted',
        purpose: 'loyalty_program',
        basis: 'contract',
        method: 'paper',
        reference: 'C-2026-0042',
        startsAt: '2025-12-31T23:00:00.000Z',
        expiresAt: '2028-01-01T00:00:00.000Z',
        evidence: { staffId: agentId, documentRef: 'SCAN-2026-0042' },
      });
      expect(current.find((c) => c.purpose === 'customer_support')?.basis).toBe(
        'legitimate_interest',
      );

      // A reference is an identifier, never a person's name.
      const named = await grant(id, [{ ...contract, reference: 'Juan Pérez' }]);
      expect(named.statusCode).toBe(400);
      expect(named.json<ErrorBody>().error.code).toBe('invalid_input');
      expect(named.body).not.toContain('Juan');
    });

    it('treats a grant that starts later as pending: it covers no writes or reads until it starts', async () => {
      const id = await createCustomer({ consents: [support], identity: { givenName: 'Paula' } });
      const startsAt = new Date(clock.now().getTime() + 2 * DAY).toISOString();
      const res = await grant(id, [{ ...offers, startsAt }]);
      expect(res.statusCode, res.body).toBe(200);
      expect(await stateOf(id, 'personalized_offers')).toBe('pending');

      const early = await patch(id, { preferences: { channels: ['sms'] } });
      expect(early.statusCode).toBe(409);
      expect(early.json<ErrorBody>().error.code).toBe('consent_missing');
      expect((await keysOf(id)).map((k) => k.category)).toEqual(['identity']);
      expect((await fieldsOf(id)).map((f) => f.field)).toEqual(['givenName']);
      expect((await read(id, 'personalized_offers')).statusCode).toBe(404);

      clock.advance(2 * DAY);
      expect(await stateOf(id, 'personalized_offers')).toBe('active');
      const onTime = await patch(id, { preferences: { channels: ['sms'] } });
      expect(onTime.statusCode, onTime.body).toBe(200);
      const readNow = await read(id, 'personalized_offers');
      expect(readNow.statusCode, readNow.body).toBe(200);
      expect(readNow.json<Record<string, unknown>>()['preferences']).toEqual({ channels: ['sms'] });
    });

    it('refuses to withdraw an agreement that has already expired, keeping it expired', async () => {
      const id = await createCustomer({ consents: [support] });
      const expiresAt = new Date(clock.now().getTime() + DAY).toISOString();
      expect((await grant(id, [{ ...offers, expiresAt }])).statusCode).toBe(200);
      clock.advance(2 * DAY);
      expect(await stateOf(id, 'personalized_offers')).toBe('expired');

      const late = await withdraw(id, 'personalized_offers');
      expect(late.statusCode, late.body).toBe(409);
      expect(late.json<ErrorBody>().error.code).toBe('consent_not_active');
      expect(await stateOf(id, 'personalized_offers')).toBe('expired');
      expect((await eventsOf(id)).map((e) => e.event)).toEqual(['granted', 'granted']);
    });

    it('the expiry job ends a lapsed agreement with an audited expired event and shreds what it alone covered', async () => {
      const expiresAt = new Date(clock.now().getTime() + DAY).toISOString();
      const id = await createCustomer({
        consents: [loyalty, { ...offers, expiresAt }],
        identity: { givenName: 'Iris' },
        preferences: { channels: ['post'] },
      });
      clock.advance(2 * DAY);
      await sweepAgreements(rt.ctx);

      const { current, history } = await ledgerOf(id);
      const grantId = current.find((c) => c.purpose === 'personalized_offers')!.grantEventId;
      expect(current.map((c) => [c.purpose, c.state])).toEqual([
        ['loyalty_program', 'active'],
        ['personalized_offers', 'expired'],
      ]);
      const expired = history.at(-1)!;
      expect(expired).toMatchObject({
        event: 'expired',
        purpose: 'personalized_offers',
        endsEventId: grantId,
      });
      expect((await keysOf(id)).map((k) => k.category)).toEqual(['identity']);
      expect((await fieldsOf(id)).map((f) => f.field)).toEqual(['givenName']);
      const audit = await auditOf(id);
      expect(
        audit.filter(
          (a) => a.action === 'consent.expired' && a.reason?.includes(`event:${expired.id}`),
        ),
      ).toHaveLength(1);
      expect(audit.filter((a) => a.action.startsWith('shred.')).map((a) => a.action)).toEqual([
        'shred.start',
        'shred.complete',
      ]);
    });

    it('refuses a marketer on every consents route of a customer, and audits each refusal', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const events = await eventsOf(id);
      const attempts = [
        [await consentsOf(id, marketer), 'consents:read'],
        [await grant(id, [offers], marketer), 'consents:record'],
        [
          await rt.app.inject({
            method: 'POST',
            url: `/api/v1/customers/${id}/consents/loyalty_program/withdraw`,
            headers: authHeader(marketer),
            payload: { method: 'web_form' },
          }),
          'consents:record',
        ],
      ] as const;
      for (const [res, permission] of attempts) {
        expect(res.statusCode).toBe(403);
        const { code, requestId } = res.json<ErrorBody>().error;
        expect(code).toBe('forbidden');
        const entry = await rt.inspect.data
          .selectFrom('audit_entry')
          .selectAll()
          .where('request_id', '=', requestId)
          .executeTakeFirstOrThrow();
        expect(entry).toMatchObject({
          action: 'access.denied',
          actor_role: 'marketer',
          outcome: 'denied',
          reason: `permission:${permission}`,
        });
      }
      expect(await eventsOf(id)).toEqual(events);
      expect(await stateOf(id, 'loyalty_program')).toBe('active');
    });

    it('leaves an audit chain that verifies', async () => {
      const result = await verifyAuditChain(rt.ctx.data, (ws) => rt.ctx.signer.publicKey(ws));
      expect(result).toMatchObject({ ok: true });
      expect(result.entries).toBeGreaterThan(50);
    });
  });

  describe(`consent statistics on ${dialect}`, () => {
    const clock = new TestClock(Date.UTC(2026, 0, 20, 12, 0, 0));
    let rt: TestRuntime;
    let agent: string;
    let marketer: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      agent = await rt.token('agent');
      marketer = await rt.token('marketer');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function createCustomer(consents: object[]): Promise<string> {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: { consents },
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }
    async function withdraw(id: string, purpose: string): Promise<void> {
      const res = await rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents/${purpose}/withdraw`,
        headers: authHeader(agent),
        payload: { method: 'phone', documentRef: 'CALL-2026-0002' },
      });
      expect(res.statusCode, res.body).toBe(200);
    }
    const inDays = (days: number) => new Date(clock.now().getTime() + days * DAY).toISOString();
    const none = { active: 0, pending: 0, withdrawn: 0, expired: 0 };

    it('counts agreements per purpose and state, and withdrawals per month, naming no customer', async () => {
      const ids = [
        await createCustomer([loyalty, offers]),
        await createCustomer([loyalty, offers]),
        await createCustomer([support, { ...offers, startsAt: inDays(60) }]),
        await createCustomer([support, { ...loyalty, expiresAt: inDays(5) }]),
        await createCustomer([loyalty]),
      ];
      await withdraw(ids[0]!, 'personalized_offers');
      clock.advance(15 * DAY);
      await withdraw(ids[1]!, 'personalized_offers');
      // The last agreement: the customer is erased with their ledger rows, yet the withdrawal counts.
      await withdraw(ids[4]!, 'loyalty_program');

      const res = await rt.app.inject({
        url: '/api/v1/consent/stats',
        headers: authHeader(marketer),
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({
        purposes: [
          { purpose: 'customer_support', ...none, active: 2 },
          { purpose: 'health_services', ...none },
          { purpose: 'loyalty_program', ...none, active: 2, expired: 1 },
          { purpose: 'payments', ...none },
          { purpose: 'personalized_offers', ...none, pending: 1, withdrawn: 2 },
        ],
        withdrawalsPerMonth: [
          { month: '2026-01', count: 1 },
          { month: '2026-02', count: 2 },
        ],
      });
      for (const id of ids) expect(res.body).not.toContain(id);

      const refused = await rt.app.inject({
        url: '/api/v1/consent/stats',
        headers: authHeader(agent),
      });
      expect(refused.statusCode).toBe(403);
    });
  });
});
