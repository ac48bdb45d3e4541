import type { Actor, AppContext } from '../../platform/context.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { DomainError } from '../../platform/errors.js';
import { newId } from '../../platform/ids.js';
import type { ChangeRequestTable } from '../../platform/db/schema.js';
import type { Mailer } from '../../platform/mail/mailer.js';
import type { TextSender } from '../../platform/sms.js';
import { appendAudit, customerAuditEntries, recordAudit } from '../audit/index.js';
import {
  consentHistory,
  coveredCategories,
  activeAgreementsOf,
  type Agreement,
  type RequestOrigin,
} from '../consent/index.js';
import {
  contactDigest,
  fieldCategory,
  findCustomersByContact,
  normaliseEmail,
  normalisePhone,
  openSubjectFields,
  readOwnCustomer,
  sealSubjectFields,
  updateCustomer,
  type FieldName,
  type IndexedField,
  type TaskGrants,
  type WriteGuard,
} from '../customers/index.js';
import { grantAgreements, withdrawAgreement, type AgreementEnd } from '../agreements/index.js';
import { eraseCustomer } from '../erasure/index.js';
import {
  cachedPurposes,
  dataCategories,
  type DataCategory,
  type NoticeLanguage,
} from '../purposes/index.js';
import { staffDisplayNames } from '../staff/index.js';
import {
  CODE_MINUTES,
  DAY_MINUTES,
  SESSION_IDLE_MINUTES,
  checkCode,
  customerActor,
  issueCode,
  openSession,
  requireFreshCode,
  type NewPortalSession,
  type PortalPrincipal,
} from './portal.access.js';
import * as store from './portal.store.js';

/** What the portal needs from outside the process: mail, text messages, the vault's guard. */
export interface PortalDeps {
  readonly mailer: Mailer;
  readonly texts: TextSender;
  readonly guard: WriteGuard;
}

const codeTexts = {
  en: {
    subject: 'Your Custodia code',
    body: (code: string) =>
      `Your code is ${code}.\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this message: nobody can use your data without it.`,
  },
  es: {
    subject: 'Tu código de Custodia',
    body: (code: string) =>
      `Tu código es ${code}.\n\nEs válido durante 10 minutos. Si no lo has pedido, ignora este mensaje: nadie puede usar tus datos sin él.`,
  },
} as const;

/**
 * Sends without waiting: the answer to "send me a code" takes the same time whether or not the
 * address belongs to a customer. A failure is logged by code id only.
 */
function dispatch(ctx: AppContext, send: () => Promise<void>, codeId: string): void {
  send().catch((error: unknown) => {
    ctx.logger.warn(
      { codeId, err: { code: (error as { code?: unknown }).code ?? 'unknown' } },
      'one-time code could not be delivered',
    );
  });
}

function sendCode(
  ctx: AppContext,
  deps: PortalDeps,
  to: { field: IndexedField; address: string },
  code: { code: string; id: string },
  language: NoticeLanguage,
): void {
  const t = codeTexts[language];
  dispatch(
    ctx,
    () =>
      to.field === 'email'
        ? deps.mailer.send({ to: to.address, subject: t.subject, text: t.body(code.code) })
        : deps.texts.send({ to: to.address, text: t.body(code.code) }),
    code.id,
  );
}

/**
 * Step one of signing in: a code to the email, if it is one customer's. The answer is the same
 * whether or not it is (and no mail goes to an address that is not a customer's). An address
 * several customers share opens no session: they must ask staff.
 */
export async function startLogin(
  ctx: AppContext,
  deps: PortalDeps,
  input: { workspaceId: string; email: string; language: NoticeLanguage },
  origin: { ip: string; requestId: string | null },
): Promise<void> {
  const email = normaliseEmail(input.email, 'body.email');
  const ids = await findCustomersByContact(ctx, input.workspaceId, 'email', email);
  const customerId = ids.length === 1 ? (ids[0] ?? null) : null;
  const actor: Actor =
    customerId === null
      ? {
          type: 'customer',
          id: 'unknown',
          role: null,
          workspaceId: input.workspaceId,
          requestId: origin.requestId,
        }
      : customerActor(input.workspaceId, customerId, origin.requestId);
  const code = await issueCode(ctx, actor, {
    kind: 'login',
    address: email,
    customerId,
    sourceIp: origin.ip,
  });
  if (customerId !== null) {
    sendCode(ctx, deps, { field: 'email', address: email }, code, input.language);
  }
}

