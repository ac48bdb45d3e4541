import { systemActor, type Actor, type AppContext } from '../../platform/context.js';
import type { BatchScope } from '../../platform/db/group-commit.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import type { DataDb, ErasureTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { newId, type ErasureId } from '../../platform/ids.js';
import { appendAudit, recordAudit } from '../audit/index.js';
import { deleteConsentsOf } from '../consent/index.js';
import {
  deleteCustomerData,
  describeHoldings,
  destroyCustomerKeys,
  lockCustomer,
} from '../customers/index.js';
import { deleteBreakGlassOf, deleteTasksOf } from '../tasks/index.js';
import { deletePortalRowsOf } from '../portal/index.js';
import * as store from './erasure.store.js';

export interface ErasureRecord {
  readonly id: ErasureId;
  readonly customerId: string;
  readonly status: 'pending' | 'completed';
  readonly requestedAt: string;
  readonly completedAt: string | null;
  readonly categories: string[];
  readonly destroyedKeyIds: string[];
}

function toRecord(row: ErasureTable): ErasureRecord {
  return {
    id: row.id as ErasureId,
    customerId: row.customer_id,
    status: row.status === 'completed' ? 'completed' : 'pending',
    requestedAt: row.requested_at,
    completedAt: row.completed_at,
    categories: JSON.parse(row.categories) as string[],
    destroyedKeyIds: JSON.parse(row.destroyed_key_ids) as string[],
  };
}

/**
 * Steps after the intent is recorded; each is idempotent, so an interrupted erasure is
 * finished by running them again: destroy the data keys (from here on every copy of the
 * ciphertext, backups included, is unreadable), delete rows and index entries, destroy any key
 * made meanwhile, then close the ledger entry.
 */
async function finish(ctx: AppContext, actor: Actor, row: ErasureTable): Promise<ErasureRecord> {
  const ws = row.workspace_id;
  const first = await destroyCustomerKeys(ctx, ws, row.customer_id);
  await ctx.data.batch.run(ws, async ({ trx }) => {
    await deleteCustomerData(trx, ws, row.customer_id);
    await deleteConsentsOf(trx, ws, row.customer_id);
    await deleteTasksOf(trx, ws, row.customer_id);
    await deleteBreakGlassOf(trx, ws, row.customer_id);
    await deletePortalRowsOf(trx, ws, row.customer_id);
  });
  const late = await destroyCustomerKeys(ctx, ws, row.customer_id);
  const destroyed = [
    ...new Set([...(JSON.parse(row.destroyed_key_ids) as string[]), ...first, ...late]),
  ].sort();
  const completedAt = ctx.clock.now().toISOString();
  const updated = await ctx.data.batch.run(ws, async (scope) => {
    const n = await store.completeErasure(scope.trx, ws, row.id, completedAt, destroyed);
    if (n === 0) return 0;
    await appendAudit(
      ctx,
      scope,
      { ...actor, workspaceId: ws },
      {
        action: 'erasure.complete',
        customerId: row.customer_id,
        fields: JSON.parse(row.categories) as string[],
        outcome: 'done',
        reason: `erasure:${row.id}`,
      },
    );
    return n;
  });
  if (updated === 0) {
    // Another request finished it meanwhile: its record stands.
    const done = await ctx.data.read(ws, (db) => store.findByCustomer(db, ws, row.customer_id));
    if (done !== undefined) return toRecord(done);
  }
  return toRecord({
    ...row,
    status: 'completed',
    completed_at: completedAt,
    destroyed_key_ids: JSON.stringify(destroyed),
  });
}

/** Erases a customer by crypto-shredding; returns the ledger entry. Calling again returns it again. */
export async function eraseCustomer(
  ctx: AppContext,
  actor: Actor,
  customerId: string,
): Promise<ErasureRecord> {
  const existing = await ctx.data.read(actor.workspaceId, (db) =>
    store.findByCustomer(db, actor.workspaceId, customerId),
  );
  if (existing?.status === 'completed') return toRecord(existing);
  if (existing !== undefined) return finish(ctx, actor, existing);
  const holdings = await describeHoldings(ctx, actor.workspaceId, customerId);
  if (!holdings.exists) {
    await recordAudit(ctx, actor, {
      action: 'erasure.start',
      customerId,
      outcome: 'denied',
      reason: 'not_found',
    });
    throw new DomainError('not_found', 'No such customer.');
  }
  const started = await ctx.data.batch.run(actor.workspaceId, (scope) =>
    beginErasureIn(ctx, scope, actor, customerId, holdings),
  );
  if (started.status === 'completed') return toRecord(started);
  return finish(ctx, actor, started);
}

/**
 * Records the intent of erasing a customer inside the caller's unit of work, and deletes their
 * rows, index entries and consent events with it: from that commit on, nothing reads or writes
 * the customer, even if destroying the keys has to wait for a restart. Answers the ledger row
 * (one that a racing request wrote first, if any); `finishErasure` does the rest.
 */
export async function beginErasureIn(
  ctx: AppContext,
  scope: BatchScope<DataDb>,
  actor: Actor,
  customerId: string,
  holdings: { readonly categories: readonly string[]; readonly keyIds: readonly string[] },
): Promise<ErasureTable> {
  await lockCustomer(ctx, scope.trx, actor.workspaceId, customerId);
  const raced = await store.findByCustomer(scope.trx, actor.workspaceId, customerId);
  if (raced !== undefined) return raced;
  const row: ErasureTable = {
    workspace_id: actor.workspaceId,
    id: newId<ErasureId>(),
    customer_id: customerId,
    status: 'pending',
    requested_at: ctx.clock.now().toISOString(),
    completed_at: null,
    categories: JSON.stringify(holdings.categories),
    destroyed_key_ids: JSON.stringify(holdings.keyIds),
    actor_type: actor.type,
    actor_id: actor.id,
  };
  await store.insertErasure(scope.trx, row);
  await deleteCustomerData(scope.trx, actor.workspaceId, customerId);
  await deleteConsentsOf(scope.trx, actor.workspaceId, customerId);
  await deleteTasksOf(scope.trx, actor.workspaceId, customerId);
  await deleteBreakGlassOf(scope.trx, actor.workspaceId, customerId);
  await deletePortalRowsOf(scope.trx, actor.workspaceId, customerId);
  await appendAudit(ctx, scope, actor, {
    action: 'erasure.start',
    customerId,
    fields: holdings.categories,
    outcome: 'done',
    reason: `erasure:${row.id}`,
  });
  return row;
}

/** Destroys the keys of a begun erasure and completes its ledger entry; idempotent. */
export async function finishErasure(
  ctx: AppContext,
  actor: Actor,
  row: ErasureTable,
): Promise<ErasureRecord> {
  if (row.status === 'completed') return toRecord(row);
  return finish(ctx, actor, row);
}

/** Finishes erasures that a crash or a failure interrupted; run before the server serves. */
export async function resumePendingErasures(ctx: AppContext): Promise<number> {
  // Across workspaces: the system finishes every interrupted erasure.
  const pending = await ctx.data.read(EVERY_WORKSPACE, (db) => store.listPending(db));
  for (const row of pending) {
    await finish(ctx, systemActor('erasure-resume', row.workspace_id), row);
  }
  return pending.length;
}
