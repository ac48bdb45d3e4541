import type { Actor, AppContext } from '../../platform/context.js';
import { secureRandom, sha256Hex } from '../../platform/crypto/index.js';
import { DomainError } from '../../platform/errors.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { newId, type TokenId } from '../../platform/ids.js';
import { appendAudit } from '../audit/index.js';
import { isRole, roleAllows, rolePermissions, type Role } from './staff.permissions.js';
import * as store from './staff.store.js';

const TOKEN_PREFIX = 'cust_';
const TOKEN_SHAPE = /^cust_[A-Za-z0-9_-]{43}$/;

export interface ApiTokenInfo {
  readonly id: TokenId;
  readonly role: Role;
  readonly label: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

/** 256 random bits; only the SHA-256 is stored, so the token is shown once and never again. */
export async function createApiToken(
  ctx: Pick<AppContext, 'data' | 'clock' | 'signer'>,
  actor: Actor,
  input: { role: string; label: string },
): Promise<{ id: TokenId; token: string }> {
  if (!isRole(input.role))
    throw new DomainError('invalid_input', 'Unknown role.', { fields: ['role'] });
  // No one hands out more than they hold: an admin (who reads no personal data) cannot make an
  // agent token. The CLI, run by the operator on the host, acts as the system and can.
  if (
    actor.type !== 'system' &&
    !rolePermissions[input.role].every((p) => actor.role !== null && roleAllows(actor.role, p))
  ) {
    throw new DomainError('forbidden', 'This role may not create a token with that role.');
  }
  const token = TOKEN_PREFIX + secureRandom(32).toString('base64url');
  const id = newId<TokenId>();
  const now = ctx.clock.now().toISOString();
  await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    await store.insertToken(scope.trx, {
      workspace_id: actor.workspaceId,
      id,
      token_hash: sha256Hex(token),
      role: input.role,
      label: input.label,
      created_at: now,
      revoked_at: null,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'token.create',
      fields: [`role:${input.role}`, `token:${id}`],
      outcome: 'done',
    });
  });
  return { id, token };
}

export interface TokenPrincipal {
  readonly tokenId: string;
  readonly workspaceId: string;
  readonly role: string;
}

/**
 * Recently verified tokens, by hash, for a few seconds: a revocation in this process takes
 * effect at once (the cache is cleared); one made by another process within TOKEN_CACHE_MS.
 */
const TOKEN_CACHE_MS = 5_000;
/** Bumped by every revocation, so that a lookup that began before it cannot re-cache. */
let tokenGeneration = 0;
const tokenCaches = new WeakMap<
  object,
  Map<string, { principal: TokenPrincipal; expiresAt: number }>
>();

function tokenCache(ctx: Pick<AppContext, 'data'>) {
  let cache = tokenCaches.get(ctx.data);
  if (cache === undefined)
    tokenCaches.set(
      ctx.data,
      (cache = new Map<string, { principal: TokenPrincipal; expiresAt: number }>()),
    );
  return cache;
}

export async function authenticateToken(
  ctx: Pick<AppContext, 'data'>,
  token: string,
): Promise<TokenPrincipal | undefined> {
  if (!TOKEN_SHAPE.test(token)) return undefined;
  const hash = sha256Hex(token);
  const cache = tokenCache(ctx);
  const now = Date.now();
  const hit = cache.get(hash);
  if (hit !== undefined && hit.expiresAt > now) return hit.principal;
  const generation = tokenGeneration;
  const row = await ctx.data.read(EVERY_WORKSPACE, (db) =>
    // Found by its hash before its workspace is known.
    store.findActiveTokenByHash(db, hash),
  );
  if (row === undefined) {
    cache.delete(hash);
    return undefined;
  }
  const principal = { tokenId: row.id, workspaceId: row.workspace_id, role: row.role };
  if (cache.size >= 10_000) cache.clear();
  if (generation === tokenGeneration)
    cache.set(hash, { principal, expiresAt: now + TOKEN_CACHE_MS });
  return principal;
}

export async function listApiTokens(
  ctx: Pick<AppContext, 'data'>,
  workspaceId: string,
): Promise<ApiTokenInfo[]> {
  const rows = await ctx.data.read(workspaceId, (db) => store.listTokens(db, workspaceId));
  return rows.map((r) => ({
    id: r.id as TokenId,
    role: r.role as Role,
    label: r.label,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  }));
}

export async function revokeApiToken(
  ctx: Pick<AppContext, 'data' | 'clock' | 'signer'>,
  actor: Actor,
  id: string,
): Promise<void> {
  const changed = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const n = await store.revokeToken(
      scope.trx,
      actor.workspaceId,
      id,
      ctx.clock.now().toISOString(),
    );
    if (n > 0)
      await appendAudit(ctx, scope, actor, {
        action: 'token.revoke',
        fields: [`token:${id}`],
        outcome: 'done',
      });
    return n;
  });
  tokenGeneration += 1;
  tokenCache(ctx).clear();
  if (changed === 0) throw new DomainError('not_found', 'No such active token.');
}

export async function hasActiveToken(ctx: Pick<AppContext, 'data'>, role: Role): Promise<boolean> {
  return (
    (await ctx.data.read(EVERY_WORKSPACE, (db) => store.countActiveTokensWithRole(db, role))) > 0
  );
}
