import type { Kysely } from 'kysely';
import type { Store } from '../../platform/db/database.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import type { Actor, AppContext } from '../../platform/context.js';
import { verifySignature } from '../../platform/crypto/index.js';
import type { BatchScope } from '../../platform/db/group-commit.js';
import type { AuditEntryTable, DataDb } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { checkpointMessage, entryHash, GENESIS_HASH, type ChainedEntry } from './audit.chain.js';
import * as store from './audit.store.js';

export type AuditOutcome = 'allowed' | 'denied' | 'done' | 'failed';

/** What happened, in ids and names only. */
export interface AuditEvent {
  readonly action: string;
  readonly customerId?: string | null;
  readonly purpose?: string | null;
  readonly fields?: readonly string[];
  readonly outcome: AuditOutcome;
  readonly reason?: string | null;
}

interface Head {
  readonly seq: number;
  readonly hash: string;
}

/**
 * Appends one entry to the workspace's chain inside the unit of work's transaction. The head
 * is kept in the batch's state so that many entries in one batch cost one head read, and one
 * signed checkpoint covers the head at every commit. Any failure here fails the unit.
 */
export async function appendAudit(
  ctx: Pick<AppContext, 'clock' | 'signer' | 'data'>,
  scope: BatchScope<DataDb>,
  actor: Actor,
  event: AuditEvent,
): Promise<number> {
  const key = `audit:${actor.workspaceId}`;
  let head = scope.state.get(key) as Head | undefined;
  try {
    if (head === undefined) {
      head = await store.findHead(scope.trx, ctx.data.dialect, actor.workspaceId);
      if (head === undefined) {
        await store.ensureHeadRow(scope.trx, actor.workspaceId, GENESIS_HASH);
        head = await store.findHead(scope.trx, ctx.data.dialect, actor.workspaceId);
        if (head === undefined) throw new Error('audit head missing');
      }
      const startSeq = head.seq;
      const workspaceId = actor.workspaceId;
      scope.beforeCommit(key, async (trx) => {
        const final = scope.state.get(key) as Head | undefined;
        if (final === undefined || final.seq === startSeq) return;
        await store.updateHead(trx, workspaceId, final.seq, final.hash);
        const at = ctx.clock.now().toISOString();
        await store.insertCheckpoint(trx, {
          workspace_id: workspaceId,
          seq: final.seq,
          hash: final.hash,
          at,
          public_key: ctx.signer.publicKey(workspaceId),
          signature: ctx.signer.sign(
            workspaceId,
            checkpointMessage(workspaceId, final.seq, final.hash, at),
          ),
        });
      });
    }
    const entry: ChainedEntry = {
      workspaceId: actor.workspaceId,
      seq: head.seq + 1,
      at: ctx.clock.now().toISOString(),
      actorType: actor.type,
      actorId: actor.id,
      actorRole: actor.role,
      action: event.action,
      customerId: event.customerId ?? null,
      purpose: event.purpose ?? null,
      fields: [...(event.fields ?? [])].sort(),
      outcome: event.outcome,
      reason: event.reason ?? null,
      requestId: actor.requestId,
    };
    const hash = entryHash(head.hash, entry);
    await store.insertEntry(scope.trx, {
      workspace_id: entry.workspaceId,
      seq: entry.seq,
      at: entry.at,
      actor_type: entry.actorType,
      actor_id: entry.actorId,
      actor_role: entry.actorRole,
      action: entry.action,
      customer_id: entry.customerId,
      purpose: entry.purpose,
      fields: JSON.stringify(entry.fields),
      outcome: entry.outcome,
      reason: entry.reason,
      request_id: entry.requestId,
      prev_hash: head.hash,
      hash,
    });
    scope.state.set(key, { seq: entry.seq, hash });
    return entry.seq;
  } catch (error) {
    throw new DomainError(
      'audit_unavailable',
      'The audit log could not be written; nothing was done.',
      undefined,
      { cause: error },
    );
  }
}

/**
 * Records an event in a unit of its own, for denials and failures that happen outside any
 * other unit of work. Durable when the promise resolves.
 */
export async function recordAudit(
  ctx: Pick<AppContext, 'clock' | 'signer' | 'data'>,
  actor: Actor,
  event: AuditEvent,
): Promise<void> {
  await ctx.data.batch.run(actor.workspaceId, (scope) => appendAudit(ctx, scope, actor, event));
}

export type VerifyResult =
  | { readonly ok: true; readonly entries: number; readonly workspaces: number }
  | {
      readonly ok: false;
      readonly entries: number;
      readonly workspaceId: string;
      readonly firstBadSeq: number;
      readonly problem: string;
    };

/**
 * Checks every workspace's chain offline: contiguous sequence numbers, each entry's hash and
 * link, every checkpoint's signature against the expected public key, and that the last
 * checkpoint is the last entry (so a truncated tail is detected).
 */
export async function verifyAuditChain(
  data: Pick<Store<DataDb>, 'read'>,
  publicKeyFor: (workspaceId: string) => string,
): Promise<VerifyResult> {
  // Every workspace's chain, in one snapshot, so commits landing meanwhile are not seen
  // half-way.
  return data.read(
    EVERY_WORKSPACE,
    async (db) => verifyIn(db, await store.listWorkspacesWithEntries(db), publicKeyFor),
    { snapshot: true },
  );
}

/** The same checks as `verifyAuditChain`, on one workspace's chain, under its row scope. */
export async function verifyWorkspaceChain(
  data: Pick<Store<DataDb>, 'read'>,
  workspaceId: string,
  publicKeyFor: (workspaceId: string) => string,
): Promise<VerifyResult> {
  return data.read(workspaceId, (db) => verifyIn(db, [workspaceId], publicKeyFor), {
    snapshot: true,
  });
}