/**
 * Step two: the code opens a session. Passing it also proves the customer controls the email,
 * which is recorded as the email's verification.
 */
export async function verifyLogin(
  ctx: AppContext,
  input: { workspaceId: string; email: string; code: string; language: NoticeLanguage },
  origin: { requestId: string | null },
): Promise<NewPortalSession> {
  const email = normaliseEmail(input.email, 'body.email');
  const actor: Actor = {
    type: 'customer',
    id: 'unknown',
    role: null,
    workspaceId: input.workspaceId,
    requestId: origin.requestId,
  };
  let session: NewPortalSession | undefined;
  await checkCode(
    ctx,
    actor,
    { kind: 'login', address: email, sessionId: null, code: input.code },
    async (row, scope) => {
      const customerId = row.customer_id ?? '';
      session = await openSession(ctx, scope, actor, customerId, input.language);
      await store.upsertVerification(scope.trx, {
        workspace_id: input.workspaceId,
        customer_id: customerId,
        field: 'email',
        value_digest: contactDigest(ctx, input.workspaceId, 'email', email),
        verified_at: ctx.clock.now().toISOString(),
      });
      await appendAudit(
        ctx,
        scope,
        customerActor(input.workspaceId, customerId, origin.requestId),
        {
          action: 'portal.login',
          customerId,
          outcome: 'allowed',
          reason: 'email_code',
        },
      );
    },
  );
  if (session === undefined) throw new DomainError('code_invalid', 'The code is not right.');
  return session;
}

/** A fresh code to the customer's email, before erasure or an email change. */
export async function startReverify(
  ctx: AppContext,
  deps: PortalDeps,
  actor: Actor,
  session: PortalPrincipal,
  origin: { ip: string },
): Promise<void> {
  const own = await readOwnCustomer(ctx, actor, 'portal.reverify.address', ['email']);
  const email = own.values.get('email');
  if (typeof email !== 'string') {
    throw new DomainError('conflict', 'There is no email address to send a code to.');
  }
  const code = await issueCode(ctx, actor, {
    kind: 'reverify',
    address: email,
    customerId: actor.id,
    sessionId: session.sessionId,
    sourceIp: origin.ip,
  });
  sendCode(ctx, deps, { field: 'email', address: email }, code, session.language);
}

export async function verifyReverify(
  ctx: AppContext,
  actor: Actor,
  session: PortalPrincipal,
  code: string,
): Promise<{ validUntil: string }> {
  const at = ctx.clock.now();
  await checkCode(
    ctx,
    actor,
    { kind: 'reverify', address: null, sessionId: session.sessionId, code },
    async (_row, scope) => {
      await store.updateSession(scope.trx, actor.workspaceId, session.sessionId, {
        reverified_at: at.toISOString(),
      });
    },
  );
  return { validUntil: new Date(at.getTime() + 10 * 60_000).toISOString() };
}

/** Who receives each category's data inside the organisation (processors come later). */
const RECIPIENTS = [
  {
    type: 'staff',
    description: {
      en: 'Staff handling a task for you under one of these purposes (agents, privacy officers)',
      es: 'Personal que atiende una tarea tuya para uno de estos fines (agentes, delegados de protección de datos)',
    },
  },
] as const;

const SOURCES: Record<string, string> = {
  web_form: 'provided_by_you',
  portal: 'provided_by_you',
  staff_recorded: 'recorded_by_staff',
  paper: 'recorded_by_staff',
  phone: 'recorded_by_staff',
  import: 'imported',
};

function groupValues(
  values: ReadonlyMap<FieldName, unknown>,
): Record<string, Record<string, unknown>> {
  const groups: Record<string, Record<string, unknown>> = {};
  for (const [field, value] of values) (groups[fieldCategory[field]] ??= {})[field] = value;
  return groups;
}

