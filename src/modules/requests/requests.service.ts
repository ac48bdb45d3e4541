import { z } from 'zod';
import type { Actor, AppContext } from '../../platform/context.js';
import type { SubjectRequestTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { newId, type Brand } from '../../platform/ids.js';
import { appendAudit, recordAudit, type AuditEvent } from '../audit/index.js';
import {
  describeHoldings,
  destroyCustomerKeys,
  lockCustomer,
  openSubjectFields,
  sealSubjectFields,
} from '../customers/index.js';
import {
  addMonths,
  dueDateFor,
  extendedDueDateFor,
  extensionMonthsOf,
  isBefore,
  MAX_EXTENSION_MONTHS,
  utcDateOf,
} from './requests.dates.js';
import * as store from './requests.store.js';

/**
 * Data-subject requests that reached the business outside the portal (a letter, a call, an
 * email, a visit). Staff record them with the date of receipt; the deadline is one calendar
 * month later and may be extended, on a recorded reason, by two more months at most, while the
 * request is open and not yet past due. Free texts are sealed under a key of the request itself
 * (not of the customer), so the record of how a request was handled outlives the customer's
 * erasure. Every decision, refusals included, is audited in ids and names only.
 */

export const requestKinds = ['access', 'rectification', 'erasure', 'objection'] as const;
export const requestChannels = ['letter', 'phone', 'email', 'in_person'] as const;
export const requestStatuses = ['open', 'completed', 'refused'] as const;
export const requestOutcomes = ['completed', 'refused'] as const;

export type RequestKind = (typeof requestKinds)[number];
export type RequestChannel = (typeof requestChannels)[number];
export type RequestStatus = (typeof requestStatuses)[number];
export type RequestOutcome = (typeof requestOutcomes)[number];
export type SubjectRequestId = Brand<string, 'SubjectRequestId'>;

/** A receipt date may lie at most this far back (a request found in a drawer a year on is not). */
const MAX_BACKDATE_MONTHS = 12;

export interface Extension {
  readonly months: number;
  readonly reason: string;
  readonly extendedAt: string;
  readonly extendedBy: string;
}

export interface SubjectRequest {
  readonly id: SubjectRequestId;
  readonly customerId: string | null;
  readonly kind: RequestKind;
  readonly channel: RequestChannel;
  readonly receivedOn: string;
  readonly dueOn: string;
  readonly extendedTo: string | null;
  /** The deadline in force: the extended one when there is one. */
  readonly effectiveDueOn: string;
  readonly status: RequestStatus;
  /** Open and past its effective deadline (UTC date of the workspace clock). */
  readonly isOverdue: boolean;
  readonly details: string | null;
  readonly extensions: Extension[];
  readonly recordedBy: string;
  readonly createdAt: string;
  readonly closedAt: string | null;
  readonly closedBy: string | null;
  readonly outcomeNote: string | null;
}

export interface RecordRequestInput {
  readonly customerId?: string | undefined;
  readonly kind: RequestKind;
  readonly channel: RequestChannel;
  readonly receivedOn: string;
  readonly details?: string | undefined;
}

export interface ListRequestsInput {
  readonly status?: RequestStatus | undefined;
  readonly overdue?: boolean | undefined;
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** The sealed fields of a request, by the field name they are sealed under. */
interface Texts {
  readonly details?: string | undefined;
  readonly extensions?: string | undefined;
  readonly outcome_note?: string | undefined;
}

const storedExtensions = z.array(
  z.object({
    months: z.number().int(),
    reason: z.string(),
    extendedAt: z.string(),
    extendedBy: z.string(),
  }),
);

function oneOf<const T extends readonly string[]>(values: T, value: string): T[number] {
  if (!values.includes(value)) throw new DomainError('internal_error', 'Unexpected stored value.');
  return value;
}

function effectiveDueOf(row: SubjectRequestTable): string {
  return row.extended_to ?? row.due_on;
}

function isOverdue(row: SubjectRequestTable, today: string): boolean {
  return row.status === 'open' && isBefore(effectiveDueOf(row), today);
}

function toRequest(row: SubjectRequestTable, texts: Texts, today: string): SubjectRequest {
  return {
    id: row.id as SubjectRequestId,
    customerId: row.customer_id,
    kind: oneOf(requestKinds, row.kind),
    channel: oneOf(requestChannels, row.channel),
    receivedOn: row.received_on,
    dueOn: row.due_on,
    extendedTo: row.extended_to,
    effectiveDueOn: effectiveDueOf(row),
    status: oneOf(requestStatuses, row.status),
    isOverdue: isOverdue(row, today),
    details: texts.details ?? null,
    extensions:
      texts.extensions === undefined ? [] : storedExtensions.parse(JSON.parse(texts.extensions)),
    recordedBy: row.recorded_by,
    createdAt: row.created_at,
    closedAt: row.closed_at,
    closedBy: row.closed_by,
    outcomeNote: texts.outcome_note ?? null,
  };
}

/** Opens whatever texts the row holds; a request without any has no key to open. */
async function openTexts(ctx: AppContext, row: SubjectRequestTable): Promise<Texts> {
  const sealed: Record<string, Uint8Array> = {};
  if (row.details_sealed !== null) sealed['details'] = row.details_sealed;
  if (row.extension_reason_sealed !== null) sealed['extensions'] = row.extension_reason_sealed;
  if (row.outcome_sealed !== null) sealed['outcome_note'] = row.outcome_sealed;
  if (Object.keys(sealed).length === 0) return {};
  return openSubjectFields(ctx, row.workspace_id, row.id, 'requests', sealed);
}

async function sealTexts(
  ctx: AppContext,
  workspaceId: string,
  id: string,
  texts: Record<string, string>,
): Promise<Record<string, Buffer>> {
  return sealSubjectFields(ctx, workspaceId, id, 'requests', texts);
}

function todayOf(ctx: AppContext): string {
  return utcDateOf(ctx.clock.now());
}

function notFound(): DomainError {
  return new DomainError('not_found', 'No such data-subject request.');
}

function ref(id: string): string {
  return `subject_request:${id}`;
}

async function findOrAudit(
  ctx: AppContext,
  actor: Actor,
  id: string,
  action: string,
): Promise<SubjectRequestTable> {
  const row = await ctx.data.read(actor.workspaceId, (db) =>
    store.findRequest(db, actor.workspaceId, id),
  );
  if (row === undefined) {
    await recordAudit(ctx, actor, {
      action,
      fields: [ref(id)],
      outcome: 'denied',
      reason: 'not_found',
    });
    throw notFound();
  }
  return row;
}

function checkReceivedOn(receivedOn: string, today: string): void {
  if (isBefore(today, receivedOn)) {
    throw new DomainError('invalid_input', 'The date of receipt cannot be in the future.', {
      fields: ['body.receivedOn'],
    });
  }
  if (isBefore(receivedOn, addMonths(today, -MAX_BACKDATE_MONTHS))) {
    throw new DomainError('invalid_input', 'The date of receipt is more than a year ago.', {
      fields: ['body.receivedOn'],
    });
  }
}

/**
 * Records a request received elsewhere. A named customer must exist in the actor's workspace
 * (checked again under the customer's lock in the writing transaction); otherwise 404, as for a
 * customer that is not there, and nothing is kept but the audit entry of the refusal.
 */
export async function recordRequest(
  ctx: AppContext,
  actor: Actor,
  input: RecordRequestInput,
): Promise<SubjectRequest> {
  const workspaceId = actor.workspaceId;
  const now = ctx.clock.now();
  const today = utcDateOf(now);
  checkReceivedOn(input.receivedOn, today);
  const customerId = input.customerId ?? null;
  const audit = (outcome: 'done' | 'denied', reason: string | null, id: string): AuditEvent => ({
    action: 'subject_request.record',
    customerId,
    fields: [
      ref(id),
      `kind:${input.kind}`,
      `channel:${input.channel}`,
      ...(input.details === undefined ? [] : ['details']),
    ],
    outcome,
    reason,
  });
  const id = newId<SubjectRequestId>();
  if (customerId !== null) {
    // First, non-authoritative: no key is made for a request refused anyway.
    const holdings = await describeHoldings(ctx, workspaceId, customerId);
    if (!holdings.exists) {
      await recordAudit(ctx, actor, audit('denied', 'not_found', id));
      throw new DomainError('not_found', 'No such customer.');
    }
  }
  const texts = input.details === undefined ? {} : { details: input.details };
  const sealed = input.details === undefined ? {} : await sealTexts(ctx, workspaceId, id, texts);
  const row: SubjectRequestTable = {
    workspace_id: workspaceId,
    id,
    customer_id: customerId,
    kind: input.kind,
    channel: input.channel,
    received_on: input.receivedOn,
    due_on: dueDateFor(input.receivedOn),
    extended_to: null,
    extension_reason_sealed: null,
    details_sealed: sealed['details'] ?? null,
    status: 'open',
    recorded_by: actor.id,
    created_at: now.toISOString(),
    closed_at: null,
    closed_by: null,
    outcome_sealed: null,
  };
  const refused = await ctx.data.batch.run(workspaceId, async (scope) => {
    const exists =
      customerId === null || (await lockCustomer(ctx, scope.trx, workspaceId, customerId));
    if (exists) await store.insertRequest(scope.trx, row);
    const reason = exists ? null : 'not_found';
    await appendAudit(ctx, scope, actor, audit(exists ? 'done' : 'denied', reason, id));
    return reason;
  });
  if (refused !== null) {
    // Erased meanwhile: the key just made for the details must not outlive the refusal.
    if (row.details_sealed !== null) await destroyCustomerKeys(ctx, workspaceId, id);
    throw new DomainError('not_found', 'No such customer.');
  }
  return toRequest(row, texts, today);
}

/** Encodes the position after a row: its effective due date and its id (neither is personal). */
function cursorOf(row: SubjectRequestTable): string {
  return `${effectiveDueOf(row)}_${row.id}`;
}

function parseCursor(cursor: string): { dueOn: string; id: string } {
  const [dueOn = '', id = ''] = cursor.split('_');
  return { dueOn, id };
}

/**
 * The privacy officer's list, soonest effective deadline first. `overdue: true` keeps the open
 * requests whose deadline has passed. The read of their texts is audited before they are opened.
 */
export async function listRequests(
  ctx: AppContext,
  actor: Actor,
  input: ListRequestsInput,
): Promise<{ items: SubjectRequest[]; nextCursor: string | null }> {
  const today = todayOf(ctx);
  const rows = await ctx.data.read(actor.workspaceId, (db) =>
    store.pageRequests(db, actor.workspaceId, {
      status: input.status,
      overdue: input.overdue,
      today,
      after: input.cursor === undefined ? undefined : parseCursor(input.cursor),
      limit: input.limit + 1,
    }),
  );
  const shown = rows.slice(0, input.limit);
  await recordAudit(ctx, actor, {
    action: 'subject_request.list',
    fields: shown.map((r) => ref(r.id)),
    outcome: 'allowed',
  });
  const items = await Promise.all(
    shown.map(async (r) => toRequest(r, await openTexts(ctx, r), today)),
  );
  const last = shown.at(-1);
  return {
    items,
    nextCursor: rows.length > input.limit && last !== undefined ? cursorOf(last) : null,
  };
}

/** One request, with its texts; the read is audited before they are opened. */
export async function getRequest(
  ctx: AppContext,
  actor: Actor,
  id: string,
): Promise<SubjectRequest> {
  const row = await findOrAudit(ctx, actor, id, 'subject_request.read');
  await recordAudit(ctx, actor, {
    action: 'subject_request.read',
    customerId: row.customer_id,
    fields: [ref(id)],
    outcome: 'allowed',
  });
  return toRequest(row, await openTexts(ctx, row), todayOf(ctx));
}

type ExtendRefusal = 'closed' | 'past_due' | 'limit_reached';

function extendRefusal(
  row: SubjectRequestTable,
  months: number,
  today: string,
): ExtendRefusal | null {
  if (row.status !== 'open') return 'closed';
  if (isBefore(effectiveDueOf(row), today)) return 'past_due';
  if (extensionMonthsOf(row.received_on, row.extended_to) + months > MAX_EXTENSION_MONTHS) {
    return 'limit_reached';
  }
  return null;
}

const extendRefusalMessage: Record<ExtendRefusal | 'changed_meanwhile', string> = {
  closed: 'The request is closed; it cannot be extended.',
  past_due: 'The deadline has passed; it can no longer be extended.',
  limit_reached: 'A request can be extended by two months at most in total.',
  changed_meanwhile: 'The request changed meanwhile; read it again.',
};

/**
 * Extends the deadline by one or two months (two at most in total, counted from receipt) on a
 * recorded reason, while the request is open and its deadline has not passed. Each reason is
 * kept, with who gave it and when, sealed under the request's key.
 */
export async function extendRequest(
  ctx: AppContext,
  actor: Actor,
  id: string,
  input: { readonly months: number; readonly reason: string },
): Promise<SubjectRequest> {
  const workspaceId = actor.workspaceId;
  const row = await findOrAudit(ctx, actor, id, 'subject_request.extend');
  const now = ctx.clock.now();
  const today = utcDateOf(now);
  const audit = (outcome: 'done' | 'denied', reason: string | null): AuditEvent => ({
    action: 'subject_request.extend',
    customerId: row.customer_id,
    fields: [ref(id), `months:${input.months}`, 'extension_reason'],
    outcome,
    reason,
  });
  const refusal = extendRefusal(row, input.months, today);
  if (refusal !== null) {
    await recordAudit(ctx, actor, audit('denied', refusal));
    throw new DomainError('conflict', extendRefusalMessage[refusal]);
  }
  const texts = await openTexts(ctx, row);
  const extensions: Extension[] = [
    ...(texts.extensions === undefined ? [] : storedExtensions.parse(JSON.parse(texts.extensions))),
    {
      months: input.months,
      reason: input.reason,
      extendedAt: now.toISOString(),
      extendedBy: actor.id,
    },
  ];
  const serialised = JSON.stringify(extensions);
  const sealed = await sealTexts(ctx, workspaceId, id, { extensions: serialised });
  const changes = {
    extended_to: extendedDueDateFor(
      row.received_on,
      extensionMonthsOf(row.received_on, row.extended_to) + input.months,
    ),
    extension_reason_sealed: sealed['extensions'] ?? null,
  };
  const changed = await ctx.data.batch.run(workspaceId, async (scope) => {
    // Only if nothing changed since the decision above (a closing, another extension).
    const n = await store.updateOpenRequest(scope.trx, workspaceId, id, row.extended_to, changes);
    await appendAudit(
      ctx,
      scope,
      actor,
      audit(n === 1 ? 'done' : 'denied', n === 1 ? null : 'changed_meanwhile'),
    );
    return n === 1;
  });
  if (!changed) throw new DomainError('conflict', extendRefusalMessage.changed_meanwhile);
  return toRequest({ ...row, ...changes }, { ...texts, extensions: serialised }, today);
}

/** Closes an open request as completed or refused, with an optional sealed note. Once only. */
export async function closeRequest(
  ctx: AppContext,
  actor: Actor,
  id: string,
  input: { readonly outcome: RequestOutcome; readonly note?: string | undefined },
): Promise<SubjectRequest> {
  const workspaceId = actor.workspaceId;
  const row = await findOrAudit(ctx, actor, id, 'subject_request.close');
  const now = ctx.clock.now();
  const audit = (outcome: 'done' | 'denied', reason: string): AuditEvent => ({
    action: 'subject_request.close',
    customerId: row.customer_id,
    fields: [
      ref(id),
      `outcome:${input.outcome}`,
      ...(input.note === undefined ? [] : ['outcome_note']),
    ],
    outcome,
    reason,
  });
  if (row.status !== 'open') {
    await recordAudit(ctx, actor, audit('denied', 'closed'));
    throw new DomainError('conflict', 'The request is closed already.');
  }
  const sealed =
    input.note === undefined
      ? {}
      : await sealTexts(ctx, workspaceId, id, { outcome_note: input.note });
  const changes = {
    status: input.outcome,
    closed_at: now.toISOString(),
    closed_by: actor.id,
    outcome_sealed: sealed['outcome_note'] ?? null,
  };
  const changed = await ctx.data.batch.run(workspaceId, async (scope) => {
    const n = await store.updateOpenRequest(scope.trx, workspaceId, id, undefined, changes);
    await appendAudit(
      ctx,
      scope,
      actor,
      audit(n === 1 ? 'done' : 'denied', n === 1 ? input.outcome : 'closed'),
    );
    return n === 1;
  });
  if (!changed) throw new DomainError('conflict', 'The request is closed already.');
  const texts = {
    ...(await openTexts(ctx, row)),
    ...(input.note === undefined ? {} : { outcome_note: input.note }),
  };
  return toRequest({ ...row, ...changes }, texts, utcDateOf(now));
}