async function verifyIn(
  db: Kysely<DataDb>,
  workspaces: readonly string[],
  publicKeyFor: (workspaceId: string) => string,
): Promise<VerifyResult> {
  let total = 0;
  for (const workspaceId of workspaces) {
    // The head is read first, so that appends landing meanwhile cannot raise a false alarm.
    const head = await store.readHead(db, workspaceId);
    const checkpoints = await store.listCheckpoints(db, workspaceId);
    const expectedKey = publicKeyFor(workspaceId);
    const bad = (firstBadSeq: number, problem: string): VerifyResult => ({
      ok: false,
      entries: total,
      workspaceId,
      firstBadSeq,
      problem,
    });
    for (const cp of checkpoints) {
      if (
        cp.public_key !== expectedKey ||
        !verifySignature(
          expectedKey,
          checkpointMessage(workspaceId, cp.seq, cp.hash, cp.at),
          cp.signature,
        )
      ) {
        return bad(cp.seq, 'checkpoint signature does not verify');
      }
    }
    const checkpointAt = new Map(checkpoints.map((c) => [c.seq, c.hash]));
    let prevHash = GENESIS_HASH;
    let expectedSeq = 1;
    for (;;) {
      const page = await store.pageEntries(db, workspaceId, expectedSeq - 1, 1000);
      if (page.length === 0) break;
      for (const row of page) {
        if (row.seq !== expectedSeq) return bad(expectedSeq, 'entry missing or out of order');
        const entry = chainedEntryOf(row);
        if (row.prev_hash !== prevHash) return bad(row.seq, 'link to the previous entry is broken');
        if (entryHash(prevHash, entry) !== row.hash)
          return bad(row.seq, 'entry content does not match its hash');
        const signed = checkpointAt.get(row.seq);
        if (signed !== undefined && signed !== row.hash)
          return bad(row.seq, 'entry differs from its signed checkpoint');
        prevHash = row.hash;
        expectedSeq += 1;
        total += 1;
      }
    }
    const lastSeq = expectedSeq - 1;
    const lastCheckpoint = checkpoints.at(-1);
    if (lastCheckpoint !== undefined && lastCheckpoint.seq > lastSeq) {
      return bad(lastSeq + 1, 'entries signed by a checkpoint are missing (truncated)');
    }
    if (lastSeq > 0 && (lastCheckpoint === undefined || lastCheckpoint.seq < lastSeq)) {
      return bad((lastCheckpoint?.seq ?? 0) + 1, 'entries after the last signed checkpoint');
    }
    if (head !== undefined && head.seq > lastSeq) {
      return bad(lastSeq + 1, 'entries recorded by the chain head are missing (truncated)');
    }
  }
  return { ok: true, entries: total, workspaces: workspaces.length };
}

/** One entry as the audit API shows it: ids, names and outcomes, never a personal value. */
export interface AuditEntryView extends ChainedEntry {
  readonly hash: string;
}

/**
 * A page of the workspace's chain after `afterSeq`, optionally only the entries about one
 * customer. The read itself is appended to the chain (who looked, and at what), so an auditor's
 * reading is as accountable as anyone else's.
 */
export async function listAuditEntries(
  ctx: Pick<AppContext, 'clock' | 'signer' | 'data'>,
  actor: Actor,
  query: { readonly afterSeq: number; readonly limit: number; readonly customerId?: string },
): Promise<{ items: AuditEntryView[]; nextAfterSeq: number | null }> {
  const rows = await ctx.data.read(actor.workspaceId, (db) =>
    store.pageEntries(db, actor.workspaceId, query.afterSeq, query.limit + 1, query.customerId),
  );
  await recordAudit(ctx, actor, {
    action: 'audit.read',
    customerId: query.customerId ?? null,
    outcome: 'allowed',
  });
  const shown = rows.slice(0, query.limit);
  return {
    items: shown.map(toEntryView),
    nextAfterSeq: rows.length > query.limit ? (shown.at(-1)?.seq ?? null) : null,
  };
}

/** Every entry about one customer, oldest first, for the customer's own access log. */
export async function customerAuditEntries(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<AuditEntryView[]> {
  const items: AuditEntryView[] = [];
  for (let after = 0; ;) {
    const page = await store.pageEntries(db, workspaceId, after, 1000, customerId);
    items.push(...page.map(toEntryView));
    const last = page.at(-1);
    if (last === undefined || page.length < 1000) return items;
    after = last.seq;
  }
}

/** A stored row as the chain hashes it. */
function chainedEntryOf(row: AuditEntryTable): ChainedEntry {
  return {
    workspaceId: row.workspace_id,
    seq: row.seq,
    at: row.at,
    actorType: row.actor_type,
    actorId: row.actor_id,
    actorRole: row.actor_role,
    action: row.action,
    customerId: row.customer_id,
    purpose: row.purpose,
    fields: parseFields(row.fields),
    outcome: row.outcome,
    reason: row.reason,
    requestId: row.request_id,
  };
}

function toEntryView(row: AuditEntryTable): AuditEntryView {
  return { ...chainedEntryOf(row), hash: row.hash };
}

function parseFields(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.map(String) : [String(value)];
  } catch {
    return [text];
  }
}

export async function countAuditEntries(db: Kysely<DataDb>): Promise<number> {
  return store.countEntries(db);
}

/**
 * Counts of one action per month, from the chain: it outlives erasure, which removes a
 * customer's other records, so counts taken here include erased customers.
 */
export async function countActionPerMonth(
  db: Kysely<DataDb>,
  workspaceId: string,
  action: string,
  outcome: AuditOutcome,
): Promise<{ month: string; count: number }[]> {
  return store.countActionPerMonth(db, workspaceId, action, outcome);
}
