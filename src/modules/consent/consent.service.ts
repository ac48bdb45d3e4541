import type { Kysely } from 'kysely';
import type { Actor, AppContext } from '../../platform/context.js';
import type { ConsentEventTable, DataDb } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { countActionPerMonth } from '../audit/index.js';
import { newId } from '../../platform/ids.js';
import {
  getPurpose,
  specialCategories,
  type DataCategory,
  type LawfulBasis,
  type NoticeTerms,
  type Purpose,
} from '../purposes/index.js';
import * as store from './consent.store.js';

export const consentMethods = [
  'web_form',
  'portal',
  'staff_recorded',
  'paper',
  'phone',
  'import',
] as const;
export type ConsentMethod = (typeof consentMethods)[number];

export type ConsentEventKind = 'granted' | 'withdrawn' | 'expired';

/**
 * Methods where staff enter what the customer agreed to elsewhere: the evidence is a document
 * (signed form, call recording, import batch), and the staff member records which one.
 */
const documentedMethods: readonly ConsentMethod[] = ['staff_recorded', 'paper', 'phone', 'import'];
/** Whether an instruction given this way must name its document (`documentRef`). */
export function needsDocument(method: ConsentMethod): boolean {
  return documentedMethods.includes(method);
}

/** Methods where the customer acts themselves, online: evidence is the request's origin. */
const onlineMethods: readonly ConsentMethod[] = ['web_form', 'portal'];

export interface ConsentGrant {
  readonly purpose: string;
  readonly noticeVersion: string;
  readonly method: ConsentMethod;
  readonly startsAt?: string | undefined;
  readonly expiresAt?: string | undefined;
  readonly reference?: string | undefined;
  readonly documentRef?: string | undefined;
}

/** Where a request came from: hashed into the evidence of online consent, never stored. */
export interface RequestOrigin {
  readonly ip: string;
  readonly userAgent: string;
}

/** A customer's current agreement for one purpose: the latest grant, unless something ended it. */
export interface Agreement {
  readonly purpose: string;
  readonly grantId: string;
  readonly noticeVersion: string;
  readonly basis: LawfulBasis | null;
  readonly startsAt: string | null;
  readonly expiresAt: string | null;
  readonly reference: string | null;
  /** The kind of event that ended the grant, if one did. */
  readonly endedBy: 'withdrawn' | 'expired' | null;
}

export function isAgreementActive(a: Agreement, now: Date): boolean {
  const at = now.toISOString();
  return (
    a.endedBy === null &&
    (a.expiresAt === null || a.expiresAt > at) &&
    (a.startsAt === null || a.startsAt <= at)
  );
}

function derive(events: readonly store.EventSummary[]): Map<string, Map<string, Agreement>> {
  const ended = new Map<string, 'withdrawn' | 'expired'>();
  for (const e of events) {
    if (e.ends_id !== null && (e.event === 'withdrawn' || e.event === 'expired'))
      ended.set(e.ends_id, e.event);
  }
  const result = new Map<string, Map<string, Agreement>>();
  for (const e of events) {
    if (e.event !== 'granted') continue;
    let perCustomer = result.get(e.customer_id);
    if (perCustomer === undefined)
      result.set(e.customer_id, (perCustomer = new Map<string, Agreement>()));
    // Events come in id order, so a later grant replaces an earlier one.
    perCustomer.set(e.purpose_key, {
      purpose: e.purpose_key,
      grantId: e.id,
      noticeVersion: e.notice_version,
      basis: e.basis as LawfulBasis | null,
      startsAt: e.starts_at,
      expiresAt: e.expires_at,
      reference: e.reference,
      endedBy: ended.get(e.id) ?? null,
    });
  }
  return result;
}

/** Each customer's current agreement per purpose, active or not. */
export async function agreementsOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerIds: readonly string[],
): Promise<Map<string, Map<string, Agreement>>> {
  const all = derive(await store.listEvents(db, workspaceId, customerIds));
  for (const id of customerIds) if (!all.has(id)) all.set(id, new Map());
  return all;
}