/** Everything held for the customer, and for each category why (GDPR Art. 15). Audited. */
export async function readMe(
  ctx: AppContext,
  actor: Actor,
  session: PortalPrincipal,
  action = 'customer.self_read',
) {
  const own = await readOwnCustomer(ctx, actor, action);
  const ws = actor.workspaceId;
  const now = ctx.clock.now();
  const purposes = await cachedPurposes(ctx, ws);
  const { active, history, verifications } = await ctx.data.read(ws, async (db) => ({
    active:
      (await activeAgreementsOf(db, ws, [actor.id], now)).get(actor.id) ??
      new Map<string, Agreement>(),
    history: await consentHistory(db, ws, actor.id, now),
    verifications: await store.listVerifications(db, ws, actor.id),
  }));
  const lang = session.language;
  const held = new Set<string>([...own.values.keys()].map((f) => fieldCategory[f]));
  const categories = dataCategories
    .filter((c) => held.has(c) || coveredCategories(purposes, active.values()).has(c))
    .map((category: DataCategory) => {
      const holding = [...active.values()].filter((a) =>
        coveredCategories(purposes, [a]).has(category),
      );
      const methods = new Set(
        history.history
          .filter((e) => e.event === 'granted' && holding.some((a) => a.grantId === e.id))
          .map((e) => SOURCES[e.method] ?? 'other'),
      );
      return {
        category,
        fields: [...own.values.keys()].filter((f) => fieldCategory[f] === category),
        purposes: holding.map((a) => {
          const p = purposes.get(a.purpose);
          return {
            key: a.purpose,
            name: p?.name[lang] ?? a.purpose,
            lawfulBasis: a.basis ?? p?.lawfulBasis ?? 'unknown',
            retentionDays: p?.notices.get(a.noticeVersion)?.retentionDays ?? p?.retentionDays ?? 0,
            noticeVersion: a.noticeVersion,
          };
        }),
        sources: [...methods].sort(),
        recipients: RECIPIENTS.map((r) => ({ type: r.type, description: r.description[lang] })),
      };
    });
  const verifiedAt = (field: IndexedField): string | null => {
    const value = own.values.get(field);
    const row = verifications.find((v) => v.field === field);
    if (typeof value !== 'string' || row === undefined) return null;
    return contactDigest(ctx, ws, field, value) === row.value_digest ? row.verified_at : null;
  };
  const contactPoints: Record<string, { value: string; verifiedAt: string | null }> = {};
  for (const field of ['email', 'phone'] as const) {
    const value = own.values.get(field);
    if (typeof value === 'string') contactPoints[field] = { value, verifiedAt: verifiedAt(field) };
  }
  return {
    id: own.id,
    createdAt: own.createdAt,
    updatedAt: own.updatedAt,
    language: lang,
    data: groupValues(own.values),
    contactPoints,
    categories,
    consents: history.current,
  };
}

export type MeDto = Awaited<ReturnType<typeof readMe>>;
export type ExportDto = Awaited<ReturnType<typeof exportMe>>;

/** The portability export: the same content, machine-readable, with the schema named. */
export async function exportMe(ctx: AppContext, actor: Actor, session: PortalPrincipal) {
  const me = await readMe(ctx, actor, session, 'customer.self_export');
  const changes = await listOwnChangeRequests(ctx, actor);
  return {
    format: 'custodia.portal-export' as const,
    version: 1 as const,
    exportedAt: ctx.clock.now().toISOString(),
    ...me,
    changeRequests: changes,
  };
}

function csvCell(value: string): string {
  // A cell starting with = + - @ would run as a formula in a spreadsheet.
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return '';
}

