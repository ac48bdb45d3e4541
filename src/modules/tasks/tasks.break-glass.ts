import type { Kysely } from 'kysely';
import type { Actor, AppContext } from '../../platform/context.js';
import type { BreakGlassTable, DataDb } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { newId } from '../../platform/ids.js';
import { appendAudit, recordAudit } from '../audit/index.js';
import { activeAgreementsOf } from '../consent/index.js';
import {
  describeHoldings,
  destroyCustomerKeys,
  lockCustomer,
  openSubjectFields,
  sealSubjectFields,
} from '../customers/index.js';
import * as store from './tasks.store.js';

/**
 * Break-glass: a read without a task, for one customer and one purpose, on a written
 * justification. It lasts 30 minutes, is audited as `break_glass`, and waits in the privacy
 * officer's review queue until approved or flagged with a note. Texts are sealed under a key of
 * the customer, like task titles.
 */

export const BREAK_GLASS_MINUTES = 30;

export interface BreakGlass {
  readonly id: string;
  readonly staffId: string;
  readonly customerId: string;
  readonly purpose: string;
  readonly justification: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly reviewStatus: 'pending' | 'approved' | 'flagged';
  readonly reviewedBy: string | null;
  readonly reviewedAt: string | null;
  readonly note: string | null;
}

async function toBreakGlass(ctx: AppContext, row: BreakGlassTable): Promise<BreakGlass> {
  const sealed: Record<string, Uint8Array> = {
    [`justification:${row.id}`]: row.justification_sealed,
  };
  if (row.note_sealed !== null) sealed[`note:${row.id}`] = row.note_sealed;
  const open = await openSubjectFields(ctx, row.workspace_id, row.customer_id, 'tasks', sealed);
  return {
    id: row.id,
    staffId: row.staff_id,
    customerId: row.customer_id,
    purpose: row.purpose_key,
    justification: open[`justification:${row.id}`] ?? '',
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    reviewStatus: row.review_status as BreakGlass['reviewStatus'],
    reviewedBy: row.reviewed_by,
    reviewedAt: row.reviewed_at,
    note: open[`note:${row.id}`] ?? null,
  };
}

/** Opens a break-glass grant; the customer must exist here and have agreed to the purpose. */
export async function breakGlass(
  ctx: AppContext,
  actor: Actor,
  input: { customerId: string; purpose: string; justification: string },
): Promise<BreakGlass> {
  if (actor.type !== 'staff') {
    // Integrations read under the purpose rules already; emergencies are for people.
    throw new DomainError('forbidden', 'Only a signed-in staff member can break the glass.');
  }
  const now = ctx.clock.now();
  const id = newId();
  const holdings = await describeHoldings(ctx, actor.workspaceId, input.customerId);
  if (!holdings.exists) {
    await recordAudit(ctx, actor, {
      action: 'break_glass',
      customerId: input.customerId,
      purpose: input.purpose,
      outcome: 'denied',
      reason: 'not_found',
    });
    throw new DomainError('not_found', 'No such customer.');
  }
  // A first, non-authoritative check, so that no key is made for a task refused anyway.
  const agreed = (
    await ctx.data.read(actor.workspaceId, (db) =>
      activeAgreementsOf(db, actor.workspaceId, [input.customerId], now),
    )
  ).get(input.customerId);
  if (agreed?.get(input.purpose) === undefined) {
    await recordAudit(ctx, actor, {
      action: 'break_glass',
      customerId: input.customerId,
      purpose: input.purpose,
      outcome: 'denied',
      reason: 'purpose_not_active',
    });
    throw new DomainError(
      'consent_not_active',
      'The customer has no active agreement for this purpose.',
      { fields: ['body.purpose'] },
    );
  }
  // As for tasks: sealed first, then checked and written in one transaction under the lock.
  const sealed = await sealSubjectFields(ctx, actor.workspaceId, input.customerId, 'tasks', {
    [`justification:${id}`]: input.justification,
  });
  const row: BreakGlassTable = {
    workspace_id: actor.workspaceId,
    id,
    staff_id: actor.id,
    customer_id: input.customerId,
    purpose_key: input.purpose,
    justification_sealed: sealed[`justification:${id}`] ?? Buffer.alloc(0),
    created_at: now.toISOString(),
    expires_at: new Date(now.getTime() + BREAK_GLASS_MINUTES * 60_000).toISOString(),
    review_status: 'pending',
    reviewed_by: null,
    reviewed_at: null,
    note_sealed: null,
  };
  const reason = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const exists = await lockCustomer(ctx, scope.trx, actor.workspaceId, input.customerId);
    const active = exists
      ? (await activeAgreementsOf(scope.trx, actor.workspaceId, [input.customerId], now)).get(
          input.customerId,
        )
      : undefined;
    const refused = !exists
      ? 'not_found'
      : active?.get(input.purpose) === undefined
        ? 'purpose_not_active'
        : null;
    if (refused === null) await store.insertBreakGlass(scope.trx, row);
    await appendAudit(ctx, scope, actor, {
      action: 'break_glass',
      customerId: input.customerId,
      purpose: input.purpose,
      fields: [`break_glass:${id}`],
      outcome: refused === null ? 'allowed' : 'denied',
      reason: refused,
    });
    return refused;
  });
  if (reason === 'not_found') {
    await destroyCustomerKeys(ctx, actor.workspaceId, input.customerId);
    throw new DomainError('not_found', 'No such customer.');
  }
  if (reason !== null) {
    throw new DomainError(
      'consent_not_active',
      'The customer has no active agreement for this purpose.',
      { fields: ['body.purpose'] },
    );
  }
  return toBreakGlass(ctx, row);
}