/** Each customer's active agreements (not ended, started, not expired at `now`), by purpose. */
export async function activeAgreementsOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerIds: readonly string[],
  now: Date,
): Promise<Map<string, Map<string, Agreement>>> {
  const all = await agreementsOf(db, workspaceId, customerIds);
  for (const [id, perCustomer] of all) {
    all.set(id, new Map([...perCustomer].filter(([, a]) => isAgreementActive(a, now))));
  }
  return all;
}

/**
 * The terms an agreement covers: those of the notice version it was given under, while its
 * purpose is active. Special categories are covered only on explicit consent.
 */
export function termsOf(
  purposes: ReadonlyMap<string, Purpose>,
  agreement: Agreement,
): NoticeTerms | undefined {
  const purpose = purposes.get(agreement.purpose);
  if (purpose?.status !== 'active') return undefined;
  return purpose.notices.get(agreement.noticeVersion);
}

export function categoriesOf(
  purposes: ReadonlyMap<string, Purpose>,
  agreement: Agreement,
): DataCategory[] {
  const terms = termsOf(purposes, agreement);
  if (terms === undefined) return [];
  return terms.categories.filter(
    (c) => !specialCategories.includes(c) || terms.lawfulBasis === 'explicit_consent',
  );
}

/** The categories that some active agreement covers. */
export function coveredCategories(
  purposes: ReadonlyMap<string, Purpose>,
  agreements: Iterable<Agreement>,
): Set<DataCategory> {
  const covered = new Set<DataCategory>();
  for (const a of agreements) for (const c of categoriesOf(purposes, a)) covered.add(c);
  return covered;
}

function isoOrUndefined(value: string | undefined): string | undefined {
  return value === undefined ? undefined : new Date(value).toISOString();
}

/**
 * Checks one agreement to be recorded against the purposes and the clock; throws a stable code
 * naming the input path. Answers the purpose and the terms agreed to.
 */
export function checkGrant(
  purposes: ReadonlyMap<string, Purpose>,
  grant: ConsentGrant,
  path: string,
  now: Date,
): { purpose: Purpose; terms: NoticeTerms } {
  const purpose = getPurpose(purposes, grant.purpose, `${path}.purpose`);
  if (purpose.status !== 'active') {
    throw new DomainError('purpose_retired', 'This purpose is retired; nobody can agree to it.', {
      fields: [`${path}.purpose`],
    });
  }
  const terms = purpose.notices.get(grant.noticeVersion);
  if (terms === undefined) {
    throw new DomainError('unknown_notice_version', 'No such notice version for this purpose.', {
      fields: [`${path}.noticeVersion`],
    });
  }
  // New agreements are to the text in force: an older notice may cover other categories.
  if (grant.noticeVersion !== purpose.noticeVersion) {
    throw new DomainError('notice_outdated', 'A newer notice version replaces this one.', {
      fields: [`${path}.noticeVersion`],
    });
  }
  if (documentedMethods.includes(grant.method) && grant.documentRef === undefined) {
    throw new DomainError('invalid_input', 'This method needs the reference of its document.', {
      fields: [`${path}.documentRef`],
    });
  }
  if (terms.lawfulBasis === 'explicit_consent' && grant.method === 'import') {
    throw new DomainError('invalid_input', 'Explicit consent cannot be imported.', {
      fields: [`${path}.method`],
    });
  }
  const startsAt = isoOrUndefined(grant.startsAt);
  const expiresAt = isoOrUndefined(grant.expiresAt);
  if (expiresAt !== undefined && expiresAt <= (startsAt ?? now.toISOString())) {
    throw new DomainError('invalid_input', 'The expiry must be after the start and after now.', {
      fields: [`${path}.expiresAt`],
    });
  }
  return { purpose, terms };
}

export interface ConsentEvidence {
  readonly staffId?: string;
  readonly documentRef?: string;
  readonly ipHash?: string;
  readonly userAgentHash?: string;
}

