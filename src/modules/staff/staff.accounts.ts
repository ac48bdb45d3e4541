import type { Kysely } from 'kysely';
import type { Actor, AppContext } from '../../platform/context.js';
import {
  decoyPasswordHash,
  hashPassword,
  newTotpSecret,
  secureRandom,
  sha256Hex,
  totpUri,
  verifyPassword,
  verifyTotp,
} from '../../platform/crypto/index.js';
import type { DataDb, StaffAccountTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { newId } from '../../platform/ids.js';
import { appendAudit, recordAudit } from '../audit/index.js';
import { openSubjectFields, sealSubjectFields } from '../customers/index.js';
import { commonPasswordList } from './staff.common-passwords.js';
import { isRole, mayGrantRole, type Role } from './staff.permissions.js';
import * as store from './staff.accounts.store.js';

/**
 * Staff accounts: invited by an admin, activated with a password (argon2id), then a second
 * factor (TOTP) before any session can do anything but finish it. Email and name are sealed;
 * the email is found by its blind index.
 */

export const INVITATION_HOURS = 72;
export const SESSION_IDLE_MINUTES = 30;
export const SESSION_ABSOLUTE_HOURS = 12;
/** Consecutive failures (password or second factor) that lock an account, and for how long. */
export const LOCKOUT_AFTER = 5;
export const LOCKOUT_MINUTES = 15;
/** Failed logins from one client address per window before it is refused. */
export const SOURCE_FAILURES = 20;
export const SOURCE_WINDOW_MINUTES = 15;
const RECOVERY_CODES = 10;

const commonPasswords = new Set(commonPasswordList.split('\n'));

export interface StaffMember {
  readonly id: string;
  readonly email: string;
  readonly displayName: string;
  readonly role: Role;
  readonly status: 'invited' | 'active' | 'disabled';
  readonly mfaEnrolled: boolean;
  readonly createdAt: string;
}

function normaliseStaffEmail(email: string): string {
  return email.trim().toLowerCase();
}

function emailDigest(ctx: Pick<AppContext, 'blindIndex'>, workspaceId: string, email: string) {
  return ctx.blindIndex.digest(workspaceId, 'staff-email', normaliseStaffEmail(email));
}

/** 12 to 128 characters and not one of the 30,000 most common passwords. */
export function checkPassword(password: string, field: string): void {
  const refusal = passwordRefusal(password, field);
  if (refusal !== undefined) throw refusal;
}

/** Why a password is refused (as the error to throw), or undefined when it is acceptable. */
function passwordRefusal(password: string, field: string): DomainError | undefined {
  // Counted in code points, as a person counts characters.
  const length = Array.from(password).length;
  if (length < 12 || length > 128) {
    return new DomainError('password_rejected', 'A password has 12 to 128 characters.', {
      fields: [field],
    });
  }
  if (commonPasswords.has(password.toLowerCase())) {
    return new DomainError('password_rejected', 'This password is too common.', {
      fields: [field],
    });
  }
  return undefined;
}

function opaqueToken(prefix: string): string {
  return prefix + secureRandom(32).toString('base64url');
}

function addMinutes(at: Date, minutes: number): string {
  return new Date(at.getTime() + minutes * 60_000).toISOString();
}

async function toMember(ctx: AppContext, row: StaffAccountTable): Promise<StaffMember> {
  const open = await openSubjectFields(ctx, row.workspace_id, row.id, 'staff', {
    email: row.email_sealed,
    displayName: row.name_sealed,
  });
  return {
    id: row.id,
    email: open['email'] ?? '',
    displayName: open['displayName'] ?? '',
    role: row.role as Role,
    status: row.status as StaffMember['status'],
    mfaEnrolled: row.totp_enrolled_at !== null,
    createdAt: row.created_at,
  };
}

/** Invites a staff member: the answer carries the one-time invitation token, shown once. */
export async function inviteStaff(
  ctx: AppContext,
  actor: Actor,
  input: { email: string; displayName: string; role: string },
): Promise<{ id: string; invitationToken: string; expiresAt: string }> {
  if (!isRole(input.role))
    throw new DomainError('invalid_input', 'Unknown role.', { fields: ['body.role'] });
  await requireMayGrant(ctx, actor, input.role, 'staff.invite', null);
  const id = newId();
  const now = ctx.clock.now();
  const digest = emailDigest(ctx, actor.workspaceId, input.email);
  const sealed = await sealSubjectFields(ctx, actor.workspaceId, id, 'staff', {
    email: normaliseStaffEmail(input.email),
    displayName: input.displayName,
  });
  const token = opaqueToken('inv_');
  const expiresAt = addMinutes(now, INVITATION_HOURS * 60);
  const created = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    if ((await store.findByEmailDigest(scope.trx, actor.workspaceId, digest)) !== undefined) {
      return false;
    }
    await store.insertAccount(scope.trx, {
      workspace_id: actor.workspaceId,
      id,
      email_digest: digest,
      email_sealed: sealed['email'] ?? Buffer.alloc(0),
      name_sealed: sealed['displayName'] ?? Buffer.alloc(0),
      role: input.role,
      status: 'invited',
      password_hash: null,
      password_changed_at: null,
      totp_sealed: null,
      totp_enrolled_at: null,
      totp_last_step: null,
      failed_logins: 0,
      locked_until: null,
      created_at: now.toISOString(),
      updated_at: now.toISOString(),
    });
    await store.insertInvitation(scope.trx, {
      workspace_id: actor.workspaceId,
      id: newId(),
      staff_id: id,
      token_hash: sha256Hex(token),
      created_at: now.toISOString(),
      expires_at: expiresAt,
      used_at: null,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'staff.invite',
      fields: [`staff:${id}`, `role:${input.role}`],
      outcome: 'done',
    });
    return true;
  });
  if (!created) {
    throw new DomainError('conflict', 'A staff member with this email exists.', {
      fields: ['body.email'],
    });
  }
  return { id, invitationToken: token, expiresAt };
}

