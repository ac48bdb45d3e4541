import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifySignature } from '../../platform/crypto/index.js';
import { readTextOutbox } from '../../platform/sms.js';
import { startTestSmtpServer, type TestSmtpServer } from '../../testing/smtp.js';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { receiptMessage } from './index.js';

interface Portal {
  readonly cookie: string;
  readonly csrf: string;
}

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Date.now().toString(36)}`;
}

function canariesFor() {
  const tag = unique('');
  return {
    givenName: `Givencanary${tag}`,
    familyName: `Familycanary${tag}`,
    email: `portal.canary.${tag}@example.org`,
    interest: `interestcanary${tag}`,
  };
}
type Canaries = ReturnType<typeof canariesFor>;

function codeIn(text: string): string {
  const code = /\b(\d{6})\b/.exec(text)?.[1];
  if (code === undefined) throw new Error('no code in the message');
  return code;
}

function errorCode(res: LightMyRequestResponse): string | undefined {
  return res.json<{ error?: { code: string } }>().error?.code;
}

function hits(body: string | Buffer, canaries: Partial<Canaries>): string[] {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  return Object.values(canaries).filter((c) => countCanary(buf, c) > 0);
}

forEachDialect((dialect) => {
  describe(`customer portal on ${dialect}`, () => {
    let rt: TestRuntime;
    let smtp: TestSmtpServer;
    let agent: string;
    let officer: string;
    const clock = new TestClock();
    let address = 0;

    beforeAll(async () => {
      smtp = await startTestSmtpServer();
      rt = await startRuntime(dialect, {
        clock,
        config: { smtpHost: '127.0.0.1', smtpPort: String(smtp.port) },
      });
      agent = await rt.token('agent');
      officer = await rt.token('privacy_officer');
    });
    afterAll(async () => {
      await rt.close();
      await smtp.close();
    });
    beforeEach(() => {
      // Every test signs in from its own client address, so per-source limits stay per test.
      address += 1;
    });
    const ip = () => `127.0.${Math.floor(address / 250)}.${(address % 250) + 1}`;

    async function newCustomer(canaries = canariesFor(), offers = true) {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: {
          consents: [
            { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
            ...(offers
              ? [{ purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' }]
              : []),
          ],
          identity: { givenName: canaries.givenName, familyName: canaries.familyName },
          contact: { email: canaries.email },
          ...(offers ? { preferences: { interests: [canaries.interest] } } : {}),
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return { id: res.json<{ id: string }>().id, canaries };
    }

    function post(url: string, payload?: object, portal?: Portal) {
      return rt.app.inject({
        method: 'POST',
        url,
        remoteAddress: ip(),
        headers: portal === undefined ? {} : { cookie: portal.cookie, 'x-csrf-token': portal.csrf },
        ...(payload === undefined ? {} : { payload }),
      });
    }
    function get(url: string, portal?: Portal) {
      return rt.app.inject({
        method: 'GET',
        url,
        remoteAddress: ip(),
        headers: portal === undefined ? {} : { cookie: portal.cookie },
      });
    }

    async function askCode(email: string, language = 'en') {
      smtp.clear();
      const res = await post('/api/v1/portal/login', { email, language });
      expect(res.statusCode, res.body).toBe(202);
      return res;
    }

    async function mailTo(email: string) {
      return smtp.waitFor((m) => m.to.includes(email));
    }

    async function signIn(email: string): Promise<Portal> {
      await askCode(email);
      const code = codeIn((await mailTo(email)).text);
      const res = await post('/api/v1/portal/login/verify', { email, code });
      expect(res.statusCode, res.body).toBe(200);
      const header = res.headers['set-cookie'];
      const cookie = (Array.isArray(header) ? header[0] : header) ?? '';
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      expect(cookie).toMatch(/Path=\/api\/v1\/portal/);
      return {
        cookie: cookie.split(';')[0] ?? '',
        csrf: res.json<{ csrfToken: string }>().csrfToken,
      };
    }

    async function reverify(portal: Portal, email: string) {
      smtp.clear();
      const asked = await post('/api/v1/portal/reverify', undefined, portal);
      expect(asked.statusCode, asked.body).toBe(202);
      const code = codeIn((await mailTo(email)).text);
      const ok = await post('/api/v1/portal/reverify/verify', { code }, portal);
      expect(ok.statusCode, ok.body).toBe(200);
    }

    describe('identity verification', () => {
      it('sends a six-digit code by SMTP and opens a session with it; a customer who cannot read the code sees nothing', async () => {
        const { canaries } = await newCustomer();
        const before = await get('/api/v1/portal/me');
        expect(before.statusCode).toBe(401);
        await askCode(canaries.email);
        const mail = await mailTo(canaries.email);
        expect(mail.subject).toBe('Your Custodia code');
        const code = codeIn(mail.text);
        // Guessing fails; the right code opens the session.
        const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
        const guessed = await post('/api/v1/portal/login/verify', {
          email: canaries.email,
          code: wrong,
        });
        expect(guessed.statusCode).toBe(401);
        expect(errorCode(guessed)).toBe('code_invalid');
        expect(hits(guessed.body, canaries)).toEqual([]);
        const ok = await post('/api/v1/portal/login/verify', { email: canaries.email, code });
        expect(ok.statusCode, ok.body).toBe(200);
        // The code passes once.
        const again = await post('/api/v1/portal/login/verify', { email: canaries.email, code });
        expect(errorCode(again)).toBe('code_expired');
        // Neither the code nor the address is in the log.
        expect(countCanary(Buffer.from(rt.logs.text()), code)).toBe(0);
        expect(hits(rt.logs.text(), canaries)).toEqual([]);
      });

      it('answers an unknown address exactly like a known one, and mails nothing to it', async () => {
        const { canaries } = await newCustomer();
        const known = await askCode(canaries.email);
        await mailTo(canaries.email);
        const unknownEmail = `${unique('nobody')}@example.org`;
        const unknown = await askCode(unknownEmail);
        expect(unknown.body).toBe(known.body);
        const tried = await post('/api/v1/portal/login/verify', {
          email: unknownEmail,
          code: '123456',
        });
        expect(tried.statusCode).toBe(401);
        expect(errorCode(tried)).toBe('code_invalid');
        await new Promise((r) => setTimeout(r, 200));
        expect(smtp.messages.filter((m) => m.to.includes(unknownEmail))).toEqual([]);
      });

      it('expires a code after 10 minutes and after 5 attempts', async () => {
        const { canaries } = await newCustomer();
        await askCode(canaries.email);
        const first = codeIn((await mailTo(canaries.email)).text);
        clock.advance(10 * 60_000);
        const late = await post('/api/v1/portal/login/verify', {
          email: canaries.email,
          code: first,
        });
        expect(errorCode(late)).toBe('code_expired');

        await askCode(canaries.email);
        const code = codeIn((await mailTo(canaries.email)).text);
        const wrong = String((Number(code) + 7) % 1_000_000).padStart(6, '0');
        for (let i = 0; i < 5; i += 1) {
          const res = await post('/api/v1/portal/login/verify', {
            email: canaries.email,
            code: wrong,
          });
          expect(errorCode(res)).toBe('code_invalid');
        }
        const sixth = await post('/api/v1/portal/login/verify', { email: canaries.email, code });
        expect(errorCode(sixth)).toBe('code_expired');
      });

      it('limits codes per address', async () => {
        const { canaries } = await newCustomer();
        for (let i = 0; i < 3; i += 1) await askCode(canaries.email);
        const fourth = await post('/api/v1/portal/login', { email: canaries.email });
        expect(fourth.statusCode).toBe(429);
        expect(hits(fourth.body, canaries)).toEqual([]);
        clock.advance(16 * 60_000);
        await askCode(canaries.email);
      });

      it('ends a session left idle for 15 minutes, and at logout', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        expect((await get('/api/v1/portal/me', portal)).statusCode).toBe(200);
        clock.advance(15 * 60_000);
        expect((await get('/api/v1/portal/me', portal)).statusCode).toBe(401);
        const second = await signIn(canaries.email);
        const out = await post('/api/v1/portal/logout', undefined, second);
        expect(out.statusCode).toBe(204);
        expect((await get('/api/v1/portal/me', second)).statusCode).toBe(401);
      });

      it('refuses a write without the CSRF token', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const res = await post(
          '/api/v1/portal/me/change-requests',
          { changes: { birthDate: '1990-01-01' } },
          {
            cookie: portal.cookie,
            csrf: 'wrong',
          },
        );
        expect(res.statusCode).toBe(403);
        expect(errorCode(res)).toBe('csrf_failed');
      });
    });

    describe('seeing and taking away one’s data', () => {
      it('shows everything, with purposes, bases, retention and verification, audited as the customer’s read', async () => {
        const { id, canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const res = await get('/api/v1/portal/me', portal);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers['cache-control']).toBe('no-store');
        const me = res.json<{
          id: string;
          data: { identity: object; contact: object; preferences: object };
          contactPoints: { email: { value: string; verifiedAt: string | null } };
          categories: {
            category: string;
            purposes: { key: string; lawfulBasis: string; retentionDays: number }[];
            sources: string[];
          }[];
        }>();
        expect(me.id).toBe(id);
        expect(me.data.identity).toEqual({
          givenName: canaries.givenName,
          familyName: canaries.familyName,
        });
        expect(me.data.preferences).toEqual({ interests: [canaries.interest] });
        expect(me.contactPoints.email).toEqual({
          value: canaries.email,
          verifiedAt: clock.now().toISOString(),
        });
        const contact = me.categories.find((c) => c.category === 'contact');
        expect(contact?.purposes.map((p) => p.key).sort()).toEqual([
          'loyalty_program',
          'personalized_offers',
        ]);
        expect(contact?.purposes.find((p) => p.key === 'loyalty_program')?.lawfulBasis).toBe(
          'contract',
        );
        expect(contact?.purposes.every((p) => p.retentionDays > 0)).toBe(true);
        expect(contact?.sources).toEqual(['provided_by_you']);
        const audit = await rt.inspect.data
          .selectFrom('audit_entry')
          .select(['actor_type', 'actor_id', 'outcome'])
          .where('customer_id', '=', id)
          .where('action', '=', 'customer.self_read')
          .execute();
        expect(audit).toEqual([{ actor_type: 'customer', actor_id: id, outcome: 'allowed' }]);
      });

      it('should not let one customer reach another’s data; the export holds every canary of one’s own and none of another’s', async () => {
        const mine = await newCustomer();
        const theirs = await newCustomer();
        const portal = await signIn(mine.canaries.email);
        const me = await get('/api/v1/portal/me', portal);
        expect(hits(me.body, theirs.canaries)).toEqual([]);
        const json = await get('/api/v1/portal/me/export?format=json', portal);
        expect(json.statusCode).toBe(200);
        expect(json.json()).toMatchObject({ format: 'custodia.portal-export', version: 1 });
        expect(hits(json.body, mine.canaries).sort()).toEqual(Object.values(mine.canaries).sort());
        expect(hits(json.body, theirs.canaries)).toEqual([]);
        const csv = await get('/api/v1/portal/me/export?format=csv', portal);
        expect(csv.statusCode).toBe(200);
        expect(csv.headers['content-type']).toMatch(/^text\/csv/);
        expect(csv.body.split('\r\n')[0]).toBe(
          'category,field,value,verified_at,purposes,lawful_bases',
        );
        expect(hits(csv.body, mine.canaries).sort()).toEqual(Object.values(mine.canaries).sort());
        expect(hits(csv.body, theirs.canaries)).toEqual([]);
        // The customer's session opens no staff route.
        const staff = await get(`/api/v1/customers/${theirs.id}?purpose=loyalty_program`, portal);
        expect(staff.statusCode).toBe(401);
      });
    });

    describe('correcting', () => {
      it('changes names directly, and refuses other fields there', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const newName = `Renamedcanary${unique('')}`;
        const res = await rt.app.inject({
          method: 'PATCH',
          url: '/api/v1/portal/me',
          remoteAddress: ip(),
          headers: { cookie: portal.cookie, 'x-csrf-token': portal.csrf },
          payload: { identity: { givenName: newName } },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect((await get('/api/v1/portal/me', portal)).body).toContain(newName);
        const refused = await rt.app.inject({
          method: 'PATCH',
          url: '/api/v1/portal/me',
          remoteAddress: ip(),
          headers: { cookie: portal.cookie, 'x-csrf-token': portal.csrf },
          payload: { contact: { email: 'x@example.org' } },
        });
        expect(refused.statusCode).toBe(400);
      });

      it('turns other changes into requests that a privacy officer decides, and shows their status', async () => {
        const { id, canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const asked = await post(
          '/api/v1/portal/me/change-requests',
          { changes: { birthDate: '1980-02-29' }, note: 'Typo at sign-up' },
          portal,
        );
        expect(asked.statusCode, asked.body).toBe(201);
        const requestId = asked.json<{ id: string }>().id;
        const queue = await rt.app.inject({
          url: '/api/v1/change-requests',
          headers: authHeader(officer),
        });
        expect(queue.statusCode).toBe(200);
        expect(queue.body).toContain(requestId);
        expect(queue.body).not.toContain('1980-02-29');
        // An agent without a task for the customer is told there is no such request.
        const byAgent = await rt.app.inject({
          method: 'POST',
          url: `/api/v1/change-requests/${requestId}/decide`,
          headers: authHeader(agent),
          payload: { decision: 'approve', reason: 'Checked the ID card' },
        });
        expect(byAgent.statusCode).toBe(404);
        const decided = await rt.app.inject({
          method: 'POST',
          url: `/api/v1/change-requests/${requestId}/decide`,
          headers: authHeader(officer),
          payload: { decision: 'approve', reason: 'Checked the ID card' },
        });
        expect(decided.statusCode, decided.body).toBe(200);
        const twice = await rt.app.inject({
          method: 'POST',
          url: `/api/v1/change-requests/${requestId}/decide`,
          headers: authHeader(officer),
          payload: { decision: 'reject', reason: 'Again' },
        });
        expect(twice.statusCode).toBe(409);
        const mine = await get('/api/v1/portal/me/change-requests', portal);
        expect(
          mine.json<{ items: { id: string; status: string; reason: string }[] }>().items,
        ).toMatchObject([{ id: requestId, status: 'approved', reason: 'Checked the ID card' }]);
        const me = await get('/api/v1/portal/me', portal);
        expect(
          me.json<{ data: { identity: { birthDate?: string } } }>().data.identity.birthDate,
        ).toBe('1980-02-29');
        expect(id).toBeDefined();
      });

      it('changes the email only after a fresh code and a code sent to the new address', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const newEmail = `${unique('moved.canary')}@example.org`;
        const early = await post(
          '/api/v1/portal/me/contact',
          { field: 'email', value: newEmail },
          portal,
        );
        expect(early.statusCode).toBe(403);
        expect(errorCode(early)).toBe('reverification_required');
        await reverify(portal, canaries.email);
        smtp.clear();
        const asked = await post(
          '/api/v1/portal/me/contact',
          { field: 'email', value: newEmail },
          portal,
        );
        expect(asked.statusCode, asked.body).toBe(202);
        const code = codeIn((await mailTo(newEmail)).text);
        const done = await post('/api/v1/portal/me/contact/verify', { code }, portal);
        expect(done.statusCode, done.body).toBe(200);
        const me = await get('/api/v1/portal/me', portal);
        expect(me.json<{ contactPoints: { email: object } }>().contactPoints.email).toEqual({
          value: newEmail,
          verifiedAt: clock.now().toISOString(),
        });
        // The waiting value was sealed: not in any store.
        expect(countCanary(await rt.storeBytes(), newEmail)).toBe(0);
      });

      it('changes the phone with a code sent to the new number (text outbox)', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const asked = await post(
          '/api/v1/portal/me/contact',
          { field: 'phone', value: '+34 612 345 678' },
          portal,
        );
        expect(asked.statusCode, asked.body).toBe(202);
        let sms: { to: string; text: string } | undefined;
        for (let i = 0; i < 50 && sms === undefined; i += 1) {
          sms = (await readTextOutbox(rt.dataDir)).filter((m) => m.to === '+34612345678').at(-1);
          if (sms === undefined) await new Promise((r) => setTimeout(r, 50));
        }
        const done = await post(
          '/api/v1/portal/me/contact/verify',
          { code: codeIn(sms?.text ?? '') },
          portal,
        );
        expect(done.statusCode, done.body).toBe(200);
        const me = await get('/api/v1/portal/me', portal);
        expect(
          me.json<{ contactPoints: { phone: { value: string } } }>().contactPoints.phone.value,
        ).toBe('+34612345678');
      });
    });

    describe('consents and access', () => {
      it('lists purposes in the customer’s language, and a withdrawal says what was destroyed', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const es = await get('/api/v1/portal/consents?language=es', portal);
        expect(es.statusCode).toBe(200);
        const offers = es
          .json<{
            items: { purpose: string; name: string; state: string; canWithdraw: boolean }[];
          }>()
          .items.find((p) => p.purpose === 'personalized_offers');
        expect(offers).toMatchObject({ state: 'active', canWithdraw: true });
        expect(offers?.name).not.toBe(
          (await get('/api/v1/portal/consents?language=en', portal))
            .json<{ items: { purpose: string; name: string }[] }>()
            .items.find((p) => p.purpose === 'personalized_offers')?.name,
        );
        const withdrawn = await post(
          '/api/v1/portal/consents/personalized_offers/withdraw',
          undefined,
          portal,
        );
        expect(withdrawn.statusCode, withdrawn.body).toBe(200);
        expect(
          withdrawn.json<{ shredded: { categories: string[] } }>().shredded.categories,
        ).toContain('preferences');
        expect(countCanary(await rt.storeBytes(), canaries.interest)).toBe(0);
        const regranted = await post(
          '/api/v1/portal/consents/personalized_offers',
          undefined,
          portal,
        );
        expect(regranted.statusCode, regranted.body).toBe(200);
        const contract = await post(
          '/api/v1/portal/consents/loyalty_program/withdraw',
          undefined,
          portal,
        );
        expect(contract.statusCode).toBe(409);
      });

      it('shows who accessed the data and why', async () => {
        const { id, canaries } = await newCustomer();
        const read = await rt.app.inject({
          url: `/api/v1/customers/${id}?purpose=loyalty_program`,
          headers: authHeader(agent),
        });
        expect(read.statusCode).toBe(200);
        const portal = await signIn(canaries.email);
        const log = await get('/api/v1/portal/access-log', portal);
        expect(log.statusCode, log.body).toBe(200);
        const items = log.json<{
          items: {
            action: string;
            actor: { type: string; role: string };
            purpose: string;
            categories: string[];
            breakGlass: boolean;
          }[];
        }>().items;
        expect(items.find((e) => e.action === 'customer.read')).toMatchObject({
          actor: { type: 'integration', role: 'agent' },
          purpose: 'loyalty_program',
          categories: ['contact', 'identity'],
          breakGlass: false,
        });
        // The customer's own reads are not "accesses by others".
        expect(items.some((e) => e.actor.type === 'customer')).toBe(false);
      });
    });

    describe('leaving the programme', () => {
      it('erases everything after a fresh code and answers a receipt that verifies with the published key', async () => {
        const { id, canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const early = await post('/api/v1/portal/withdraw', undefined, portal);
        expect(early.statusCode).toBe(403);
        expect((await get('/api/v1/portal/me', portal)).statusCode).toBe(200);
        await reverify(portal, canaries.email);
        const res = await post('/api/v1/portal/withdraw', undefined, portal);
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json<{ receipt: Record<string, unknown>; signature: string }>();
        expect(body.receipt).toMatchObject({ customerId: id, type: 'erasure_receipt' });
        expect((body.receipt['categories'] as string[]).sort()).toEqual([
          'contact',
          'identity',
          'preferences',
        ]);
        expect((body.receipt['destroyedKeyIds'] as string[]).length).toBeGreaterThan(0);
        expect(typeof body.receipt['auditSeq']).toBe('number');
        const keys = await get('/api/v1/portal/keys?workspace=default');
        const publicKey = keys.json<{ publicKey: string }>().publicKey;
        expect(verifySignature(publicKey, receiptMessage(body.receipt), body.signature)).toBe(true);
        const forged = { ...body.receipt, categories: ['identity'] };
        expect(verifySignature(publicKey, receiptMessage(forged), body.signature)).toBe(false);
        // The session ended, and the address finds nothing any more.
        expect((await get('/api/v1/portal/me', portal)).statusCode).toBe(401);
        await askCode(canaries.email);
        await new Promise((r) => setTimeout(r, 200));
        expect(smtp.messages.filter((m) => m.to.includes(canaries.email))).toEqual([]);
        expect(hits(await rt.storeBytes(), canaries)).toEqual([]);
        expect(hits(rt.logs.text(), canaries)).toEqual([]);
      });
    });
  });
});