/**
 * What proves an event: for online methods, keyed hashes (per workspace) of the IP address and
 * user agent, never the values; for staff, who recorded it and from which document.
 */
export function evidenceFor(
  ctx: Pick<AppContext, 'blindIndex'>,
  actor: Actor,
  method: ConsentMethod,
  origin: RequestOrigin | undefined,
  documentRef: string | undefined,
): ConsentEvidence {
  const evidence: { -readonly [K in keyof ConsentEvidence]: ConsentEvidence[K] } = {};
  if (actor.type !== 'customer' && actor.type !== 'system') evidence.staffId = actor.id;
  if (documentRef !== undefined) evidence.documentRef = documentRef;
  if (onlineMethods.includes(method) && origin !== undefined) {
    evidence.ipHash = ctx.blindIndex.digest(actor.workspaceId, 'consent-evidence/ip', origin.ip);
    evidence.userAgentHash = ctx.blindIndex.digest(
      actor.workspaceId,
      'consent-evidence/user-agent',
      origin.userAgent,
    );
  }
  return evidence;
}

/** The `granted` event rows for checked grants. */
export function grantRows(
  ctx: Pick<AppContext, 'blindIndex'>,
  actor: Actor,
  customerId: string,
  grants: readonly { grant: ConsentGrant; terms: NoticeTerms }[],
  origin: RequestOrigin | undefined,
  at: string,
): ConsentEventTable[] {
  return grants.map(({ grant, terms }) => ({
    workspace_id: actor.workspaceId,
    id: newId(),
    customer_id: customerId,
    purpose_key: grant.purpose,
    notice_version: grant.noticeVersion,
    method: grant.method,
    event: 'granted',
    at,
    basis: terms.lawfulBasis,
    starts_at: isoOrUndefined(grant.startsAt) ?? null,
    expires_at: isoOrUndefined(grant.expiresAt) ?? null,
    reference: grant.reference ?? null,
    evidence: JSON.stringify(evidenceFor(ctx, actor, grant.method, origin, grant.documentRef)),
    ends_id: null,
    actor_type: actor.type,
    actor_id: actor.id,
  }));
}

/** The event that ends an agreement (a withdrawal or an expiry); at most one per grant. */
export function endRow(
  ctx: Pick<AppContext, 'blindIndex'>,
  actor: Actor,
  customerId: string,
  agreement: Agreement,
  kind: 'withdrawn' | 'expired',
  method: ConsentMethod | null,
  origin: RequestOrigin | undefined,
  documentRef: string | undefined,
  at: string,
): ConsentEventTable {
  return {
    workspace_id: actor.workspaceId,
    id: newId(),
    customer_id: customerId,
    purpose_key: agreement.purpose,
    notice_version: agreement.noticeVersion,
    method: method ?? 'system',
    event: kind,
    at,
    basis: agreement.basis,
    starts_at: null,
    expires_at: null,
    reference: null,
    evidence:
      method === null
        ? JSON.stringify({})
        : JSON.stringify(evidenceFor(ctx, actor, method, origin, documentRef)),
    ends_id: agreement.grantId,
    actor_type: actor.type,
    actor_id: actor.id,
  };
}

export async function insertConsentEvents(
  db: Kysely<DataDb>,
  rows: readonly ConsentEventTable[],
): Promise<void> {
  await store.insertEvents(db, rows);
}

/** Removes a customer's consent events; part of erasure (the audit chain keeps their ids). */
export async function deleteConsentsOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await store.deleteEvents(db, workspaceId, customerId);
}

export interface ConsentHistoryEvent {
  readonly id: string;
  readonly event: ConsentEventKind;
  readonly purpose: string;
  readonly noticeVersion: string;
  readonly basis: string | null;
  readonly method: string;
  readonly at: string;
  readonly startsAt: string | null;
  readonly expiresAt: string | null;
  readonly reference: string | null;
  readonly endsEventId: string | null;
  readonly evidence: ConsentEvidence;
}

