import type { Actor, AppContext } from '../../platform/context.js';
import {
  constantTimeEqual,
  randomDigits,
  secureRandom,
  sha256Hex,
} from '../../platform/crypto/index.js';
import type { BatchScope } from '../../platform/db/group-commit.js';
import type { DataDb, PortalCodeTable, PortalSessionTable } from '../../platform/db/schema.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { DomainError } from '../../platform/errors.js';
import { newId } from '../../platform/ids.js';
import { appendAudit, recordAudit } from '../audit/index.js';
import type { NoticeLanguage } from '../purposes/index.js';
import * as store from './portal.store.js';

/**
 * How a customer proves who they are: a six-digit code sent to an address they control. Codes
 * are kept as keyed hashes (HMAC under a per-workspace key that is not in the database), bound
 * to their row, valid ten minutes, five attempts, used once. Addresses are kept as blind-index
 * digests only.
 */

export const CODE_MINUTES = 10;
export const CODE_ATTEMPTS = 5;
/** Codes per address, and per client address, in a window: bounds guessing and mail bombing. */
export const CODES_PER_ADDRESS = 3;
export const CODES_PER_SOURCE = 10;
export const THROTTLE_WINDOW_MINUTES = 15;
/**
 * Codes per address in a day: without it, 3 codes of 5 tries every 15 minutes would give a
 * patient guesser about 1,440 tries a day at one address (40% in a year); with it, 50 tries a
 * day (under 2% in a year), and the customer still gets ten codes a day.
 */
export const CODES_PER_ADDRESS_PER_DAY = 10;
export const DAY_MINUTES = 24 * 60;
export const SESSION_IDLE_MINUTES = 15;
export const SESSION_ABSOLUTE_MINUTES = 120;
/** How long a fresh code counts for erasure or an email change. */
export const REVERIFY_MINUTES = 10;

export type CodeKind = 'login' | 'reverify' | 'contact_change';

function addMinutes(at: Date, minutes: number): string {
  return new Date(at.getTime() + minutes * 60_000).toISOString();
}

export function customerActor(
  workspaceId: string,
  customerId: string,
  requestId: string | null,
): Actor {
  return { type: 'customer', id: customerId, role: null, workspaceId, requestId };
}

/** The keyed digest of an address (an email or phone, normalised) for code lookups. */
export function addressDigest(ctx: AppContext, workspaceId: string, address: string): string {
  return ctx.blindIndex.digest(workspaceId, 'portal-address', address);
}

function codeHash(ctx: AppContext, workspaceId: string, codeId: string, code: string): string {
  return ctx.blindIndex.digest(workspaceId, 'portal-code', `${codeId}:${code}`);
}

/**
 * Issues a code for an address after the per-address and per-source limits. The row is written
 * whether or not the address belongs to a customer (`customerId` null), so that what follows
 * (attempts, limits, answers) cannot tell the two apart. Answers the code to send, or nothing
 * when there is no one to send it to.
 */