/** The gateway's check: a live break-glass grant of this staff member for customer and purpose. */
export async function hasBreakGlassGrant(
  trx: Kysely<DataDb>,
  grant: {
    readonly workspaceId: string;
    readonly staffId: string;
    readonly customerId: string;
    readonly purpose: string;
    readonly breakGlassId: string;
    readonly now: Date;
  },
): Promise<boolean> {
  const row = await store.findBreakGlass(trx, grant.workspaceId, grant.breakGlassId);
  return (
    row !== undefined &&
    row.staff_id === grant.staffId &&
    row.customer_id === grant.customerId &&
    row.purpose_key === grant.purpose &&
    row.expires_at > grant.now.toISOString()
  );
}

/** The review queue: break-glass grants by status (pending by default). Audited. */
export async function listBreakGlass(
  ctx: AppContext,
  actor: Actor,
  status: 'pending' | 'approved' | 'flagged',
): Promise<BreakGlass[]> {
  const rows = await ctx.data.read(actor.workspaceId, (db) =>
    store.listBreakGlass(db, actor.workspaceId, status),
  );
  await recordAudit(ctx, actor, {
    action: 'break_glass.list',
    fields: rows.map((r) => `break_glass:${r.id}`),
    outcome: 'allowed',
  });
  return Promise.all(rows.map((r) => toBreakGlass(ctx, r)));
}

/** A privacy officer approves a break-glass read, or flags it with a note. Once only. */
export async function reviewBreakGlass(
  ctx: AppContext,
  actor: Actor,
  id: string,
  review: { decision: 'approve' | 'flag'; note?: string | undefined },
): Promise<BreakGlass> {
  if (review.decision === 'flag' && (review.note === undefined || review.note.length === 0)) {
    throw new DomainError('invalid_input', 'A flag needs a note.', { fields: ['body.note'] });
  }
  const found = await ctx.data.read(actor.workspaceId, (db) =>
    store.findBreakGlass(db, actor.workspaceId, id),
  );
  const refusal =
    found === undefined ? 'not_found' : found.staff_id === actor.id ? 'own_access' : null;
  if (refusal !== null) {
    await recordAudit(ctx, actor, {
      action: 'break_glass.review',
      customerId: found?.customer_id ?? null,
      fields: [`break_glass:${id}`],
      outcome: 'denied',
      reason: refusal,
    });
  }
  if (found === undefined) throw new DomainError('not_found', 'No such break-glass access.');
  if (found.staff_id === actor.id) {
    throw new DomainError('forbidden', 'Nobody reviews their own break-glass access.');
  }
  const note =
    review.note === undefined
      ? null
      : ((
          await sealSubjectFields(ctx, actor.workspaceId, found.customer_id, 'tasks', {
            [`note:${id}`]: review.note,
          })
        )[`note:${id}`] ?? null);
  const at = ctx.clock.now().toISOString();
  const status = review.decision === 'approve' ? 'approved' : 'flagged';
  const changed = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const n = await store.reviewBreakGlass(scope.trx, actor.workspaceId, id, {
      review_status: status,
      reviewed_by: actor.id,
      reviewed_at: at,
      note_sealed: note,
    });
    if (n === 0) {
      await appendAudit(ctx, scope, actor, {
        action: 'break_glass.review',
        customerId: found.customer_id,
        purpose: found.purpose_key,
        fields: [`break_glass:${id}`],
        outcome: 'denied',
        reason: 'reviewed_already',
      });
      return false;
    }
    await appendAudit(ctx, scope, actor, {
      action: 'break_glass.review',
      customerId: found.customer_id,
      purpose: found.purpose_key,
      fields: [`break_glass:${id}`],
      outcome: 'done',
      reason: status,
    });
    return true;
  });
  if (!changed) throw new DomainError('conflict', 'This access was reviewed already.');
  return toBreakGlass(ctx, {
    ...found,
    review_status: status,
    reviewed_by: actor.id,
    reviewed_at: at,
    note_sealed: note,
  });
}

export async function deleteBreakGlassOf(
  trx: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await store.deleteBreakGlassOf(trx, workspaceId, customerId);
}
