import { systemActor, type Actor, type AppContext } from '../../platform/context.js';
import type { CategoryErasureTable, ErasureTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { appendAudit, recordAudit } from '../audit/index.js';
import {
  agreementsOf,
  checkGrant,
  coveredCategories,
  endRow,
  grantRows,
  insertConsentEvents,
  isAgreementActive,
  listEndableGrants,
  needsDocument,
  type Agreement,
  type ConsentGrant,
  type ConsentMethod,
  type RequestOrigin,
} from '../consent/index.js';
import { describeHoldings, heldCategories, lockCustomer } from '../customers/index.js';
import {
  beginCategoryErasureIn,
  beginErasureIn,
  finishCategoryErasure,
  finishErasure,
  resumePendingCategoryErasures,
  type CategoryErasureRecord,
  type ErasureRecord,
} from '../erasure/index.js';
import { cachedPurposes, getPurpose, requireStillActive } from '../purposes/index.js';

/**
 * What ends an agreement, and what that destroys: the data of every category that no remaining
 * active agreement covers is crypto-shredded at once (keys destroyed, fields and index entries
 * deleted, an erasure-ledger entry written); when no agreement remains, the customer is erased.
 */

export interface AgreementEnd {
  readonly eventId: string;
  readonly event: 'withdrawn' | 'expired';
  readonly purpose: string;
  readonly at: string;
  /** Categories shredded because nothing covers them any more (empty when none were held). */
  readonly shredded: CategoryErasureRecord | null;
  /** Set when the agreement was the customer's last: they were erased entirely. */
  readonly erasure: ErasureRecord | null;
}

type Ending =
  | {
      readonly kind: 'withdrawn';
      readonly method: ConsentMethod;
      readonly documentRef: string | undefined;
      readonly origin: RequestOrigin | undefined;
    }
  | { readonly kind: 'expired'; readonly grantId: string; readonly cause: string };

type Begun =
  | { readonly skipped: true }
  | {
      readonly skipped: false;
      readonly eventId: string;
      readonly at: string;
      readonly categoryErasure: CategoryErasureTable | null;
      readonly erasure: ErasureTable | null;
    };

/**
 * Ends one agreement. In one transaction: the ending event, its audit entry, and either the
 * intent of a category erasure with the deletion of those categories' rows, or (if nothing
 * remains) the intent of a full erasure with the deletion of every row. Then keys are destroyed.
 */
async function endAgreement(
  ctx: AppContext,
  actor: Actor,
  customerId: string,
  purposeKey: string,
  ending: Ending,
): Promise<AgreementEnd | undefined> {
  const ws = actor.workspaceId;
  const purposes = await cachedPurposes(ctx, ws);
  const begun: Begun = await ctx.data.batch.run(ws, async (scope) => {
    const now = ctx.clock.now();
    const at = now.toISOString();
    // The lock first: what is read after it is what the other writers committed.
    if (!(await lockCustomer(ctx, scope.trx, ws, customerId))) return { skipped: true };
    const agreements = (await agreementsOf(scope.trx, ws, [customerId])).get(customerId);
    const current = agreements?.get(purposeKey);
    if (ending.kind === 'expired') {
      if (current?.grantId !== ending.grantId || current.endedBy !== null) return { skipped: true };
    } else if (
      current === undefined ||
      current.endedBy !== null ||
      (current.expiresAt !== null && current.expiresAt <= at)
    ) {
      // Nothing to withdraw: never granted, already ended, or lapsed (the expiry job ends it).
      await appendAudit(ctx, scope, actor, {
        action: 'consent.withdraw',
        customerId,
        purpose: purposeKey,
        outcome: 'denied',
        reason: current === undefined ? 'never_granted' : `already_${current.endedBy ?? 'expired'}`,
      });
      return { skipped: true };
    }
    // Read after the lock: what this customer holds now, and the keys to destroy with it.
    const holdings = await describeHoldings(ctx, ws, customerId);
    const event = endRow(
      ctx,
      actor,
      customerId,
      current,
      ending.kind,
      ending.kind === 'withdrawn' ? ending.method : null,
      ending.kind === 'withdrawn' ? ending.origin : undefined,
      ending.kind === 'withdrawn' ? ending.documentRef : undefined,
      at,
    );
    // The event first: a second worker ending the same grant fails here (one event per grant).
    await insertConsentEvents(scope.trx, [event]);
    await appendAudit(ctx, scope, actor, {
      action: `consent.${ending.kind}`,
      customerId,
      purpose: purposeKey,
      outcome: 'done',
      reason: `event:${event.id};ends:${current.grantId}${ending.kind === 'expired' ? `;cause:${ending.cause}` : `;method:${ending.method}`}`,
    });
    const remaining = [...(agreements?.values() ?? [])].filter(
      (a: Agreement) =>
        a.purpose !== purposeKey &&
        a.endedBy === null &&
        (a.expiresAt === null || a.expiresAt > at) &&
        purposes.get(a.purpose)?.status === 'active',
    );
    if (remaining.length === 0) {
      const erasure = await beginErasureIn(ctx, scope, actor, customerId, holdings);
      return { skipped: false, eventId: event.id, at, categoryErasure: null, erasure };
    }
    const covered = coveredCategories(
      purposes,
      remaining.filter((a) => isAgreementActive(a, now)),
    );
    const held = await heldCategories(ctx, scope.trx, ws, customerId);
    const uncovered = [...held].filter((c) => !covered.has(c)).sort();
    if (uncovered.length === 0) {
      return { skipped: false, eventId: event.id, at, categoryErasure: null, erasure: null };
    }
    const row = await beginCategoryErasureIn(ctx, scope, actor, {
      customerId,
      purpose: purposeKey,
      cause: ending.kind === 'expired' ? ending.cause : 'withdrawn',
      eventId: event.id,
      categories: uncovered,
      keyIds: holdings.keys
        .filter((k) => (uncovered as string[]).includes(k.category))
        .map((k) => k.id),
    });
    return { skipped: false, eventId: event.id, at, categoryErasure: row, erasure: null };
  });
  if (begun.skipped) return undefined;
  const shredded =
    begun.categoryErasure === null
      ? null
      : await finishCategoryErasure(ctx, actor, begun.categoryErasure);
  const erasure = begun.erasure === null ? null : await finishErasure(ctx, actor, begun.erasure);
  return {
    eventId: begun.eventId,
    event: ending.kind,
    purpose: purposeKey,
    at: begun.at,
    shredded,
    erasure,
  };
}

/**
 * Records a customer's withdrawal of one purpose (or the end of another lawful basis) and
 * shreds, in the same request, what no remaining purpose covers.
 */
export async function withdrawAgreement(
  ctx: AppContext,
  actor: Actor,
  customerId: string,
  purposeKey: string,
  input: { readonly method: ConsentMethod; readonly documentRef?: string | undefined },
  origin?: RequestOrigin,
): Promise<AgreementEnd> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  if (purposes.get(purposeKey) === undefined) {
    await recordAudit(ctx, actor, {
      action: 'consent.withdraw',
      customerId,
      purpose: purposeKey,
      outcome: 'denied',
      reason: 'purpose_unknown',
    });
    getPurpose(purposes, purposeKey, 'params.purpose');
  }
  if (needsDocument(input.method) && input.documentRef === undefined) {
    throw new DomainError('invalid_input', 'This method needs the reference of its document.', {
      fields: ['body.documentRef'],
    });
  }
  const holdings = await describeHoldings(ctx, actor.workspaceId, customerId);
  if (!holdings.exists) {
    await recordAudit(ctx, actor, {
      action: 'consent.withdraw',
      customerId,
      purpose: purposeKey,
      outcome: 'denied',
      reason: 'not_found',
    });
    throw new DomainError('not_found', 'No such customer.');
  }
  const ended = await endAgreement(ctx, actor, customerId, purposeKey, {
    kind: 'withdrawn',
    method: input.method,
    documentRef: input.documentRef,
    origin,
  });
  if (ended === undefined) {
    throw new DomainError(
      'consent_not_active',
      'The customer has no active agreement for this purpose; nothing was changed.',
    );
  }
  return ended;
}