export async function issueCode(
  ctx: AppContext,
  actor: Actor,
  input: {
    kind: CodeKind;
    address: string;
    customerId: string | null;
    sessionId?: string;
    field?: string;
    valueSealed?: Uint8Array;
    sourceIp: string;
  },
): Promise<{ code: string; id: string }> {
  const ws = actor.workspaceId;
  const now = ctx.clock.now();
  const digest = addressDigest(ctx, ws, input.address);
  const source = ctx.blindIndex.digest(ws, 'portal-source', input.sourceIp);
  const since = addMinutes(now, -THROTTLE_WINDOW_MINUTES);
  const dayAgo = addMinutes(now, -DAY_MINUTES);
  const code = randomDigits(6);
  const id = newId();
  const refused = await ctx.data.batch.run(ws, async (scope) => {
    const perAddress = await store.countCodesSince(scope.trx, ws, { addressDigest: digest }, since);
    const perSource = await store.countCodesSince(scope.trx, ws, { sourceDigest: source }, since);
    const perDay = await store.countCodesSince(scope.trx, ws, { addressDigest: digest }, dayAgo);
    const reason =
      perAddress >= CODES_PER_ADDRESS
        ? 'address_throttled'
        : perDay >= CODES_PER_ADDRESS_PER_DAY
          ? 'address_daily_limit'
          : perSource >= CODES_PER_SOURCE
            ? 'source_throttled'
            : undefined;
    if (reason !== undefined) {
      await appendAudit(ctx, scope, actor, {
        action: `portal.code.${input.kind}`,
        customerId: input.customerId,
        outcome: 'denied',
        reason,
      });
      return true;
    }
    const row: PortalCodeTable = {
      workspace_id: ws,
      id,
      kind: input.kind,
      address_digest: digest,
      source_digest: source,
      customer_id: input.customerId,
      session_id: input.sessionId ?? null,
      code_hash: codeHash(ctx, ws, id, code),
      attempts: 0,
      created_at: now.toISOString(),
      expires_at: addMinutes(now, CODE_MINUTES),
      used_at: null,
      field: input.field ?? null,
      value_sealed: input.valueSealed ?? null,
    };
    await store.insertCode(scope.trx, row);
    await appendAudit(ctx, scope, actor, {
      action: `portal.code.${input.kind}`,
      customerId: input.customerId,
      fields: input.field === undefined ? [] : [input.field],
      outcome: 'done',
      reason: input.customerId === null ? 'no_match' : null,
    });
    return false;
  });
  if (refused) {
    throw new DomainError('rate_limited', 'Too many codes were asked for; try again later.');
  }
  return { code, id };
}

/**
 * Checks a code against the newest one issued for the address (or session). Every attempt
 * counts, inside the transaction; the sixth and later fail as expired; a code passes once.
 * Answers the code's row when it passes and it names a customer.
 */
export async function checkCode(
  ctx: AppContext,
  actor: Actor,
  input: { kind: CodeKind; address: string | null; sessionId: string | null; code: string },
  onPass?: (row: PortalCodeTable, scope: BatchScope<DataDb>) => Promise<void>,
): Promise<PortalCodeTable> {
  const ws = actor.workspaceId;
  const now = ctx.clock.now().toISOString();
  const digest = input.address === null ? null : addressDigest(ctx, ws, input.address);
  const outcome = await ctx.data.batch.run(ws, async (scope) => {
    const row = await store.findLatestCode(scope.trx, ws, input.kind, digest, input.sessionId);
    const audit = (outcome: 'allowed' | 'denied', reason: string) =>
      appendAudit(ctx, scope, actor, {
        action: `portal.verify.${input.kind}`,
        customerId: row?.customer_id ?? (actor.type === 'customer' ? actor.id : null),
        outcome,
        reason,
      });
    if (row === undefined) {
      await audit('denied', 'no_code');
      return 'expired' as const;
    }
    const attempts = await store.countAttempt(scope.trx, ws, row.id);
    if (row.used_at !== null || row.expires_at <= now || attempts > CODE_ATTEMPTS) {
      await audit(
        'denied',
        row.used_at !== null ? 'used' : row.expires_at <= now ? 'expired' : 'attempts',
      );
      return 'expired' as const;
    }
    const matches = constantTimeEqual(
      Buffer.from(codeHash(ctx, ws, row.id, input.code), 'hex'),
      Buffer.from(row.code_hash, 'hex'),
    );
    if (!matches || row.customer_id === null) {
      await audit('denied', 'wrong_code');
      return 'invalid' as const;
    }
    if (!(await store.useCode(scope.trx, ws, row.id, now))) {
      await audit('denied', 'used');
      return 'expired' as const;
    }
    await audit('allowed', 'code');
    if (onPass !== undefined) await onPass(row, scope);
    return row;
  });
  if (outcome === 'expired') {
    throw new DomainError('code_expired', 'This code is no longer valid; ask for a new one.');
  }
  if (outcome === 'invalid') throw new DomainError('code_invalid', 'The code is not right.');
  return outcome;
}

