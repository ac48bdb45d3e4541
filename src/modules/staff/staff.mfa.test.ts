import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../../platform/crypto/index.js';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import {
  asStaffSession,
  inviteStaffMember,
  logInStaff,
  type StaffLogin,
} from '../../testing/staff.js';
import { roles, type Role } from './staff.permissions.js';

interface ErrorBody {
  error: { code: string; message: string; requestId: string };
}

interface Member {
  readonly id: string;
  readonly email: string;
  readonly password: string;
  readonly role: Role;
}

type Session = StaffLogin;

interface Enrolment {
  readonly secret: string;
  readonly otpauthUri: string;
}

const STEP_MS = 30_000;

let seq = 0;
function uniqueEmail(role: Role): string {
  seq += 1;
  return `staff.${role}.${seq}.${Date.now()}@example.org`;
}

/** RFC 4648 base32 (no padding), to look for the secret's raw bytes. */
function base32Bytes(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of text.replace(/=+$/, '').toUpperCase()) {
    const index = alphabet.indexOf(ch);
    if (index === -1) throw new Error('not base32');
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function errorCode(res: LightMyRequestResponse): string {
  return res.json<ErrorBody>().error.code;
}

forEachDialect((dialect) => {
  describe(`staff second factor on ${dialect}`, () => {
    let rt: TestRuntime;
    let clock: TestClock;
    let admin: string;
    let officer: string;
    let agentToken: string;

    beforeAll(async () => {
      clock = new TestClock();
      rt = await startRuntime(dialect, { clock });
      admin = await rt.token('admin');
      officer = await rt.token('privacy_officer');
      agentToken = await rt.token('agent');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function invite(role: Role): Promise<Member> {
      const invited = await inviteStaffMember(rt, {
        role,
        // Roles that read personal data are granted by a privacy officer, the others by an admin.
        granterToken: role === 'agent' || role === 'privacy_officer' ? officer : admin,
        email: uniqueEmail(role),
        password: `plum-orchard-${seq}-lantern-${role}`,
        displayName: `Staff ${role}`,
      });
      return { ...invited, role };
    }

    function login(member: Member): Promise<Session> {
      return logInStaff(rt, { email: member.email, password: member.password });
    }

    function call(
      session: Session,
      method: 'GET' | 'POST',
      url: string,
      payload?: object,
    ): Promise<LightMyRequestResponse> {
      return asStaffSession(rt, session, method, url, payload);
    }

    async function enroll(session: Session): Promise<Enrolment> {
      const res = await call(session, 'POST', '/api/v1/auth/mfa/enroll');
      expect(res.statusCode, res.body).toBe(200);
      return res.json<Enrolment>();
    }

    function verify(
      session: Session,
      body: { code: string } | { recoveryCode: string },
    ): Promise<LightMyRequestResponse> {
      return call(session, 'POST', '/api/v1/auth/mfa/verify', body);
    }

    function codeAt(secret: string, offsetMs = 0): string {
      return totpCode(secret, new Date(clock.now().getTime() + offsetMs));
    }

    /** A six-digit code that no step in the accepted window (or next to it) shows. */
    function wrongCode(secret: string): string {
      const near = new Set([-2, -1, 0, 1, 2].map((s) => codeAt(secret, s * STEP_MS)));
      for (let n = 0; ; n += 1) {
        const candidate = String(n).padStart(6, '0');
        if (!near.has(candidate)) return candidate;
      }
    }

    /** Invites, logs in, enrols and passes the first code; answers the recovery codes too. */
    async function enrolled(role: Role): Promise<{
      member: Member;
      session: Session;
      secret: string;
      recoveryCodes: string[];
    }> {
      const member = await invite(role);
      const session = await login(member);
      const { secret } = await enroll(session);
      const res = await verify(session, { code: codeAt(secret) });
      expect(res.statusCode, res.body).toBe(200);
      const { recoveryCodes } = res.json<{ recoveryCodes: string[] | null }>();
      expect(recoveryCodes).not.toBeNull();
      return { member, session, secret, recoveryCodes: recoveryCodes ?? [] };
    }

    /** Moves the clock past the current 30-second step, so a new code can be shown. */
    function nextStep(): void {
      clock.advance(STEP_MS);
    }

    async function mfaAudit(staffId: string) {
      return rt.inspect.data
        .selectFrom('audit_entry')
        .select(['outcome', 'reason', 'actor_type', 'actor_role'])
        .where('action', '=', 'staff.mfa')
        .where('actor_id', '=', staffId)
        .orderBy('seq')
        .execute();
    }

    async function account(staffId: string) {
      return rt.inspect.data
        .selectFrom('staff_account')
        .selectAll()
        .where('id', '=', staffId)
        .executeTakeFirstOrThrow();
    }

    for (const role of roles) {
      it(`a ${role} session can do nothing but finish the second factor until it passes`, async () => {
        const member = await invite(role);
        const session = await login(member);
        expect(session.secondFactor).toBe('enroll');

        const before = await call(session, 'GET', '/api/v1/purposes');
        expect(before.statusCode, before.body).toBe(401);
        expect(errorCode(before)).toBe('mfa_required');
        const self = await call(session, 'GET', '/api/v1/auth/session');
        expect(self.statusCode, self.body).toBe(200);
        expect(self.json()).toMatchObject({ staffId: member.id, role, secondFactorPassed: false });

        const { secret } = await enroll(session);
        const stillBefore = await call(session, 'GET', '/api/v1/purposes');
        expect(stillBefore.statusCode, stillBefore.body).toBe(401);
        expect(errorCode(stillBefore)).toBe('mfa_required');

        const passed = await verify(session, { code: codeAt(secret) });
        expect(passed.statusCode, passed.body).toBe(200);
        const after = await call(session, 'GET', '/api/v1/purposes');
        expect(after.statusCode, after.body).toBe(200);
        const selfAfter = await call(session, 'GET', '/api/v1/auth/session');
        expect(selfAfter.json()).toMatchObject({ secondFactorPassed: true });
      });
    }

    it('a pre-MFA admin session cannot manage tokens or staff', async () => {
      const member = await invite('admin');
      const session = await login(member);
      for (const res of [
        await call(session, 'GET', '/api/v1/tokens'),
        await call(session, 'POST', '/api/v1/tokens', { role: 'admin', label: 'escalate' }),
        await call(session, 'GET', '/api/v1/staff'),
        await call(session, 'POST', '/api/v1/staff', {
          email: uniqueEmail('admin'),
          displayName: 'Mallory',
          role: 'admin',
        }),
      ]) {
        expect(res.statusCode, res.body).toBe(401);
        expect(errorCode(res)).toBe('mfa_required');
      }
      const denied = await rt.inspect.data
        .selectFrom('audit_entry')
        .select(['reason'])
        .where('action', '=', 'access.denied')
        .where('actor_id', '=', member.id)
        .execute();
      expect(denied.map((r) => r.reason)).toEqual(Array(4).fill('mfa_required'));
    });

    it('enrolment answers a base32 secret and an otpauth URI issued by Custodia', async () => {
      const member = await invite('agent');
      const session = await login(member);
      const { secret, otpauthUri } = await enroll(session);
      expect(secret).toMatch(/^[A-Z2-7]{32}$/);
      expect(base32Bytes(secret)).toHaveLength(20);
      const uri = new URL(otpauthUri);
      expect(uri.protocol).toBe('otpauth:');
      expect(otpauthUri.startsWith('otpauth://totp/')).toBe(true);
      expect(uri.searchParams.get('secret')).toBe(secret);
      expect(uri.searchParams.get('issuer')).toBe('Custodia');
      expect(decodeURIComponent(uri.pathname)).toContain(member.email);
      const row = await account(member.id);
      expect(row.totp_sealed).not.toBeNull();
      expect(row.totp_enrolled_at).toBeNull();
    });

    it('seals the TOTP secret and keeps only hashes of recovery codes', async () => {
      const { member, secret, recoveryCodes } = await enrolled('agent');
      const raw = base32Bytes(secret);
      const row = await account(member.id);
      const sealed = Buffer.from(row.totp_sealed ?? new Uint8Array());
      expect(sealed.length).toBeGreaterThan(0);
      expect(sealed.toString('utf8')).not.toBe(secret);
      expect(sealed.includes(Buffer.from(secret, 'utf8'))).toBe(false);
      expect(sealed.includes(raw)).toBe(false);

      const stored = await rt.storeBytes();
      expect(countCanary(stored, secret)).toBe(0);
      expect(countCanary(stored, secret.toLowerCase())).toBe(0);
      expect(stored.includes(raw)).toBe(false);
      const logs = Buffer.from(rt.logs.text(), 'utf8');
      expect(countCanary(logs, secret)).toBe(0);

      const codes = await rt.inspect.data
        .selectFrom('staff_recovery_code')
        .selectAll()
        .where('staff_id', '=', member.id)
        .execute();
      expect(codes).toHaveLength(10);
      for (const code of recoveryCodes) {
        expect(countCanary(stored, code)).toBe(0);
        expect(countCanary(logs, code)).toBe(0);
        expect(codes.map((c) => c.code_hash)).not.toContain(code);
      }
    });

    it('the first valid code completes enrolment with ten distinct recovery codes', async () => {
      const member = await invite('privacy_officer');
      const session = await login(member);
      const { secret } = await enroll(session);
      const res = await verify(session, { code: codeAt(secret) });
      expect(res.statusCode, res.body).toBe(200);
      const { recoveryCodes } = res.json<{ recoveryCodes: string[] | null }>();
      expect(recoveryCodes).toHaveLength(10);
      expect(new Set(recoveryCodes).size).toBe(10);
      for (const code of recoveryCodes ?? []) expect(code.length).toBeGreaterThanOrEqual(16);
      expect((await account(member.id)).totp_enrolled_at).not.toBeNull();

      nextStep();
      const again = await login(member);
      const second = await verify(again, { code: codeAt(secret) });
      expect(second.statusCode, second.body).toBe(200);
      expect(second.json()).toEqual({ recoveryCodes: null });
    });

    it('a code is accepted once: reusing it in the same step on a new session is refused', async () => {
      const { member, secret } = await enrolled('agent');
      const used = codeAt(secret);
      const again = await login(member);
      expect(again.secondFactor).toBe('verify');
      const replay = await verify(again, { code: used });
      expect(replay.statusCode, replay.body).toBe(401);
      expect(errorCode(replay)).toBe('mfa_failed');
      const blocked = await call(again, 'GET', '/api/v1/purposes');
      expect(errorCode(blocked)).toBe('mfa_required');

      nextStep();
      const fresh = await verify(again, { code: codeAt(secret) });
      expect(fresh.statusCode, fresh.body).toBe(200);
    });

    it('a code used after enrolment cannot be replayed either', async () => {
      const { member, secret } = await enrolled('agent');
      nextStep();
      const first = await login(member);
      const code = codeAt(secret);
      expect((await verify(first, { code })).statusCode).toBe(200);
      const second = await login(member);
      const replay = await verify(second, { code });
      expect(replay.statusCode, replay.body).toBe(401);
      expect(errorCode(replay)).toBe('mfa_failed');
    });

    it('refuses an expired code, accepts one step of drift either way, not two', async () => {
      const behind = await invite('agent');
      const behindSession = await login(behind);
      const behindSecret = (await enroll(behindSession)).secret;
      const old = codeAt(behindSecret);
      clock.advance(2 * 60_000);
      const expired = await verify(behindSession, { code: old });
      expect(expired.statusCode, expired.body).toBe(401);
      expect(errorCode(expired)).toBe('mfa_failed');
      const twoBehind = await verify(behindSession, { code: codeAt(behindSecret, -2 * STEP_MS) });
      expect(twoBehind.statusCode, twoBehind.body).toBe(401);
      const oneBehind = await verify(behindSession, { code: codeAt(behindSecret, -STEP_MS) });
      expect(oneBehind.statusCode, oneBehind.body).toBe(200);

      const ahead = await invite('agent');
      const aheadSession = await login(ahead);
      const aheadSecret = (await enroll(aheadSession)).secret;
      const twoAhead = await verify(aheadSession, { code: codeAt(aheadSecret, 2 * STEP_MS) });
      expect(twoAhead.statusCode, twoAhead.body).toBe(401);
      const oneAhead = await verify(aheadSession, { code: codeAt(aheadSecret, STEP_MS) });
      expect(oneAhead.statusCode, oneAhead.body).toBe(200);
      // The step after the accepted one passed already: the current step's code is older.
      const later = await login(ahead);
      const older = await verify(later, { code: codeAt(aheadSecret) });
      expect(older.statusCode, older.body).toBe(401);
    });

    it('after enrolment a login asks to verify, and enrolling again is a conflict', async () => {
      const { member, secret } = await enrolled('marketer');
      const before = await account(member.id);
      const again = await login(member);
      expect(again.secondFactor).toBe('verify');
      expect(errorCode(await call(again, 'GET', '/api/v1/purposes'))).toBe('mfa_required');
      const conflict = await call(again, 'POST', '/api/v1/auth/mfa/enroll');
      expect(conflict.statusCode, conflict.body).toBe(409);
      expect(errorCode(conflict)).toBe('conflict');
      expect(conflict.body).not.toContain(secret);
      const after = await account(member.id);
      expect(Buffer.from(after.totp_sealed ?? new Uint8Array())).toEqual(
        Buffer.from(before.totp_sealed ?? new Uint8Array()),
      );
      expect(errorCode(await call(again, 'GET', '/api/v1/purposes'))).toBe('mfa_required');
    });

    it('a recovery code passes once and is refused the second time', async () => {
      const { member, recoveryCodes } = await enrolled('auditor');
      const code = recoveryCodes[3] ?? '';
      const first = await login(member);
      const used = await verify(first, { recoveryCode: code });
      expect(used.statusCode, used.body).toBe(200);
      expect(used.json()).toEqual({ recoveryCodes: null });
      expect((await call(first, 'GET', '/api/v1/purposes')).statusCode).toBe(200);
      const row = await rt.inspect.data
        .selectFrom('staff_recovery_code')
        .select(['used_at'])
        .where('staff_id', '=', member.id)
        .where('used_at', 'is not', null)
        .execute();
      expect(row).toHaveLength(1);

      const second = await login(member);
      const reused = await verify(second, { recoveryCode: code });
      expect(reused.statusCode, reused.body).toBe(401);
      expect(errorCode(reused)).toBe('mfa_failed');
      expect(errorCode(await call(second, 'GET', '/api/v1/purposes'))).toBe('mfa_required');
      const other = await verify(second, { recoveryCode: recoveryCodes[4] ?? '' });
      expect(other.statusCode, other.body).toBe(200);
    });

    it("a recovery code neither completes enrolment nor works on another member's account", async () => {
      const owner = await enrolled('agent');
      const member = await invite('agent');
      const session = await login(member);
      const { secret } = await enroll(session);
      const borrowed = await verify(session, { recoveryCode: owner.recoveryCodes[0] ?? '' });
      expect(borrowed.statusCode, borrowed.body).toBe(401);
      expect(errorCode(borrowed)).toBe('mfa_failed');
      expect((await account(member.id)).totp_enrolled_at).toBeNull();
      expect(errorCode(await call(session, 'GET', '/api/v1/purposes'))).toBe('mfa_required');
      const stored = await rt.inspect.data
        .selectFrom('staff_recovery_code')
        .select(['code_hash'])
        .where('staff_id', '=', member.id)
        .execute();
      expect(stored).toHaveLength(0);

      const totp = await verify(session, { code: codeAt(secret) });
      expect(totp.statusCode, totp.body).toBe(200);
      expect(totp.json<{ recoveryCodes: string[] | null }>().recoveryCodes).toHaveLength(10);
      // The owner's code is still unused: the attempt on another account did not spend it.
      const ownerSession = await login(owner.member);
      const own = await verify(ownerSession, { recoveryCode: owner.recoveryCodes[0] ?? '' });
      expect(own.statusCode, own.body).toBe(200);
    });

    it('recovery codes left from an earlier enrolment do not complete a new one', async () => {
      const { member, recoveryCodes } = await enrolled('agent');
      // The state a reset of the second factor leaves, were the old codes not deleted.
      await rt.inspect.data
        .updateTable('staff_account')
        .set({ totp_sealed: null, totp_enrolled_at: null, totp_last_step: null })
        .where('id', '=', member.id)
        .execute();
      const session = await login(member);
      expect(session.secondFactor).toBe('enroll');
      const before = await verify(session, { recoveryCode: recoveryCodes[0] ?? '' });
      expect(before.statusCode, before.body).toBe(401);
      expect(errorCode(before)).toBe('mfa_failed');
      const { secret } = await enroll(session);
      const started = await verify(session, { recoveryCode: recoveryCodes[1] ?? '' });
      expect(started.statusCode, started.body).toBe(401);
      expect(errorCode(started)).toBe('mfa_failed');
      expect((await account(member.id)).totp_enrolled_at).toBeNull();
      expect(errorCode(await call(session, 'GET', '/api/v1/purposes'))).toBe('mfa_required');

      nextStep();
      const totp = await verify(session, { code: codeAt(secret) });
      expect(totp.statusCode, totp.body).toBe(200);
      expect(totp.json<{ recoveryCodes: string[] | null }>().recoveryCodes).toHaveLength(10);
    });

    it('five wrong codes lock the account for 15 minutes, even against the right code', async () => {
      const { member, secret } = await enrolled('agent');
      nextStep();
      const session = await login(member);
      for (let i = 0; i < 5; i += 1) {
        const wrong = await verify(session, { code: wrongCode(secret) });
        expect(wrong.statusCode, wrong.body).toBe(401);
        expect(errorCode(wrong)).toBe('mfa_failed');
      }
      const locked = await verify(session, { code: codeAt(secret) });
      expect(locked.statusCode, locked.body).toBe(429);
      expect(errorCode(locked)).toBe('account_locked');
      const relogin = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { email: member.email, password: member.password },
      });
      expect(relogin.statusCode, relogin.body).toBe(429);

      clock.advance(14 * 60_000);
      const stillLocked = await verify(session, { code: codeAt(secret) });
      expect(stillLocked.statusCode, stillLocked.body).toBe(429);
      expect(errorCode(await call(session, 'GET', '/api/v1/purposes'))).toBe('mfa_required');

      clock.advance(60_000 + 1_000);
      const passed = await verify(session, { code: codeAt(secret) });
      expect(passed.statusCode, passed.body).toBe(200);
      expect((await call(session, 'GET', '/api/v1/purposes')).statusCode).toBe(200);
    });

    it('a password login in between does not reset the count of wrong codes', async () => {
      const { member, secret } = await enrolled('agent');
      nextStep();
      const first = await login(member);
      for (let i = 0; i < 4; i += 1) {
        expect((await verify(first, { code: wrongCode(secret) })).statusCode).toBe(401);
      }
      const second = await login(member);
      expect((await verify(second, { code: wrongCode(secret) })).statusCode).toBe(401);
      const locked = await verify(second, { code: codeAt(secret) });
      expect(locked.statusCode, locked.body).toBe(429);
      expect(errorCode(locked)).toBe('account_locked');
    });

    it('wrong codes sent at once still lock the account', async () => {
      const { member, secret } = await enrolled('agent');
      nextStep();
      const session = await login(member);
      const wrong = wrongCode(secret);
      const guesses = await Promise.all(
        Array.from({ length: 8 }, () => verify(session, { code: wrong })),
      );
      for (const g of guesses) expect(g.statusCode).not.toBe(200);
      const locked = await verify(session, { code: codeAt(secret) });
      expect(locked.statusCode, locked.body).toBe(429);
    });

    it('one code sent on several sessions at once passes only once', async () => {
      const { member, secret } = await enrolled('agent');
      nextStep();
      const sessions: Session[] = [];
      for (let i = 0; i < 6; i += 1) sessions.push(await login(member));
      const code = codeAt(secret);
      const results = await Promise.all(sessions.map((s) => verify(s, { code })));
      expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
    });

    it('a clock a second behind the last accepted step refuses the code instead of failing', async () => {
      const member = await invite('agent');
      const session = await login(member);
      const { secret } = await enroll(session);
      // To the first second of a step.
      clock.advance(STEP_MS - (clock.now().getTime() % STEP_MS));
      // Accepted one step ahead, as a fast authenticator would show it.
      expect((await verify(session, { code: codeAt(secret, STEP_MS) })).statusCode).toBe(200);
      // Another instance whose clock is one second behind (or an NTP correction).
      clock.advance(-1_000);
      const again = await login(member);
      const res = await verify(again, { code: wrongCode(secret) });
      clock.advance(1_000);
      expect(res.statusCode, res.body).toBe(401);
      expect(errorCode(res)).toBe('mfa_failed');
    });

    it('audits every attempt with its outcome', async () => {
      const member = await invite('marketer');
      const session = await login(member);
      const { secret } = await enroll(session);
      expect((await verify(session, { code: wrongCode(secret) })).statusCode).toBe(401);
      expect((await verify(session, { recoveryCode: 'ffffffffffffffffffff' })).statusCode).toBe(
        401,
      );
      const ok = await verify(session, { code: codeAt(secret) });
      expect(ok.statusCode, ok.body).toBe(200);
      const recovery = ok.json<{ recoveryCodes: string[] }>().recoveryCodes[0] ?? '';
      const again = await login(member);
      expect((await verify(again, { recoveryCode: recovery })).statusCode).toBe(200);

      const rows = await mfaAudit(member.id);
      expect(rows.map((r) => r.outcome)).toEqual(['denied', 'denied', 'allowed', 'allowed']);
      for (const r of rows) {
        expect(r.actor_type).toBe('staff');
        expect(r.actor_role).toBe('marketer');
      }
      expect(rows[0]?.reason).toBe('wrong_code');
      expect(rows[3]?.reason).toBe('recovery_code');
      const entries = await rt.inspect.data
        .selectFrom('audit_entry')
        .select(['fields', 'reason'])
        .where('actor_id', '=', member.id)
        .execute();
      const text = JSON.stringify(entries);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(recovery);
    });

    it('a locked attempt is audited as denied too', async () => {
      const { member, secret } = await enrolled('agent');
      nextStep();
      const session = await login(member);
      for (let i = 0; i < 5; i += 1) await verify(session, { code: wrongCode(secret) });
      expect((await verify(session, { code: codeAt(secret) })).statusCode).toBe(429);
      const rows = await mfaAudit(member.id);
      expect(rows.map((r) => r.outcome)).toEqual(['allowed', ...Array<string>(6).fill('denied')]);
      expect(rows.at(-1)?.reason).toBe('locked');
      clock.advance(16 * 60_000);
    });

    it('the login session cannot read customers before MFA; an agent can after', async () => {
      const created = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agentToken),
        payload: {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: 'Ximena', familyName: 'Quiroga' },
        },
      });
      expect(created.statusCode, created.body).toBe(201);
      const customerId = created.json<{ id: string }>().id;

      const member = await invite('agent');
      const session = await login(member);
      const { secret } = await enroll(session);
      for (const res of [
        await call(session, 'GET', '/api/v1/customers'),
        await call(session, 'GET', `/api/v1/customers/${customerId}?purpose=loyalty_program`),
        await call(session, 'POST', '/api/v1/customers', {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: 'Pre-MFA' },
        }),
      ]) {
        expect(res.statusCode, res.body).toBe(401);
        expect(errorCode(res)).toBe('mfa_required');
        expect(res.body).not.toContain('Ximena');
      }

      expect((await verify(session, { code: codeAt(secret) })).statusCode).toBe(200);
      const list = await call(session, 'GET', '/api/v1/customers?limit=100');
      expect(list.statusCode, list.body).toBe(200);
      const items = list.json<{ items: { id: string }[] }>().items;
      expect(items.map((c) => c.id)).toContain(customerId);
    });

    it('after MFA, auditor and marketer sessions are still refused what their roles lack', async () => {
      const auditor = (await enrolled('auditor')).session;
      const marketer = (await enrolled('marketer')).session;
      const adminSession = (await enrolled('admin')).session;
      const someone = '00000000-0000-4000-8000-000000000000';

      expect((await call(auditor, 'GET', '/api/v1/purposes')).statusCode).toBe(200);
      expect((await call(auditor, 'GET', '/api/v1/audit')).statusCode).toBe(200);
      expect((await call(marketer, 'GET', '/api/v1/customers')).statusCode).toBe(200);

      for (const res of [
        await call(auditor, 'GET', '/api/v1/customers'),
        await call(auditor, 'GET', `/api/v1/customers/${someone}?purpose=loyalty_program`),
        await call(auditor, 'GET', '/api/v1/staff'),
        await call(auditor, 'GET', '/api/v1/consent/stats'),
        await call(marketer, 'GET', '/api/v1/audit'),
        await call(marketer, 'GET', `/api/v1/customers/${someone}?purpose=loyalty_program`),
        await call(marketer, 'POST', '/api/v1/customers', {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: 'Nope' },
        }),
        await call(marketer, 'GET', '/api/v1/tokens'),
        await call(adminSession, 'GET', '/api/v1/customers'),
      ]) {
        expect(res.statusCode, res.body).toBe(403);
        expect(errorCode(res)).toBe('forbidden');
      }
    });
  });
});