function isoOrNull(value: string | undefined): string | null {
  return value === undefined ? null : new Date(value).toISOString();
}

/**
 * Records new agreements for an existing customer. A grant identical to the active one (same
 * notice version, validity and reference) is idempotent: no second event. Answers the events written.
 */
export async function grantAgreements(
  ctx: AppContext,
  actor: Actor,
  customerId: string,
  grants: readonly ConsentGrant[],
  origin?: RequestOrigin,
): Promise<{ granted: { purpose: string; eventId: string; created: boolean }[] }> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const now = ctx.clock.now();
  const seen = new Set<string>();
  const checked = grants.map((grant, i) => {
    const { terms } = checkGrant(purposes, grant, `body.consents.${i}`, now);
    if (seen.has(grant.purpose)) {
      throw new DomainError('invalid_input', 'A purpose is named twice.', {
        fields: [`body.consents.${i}.purpose`],
      });
    }
    seen.add(grant.purpose);
    return { grant, terms };
  });
  const holdings = await describeHoldings(ctx, actor.workspaceId, customerId);
  if (!holdings.exists) {
    await recordAudit(ctx, actor, {
      action: 'consent.grant',
      customerId,
      outcome: 'denied',
      reason: 'not_found',
    });
    throw new DomainError('not_found', 'No such customer.');
  }
  const at = now.toISOString();
  const granted = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    if (!(await lockCustomer(ctx, scope.trx, actor.workspaceId, customerId))) return undefined;
    // The purposes as committed now: a retirement by another process is not missed.
    await requireStillActive(
      scope.trx,
      actor.workspaceId,
      checked.map(({ grant }) => grant.purpose),
      'body.consents',
    );
    const current =
      (await agreementsOf(scope.trx, actor.workspaceId, [customerId])).get(customerId) ??
      new Map<string, Agreement>();
    const result: { purpose: string; eventId: string; created: boolean }[] = [];
    const fresh = checked.filter(({ grant }) => {
      const a = current.get(grant.purpose);
      // Idempotent only when every term is the same; a renewal with new terms is a new grant.
      const same =
        a !== undefined &&
        isAgreementActive(a, now) &&
        a.noticeVersion === grant.noticeVersion &&
        a.startsAt === isoOrNull(grant.startsAt) &&
        a.expiresAt === isoOrNull(grant.expiresAt) &&
        a.reference === (grant.reference ?? null);
      if (same) {
        result.push({ purpose: grant.purpose, eventId: a.grantId, created: false });
        return false;
      }
      // A grant replaces the current one at once; one that starts later would leave the data
      // covered by nothing until then. Renew from now instead.
      if (a !== undefined && isAgreementActive(a, now) && isoOrNull(grant.startsAt) !== null) {
        if ((isoOrNull(grant.startsAt) ?? '') > now.toISOString()) {
          throw new DomainError(
            'conflict',
            'An active agreement for this purpose exists; a renewal must start now.',
            { fields: ['body.consents'] },
          );
        }
      }
      return true;
    });
    const rows = grantRows(ctx, actor, customerId, fresh, origin, at);
    await insertConsentEvents(scope.trx, rows);
    for (const r of rows) {
      result.push({ purpose: r.purpose_key, eventId: r.id, created: true });
      await appendAudit(ctx, scope, actor, {
        action: 'consent.granted',
        customerId,
        purpose: r.purpose_key,
        outcome: 'done',
        reason: `event:${r.id};notice:${r.notice_version};method:${r.method}`,
      });
    }
    return { granted: result };
  });
  if (granted === undefined) throw new DomainError('not_found', 'No such customer.');
  return granted;
}