export interface NewPortalSession {
  readonly token: string;
  readonly csrfToken: string;
  readonly expiresAt: string;
}

/** A new session for the customer a code proved; written in the unit that used the code. */
export async function openSession(
  ctx: AppContext,
  scope: BatchScope<DataDb>,
  actor: Actor,
  customerId: string,
  language: NoticeLanguage,
): Promise<NewPortalSession> {
  const now = ctx.clock.now();
  const token = `portal_${secureRandom(32).toString('base64url')}`;
  const csrfToken = secureRandom(32).toString('base64url');
  const row: PortalSessionTable = {
    workspace_id: actor.workspaceId,
    id: newId(),
    customer_id: customerId,
    token_hash: sha256Hex(token),
    csrf_hash: sha256Hex(csrfToken),
    created_at: now.toISOString(),
    last_seen_at: now.toISOString(),
    expires_at: addMinutes(now, SESSION_ABSOLUTE_MINUTES),
    reverified_at: null,
    language,
    ended_at: null,
  };
  await store.insertSession(scope.trx, row);
  return { token, csrfToken, expiresAt: row.expires_at };
}

export interface PortalPrincipal {
  readonly sessionId: string;
  readonly customerId: string;
  readonly workspaceId: string;
  readonly csrfHash: string;
  readonly reverifiedAt: string | null;
  readonly language: NoticeLanguage;
}

/** The live session a token names: not ended, within both timeouts. Refreshes its last use. */
export async function authenticatePortalSession(
  ctx: AppContext,
  token: string,
): Promise<PortalPrincipal | undefined> {
  if (!/^portal_[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
  const now = ctx.clock.now();
  const at = now.toISOString();
  // Found by its token's hash before its workspace is known.
  const row = await ctx.data.read(EVERY_WORKSPACE, (db) =>
    store.findSessionByToken(db, sha256Hex(token)),
  );
  if (row === undefined) return undefined;
  if (row.expires_at <= at || addMinutes(new Date(row.last_seen_at), SESSION_IDLE_MINUTES) <= at) {
    return undefined;
  }
  if (now.getTime() - new Date(row.last_seen_at).getTime() > 30_000) {
    await ctx.data.batch.run(row.workspace_id, ({ trx }) =>
      store.updateSession(trx, row.workspace_id, row.id, { last_seen_at: at }),
    );
  }
  return {
    sessionId: row.id,
    customerId: row.customer_id,
    workspaceId: row.workspace_id,
    csrfHash: row.csrf_hash,
    reverifiedAt: row.reverified_at,
    language: row.language === 'es' ? 'es' : 'en',
  };
}

/** Refuses unless the customer passed a fresh code in this session within the last minutes. */
export async function requireFreshCode(
  ctx: AppContext,
  actor: Actor,
  session: PortalPrincipal,
  action: string,
): Promise<void> {
  const fresh =
    session.reverifiedAt !== null &&
    addMinutes(new Date(session.reverifiedAt), REVERIFY_MINUTES) > ctx.clock.now().toISOString();
  if (fresh) return;
  await recordAudit(ctx, actor, {
    action,
    customerId: actor.id,
    outcome: 'denied',
    reason: 'reverification_required',
  });
  throw new DomainError(
    'reverification_required',
    'Confirm it is you: ask for a code and enter it first.',
  );
}

export async function endSession(
  ctx: AppContext,
  actor: Actor,
  session: PortalPrincipal,
): Promise<void> {
  await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    await store.updateSession(scope.trx, actor.workspaceId, session.sessionId, {
      ended_at: ctx.clock.now().toISOString(),
    });
    await appendAudit(ctx, scope, actor, {
      action: 'portal.logout',
      customerId: actor.id,
      outcome: 'done',
    });
  });
}