/** Every leaf of a JSON value as `[path, text]`: `data.identity.givenName`, `consents[0].state`. */
function leaves(value: unknown, path: string, out: [string, string][]): [string, string][] {
  if (Array.isArray(value)) {
    value.forEach((v, i) => leaves(v, `${path}[${String(i)}]`, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) leaves(v, path === '' ? k : `${path}.${k}`, out);
  } else if (value !== undefined) {
    out.push([path, scalarText(value)]);
  }
  return out;
}

/**
 * The export as CSV: the same content as the JSON export, one row per value, `path,value`, the
 * path in the JSON document's terms (`data.contact.email`, `categories[0].purposes[0].lawfulBasis`,
 * `consents[1].state`), so that nothing in one is missing from the other.
 */
export function exportCsv(data: ExportDto): string {
  const rows: [string, string][] = [['path', 'value'], ...leaves(data, '', [])];
  return rows.map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

/** Fields the customer changes directly: names and preferences, which need no verification. */
export async function updateMe(
  ctx: AppContext,
  deps: PortalDeps,
  actor: Actor,
  input: {
    identity?:
      { givenName?: string | null | undefined; familyName?: string | null | undefined } | undefined;
    preferences?:
      | {
          interests?: string[] | null | undefined;
          channels?: ('email' | 'sms' | 'phone' | 'post')[] | null | undefined;
        }
      | undefined;
  },
): Promise<{ updatedAt: string }> {
  const result = await updateCustomer(ctx, actor, actor.id, input, deps.guard);
  return { updatedAt: result.updatedAt };
}

/**
 * A new email or phone: a code goes to the new value, and the change is made when it comes
 * back. The new value waits sealed under the customer's own key. An email change also needs a
 * fresh code to the current address first.
 */
export async function startContactChange(
  ctx: AppContext,
  deps: PortalDeps,
  actor: Actor,
  session: PortalPrincipal,
  input: { field: IndexedField; value: string },
  origin: { ip: string },
): Promise<void> {
  if (input.field === 'email') await requireFreshCode(ctx, actor, session, 'portal.contact.email');
  const value =
    input.field === 'email'
      ? normaliseEmail(input.value, 'body.value')
      : normalisePhone(input.value, ctx.config.defaultRegion, 'body.value');
  const sealed = await sealSubjectFields(ctx, actor.workspaceId, actor.id, 'portal', {
    [`contact:${input.field}`]: value,
  });
  const code = await issueCode(ctx, actor, {
    kind: 'contact_change',
    address: value,
    customerId: actor.id,
    sessionId: session.sessionId,
    field: input.field,
    valueSealed: sealed[`contact:${input.field}`] ?? Buffer.alloc(0),
    sourceIp: origin.ip,
  });
  sendCode(ctx, deps, { field: input.field, address: value }, code, session.language);
}

export async function verifyContactChange(
  ctx: AppContext,
  deps: PortalDeps,
  actor: Actor,
  session: PortalPrincipal,
  code: string,
): Promise<{ field: IndexedField; verifiedAt: string }> {
  const row = await checkCode(ctx, actor, {
    kind: 'contact_change',
    address: null,
    sessionId: session.sessionId,
    code,
  });
  const field: IndexedField = row.field === 'phone' ? 'phone' : 'email';
  if (row.value_sealed === null) throw new DomainError('code_expired', 'Ask for a new code.');
  const open = await openSubjectFields(ctx, actor.workspaceId, actor.id, 'portal', {
    [`contact:${field}`]: row.value_sealed,
  });
  const value = open[`contact:${field}`] ?? '';
  await updateCustomer(ctx, actor, actor.id, { contact: { [field]: value } }, deps.guard);
  const verifiedAt = ctx.clock.now().toISOString();
  await ctx.data.batch.run(actor.workspaceId, async ({ trx }) => {
    await store.upsertVerification(trx, {
      workspace_id: actor.workspaceId,
      customer_id: actor.id,
      field,
      value_digest: contactDigest(ctx, actor.workspaceId, field, value),
      verified_at: verifiedAt,
    });
  });
  return { field, verifiedAt };
}

/** Each purpose of the workspace with its notice in the customer's language and their state. */
export async function listConsents(ctx: AppContext, actor: Actor, language: NoticeLanguage) {
  const ws = actor.workspaceId;
  const purposes = await cachedPurposes(ctx, ws);
  const { current } = await ctx.data.read(ws, (db) =>
    consentHistory(db, ws, actor.id, ctx.clock.now()),
  );
  return [...purposes.values()]
    .filter((p) => p.status === 'active')
    .map((p) => {
      const state = current.find((c) => c.purpose === p.key);
      const byConsent = p.lawfulBasis === 'consent' || p.lawfulBasis === 'explicit_consent';
      return {
        purpose: p.key,
        name: p.name[language],
        notice: p.description[language],
        noticeVersion: p.noticeVersion,
        lawfulBasis: p.lawfulBasis,
        categories: [...p.categories],
        retentionDays: p.retentionDays,
        state: state?.state ?? ('none' as const),
        agreedNoticeVersion: state?.noticeVersion ?? null,
        /** Consent can be given and withdrawn here; other bases end with a request to staff. */
        canGrant: byConsent,
        canWithdraw: byConsent && state?.state === 'active',
      };
    });
}

export async function grantConsent(
  ctx: AppContext,
  actor: Actor,
  purposeKey: string,
  origin: RequestOrigin,
): Promise<{ purpose: string; eventId: string; created: boolean }> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const purpose = purposes.get(purposeKey);
  if (purpose === undefined || purpose.status !== 'active') {
    throw new DomainError('unknown_purpose', 'No such purpose.', { fields: ['params.purpose'] });
  }
  if (purpose.lawfulBasis !== 'consent' && purpose.lawfulBasis !== 'explicit_consent') {
    throw new DomainError('conflict', 'This purpose does not rest on consent.');
  }
  const { granted } = await grantAgreements(
    ctx,
    actor,
    actor.id,
    [{ purpose: purposeKey, noticeVersion: purpose.noticeVersion, method: 'portal' }],
    origin,
  );
  const first = granted[0];
  if (first === undefined) throw new DomainError('internal_error', 'Nothing was granted.');
  return first;
}

export async function withdrawConsent(
  ctx: AppContext,
  actor: Actor,
  purposeKey: string,
  origin: RequestOrigin,
): Promise<AgreementEnd> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const purpose = purposes.get(purposeKey);
  if (
    purpose !== undefined &&
    purpose.lawfulBasis !== 'consent' &&
    purpose.lawfulBasis !== 'explicit_consent'
  ) {
    throw new DomainError(
      'conflict',
      'This purpose does not rest on consent: object to it with a request to staff.',
    );
  }
  return withdrawAgreement(ctx, actor, actor.id, purposeKey, { method: 'portal' }, origin);
}