/**
 * The expiry job: ends every current agreement that has run out or whose purpose was retired,
 * and shreds what that leaves uncovered. Safe with several processes on one PostgreSQL
 * database: at most one event can end a grant, so exactly one worker processes each.
 */
export async function sweepAgreements(
  ctx: AppContext,
  only?: { readonly workspaceId: string; readonly purposeKey: string; readonly actor?: Actor },
): Promise<{ ended: number; skipped: number }> {
  let ended = 0;
  let skipped = 0;
  const tried = new Set<string>();
  // Category erasures a failure left half-done (keys not yet destroyed) are finished first.
  if (only === undefined) await resumePendingCategoryErasures(ctx);
  for (;;) {
    const due = (
      await ctx.data.read(only?.workspaceId ?? EVERY_WORKSPACE, (db) =>
        listEndableGrants(db, ctx.clock.now(), 100, only),
      )
    ).filter((g) => !tried.has(g.grantId));
    if (due.length === 0) break;
    for (const g of due) {
      tried.add(g.grantId);
      const actor: Actor = only?.actor ?? systemActor('consent-expiry', g.workspaceId);
      try {
        const retired = (await cachedPurposes(ctx, g.workspaceId)).get(g.purpose)?.status;
        const result = await endAgreement(ctx, actor, g.customerId, g.purpose, {
          kind: 'expired',
          grantId: g.grantId,
          cause: only !== undefined || retired === 'retired' ? 'purpose_retired' : 'expired',
        });
        // Undefined: another worker ended it first (it saw the grant ended once it had the lock).
        if (result === undefined) skipped += 1;
        else ended += 1;
      } catch (error) {
        skipped += 1;
        ctx.logger.error({ err: error, grant: g.grantId }, 'could not end a lapsed agreement');
      }
    }
  }
  return { ended, skipped };
}