function anonymous(workspaceId: string, requestId: string | null): Actor {
  return { type: 'staff', id: 'anonymous', role: null, workspaceId, requestId };
}

/** Sets the first password of an invited account; the invitation works once, before it expires. */
export async function acceptInvitation(
  ctx: AppContext,
  input: { token: string; password: string },
  requestId: string | null,
): Promise<{ staffId: string }> {
  const invitation = await ctx.data.read(EVERY_WORKSPACE, (db) =>
    // Found by its token's hash before its workspace is known.
    store.findInvitationByHash(db, sha256Hex(input.token)),
  );
  const now = ctx.clock.now();
  if (
    invitation === undefined ||
    invitation.used_at !== null ||
    invitation.expires_at <= now.toISOString()
  ) {
    if (invitation !== undefined) {
      await recordAudit(ctx, anonymous(invitation.workspace_id, requestId), {
        action: 'staff.invitation.accept',
        fields: [`staff:${invitation.staff_id}`],
        outcome: 'denied',
        reason: invitation.used_at !== null ? 'used' : 'expired',
      });
    }
    throw new DomainError('invitation_invalid', 'This invitation is not valid any more.');
  }
  const refusal = passwordRefusal(input.password, 'body.password');
  if (refusal !== undefined) {
    // The invitation stays usable: the new member tries another password.
    await recordAudit(ctx, anonymous(invitation.workspace_id, requestId), {
      action: 'staff.invitation.accept',
      fields: [`staff:${invitation.staff_id}`],
      outcome: 'denied',
      reason: 'password_rejected',
    });
    throw refusal;
  }
  const hash = await hashPassword(input.password);
  const ws = invitation.workspace_id;
  const accepted = await ctx.data.batch.run(ws, async (scope) => {
    const account = await store.findAccount(scope.trx, ws, invitation.staff_id);
    // A member disabled before accepting stays disabled: the invitation died with them.
    const usable =
      account?.status === 'invited' &&
      (await store.useInvitation(scope.trx, ws, invitation.id, now.toISOString())) > 0;
    if (!usable) {
      await appendAudit(ctx, scope, anonymous(ws, requestId), {
        action: 'staff.invitation.accept',
        fields: [`staff:${invitation.staff_id}`],
        outcome: 'denied',
        reason: account?.status === 'invited' ? 'used' : `status:${account?.status ?? 'gone'}`,
      });
      return false;
    }
    await store.updateAccount(scope.trx, ws, invitation.staff_id, {
      status: 'active',
      password_hash: hash,
      password_changed_at: now.toISOString(),
      updated_at: now.toISOString(),
    });
    await appendAudit(
      ctx,
      scope,
      { type: 'staff', id: invitation.staff_id, role: null, workspaceId: ws, requestId },
      { action: 'staff.invitation.accept', outcome: 'done' },
    );
    return true;
  });
  if (!accepted)
    throw new DomainError('invitation_invalid', 'This invitation is not valid any more.');
  return { staffId: invitation.staff_id };
}