const READ_ACTIONS = new Set(['customer.read', 'customer.search', 'customer.list']);

/** Every access by someone else to the customer's data, from the audit chain. */
export async function accessLog(ctx: AppContext, actor: Actor) {
  const ws = actor.workspaceId;
  const entries = await ctx.data.read(ws, (db) => customerAuditEntries(db, ws, actor.id));
  const accesses = entries.filter(
    (e) =>
      e.actorType !== 'customer' &&
      (e.outcome === 'allowed' ||
        e.outcome === 'done' ||
        (READ_ACTIONS.has(e.action) && e.fields.some((f) => f.startsWith('masked:')))) &&
      (READ_ACTIONS.has(e.action) || e.fields.length > 0 || e.action.startsWith('erasure.')),
  );
  const names = await staffDisplayNames(
    ctx,
    ws,
    accesses.filter((e) => e.actorType === 'staff').map((e) => e.actorId),
  );
  const items = accesses.map((e) => {
    const masked = e.fields.some((f) => f.startsWith('masked:'));
    const fields = e.fields
      .map((f) => f.replace(/^masked:/, ''))
      .filter((f): f is FieldName => f in fieldCategory);
    const reason = e.reason ?? '';
    return {
      at: e.at,
      action: e.action,
      actor:
        e.actorType === 'staff'
          ? { type: 'staff' as const, role: e.actorRole, displayName: names.get(e.actorId) ?? null }
          : {
              type: e.actorType === 'token' ? ('integration' as const) : ('system' as const),
              role: e.actorRole,
              displayName: null,
            },
      purpose: e.purpose,
      taskId: /(?:^|;)task:([0-9a-f-]+)/.exec(reason)?.[1] ?? null,
      breakGlass: /(?:^|;)break_glass:/.test(reason) && !reason.startsWith('no_grant'),
      masked,
      categories: [...new Set(fields.map((f) => fieldCategory[f]))].sort(),
      auditSeq: e.seq,
    };
  });
  await ctx.data.batch.run(ws, (scope) =>
    appendAudit(ctx, scope, actor, {
      action: 'portal.access_log',
      customerId: actor.id,
      outcome: 'allowed',
    }),
  );
  return items;
}

