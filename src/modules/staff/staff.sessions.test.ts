import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, totpCode } from '../../platform/crypto/index.js';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import {
  INVITATION_HOURS,
  LOCKOUT_AFTER,
  LOCKOUT_MINUTES,
  SESSION_ABSOLUTE_HOURS,
  SESSION_IDLE_MINUTES,
  SOURCE_FAILURES,
  SOURCE_WINDOW_MINUTES,
} from './staff.accounts.js';

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

interface Session {
  readonly token: string;
  readonly cookie: string;
  readonly csrf: string;
}

interface Member {
  readonly id: string;
  readonly email: string;
  readonly password: string;
  readonly secret: string;
  readonly session: Session;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const TOTP_STEP = 30_000;
const loyalty = { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' } as const;

let seq = 0;
function uniqueEmail(): string {
  seq += 1;
  return `staff.${seq}.${Date.now()}@example.net`;
}
function uniquePassword(): string {
  seq += 1;
  return `correct horse battery ${seq}`;
}

function errorOf(res: LightMyRequestResponse): ErrorBody['error'] {
  return res.json<ErrorBody>().error;
}

function setCookieOf(res: LightMyRequestResponse): string {
  const header = res.headers['set-cookie'];
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) throw new Error(`no Set-Cookie (status ${res.statusCode})`);
  return value;
}

function cookieAttributes(setCookie: string): string[] {
  return setCookie
    .split(';')
    .slice(1)
    .map((a) => a.trim());
}

function sessionOf(res: LightMyRequestResponse): Session {
  expect(res.statusCode, res.body).toBe(200);
  const token = /^custodia_session=([^;]*)/.exec(setCookieOf(res))?.[1];
  if (token === undefined) throw new Error('no session cookie');
  return {
    token,
    cookie: `custodia_session=${token}`,
    csrf: res.json<{ csrfToken: string }>().csrfToken,
  };
}

/** A session cookie with one character of its token changed. */
function tampered(session: Session): Session {
  const last = session.token.slice(-1);
  const token = session.token.slice(0, -1) + (last === 'A' ? 'B' : 'A');
  return { ...session, token, cookie: `custodia_session=${token}` };
}

forEachDialect((dialect) => {
  describe(`staff sessions on ${dialect}`, () => {
    const clock = new TestClock();
    let rt: TestRuntime;
    let admin: string;
    let officer: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      admin = await rt.token('admin');
      officer = await rt.token('privacy_officer');
    });
    afterAll(async () => {
      await rt.close();
    });

    /** A request as a cookie session; non-GET requests carry its CSRF token unless told otherwise. */
    function asSession(
      session: Session,
      method: 'GET' | 'POST' | 'PATCH',
      url: string,
      options: { payload?: object; csrf?: string | null; host?: string } = {},
    ) {
      const headers: Record<string, string> = { cookie: session.cookie };
      const csrf = options.csrf === undefined ? session.csrf : options.csrf;
      if (method !== 'GET' && csrf !== null) headers['x-csrf-token'] = csrf;
      if (options.host !== undefined) headers['host'] = options.host;
      return rt.app.inject({
        method,
        url,
        headers,
        ...(options.payload === undefined ? {} : { payload: options.payload }),
      });
    }

    /** Roles that read personal data are granted by a privacy officer, the others by an admin. */
    const granterOf = (role: string) =>
      role === 'agent' || role === 'privacy_officer' ? officer : admin;

    function invite(email = uniqueEmail(), role = 'agent', displayName = 'Test Member') {
      return rt.app.inject({
        method: 'POST',
        url: '/api/v1/staff',
        headers: authHeader(granterOf(role)),
        payload: { email, displayName, role },
      });
    }

    async function invitation(email = uniqueEmail(), role = 'agent', displayName?: string) {
      const res = await invite(email, role, displayName);
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string; invitationToken: string; expiresAt: string }>();
    }

    const accept = (token: string, password: string) =>
      rt.app.inject({
        method: 'POST',
        url: '/api/v1/auth/invitations/accept',
        payload: { token, password },
      });

    const login = (
      email: string,
      password: string,
      options: { remoteAddress?: string; headers?: Record<string, string> } = {},
    ) =>
      rt.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { email, password },
        remoteAddress: options.remoteAddress ?? '127.0.0.1',
        headers: options.headers ?? {},
      });

    async function passSecondFactor(session: Session, secret: string): Promise<void> {
      const res = await asSession(session, 'POST', '/api/v1/auth/mfa/verify', {
        payload: { code: totpCode(secret, clock.now()) },
      });
      expect(res.statusCode, res.body).toBe(200);
    }

    /** Invites, accepts, signs in and enrols the second factor: a member with a full session. */
    async function newMember(
      role = 'agent',
      email = uniqueEmail(),
      displayName = 'Test Member',
    ): Promise<Member> {
      const password = uniquePassword();
      const { id, invitationToken } = await invitation(email, role, displayName);
      expect((await accept(invitationToken, password)).statusCode).toBe(200);
      const session = sessionOf(await login(email, password));
      const enrol = await asSession(session, 'POST', '/api/v1/auth/mfa/enroll');
      expect(enrol.statusCode, enrol.body).toBe(200);
      const { secret } = enrol.json<{ secret: string }>();
      await passSecondFactor(session, secret);
      return { id, email, password, secret, session };
    }

    /** Another full session of the same member (a TOTP code is accepted once, so a step later). */
    async function anotherSession(member: Member): Promise<Session> {
      clock.advance(TOTP_STEP);
      const session = sessionOf(await login(member.email, member.password));
      await passSecondFactor(session, member.secret);
      return session;
    }

    const whoAmI = (session: Session) => asSession(session, 'GET', '/api/v1/auth/session');
    const purposes = (session: Session) => asSession(session, 'GET', '/api/v1/purposes');

    async function customerCount(): Promise<number> {
      const row = await rt.inspect.data
        .selectFrom('customer')
        .select(sql<number | string>`count(*)`.as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    }

    /** The audit entries a member made or that name them, oldest first. */
    async function auditOf(staffId: string) {
      return rt.inspect.data
        .selectFrom('audit_entry')
        .select(['action', 'outcome', 'reason', 'actor_type', 'actor_id', 'fields'])
        .where('workspace_id', '=', rt.workspaceId)
        .where((eb) =>
          eb.or([eb('actor_id', '=', staffId), eb('fields', 'like', `%staff:${staffId}%`)]),
        )
        .orderBy('seq')
        .execute();
    }

    describe('invitations', () => {
      it('accepts an invitation once only', async () => {
        const email = uniqueEmail();
        const created = await invitation(email);
        expect(created.invitationToken).toMatch(/^inv_/);
        expect(Date.parse(created.expiresAt)).toBe(clock.now().getTime() + INVITATION_HOURS * HOUR);
        const password = uniquePassword();
        const first = await accept(created.invitationToken, password);
        expect(first.statusCode, first.body).toBe(200);
        expect(first.json<{ staffId: string }>().staffId).toBe(created.id);

        const second = await accept(created.invitationToken, uniquePassword());
        expect(second.statusCode).toBe(400);
        expect(errorOf(second).code).toBe('invitation_invalid');
        // The second acceptance set nothing: the first password still signs in.
        expect((await login(email, password)).statusCode).toBe(200);

        const audit = await auditOf(created.id);
        expect(audit).toContainEqual(
          expect.objectContaining({ action: 'staff.invite', outcome: 'done', actor_type: 'token' }),
        );
        expect(audit).toContainEqual(
          expect.objectContaining({
            action: 'staff.invitation.accept',
            outcome: 'done',
            actor_id: created.id,
          }),
        );
        expect(audit).toContainEqual(
          expect.objectContaining({
            action: 'staff.invitation.accept',
            outcome: 'denied',
            reason: 'used',
          }),
        );
      });

      it(`expires an invitation after ${INVITATION_HOURS} hours`, async () => {
        const early = await invitation();
        const late = await invitation();
        clock.advance(INVITATION_HOURS * HOUR - MINUTE);
        expect((await accept(early.invitationToken, uniquePassword())).statusCode).toBe(200);
        clock.advance(2 * MINUTE);
        const expired = await accept(late.invitationToken, uniquePassword());
        expect(expired.statusCode).toBe(400);
        expect(errorOf(expired).code).toBe('invitation_invalid');
        expect(await auditOf(late.id)).toContainEqual(
          expect.objectContaining({
            action: 'staff.invitation.accept',
            outcome: 'denied',
            reason: 'expired',
          }),
        );
      });

      it('refuses a tampered token, and a refused password does not use the invitation up', async () => {
        const { id, invitationToken } = await invitation();
        const last = invitationToken.slice(-1);
        const forged = invitationToken.slice(0, -1) + (last === 'x' ? 'y' : 'x');
        const res = await accept(forged, uniquePassword());
        expect(res.statusCode).toBe(400);
        expect(errorOf(res).code).toBe('invitation_invalid');

        const weak = await accept(invitationToken, 'short');
        expect(weak.statusCode).toBe(400);
        expect(errorOf(weak).code).toBe('password_rejected');
        expect(await auditOf(id)).toContainEqual(
          expect.objectContaining({
            action: 'staff.invitation.accept',
            outcome: 'denied',
            reason: 'password_rejected',
          }),
        );
        expect((await accept(invitationToken, uniquePassword())).statusCode).toBe(200);
      });

      it('cannot be used once an admin disabled the invited member', async () => {
        const email = uniqueEmail();
        const { id, invitationToken } = await invitation(email);
        const disable = await rt.app.inject({
          method: 'PATCH',
          url: `/api/v1/staff/${id}`,
          headers: authHeader(admin),
          payload: { status: 'disabled' },
        });
        expect(disable.statusCode, disable.body).toBe(200);

        const password = uniquePassword();
        const res = await accept(invitationToken, password);
        expect(res.statusCode).toBe(400);
        expect(errorOf(res).code).toBe('invitation_invalid');
        expect((await login(email, password)).statusCode).toBe(401);
        expect(await auditOf(id)).toContainEqual(
          expect.objectContaining({
            action: 'staff.invitation.accept',
            outcome: 'denied',
            reason: 'status:disabled',
          }),
        );
      });
    });

    describe('password rules', () => {
      async function rejected(password: string) {
        const { invitationToken } = await invitation();
        const res = await accept(invitationToken, password);
        expect(res.statusCode, `${Array.from(password).length} characters`).toBe(400);
        expect(errorOf(res).code).toBe('password_rejected');
        expect(errorOf(res).fields).toEqual(['body.password']);
        expect(errorOf(res).message).not.toContain(password);
      }

      async function accepted(password: string) {
        const email = uniqueEmail();
        const { invitationToken } = await invitation(email);
        const res = await accept(invitationToken, password);
        expect(res.statusCode, res.body).toBe(200);
        expect((await login(email, password)).statusCode).toBe(200);
      }

      it('refuses fewer than 12 and more than 128 characters, counted in code points', async () => {
        await rejected('elevenchars');
        await rejected('àéîõüçñåøßæ');
        // Six emoji are twelve UTF-16 units but six characters.
        await rejected('😀🎉🚀🌍🔒🦄');
        await rejected('z'.repeat(129));
        await accepted('twelve chars');
        await accepted('z'.repeat(128));
        // A hundred emoji are 200 UTF-16 units but 100 characters.
        await accepted('🔒'.repeat(100));
      });

      it('accepts twelve accented characters', async () => {
        await accepted('àéîõüçñåøßæœ');
      });

      it('refuses a common password whatever its case', async () => {
        await rejected('password1234');
        await rejected('QwertyUiop123');
      });

      it('applies the same rules to a new password, naming the field', async () => {
        const member = await newMember();
        const res = await asSession(member.session, 'POST', '/api/v1/auth/password', {
          payload: { currentPassword: member.password, newPassword: 'qwertyuiop123' },
        });
        expect(res.statusCode).toBe(400);
        expect(errorOf(res).code).toBe('password_rejected');
        expect(errorOf(res).fields).toEqual(['body.newPassword']);
        expect((await whoAmI(member.session)).statusCode).toBe(200);
      });
    });

    describe('login', () => {
      it('answers an unknown email, a wrong password and an unaccepted invitation alike', async () => {
        const member = await newMember();
        const invited = uniqueEmail();
        await invitation(invited);
        const answers = [
          await login(uniqueEmail(), member.password),
          await login(member.email, `${member.password}!`),
          await login(invited, member.password),
        ];
        for (const res of answers) {
          expect(res.statusCode).toBe(401);
          expect(res.headers['set-cookie']).toBeUndefined();
          const { code, message } = errorOf(res);
          expect({ code, message }).toEqual({
            code: 'login_failed',
            message: 'Email or password is wrong.',
          });
        }
        expect(await auditOf(member.id)).toContainEqual(
          expect.objectContaining({
            action: 'staff.login',
            outcome: 'denied',
            reason: 'wrong_password',
          }),
        );
      });

      it(`locks an account for ${LOCKOUT_MINUTES} minutes after ${LOCKOUT_AFTER} consecutive failures`, async () => {
        const member = await newMember();
        const from = { remoteAddress: '198.51.100.1' };
        for (let i = 0; i < LOCKOUT_AFTER; i += 1) {
          expect((await login(member.email, 'wrong password!', from)).statusCode).toBe(401);
        }
        const locked = await login(member.email, member.password, from);
        expect(locked.statusCode).toBe(429);
        expect(errorOf(locked).code).toBe('account_locked');
        expect(locked.headers['set-cookie']).toBeUndefined();

        clock.advance(LOCKOUT_MINUTES * MINUTE - MINUTE);
        expect(errorOf(await login(member.email, member.password, from)).code).toBe(
          'account_locked',
        );
        clock.advance(MINUTE + 1000);
        expect((await login(member.email, member.password, from)).statusCode).toBe(200);
        // The count started again: one more failure does not lock.
        expect((await login(member.email, 'wrong password!', from)).statusCode).toBe(401);
        expect((await login(member.email, member.password, from)).statusCode).toBe(200);
      });

      it('locks out an address without an active account alike, so the lockout tells nothing', async () => {
        const member = await newMember();
        const disabled = await newMember();
        const off = await rt.app.inject({
          method: 'PATCH',
          url: `/api/v1/staff/${disabled.id}`,
          headers: authHeader(admin),
          payload: { status: 'disabled' },
        });
        expect(off.statusCode, off.body).toBe(200);
        const addresses = [member.email, uniqueEmail(), disabled.email];
        const answers = new Map(addresses.map((email) => [email, [] as string[]]));
        for (const [i, email] of addresses.entries()) {
          const from = { remoteAddress: `198.51.100.${String(40 + i)}` };
          for (let n = 0; n <= LOCKOUT_AFTER; n += 1) {
            const res = await login(email, 'wrong password!', from);
            answers.get(email)?.push(`${String(res.statusCode)} ${errorOf(res).code}`);
          }
        }
        const expected = [
          ...Array.from({ length: LOCKOUT_AFTER }, () => '401 login_failed'),
          '429 account_locked',
        ];
        for (const email of addresses) expect(answers.get(email), email).toEqual(expected);
      });

      it('starts the count again once a sign-in completes with the second factor', async () => {
        const member = await newMember();
        const from = { remoteAddress: '198.51.100.2' };
        for (let i = 0; i < LOCKOUT_AFTER - 1; i += 1) {
          expect((await login(member.email, 'wrong password!', from)).statusCode).toBe(401);
        }
        clock.advance(TOTP_STEP);
        await passSecondFactor(
          sessionOf(await login(member.email, member.password, from)),
          member.secret,
        );
        for (let i = 0; i < LOCKOUT_AFTER - 1; i += 1) {
          expect((await login(member.email, 'wrong password!', from)).statusCode).toBe(401);
        }
        expect((await login(member.email, member.password, from)).statusCode).toBe(200);
      });

      it('locks an account when the failures arrive at the same time', async () => {
        const member = await newMember();
        const burst = await Promise.all(
          Array.from({ length: 2 * LOCKOUT_AFTER }, (_, i) =>
            login(member.email, 'wrong password!', { remoteAddress: `198.51.100.${100 + i}` }),
          ),
        );
        expect(burst.map((r) => r.statusCode)).not.toContain(200);
        const right = await login(member.email, member.password, {
          remoteAddress: '198.51.100.99',
        });
        expect(right.statusCode).toBe(429);
        expect(errorOf(right).code).toBe('account_locked');
      });

      it('holds a client address to its failure limit when the attempts arrive at the same time', async () => {
        const burst = await Promise.all(
          Array.from({ length: 2 * SOURCE_FAILURES }, () =>
            login(uniqueEmail(), 'wrong password!', { remoteAddress: '203.0.113.50' }),
          ),
        );
        const tried = burst.filter((r) => r.statusCode === 401).length;
        expect(tried).toBeLessThanOrEqual(SOURCE_FAILURES);
      });

      it(`refuses a client address after ${SOURCE_FAILURES} failures in a window, even with the right password`, async () => {
        const member = await newMember();
        const attacker = { remoteAddress: '203.0.113.7' };
        for (let i = 0; i < SOURCE_FAILURES; i += 1) {
          expect((await login(uniqueEmail(), 'wrong password!', attacker)).statusCode).toBe(401);
        }
        const throttled = await login(uniqueEmail(), 'wrong password!', attacker);
        expect(throttled.statusCode).toBe(429);
        expect(errorOf(throttled).code).toBe('rate_limited');
        const right = await login(member.email, member.password, attacker);
        expect(right.statusCode).toBe(429);
        expect(errorOf(right).code).toBe('rate_limited');

        const elsewhere = await login(member.email, member.password, {
          remoteAddress: '203.0.113.8',
        });
        expect(elsewhere.statusCode, elsewhere.body).toBe(200);

        clock.advance(SOURCE_WINDOW_MINUTES * MINUTE);
        expect((await login(member.email, member.password, attacker)).statusCode).toBe(200);
      });
    });

    describe('session cookie', () => {
      it('is HttpOnly, SameSite=Strict, Path=/, and Secure except over plain HTTP to loopback', async () => {
        const member = await newMember();
        const local = setCookieOf(await login(member.email, member.password));
        expect(local).toMatch(/^custodia_session=sess_[A-Za-z0-9_-]{43};/);
        expect(cookieAttributes(local)).toEqual(
          expect.arrayContaining([
            'Path=/',
            'HttpOnly',
            'SameSite=Strict',
            `Max-Age=${SESSION_ABSOLUTE_HOURS * 3600}`,
          ]),
        );
        expect(cookieAttributes(local)).not.toContain('Secure');

        const remote = setCookieOf(
          await login(member.email, member.password, { headers: { host: 'crm.example.com' } }),
        );
        expect(cookieAttributes(remote)).toEqual(
          expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Strict', 'Secure']),
        );
      });

      it('is new at every login, even when the request shows an older one', async () => {
        const member = await newMember();
        const again = sessionOf(
          await login(member.email, member.password, {
            headers: { cookie: member.session.cookie },
          }),
        );
        expect(again.token).not.toBe(member.session.token);
        expect(again.csrf).not.toBe(member.session.csrf);
        expect((await whoAmI(again)).statusCode).toBe(200);
      });

      it('is refused when tampered with or unknown', async () => {
        const member = await newMember();
        const forged = await purposes(tampered(member.session));
        expect(forged.statusCode).toBe(401);
        expect(errorOf(forged).code).toBe('unauthenticated');
        const unknown = await purposes({
          ...member.session,
          cookie: `custodia_session=sess_${'A'.repeat(43)}`,
        });
        expect(errorOf(unknown).code).toBe('unauthenticated');
        const none = await rt.app.inject({ method: 'GET', url: '/api/v1/purposes' });
        expect(none.statusCode).toBe(401);
        expect((await purposes(member.session)).statusCode).toBe(200);
      });
    });

    describe('second factor', () => {
      it('keeps a session to its own routes until the second factor passes', async () => {
        const email = uniqueEmail();
        const password = uniquePassword();
        const { id, invitationToken } = await invitation(email);
        await accept(invitationToken, password);
        const res = await login(email, password);
        expect(res.json<{ secondFactor: string }>().secondFactor).toBe('enroll');
        const session = sessionOf(res);

        const me = await whoAmI(session);
        expect(me.statusCode).toBe(200);
        expect(me.json()).toMatchObject({ staffId: id, role: 'agent', secondFactorPassed: false });
        const read = await purposes(session);
        expect(read.statusCode).toBe(401);
        expect(errorOf(read).code).toBe('mfa_required');
        const before = await customerCount();
        const write = await asSession(session, 'POST', '/api/v1/customers', {
          payload: { consents: [loyalty], identity: { givenName: 'Pilar' } },
        });
        expect(write.statusCode).toBe(401);
        expect(errorOf(write).code).toBe('mfa_required');
        expect(await customerCount()).toBe(before);
        expect(await auditOf(id)).toContainEqual(
          expect.objectContaining({
            action: 'access.denied',
            outcome: 'denied',
            reason: 'mfa_required',
          }),
        );

        const enrol = await asSession(session, 'POST', '/api/v1/auth/mfa/enroll');
        await passSecondFactor(session, enrol.json<{ secret: string }>().secret);
        expect((await purposes(session)).statusCode).toBe(200);
        expect((await whoAmI(session)).json()).toMatchObject({ secondFactorPassed: true });
      });

      it('lets an agent read without a CSRF token but write only with its own', async () => {
        const member = await newMember();
        const other = await newMember();
        const payload = { consents: [loyalty], identity: { givenName: 'Pilar' } };
        expect((await purposes(member.session)).statusCode).toBe(200);

        const before = await customerCount();
        for (const csrf of [null, 'not-the-token', other.session.csrf]) {
          const res = await asSession(member.session, 'POST', '/api/v1/customers', {
            payload,
            csrf,
          });
          expect(res.statusCode, String(csrf)).toBe(403);
          expect(errorOf(res).code).toBe('csrf_failed');
        }
        expect(await customerCount()).toBe(before);

        const created = await asSession(member.session, 'POST', '/api/v1/customers', { payload });
        expect(created.statusCode, created.body).toBe(201);
        expect(await customerCount()).toBe(before + 1);
      });
    });

    describe('session lifetime', () => {
      it(`ends a session after ${SESSION_IDLE_MINUTES} idle minutes`, async () => {
        const member = await newMember();
        clock.advance((SESSION_IDLE_MINUTES - 1) * MINUTE);
        expect((await purposes(member.session)).statusCode).toBe(200);
        clock.advance((SESSION_IDLE_MINUTES + 1) * MINUTE);
        const idle = await purposes(member.session);
        expect(idle.statusCode).toBe(401);
        expect(errorOf(idle).code).toBe('unauthenticated');
        expect((await whoAmI(member.session)).statusCode).toBe(401);
        // The use of an idle session is audited once; the session has ended, so later tries
        // are unknown tokens (logged, not audited: they name no workspace).
        const denials = (await auditOf(member.id)).filter(
          (e) => e.action === 'access.denied' && e.reason === 'session_idle',
        );
        expect(denials).toHaveLength(1);
        expect(denials[0]).toMatchObject({ actor_type: 'staff', outcome: 'denied' });
      });

      it(`keeps an active session alive until ${SESSION_ABSOLUTE_HOURS} hours after login`, async () => {
        const loginAt = clock.now().getTime();
        const member = await newMember();
        const end = loginAt + SESSION_ABSOLUTE_HOURS * HOUR;
        while (clock.now().getTime() + 20 * MINUTE < end) {
          clock.advance(20 * MINUTE);
          expect((await purposes(member.session)).statusCode).toBe(200);
        }
        clock.advance(end - clock.now().getTime() - MINUTE);
        expect((await purposes(member.session)).statusCode).toBe(200);
        clock.advance(MINUTE);
        const expired = await purposes(member.session);
        expect(expired.statusCode).toBe(401);
        expect(errorOf(expired).code).toBe('unauthenticated');
        expect(await auditOf(member.id)).toContainEqual(
          expect.objectContaining({
            action: 'access.denied',
            outcome: 'denied',
            reason: 'session_expired',
          }),
        );
      });

      it('logout clears the cookie and ends that session only', async () => {
        const member = await newMember();
        const second = await anotherSession(member);

        const forged = await asSession(member.session, 'POST', '/api/v1/auth/logout', {
          csrf: null,
        });
        expect(forged.statusCode).toBe(403);
        expect((await whoAmI(member.session)).statusCode).toBe(200);

        const res = await asSession(member.session, 'POST', '/api/v1/auth/logout', {
          host: 'crm.example.com',
        });
        expect(res.statusCode, res.body).toBe(200);
        const cleared = setCookieOf(res);
        expect(cleared).toMatch(/^custodia_session=;/);
        expect(cookieAttributes(cleared)).toEqual(
          expect.arrayContaining(['Max-Age=0', 'Path=/', 'HttpOnly', 'SameSite=Strict', 'Secure']),
        );
        expect((await whoAmI(member.session)).statusCode).toBe(401);
        expect((await purposes(member.session)).statusCode).toBe(401);
        expect((await purposes(second)).statusCode).toBe(200);
        expect(await auditOf(member.id)).toContainEqual(
          expect.objectContaining({ action: 'staff.logout', outcome: 'done' }),
        );
      });

      it("a password change ends every session of the member and no other member's", async () => {
        const member = await newMember();
        const second = await anotherSession(member);
        const bystander = await newMember();

        const wrong = await asSession(member.session, 'POST', '/api/v1/auth/password', {
          payload: { currentPassword: 'not my password', newPassword: uniquePassword() },
        });
        expect(wrong.statusCode).toBe(401);
        expect((await whoAmI(member.session)).statusCode).toBe(200);

        const newPassword = uniquePassword();
        const res = await asSession(member.session, 'POST', '/api/v1/auth/password', {
          payload: { currentPassword: member.password, newPassword },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(cookieAttributes(setCookieOf(res))).toContain('Max-Age=0');
        expect((await whoAmI(member.session)).statusCode).toBe(401);
        expect((await whoAmI(second)).statusCode).toBe(401);
        expect((await purposes(bystander.session)).statusCode).toBe(200);

        expect(errorOf(await login(member.email, member.password)).code).toBe('login_failed');
        expect((await login(member.email, newPassword)).statusCode).toBe(200);
        const audit = await auditOf(member.id);
        expect(audit).toContainEqual(
          expect.objectContaining({ action: 'staff.password.change', outcome: 'denied' }),
        );
        expect(audit).toContainEqual(
          expect.objectContaining({ action: 'staff.password.change', outcome: 'done' }),
        );
      });

      it('a session that has not passed the second factor cannot change the password', async () => {
        const member = await newMember();
        clock.advance(TOTP_STEP);
        const halfway = sessionOf(await login(member.email, member.password));
        const newPassword = uniquePassword();
        const res = await asSession(halfway, 'POST', '/api/v1/auth/password', {
          payload: { currentPassword: member.password, newPassword },
        });
        expect(res.statusCode).toBe(401);
        expect(errorOf(res).code).toBe('mfa_required');
        // Nothing changed: the old password still signs in, the new one does not.
        expect((await login(member.email, member.password)).statusCode).toBe(200);
        expect(errorOf(await login(member.email, newPassword)).code).toBe('login_failed');
      });

      it('a locked account cannot change its password either', async () => {
        const member = await newMember();
        for (let i = 0; i < LOCKOUT_AFTER; i += 1) {
          const res = await asSession(member.session, 'POST', '/api/v1/auth/password', {
            payload: { currentPassword: 'not my password', newPassword: uniquePassword() },
          });
          expect(res.statusCode).toBe(401);
        }
        expect(errorOf(await login(member.email, member.password)).code).toBe('account_locked');
        const res = await asSession(member.session, 'POST', '/api/v1/auth/password', {
          payload: { currentPassword: member.password, newPassword: uniquePassword() },
        });
        expect(res.statusCode).toBe(429);
        expect(errorOf(res).code).toBe('account_locked');
      });
    });

    describe('admin changes', () => {
      const patchStaff = (id: string, payload: object, by = admin) =>
        rt.app.inject({
          method: 'PATCH',
          url: `/api/v1/staff/${id}`,
          headers: authHeader(by),
          payload,
        });

      it('disabling a member ends their sessions and refuses their login', async () => {
        const member = await newMember();
        const res = await patchStaff(member.id, { status: 'disabled' });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toMatchObject({ id: member.id, status: 'disabled' });

        const refused = await purposes(member.session);
        expect(refused.statusCode).toBe(401);
        expect(errorOf(refused).code).toBe('unauthenticated');
        const loginRes = await login(member.email, member.password);
        expect(loginRes.statusCode).toBe(401);
        expect(errorOf(loginRes).code).toBe('login_failed');
        expect(await auditOf(member.id)).toContainEqual(
          expect.objectContaining({
            action: 'staff.change',
            outcome: 'done',
            actor_type: 'token',
            reason: null,
          }),
        );

        // Reinstating an agent grants access to personal data: a privacy officer's call, not an
        // admin's. Enabled again, the member signs in anew; the old session stays ended.
        const byAdmin = await patchStaff(member.id, { status: 'active' });
        expect(byAdmin.statusCode).toBe(403);
        expect(errorOf(byAdmin).code).toBe('forbidden');
        expect((await patchStaff(member.id, { status: 'active' }, officer)).statusCode).toBe(200);
        expect((await login(member.email, member.password)).statusCode).toBe(200);
        expect((await whoAmI(member.session)).statusCode).toBe(401);
      });

      it('grants a role that reads personal data only from a privacy officer, and audits a refusal', async () => {
        // An admin reads no personal data, so cannot make anyone (themselves under another
        // address included) an agent or a privacy officer; a privacy officer cannot make admins.
        const refusals: [by: string, role: string][] = [
          [admin, 'agent'],
          [admin, 'privacy_officer'],
          [officer, 'admin'],
          [officer, 'marketer'],
          [officer, 'auditor'],
        ];
        for (const [by, role] of refusals) {
          const email = uniqueEmail();
          const res = await rt.app.inject({
            method: 'POST',
            url: '/api/v1/staff',
            headers: authHeader(by),
            payload: { email, displayName: 'Would Be', role },
          });
          expect(res.statusCode, role).toBe(403);
          expect(errorOf(res).code).toBe('forbidden');
          expect(res.body).not.toContain(email);
        }
        const marketer = await newMember('marketer');
        const promote = await patchStaff(marketer.id, { role: 'agent' });
        expect(promote.statusCode).toBe(403);
        expect((await whoAmI(marketer.session)).json()).toMatchObject({ role: 'marketer' });
        expect(await auditOf(marketer.id)).toContainEqual(
          expect.objectContaining({
            action: 'staff.change',
            outcome: 'denied',
            reason: 'role_not_grantable',
          }),
        );
        expect((await patchStaff(marketer.id, { role: 'agent' }, officer)).statusCode).toBe(200);
        // Taking access away is open to either.
        const agent = await newMember('agent');
        expect((await patchStaff(agent.id, { role: 'marketer' })).statusCode).toBe(200);
      });

      it("a role change ends the member's sessions", async () => {
        const member = await newMember();
        expect((await patchStaff(member.id, { role: 'marketer' })).statusCode).toBe(200);
        expect((await whoAmI(member.session)).statusCode).toBe(401);
        const fresh = sessionOf(await login(member.email, member.password));
        expect((await whoAmI(fresh)).json()).toMatchObject({ role: 'marketer' });
      });
    });

    it('audits each step of a member’s life', async () => {
      const member = await newMember();
      const second = await anotherSession(member);
      await asSession(second, 'POST', '/api/v1/auth/logout');
      await asSession(member.session, 'POST', '/api/v1/auth/password', {
        payload: { currentPassword: member.password, newPassword: uniquePassword() },
      });
      await rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/staff/${member.id}`,
        headers: authHeader(admin),
        payload: { status: 'disabled' },
      });

      const done = (await auditOf(member.id))
        .filter((e) => e.outcome === 'done' || e.outcome === 'allowed')
        .map((e) => e.action);
      expect(done).toEqual([
        'staff.invite',
        'staff.invitation.accept',
        'staff.login',
        'staff.mfa.enroll',
        'staff.mfa',
        'staff.login',
        'staff.mfa',
        'staff.logout',
        'staff.password.change',
        'staff.change',
      ]);
      const change = (await auditOf(member.id)).find((e) => e.action === 'staff.change');
      expect(change?.fields).toContain(`staff:${member.id}`);
      expect(change?.fields).toContain('status:disabled');
    });

    describe('what is stored', () => {
      it('never stores or logs a staff email or name, and shows them to admins only', async () => {
        const email = 'canary.staff@example.org';
        const displayName = 'Zoltana Canarywick';
        const member = await newMember('agent', email, displayName);
        expect((await login(email, 'wrong password!')).statusCode).toBe(401);

        const list = await rt.app.inject({
          method: 'GET',
          url: '/api/v1/staff',
          headers: authHeader(admin),
        });
        expect(list.statusCode).toBe(200);
        expect(list.json<{ items: unknown[] }>().items).toContainEqual(
          expect.objectContaining({ id: member.id, email, displayName, role: 'agent' }),
        );
        const refused = await asSession(member.session, 'GET', '/api/v1/staff');
        expect(refused.statusCode).toBe(403);
        expect(errorOf(refused).code).toBe('forbidden');

        const bytes = await rt.storeBytes();
        const logs = Buffer.from(rt.logs.text(), 'utf8');
        // The search finds what is there: the member's id in the stores, the login path in the logs.
        expect(countCanary(bytes, member.id)).toBeGreaterThan(0);
        expect(countCanary(logs, '/api/v1/auth/login')).toBeGreaterThan(0);
        for (const canary of [email, 'canary.staff', displayName, 'Canarywick']) {
          expect(countCanary(bytes, canary), `${canary} in the stores`).toBe(0);
          expect(countCanary(logs, canary), `${canary} in the logs`).toBe(0);
        }
      });

      it('stores no session, CSRF or invitation token, nor the TOTP secret, in plaintext', async () => {
        const email = uniqueEmail();
        const password = uniquePassword();
        const { invitationToken } = await invitation(email);
        await accept(invitationToken, password);
        const session = sessionOf(await login(email, password));
        const enrol = await asSession(session, 'POST', '/api/v1/auth/mfa/enroll');
        const { secret } = enrol.json<{ secret: string }>();
        await passSecondFactor(session, secret);

        const bytes = await rt.storeBytes();
        const logs = Buffer.from(rt.logs.text(), 'utf8');
        expect(countCanary(bytes, sha256Hex(session.token))).toBeGreaterThan(0);
        const secrets = {
          invitationToken,
          sessionToken: session.token,
          csrfToken: session.csrf,
          secret,
          password,
        };
        for (const [name, value] of Object.entries(secrets)) {
          expect(countCanary(bytes, value), `${name} in the stores`).toBe(0);
          expect(countCanary(logs, value), `${name} in the logs`).toBe(0);
        }
      });
    });
  });
});