export interface NewSession {
  readonly token: string;
  readonly csrfToken: string;
  readonly expiresAt: string;
  readonly mfaEnrolled: boolean;
}

/** Counts a failure atomically (concurrent failures all count) and locks at the threshold. */
async function countFailure(
  ctx: AppContext,
  trx: Kysely<DataDb>,
  account: StaffAccountTable,
  now: Date,
): Promise<void> {
  const failures = await store.incrementFailures(trx, account.workspace_id, account.id);
  if (failures >= LOCKOUT_AFTER) {
    await store.updateAccount(trx, account.workspace_id, account.id, {
      failed_logins: 0,
      locked_until: addMinutes(now, LOCKOUT_MINUTES),
    });
  }
}

/**
 * Password login. Answers a session that can only finish the second factor. Refused alike for
 * an unknown email and a wrong password; too many failures lock the account, and a client
 * address with too many failures is refused for a while. Every attempt is audited.
 */
export async function login(
  ctx: AppContext,
  input: { workspaceId: string; email: string; password: string },
  origin: { ip: string; requestId: string | null },
): Promise<NewSession> {
  const ws = input.workspaceId;
  const now = ctx.clock.now();
  const source = ctx.blindIndex.digest(ws, 'login-source', origin.ip);
  const windowStart = new Date(
    Math.floor(now.getTime() / (SOURCE_WINDOW_MINUTES * 60_000)) * SOURCE_WINDOW_MINUTES * 60_000,
  ).toISOString();
  // The attempt is counted before the password is checked, so attempts sent at once cannot
  // slip past the limit; a successful one is given back.
  const attempts = await ctx.data.batch.run(ws, ({ trx }) =>
    store.reserveSourceAttempt(trx, source, windowStart),
  );
  if (attempts > SOURCE_FAILURES) {
    await recordAudit(ctx, anonymous(ws, origin.requestId), {
      action: 'staff.login',
      outcome: 'denied',
      reason: 'source_throttled',
    });
    throw new DomainError('rate_limited', 'Too many failed logins; try again later.');
  }
  const digest = emailDigest(ctx, ws, input.email);
  const account = await ctx.data.read(ws, (db) => store.findByEmailDigest(db, ws, digest));
  const passwordOk = await verifyPassword(
    account?.password_hash ?? (await decoyPasswordHash()),
    input.password,
  );
  // An address with no active account is locked out like an account after as many failures,
  // so that the lockout does not tell which addresses have one. Its failures are counted per
  // window under the address's keyed digest.
  const active = account !== undefined && account.status === 'active';
  const pseudo = `email:${digest}`;
  const locked = active
    ? account.locked_until !== null && account.locked_until > now.toISOString()
    : (await ctx.data.read(ws, (db) => store.countSourceFailures(db, pseudo, windowStart))) >=
      LOCKOUT_AFTER;
  const ok = active && passwordOk && !locked;
  const token = opaqueToken('sess_');
  const csrfToken = secureRandom(32).toString('base64url');
  const expiresAt = addMinutes(now, SESSION_ABSOLUTE_HOURS * 60);
  await ctx.data.batch.run(ws, async (scope) => {
    const actor =
      account === undefined
        ? anonymous(ws, origin.requestId)
        : {
            type: 'staff' as const,
            id: account.id,
            role: account.role,
            workspaceId: ws,
            requestId: origin.requestId,
          };
    if (!ok) {
      if (active && !locked) await countFailure(ctx, scope.trx, account, now);
      if (!active && !locked) await store.reserveSourceAttempt(scope.trx, pseudo, windowStart);
      await appendAudit(ctx, scope, actor, {
        action: 'staff.login',
        outcome: 'denied',
        reason:
          account === undefined
            ? 'unknown_email'
            : !active
              ? `status:${account.status}`
              : locked
                ? 'locked'
                : 'wrong_password',
      });
      return;
    }
    await store.releaseSourceAttempt(scope.trx, source, windowStart);
    // The failure count is reset only when the second factor passes: a password alone must not
    // buy another round of code guesses.
    await store.insertSession(scope.trx, {
      workspace_id: ws,
      id: newId(),
      staff_id: account.id,
      token_hash: sha256Hex(token),
      csrf_hash: sha256Hex(csrfToken),
      created_at: now.toISOString(),
      last_seen_at: now.toISOString(),
      expires_at: expiresAt,
      mfa_at: null,
      revoked_at: null,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'staff.login',
      outcome: 'allowed',
      reason: 'password; second factor pending',
    });
  });
  if (locked) throw new DomainError('account_locked', 'Too many failed attempts; try again later.');
  if (!ok) throw new DomainError('login_failed', 'Email or password is wrong.');
  return { token, csrfToken, expiresAt, mfaEnrolled: account.totp_enrolled_at !== null };
}