/** The receipt's signed text: a fixed prefix and the canonical JSON (sorted keys). */
export function receiptMessage(receipt: Record<string, unknown>): string {
  // Keys in code-unit order (not the locale's), as any verifier can reproduce.
  const sorted = Object.fromEntries(
    Object.entries(receipt).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return `custodia-erasure-receipt-v1\n${JSON.stringify(sorted)}`;
}

/**
 * Leaving the programme: after a fresh code, everything is erased (crypto-shredding), and the
 * answer is a receipt signed with the workspace's Ed25519 key, which anyone can verify with
 * the published public key.
 */
export async function withdrawFromProgramme(
  ctx: AppContext,
  deps: PortalDeps,
  actor: Actor,
  session: PortalPrincipal,
) {
  await requireFreshCode(ctx, actor, session, 'portal.withdraw');
  // The outbox (no SMTP configured) keeps the codes sent to the customer's email and phone:
  // they go with the rest.
  const contacts = await readOwnCustomer(ctx, actor, 'portal.withdraw.contacts', [
    'email',
    'phone',
  ]);
  const record = await eraseCustomer(ctx, actor, actor.id);
  await forgetContacts(deps, contacts.values);
  const ws = actor.workspaceId;
  const entries = await ctx.data.read(ws, (db) => customerAuditEntries(db, ws, actor.id));
  const completion = entries.filter((e) => e.action === 'erasure.complete').at(-1);
  const receipt = {
    type: 'erasure_receipt',
    workspaceId: ws,
    customerId: actor.id,
    erasureId: record.id,
    requestedAt: record.requestedAt,
    completedAt: record.completedAt ?? ctx.clock.now().toISOString(),
    categories: [...record.categories].sort(),
    destroyedKeyIds: [...record.destroyedKeyIds].sort(),
    auditSeq: completion?.seq ?? null,
  };
  return {
    receipt,
    signature: ctx.signer.sign(ws, receiptMessage(receipt)),
    algorithm: 'Ed25519' as const,
    publicKey: ctx.signer.publicKey(ws),
  };
}

async function forgetContacts(deps: PortalDeps, values: Map<FieldName, unknown>): Promise<void> {
  const email = values.get('email');
  const phone = values.get('phone');
  if (typeof email === 'string') await deps.mailer.forget(email);
  if (typeof phone === 'string') await deps.texts.forget(phone);
}

/**
 * Housekeeping, every workspace: deletes codes past every limit's window (a day), sessions that
 * can no longer be used, and outbox messages whose code has expired (they are worthless then,
 * and they hold an address).
 */
export async function purgePortalLeftovers(
  ctx: AppContext,
  deps: PortalDeps,
): Promise<{ codes: number; sessions: number; messages: number }> {
  const now = ctx.clock.now();
  const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000).toISOString();
  const rows = await ctx.data.batch.run(EVERY_WORKSPACE, ({ trx }) =>
    store.purgeStale(trx, {
      codesBefore: minutesAgo(DAY_MINUTES),
      now: now.toISOString(),
      idleBefore: minutesAgo(SESSION_IDLE_MINUTES),
    }),
  );
  // Files carry the time they were written, in the machine's own time.
  const expired = new Date(Date.now() - CODE_MINUTES * 60_000);
  const messages =
    (await deps.mailer.purgeBefore(expired)) + (await deps.texts.purgeBefore(expired));
  return { ...rows, messages };
}

