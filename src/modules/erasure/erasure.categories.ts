import type { Kysely } from 'kysely';
import { systemActor, type Actor, type AppContext } from '../../platform/context.js';
import type { BatchScope } from '../../platform/db/group-commit.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import type { CategoryErasureTable, DataDb } from '../../platform/db/schema.js';
import { newId } from '../../platform/ids.js';
import { appendAudit } from '../audit/index.js';
import { deleteCategoryData, destroyDataKeys } from '../customers/index.js';
import type { DataCategory } from '../purposes/index.js';
import * as store from './erasure.store.js';

/**
 * Category erasure: the categories that no remaining purpose covers are crypto-shredded while
 * the customer stays. Intent and row deletion in one transaction, then keys destroyed, then the
 * ledger entry completed; each step idempotent, resumed at start-up.
 */

export interface CategoryErasureRecord {
  readonly id: string;
  readonly customerId: string;
  readonly purpose: string;
  readonly cause: string;
  readonly status: 'pending' | 'completed';
  readonly requestedAt: string;
  readonly completedAt: string | null;
  readonly categories: string[];
  readonly destroyedKeyIds: string[];
}

function toCategoryRecord(row: CategoryErasureTable): CategoryErasureRecord {
  return {
    id: row.id,
    customerId: row.customer_id,
    purpose: row.purpose_key,
    cause: row.cause,
    status: row.status === 'completed' ? 'completed' : 'pending',
    requestedAt: row.requested_at,
    completedAt: row.completed_at,
    categories: JSON.parse(row.categories) as string[],
    destroyedKeyIds: JSON.parse(row.destroyed_key_ids) as string[],
  };
}

/** Destroys the keys of a begun category erasure, then completes it; idempotent. */
export async function finishCategoryErasure(
  ctx: AppContext,
  actor: Actor,
  row: CategoryErasureTable,
): Promise<CategoryErasureRecord> {
  const ws = row.workspace_id;
  const categories = JSON.parse(row.categories) as DataCategory[];
  const recorded = JSON.parse(row.destroyed_key_ids) as string[];
  await destroyDataKeys(ctx, ws, row.customer_id, recorded);
  const destroyed = [...recorded].sort();
  const completedAt = ctx.clock.now().toISOString();
  await ctx.data.batch.run(ws, async (scope) => {
    const n = await store.completeCategoryErasure(scope.trx, ws, row.id, completedAt, destroyed);
    if (n === 0) return;
    await appendAudit(
      ctx,
      scope,
      { ...actor, workspaceId: ws },
      {
        action: 'shred.complete',
        customerId: row.customer_id,
        purpose: row.purpose_key,
        fields: categories,
        outcome: 'done',
        reason: `category_erasure:${row.id}`,
      },
    );
  });
  const done = await ctx.data.read(ws, (db) => store.findCategoryErasure(db, ws, row.id));
  return toCategoryRecord(
    done ?? {
      ...row,
      status: 'completed',
      completed_at: completedAt,
      destroyed_key_ids: JSON.stringify(destroyed),
    },
  );
}

/**
 * Records the intent of shredding some categories inside the caller's unit of work, and deletes
 * their fields and index entries with it. `finishCategoryErasure` destroys the keys.
 */
export async function beginCategoryErasureIn(
  ctx: AppContext,
  scope: BatchScope<DataDb>,
  actor: Actor,
  entry: {
    readonly customerId: string;
    readonly purpose: string;
    readonly cause: string;
    readonly eventId: string;
    readonly categories: readonly DataCategory[];
    readonly keyIds: readonly string[];
  },
): Promise<CategoryErasureTable> {
  const row: CategoryErasureTable = {
    workspace_id: actor.workspaceId,
    id: newId(),
    customer_id: entry.customerId,
    purpose_key: entry.purpose,
    cause: entry.cause,
    event_id: entry.eventId,
    status: 'pending',
    requested_at: ctx.clock.now().toISOString(),
    completed_at: null,
    categories: JSON.stringify([...entry.categories].sort()),
    destroyed_key_ids: JSON.stringify([...entry.keyIds].sort()),
    actor_type: actor.type,
    actor_id: actor.id,
  };
  await store.insertCategoryErasure(scope.trx, row);
  await deleteCategoryData(scope.trx, actor.workspaceId, entry.customerId, entry.categories);
  await appendAudit(ctx, scope, actor, {
    action: 'shred.start',
    customerId: entry.customerId,
    purpose: entry.purpose,
    fields: [...entry.categories],
    outcome: 'done',
    reason: `category_erasure:${row.id}`,
  });
  return row;
}

/** Finishes category erasures that a crash or a failure interrupted (at start-up, by the job). */
export async function resumePendingCategoryErasures(
  ctx: AppContext,
  only?: { readonly workspaceId: string; readonly customerId: string },
): Promise<number> {
  const pending = (
    await ctx.data.read(only?.workspaceId ?? EVERY_WORKSPACE, (db) =>
      store.listPendingCategoryErasures(db),
    )
  ).filter(
    (r) =>
      only === undefined ||
      (r.workspace_id === only.workspaceId && r.customer_id === only.customerId),
  );
  for (const row of pending) {
    await finishCategoryErasure(ctx, systemActor('erasure-resume', row.workspace_id), row);
  }
  return pending.length;
}

/**
 * Every data key recorded for destruction by a category erasure of this customer, pending or
 * done: a write must not seal new data under one of them.
 */
export async function shreddedKeyIds(
  trx: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<Set<string>> {
  const rows = await store.listCategoryErasuresOf(trx, workspaceId, customerId);
  return new Set(rows.flatMap((r) => JSON.parse(r.destroyed_key_ids) as string[]));
}