export interface ConsentState {
  readonly purpose: string;
  readonly state: 'active' | 'pending' | 'withdrawn' | 'expired';
  readonly basis: string | null;
  readonly noticeVersion: string;
  readonly grantEventId: string;
  readonly startsAt: string | null;
  readonly expiresAt: string | null;
}

function stateOf(a: Agreement, now: Date): ConsentState['state'] {
  if (a.endedBy !== null) return a.endedBy;
  if (a.expiresAt !== null && a.expiresAt <= now.toISOString()) return 'expired';
  if (a.startsAt !== null && a.startsAt > now.toISOString()) return 'pending';
  return 'active';
}

/** A customer's current state per purpose and full history, from the ledger alone. */
export async function consentHistory(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  now: Date,
): Promise<{ current: ConsentState[]; history: ConsentHistoryEvent[] }> {
  const rows = await store.listHistory(db, workspaceId, customerId);
  const agreements = derive(rows).get(customerId) ?? new Map<string, Agreement>();
  return {
    current: [...agreements.values()]
      .map((a) => ({
        purpose: a.purpose,
        state: stateOf(a, now),
        basis: a.basis,
        noticeVersion: a.noticeVersion,
        grantEventId: a.grantId,
        startsAt: a.startsAt,
        expiresAt: a.expiresAt,
      }))
      .sort((a, b) => a.purpose.localeCompare(b.purpose)),
    history: rows.map((r) => ({
      id: r.id,
      event: r.event as ConsentEventKind,
      purpose: r.purpose_key,
      noticeVersion: r.notice_version,
      basis: r.basis,
      method: r.method,
      at: r.at,
      startsAt: r.starts_at,
      expiresAt: r.expires_at,
      reference: r.reference,
      endsEventId: r.ends_id,
      evidence: r.evidence === null ? {} : (JSON.parse(r.evidence) as ConsentEvidence),
    })),
  };
}

export interface ConsentStats {
  readonly purposes: {
    readonly purpose: string;
    readonly active: number;
    readonly pending: number;
    readonly withdrawn: number;
    readonly expired: number;
  }[];
  readonly withdrawalsPerMonth: { readonly month: string; readonly count: number }[];
}

/**
 * Counts only: current state per purpose (of customers still held), and withdrawals per
 * calendar month (UTC), erased customers' included.
 */
export async function consentStats(
  db: Kysely<DataDb>,
  workspaceId: string,
  purposeKeys: readonly string[],
  now: Date,
): Promise<ConsentStats> {
  const rows = await store.listWorkspaceEvents(db, workspaceId);
  const counts = new Map(
    purposeKeys.map((k) => [k, { purpose: k, active: 0, pending: 0, withdrawn: 0, expired: 0 }]),
  );
  for (const perCustomer of derive(rows).values()) {
    for (const a of perCustomer.values()) {
      let c = counts.get(a.purpose);
      if (c === undefined)
        counts.set(
          a.purpose,
          (c = { purpose: a.purpose, active: 0, pending: 0, withdrawn: 0, expired: 0 }),
        );
      c[stateOf(a, now)] += 1;
    }
  }
  return {
    purposes: [...counts.values()].sort((a, b) => a.purpose.localeCompare(b.purpose)),
    // From the audit chain: a withdrawal that erased the customer took its ledger rows along.
    withdrawalsPerMonth: await countActionPerMonth(db, workspaceId, 'consent.withdrawn', 'done'),
  };
}

/** Current grants that have run out or whose purpose was retired (see the store). */
export async function listEndableGrants(
  db: Kysely<DataDb>,
  now: Date,
  limit: number,
  only?: { readonly workspaceId: string; readonly purposeKey: string },
): Promise<{ workspaceId: string; customerId: string; purpose: string; grantId: string }[]> {
  return (await store.listEndableGrants(db, now.toISOString(), limit, only)).map((r) => ({
    workspaceId: r.workspace_id,
    customerId: r.customer_id,
    purpose: r.purpose_key,
    grantId: r.id,
  }));
}