/** Fields that change only after staff check them: they need proof (a document, a visit). */
export const CHECKED_FIELDS = ['birthDate', 'postalAddress'] as const;

export async function createChangeRequest(
  ctx: AppContext,
  actor: Actor,
  input: {
    changes: Partial<Record<(typeof CHECKED_FIELDS)[number], unknown>>;
    note?: string | undefined;
  },
): Promise<{ id: string; status: 'pending'; fields: string[]; createdAt: string }> {
  const fields = Object.keys(input.changes).filter(
    (f) => input.changes[f as 'birthDate'] !== undefined,
  );
  if (fields.length === 0) {
    throw new DomainError('invalid_input', 'Nothing to change.', { fields: ['body.changes'] });
  }
  const id = newId();
  const now = ctx.clock.now().toISOString();
  const sealed = await sealSubjectFields(ctx, actor.workspaceId, actor.id, 'requests', {
    [`changes:${id}`]: JSON.stringify(input.changes),
    ...(input.note === undefined ? {} : { [`note:${id}`]: input.note }),
  });
  await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    await store.insertChangeRequest(scope.trx, {
      workspace_id: actor.workspaceId,
      id,
      customer_id: actor.id,
      fields: JSON.stringify(fields),
      changes_sealed: sealed[`changes:${id}`] ?? Buffer.alloc(0),
      note_sealed: sealed[`note:${id}`] ?? null,
      status: 'pending',
      created_at: now,
      decided_at: null,
      decided_by: null,
      reason_sealed: null,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'change_request.create',
      customerId: actor.id,
      fields: [...fields, `change_request:${id}`],
      outcome: 'done',
    });
  });
  return { id, status: 'pending', fields, createdAt: now };
}

export interface ChangeRequestView {
  id: string;
  customerId: string;
  fields: string[];
  status: string;
  createdAt: string;
  decidedAt: string | null;
  changes?: Record<string, unknown>;
  note?: string | null;
  reason?: string | null;
}

export async function openChangeRequest(
  ctx: AppContext,
  row: ChangeRequestTable,
  withValues: boolean,
): Promise<ChangeRequestView> {
  const base: ChangeRequestView = {
    id: row.id,
    customerId: row.customer_id,
    fields: JSON.parse(row.fields) as string[],
    status: row.status,
    createdAt: row.created_at,
    decidedAt: row.decided_at,
  };
  if (!withValues) return base;
  const open = await openSubjectFields(ctx, row.workspace_id, row.customer_id, 'requests', {
    [`changes:${row.id}`]: row.changes_sealed,
    ...(row.note_sealed === null ? {} : { [`note:${row.id}`]: row.note_sealed }),
    ...(row.reason_sealed === null ? {} : { [`reason:${row.id}`]: row.reason_sealed }),
  });
  return {
    ...base,
    changes: JSON.parse(open[`changes:${row.id}`] ?? '{}') as Record<string, unknown>,
    note: open[`note:${row.id}`] ?? null,
    reason: open[`reason:${row.id}`] ?? null,
  };
}

export async function listOwnChangeRequests(
  ctx: AppContext,
  actor: Actor,
): Promise<ChangeRequestView[]> {
  const rows = await ctx.data.read(actor.workspaceId, (db) =>
    store.listChangeRequests(db, actor.workspaceId, { customerId: actor.id }),
  );
  return Promise.all(rows.map((r) => openChangeRequest(ctx, r, true)));
}

/**
 * Staff decide a change request: a privacy officer, or an agent under an open task for this
 * customer (named with its purpose). Approval writes the change through the vault's rules; a
 * reason is always recorded, sealed. A missing and a forbidden request answer alike (404).
 */