export interface SessionPrincipal {
  readonly sessionId: string;
  readonly staffId: string;
  readonly workspaceId: string;
  readonly role: string;
  readonly mfa: boolean;
  readonly csrfHash: string;
}

/**
 * The session a token names, if it is live: not revoked, within its absolute lifetime, used
 * within the idle timeout, and its account active. Refreshes its last use (at most once a minute).
 */
export async function authenticateSession(
  ctx: AppContext,
  token: string,
  requestId: string | null = null,
): Promise<SessionPrincipal | undefined> {
  if (!/^sess_[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
  const now = ctx.clock.now();
  const row = await ctx.data.read(EVERY_WORKSPACE, (db) =>
    // Found by its token's hash before its workspace is known.
    store.findLiveSession(db, sha256Hex(token)),
  );
  if (row === undefined) return undefined;
  const at = now.toISOString();
  const over =
    row.expires_at <= at
      ? 'session_expired'
      : addMinutes(new Date(row.last_seen_at), SESSION_IDLE_MINUTES) <= at
        ? 'session_idle'
        : row.status !== 'active'
          ? `status:${row.status}`
          : undefined;
  if (over !== undefined) {
    // The session is over: it ends now, and this attempt to use it is audited (once: from now
    // on the token is unknown, like a tampered one, which names no workspace to audit in).
    await ctx.data.batch.run(row.workspace_id, async (scope) => {
      await store.revokeSessions(scope.trx, row.workspace_id, row.staff_id, at, row.id);
      const actor: Actor = {
        type: 'staff',
        id: row.staff_id,
        role: row.role,
        workspaceId: row.workspace_id,
        requestId,
      };
      await appendAudit(ctx, scope, actor, {
        action: 'access.denied',
        outcome: 'denied',
        reason: over,
      });
    });
    return undefined;
  }
  if (now.getTime() - new Date(row.last_seen_at).getTime() > 60_000) {
    await ctx.data.batch.run(row.workspace_id, ({ trx }) =>
      store.touchSession(trx, row.workspace_id, row.id, at),
    );
  }
  return {
    sessionId: row.id,
    staffId: row.staff_id,
    workspaceId: row.workspace_id,
    role: row.role,
    mfa: row.mfa_at !== null,
    csrfHash: row.csrf_hash,
  };
}

function staffActor(p: SessionPrincipal, requestId: string | null): Actor {
  return { type: 'staff', id: p.staffId, role: p.role, workspaceId: p.workspaceId, requestId };
}

/** Starts TOTP enrolment: a new secret, shown once (as a URI for a QR code too). */
export async function enrollTotp(
  ctx: AppContext,
  session: SessionPrincipal,
  requestId: string | null,
): Promise<{ secret: string; otpauthUri: string }> {
  const account = await ctx.data.read(session.workspaceId, (db) =>
    store.findAccount(db, session.workspaceId, session.staffId),
  );
  if (account === undefined) throw new DomainError('unauthenticated', 'Sign in again.');
  if (account.totp_enrolled_at !== null) {
    throw new DomainError('conflict', 'A second factor is enrolled; verify it instead.');
  }
  const secret = newTotpSecret();
  const sealed = await sealSubjectFields(ctx, session.workspaceId, session.staffId, 'staff', {
    totp: secret,
  });
  const member = await toMember(ctx, account);
  await ctx.data.batch.run(session.workspaceId, async (scope) => {
    await store.updateAccount(scope.trx, session.workspaceId, session.staffId, {
      totp_sealed: sealed['totp'] ?? null,
      updated_at: ctx.clock.now().toISOString(),
    });
    await appendAudit(ctx, scope, staffActor(session, requestId), {
      action: 'staff.mfa.enroll',
      outcome: 'done',
    });
  });
  return { secret, otpauthUri: totpUri(secret, 'Custodia', member.email) };
}

async function totpSecretOf(
  ctx: AppContext,
  account: StaffAccountTable,
): Promise<string | undefined> {
  if (account.totp_sealed === null) return undefined;
  const open = await openSubjectFields(ctx, account.workspace_id, account.id, 'staff', {
    totp: account.totp_sealed,
  });
  return open['totp'];
}

/**
 * Passes the second factor: a TOTP code (first use confirms enrolment and answers one-time
 * recovery codes, shown once) or an unused recovery code. A code is accepted once only;
 * failures count towards the lockout. Answers the recovery codes when enrolment completed.
 */
export async function passSecondFactor(
  ctx: AppContext,
  session: SessionPrincipal,
  input: { code?: string | undefined; recoveryCode?: string | undefined },
  requestId: string | null,
): Promise<{ recoveryCodes: string[] | null }> {
  const now = ctx.clock.now();
  const account = await ctx.data.read(session.workspaceId, (db) =>
    store.findAccount(db, session.workspaceId, session.staffId),
  );
  if (account === undefined) throw new DomainError('unauthenticated', 'Sign in again.');
  const actor = staffActor(session, requestId);
  if (account.locked_until !== null && account.locked_until > now.toISOString()) {
    await recordAudit(ctx, actor, { action: 'staff.mfa', outcome: 'denied', reason: 'locked' });
    throw new DomainError('account_locked', 'Too many failed attempts; try again later.');
  }
  const secret = await totpSecretOf(ctx, account);
  const enrolling = account.totp_enrolled_at === null;
  const recoveryHash =
    input.recoveryCode !== undefined && !enrolling
      ? sha256Hex(input.recoveryCode.replace(/[\s-]/g, '').toLowerCase())
      : undefined;
  const recoveryCodes = enrolling
    ? Array.from({ length: RECOVERY_CODES }, () => secureRandom(10).toString('hex'))
    : null;
  // Decided inside the transaction, on the row as committed (locked on PostgreSQL): concurrent
  // attempts are judged one after another, so a code passes once and every failure counts.
  const passed = await ctx.data.batch.run(session.workspaceId, async (scope) => {
    const current = await store.findAccountForUpdate(
      scope.trx,
      ctx.data.dialect,
      session.workspaceId,
      session.staffId,
    );
    if (current === undefined) return 'gone' as const;
    if (current.locked_until !== null && current.locked_until > now.toISOString()) {
      await appendAudit(ctx, scope, actor, {
        action: 'staff.mfa',
        outcome: 'denied',
        reason: 'locked',
      });
      return 'locked' as const;
    }
    let step: number | undefined;
    let ok = false;
    if (input.code !== undefined && secret !== undefined) {
      step = verifyTotp(secret, input.code, now, current.totp_last_step);
      ok = step !== undefined;
    } else if (recoveryHash !== undefined) {
      ok =
        (await store.useRecoveryCode(
          scope.trx,
          session.workspaceId,
          session.staffId,
          recoveryHash,
          now.toISOString(),
        )) > 0;
    }
    if (!ok) {
      await countFailure(ctx, scope.trx, current, now);
      await appendAudit(ctx, scope, actor, {
        action: 'staff.mfa',
        outcome: 'denied',
        reason: secret === undefined ? 'not_enrolled' : 'wrong_code',
      });
      return 'failed' as const;
    }
    const completesEnrolment = current.totp_enrolled_at === null;
    await store.updateAccount(scope.trx, session.workspaceId, session.staffId, {
      failed_logins: 0,
      ...(step === undefined ? {} : { totp_last_step: step }),
      ...(completesEnrolment ? { totp_enrolled_at: now.toISOString() } : {}),
      updated_at: now.toISOString(),
    });
    if (completesEnrolment && recoveryCodes !== null) {
      await store.replaceRecoveryCodes(
        scope.trx,
        session.workspaceId,
        session.staffId,
        recoveryCodes.map((c) => sha256Hex(c)),
      );
    }
    await store.markSessionMfa(
      scope.trx,
      session.workspaceId,
      session.sessionId,
      now.toISOString(),
    );
    await appendAudit(ctx, scope, actor, {
      action: 'staff.mfa',
      outcome: 'allowed',
      reason:
        recoveryHash !== undefined
          ? 'recovery_code'
          : completesEnrolment
            ? 'totp_enrolled'
            : 'totp',
    });
    return completesEnrolment ? ('enrolled' as const) : ('passed' as const);
  });
  if (passed === 'gone') throw new DomainError('unauthenticated', 'Sign in again.');
  if (passed === 'locked') {
    throw new DomainError('account_locked', 'Too many failed attempts; try again later.');
  }
  if (passed === 'failed') throw new DomainError('mfa_failed', 'The code is not valid.');
  return { recoveryCodes: passed === 'enrolled' ? recoveryCodes : null };
}

export async function logout(
  ctx: AppContext,
  session: SessionPrincipal,
  requestId: string | null,
): Promise<void> {
  await ctx.data.batch.run(session.workspaceId, async (scope) => {
    await store.revokeSessions(
      scope.trx,
      session.workspaceId,
      session.staffId,
      ctx.clock.now().toISOString(),
      session.sessionId,
    );
    await appendAudit(ctx, scope, staffActor(session, requestId), {
      action: 'staff.logout',
      outcome: 'done',
    });
  });
}

/** Changes one's password; every session of the account ends, this one included. */
export async function changePassword(
  ctx: AppContext,
  session: SessionPrincipal,
  input: { currentPassword: string; newPassword: string },
  requestId: string | null,
): Promise<void> {
  checkPassword(input.newPassword, 'body.newPassword');
  const account = await ctx.data.read(session.workspaceId, (db) =>
    store.findAccount(db, session.workspaceId, session.staffId),
  );
  if (account?.locked_until != null && account.locked_until > ctx.clock.now().toISOString()) {
    await recordAudit(ctx, staffActor(session, requestId), {
      action: 'staff.password.change',
      outcome: 'denied',
      reason: 'locked',
    });
    throw new DomainError('account_locked', 'Too many failed attempts; try again later.');
  }
  const ok =
    account?.password_hash != null &&
    (await verifyPassword(account.password_hash, input.currentPassword));
  const now = ctx.clock.now().toISOString();
  const hash = ok ? await hashPassword(input.newPassword) : undefined;
  await ctx.data.batch.run(session.workspaceId, async (scope) => {
    if (account === undefined || hash === undefined) {
      if (account !== undefined) await countFailure(ctx, scope.trx, account, new Date(now));
      await appendAudit(ctx, scope, staffActor(session, requestId), {
        action: 'staff.password.change',
        outcome: 'denied',
        reason: 'wrong_password',
      });
      return;
    }
    await store.updateAccount(scope.trx, session.workspaceId, session.staffId, {
      password_hash: hash,
      password_changed_at: now,
      updated_at: now,
    });
    await store.revokeSessions(scope.trx, session.workspaceId, session.staffId, now);
    await appendAudit(ctx, scope, staffActor(session, requestId), {
      action: 'staff.password.change',
      outcome: 'done',
    });
  });
  if (hash === undefined) throw new DomainError('login_failed', 'The current password is wrong.');
}

/** Staff of the workspace, with their (unsealed) email and name, for admins. Audited. */
export async function listStaff(ctx: AppContext, actor: Actor): Promise<StaffMember[]> {
  const rows = await ctx.data.read(actor.workspaceId, (db) =>
    store.listAccounts(db, actor.workspaceId),
  );
  await recordAudit(ctx, actor, {
    action: 'staff.list',
    fields: rows.map((r) => `staff:${r.id}`),
    outcome: 'allowed',
  });
  return Promise.all(rows.map((r) => toMember(ctx, r)));
}

/**
 * The display names of these staff members (for a customer's own access log: who read their
 * data). Only names: never emails. A member whose data is gone is left out.
 */
export async function staffDisplayNames(
  ctx: AppContext,
  workspaceId: string,
  staffIds: readonly string[],
): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const id of new Set(staffIds)) {
    const row = await ctx.data.read(workspaceId, (db) => store.findAccount(db, workspaceId, id));
    if (row === undefined) continue;
    try {
      const open = await openSubjectFields(ctx, workspaceId, id, 'staff', {
        displayName: row.name_sealed,
      });
      names.set(id, open['displayName'] ?? '');
    } catch {
      // Shredded: the audit chain keeps the id and role, the name is gone.
    }
  }
  return names;
}