export async function decideChangeRequest(
  ctx: AppContext,
  deps: PortalDeps,
  grants: TaskGrants,
  actor: Actor,
  id: string,
  input: {
    decision: 'approve' | 'reject';
    reason: string;
    taskId?: string | undefined;
    purpose?: string | undefined;
  },
): Promise<ChangeRequestView> {
  const ws = actor.workspaceId;
  const row = await ctx.data.read(ws, (db) => store.findChangeRequest(db, ws, id));
  const allowed =
    row !== undefined &&
    (actor.role === 'privacy_officer' ||
      (input.taskId !== undefined &&
        input.purpose !== undefined &&
        (await ctx.data.read(ws, (db) =>
          grants.hasTaskGrant(db, {
            workspaceId: ws,
            staffId: actor.id,
            customerId: row.customer_id,
            purpose: input.purpose ?? '',
            taskId: input.taskId ?? '',
            now: ctx.clock.now(),
          }),
        ))));
  if (row === undefined || !allowed) {
    await ctx.data.batch.run(ws, (scope) =>
      appendAudit(ctx, scope, actor, {
        action: 'change_request.decide',
        customerId: row?.customer_id ?? null,
        fields: [`change_request:${id}`],
        outcome: 'denied',
        reason:
          row === undefined
            ? 'not_found'
            : input.taskId === undefined
              ? 'no_task'
              : `no_grant;task:${input.taskId}`,
      }),
    );
    throw new DomainError('not_found', 'No such change request.');
  }
  if (row.status !== 'pending')
    throw new DomainError('conflict', 'This request was decided already.');
  const view = await openChangeRequest(ctx, row, true);
  if (input.decision === 'approve') {
    const changes = view.changes ?? {};
    await updateCustomer(
      ctx,
      actor,
      row.customer_id,
      {
        ...(changes['birthDate'] === undefined
          ? {}
          : { identity: { birthDate: changes['birthDate'] as string } }),
        ...(changes['postalAddress'] === undefined
          ? {}
          : {
              contact: {
                postalAddress: changes['postalAddress'] as NonNullable<
                  NonNullable<Parameters<typeof updateCustomer>[3]['contact']>['postalAddress']
                >,
              },
            }),
      },
      deps.guard,
    );
  }
  const sealed = await sealSubjectFields(ctx, ws, row.customer_id, 'requests', {
    [`reason:${id}`]: input.reason,
  });
  const at = ctx.clock.now().toISOString();
  const decided = await ctx.data.batch.run(ws, async (scope) => {
    const ok = await store.decideChangeRequest(scope.trx, ws, id, {
      status: input.decision === 'approve' ? 'approved' : 'rejected',
      decided_at: at,
      decided_by: actor.id,
      reason_sealed: sealed[`reason:${id}`] ?? null,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'change_request.decide',
      customerId: row.customer_id,
      fields: [...view.fields, `change_request:${id}`],
      outcome: ok ? 'done' : 'denied',
      reason: ok ? input.decision : 'decided_already',
    });
    return ok;
  });
  if (!decided) throw new DomainError('conflict', 'This request was decided already.');
  return {
    ...view,
    status: input.decision === 'approve' ? 'approved' : 'rejected',
    decidedAt: at,
    reason: input.reason,
  };
}

/**
 * Change requests by status, field names only, never values: a privacy officer sees the
 * workspace's; other staff only those of customers they hold an open task for (who asked for a
 * change is itself personal data). Integrations (API tokens) see them all, as they read.
 */
export async function listChangeRequests(
  ctx: AppContext,
  grants: TaskGrants,
  actor: Actor,
  status: 'pending' | 'approved' | 'rejected',
): Promise<ChangeRequestView[]> {
  const ws = actor.workspaceId;
  const rows = await ctx.data.read(ws, async (db) => {
    const all = await store.listChangeRequests(db, ws, { status });
    if (actor.type !== 'staff' || actor.role === 'privacy_officer') return all;
    const mine = await grants.customersWithOpenTasks(db, {
      workspaceId: ws,
      staffId: actor.id,
      now: ctx.clock.now(),
    });
    return all.filter((r) => mine.has(r.customer_id));
  });
  await recordAudit(ctx, actor, {
    action: 'change_request.list',
    fields: rows.map((r) => `change_request:${r.id}`),
    outcome: 'allowed',
  });
  return Promise.all(rows.map((r) => openChangeRequest(ctx, r, false)));
}