/**
 * Refuses (audited) a grant of a role the actor may not hand out: roles that read personal data
 * come from a privacy officer, the others from an admin (see `grantableRoles`).
 */
async function requireMayGrant(
  ctx: AppContext,
  actor: Actor,
  role: Role,
  action: 'staff.invite' | 'staff.change',
  staffId: string | null,
): Promise<void> {
  if (actor.type === 'system' || mayGrantRole(actor.role, role)) return;
  await recordAudit(ctx, actor, {
    action,
    fields: [...(staffId === null ? [] : [`staff:${staffId}`]), `role:${role}`],
    outcome: 'denied',
    reason: 'role_not_grantable',
  });
  throw new DomainError('forbidden', 'This role may not grant that role.');
}

/** Changes a member's role or status; disabling (or a new role) ends their sessions. */
export async function changeStaff(
  ctx: AppContext,
  actor: Actor,
  staffId: string,
  change: { role?: string | undefined; status?: 'active' | 'disabled' | undefined },
): Promise<StaffMember> {
  if (change.role !== undefined && !isRole(change.role))
    throw new DomainError('invalid_input', 'Unknown role.', { fields: ['body.role'] });
  if (staffId === actor.id) {
    throw new DomainError('conflict', 'Nobody changes their own role or status.');
  }
  const now = ctx.clock.now().toISOString();
  const current = await ctx.data.read(actor.workspaceId, (db) =>
    store.findAccount(db, actor.workspaceId, staffId),
  );
  // A new role, or reinstating a disabled member, grants that role's access; disabling and
  // other changes that take access away are open to anyone who manages staff.
  const granted =
    change.role ??
    (change.status === 'active' && current?.status === 'disabled' ? current.role : undefined);
  if (current !== undefined && granted !== undefined && isRole(granted)) {
    await requireMayGrant(ctx, actor, granted, 'staff.change', staffId);
  }
  const updated = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const row = await store.findAccount(scope.trx, actor.workspaceId, staffId);
    if (row === undefined) return undefined;
    if (change.status === 'active' && row.status === 'invited') {
      throw new DomainError('conflict', 'An invited member becomes active by accepting.');
    }
    if (row.role !== current?.role || row.status !== current.status) {
      throw new DomainError('conflict', 'The member changed meanwhile; try again.');
    }
    await store.updateAccount(scope.trx, actor.workspaceId, staffId, {
      ...(change.role === undefined ? {} : { role: change.role }),
      ...(change.status === undefined ? {} : { status: change.status }),
      updated_at: now,
    });
    await store.revokeSessions(scope.trx, actor.workspaceId, staffId, now);
    await appendAudit(ctx, scope, actor, {
      action: 'staff.change',
      fields: [
        `staff:${staffId}`,
        ...(change.role === undefined ? [] : [`role:${change.role}`]),
        ...(change.status === undefined ? [] : [`status:${change.status}`]),
      ],
      outcome: 'done',
    });
    return store.findAccount(scope.trx, actor.workspaceId, staffId);
  });
  if (updated === undefined) throw new DomainError('not_found', 'No such staff member.');
  return toMember(ctx, updated);
}

/** The role of an active staff member of the workspace, or undefined. */
export async function findActiveStaffRole(
  ctx: Pick<AppContext, 'data'>,
  workspaceId: string,
  staffId: string,
): Promise<Role | undefined> {
  const row = await ctx.data.read(workspaceId, (db) => store.findAccount(db, workspaceId, staffId));
  return row?.status === 'active' && isRole(row.role) ? row.role : undefined;
}
