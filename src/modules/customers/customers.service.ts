import type { Kysely } from 'kysely';
import type { Actor, AppContext } from '../../platform/context.js';
import { openField, randomKey, sealField } from '../../platform/crypto/index.js';
import type { BatchScope } from '../../platform/db/group-commit.js';
import type { CustomerFieldTable, DataDb, DataKeyTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { newId, type CustomerId } from '../../platform/ids.js';
import { appendAudit, recordAudit } from '../audit/index.js';
import {
  activeAgreementsOf,
  categoriesOf,
  checkGrant,
  coveredCategories,
  grantRows,
  insertConsentEvents,
  type RequestOrigin,
} from '../consent/index.js';
import {
  cachedPurposes,
  dataCategories,
  getPurpose,
  requireStillActive,
  type DataCategory,
  type NoticeTerms,
  type Purpose,
} from '../purposes/index.js';
import {
  fieldCategory,
  fieldNames,
  fieldPath,
  indexedFields,
  isFieldName,
  maskField,
  normaliseBirthDate,
  normaliseEmail,
  normalisePhone,
  type FieldName,
  type IndexedField,
} from './customers.fields.js';
import { DataKeyCache } from './customers.key-cache.js';
import * as keyStore from './customers.keys.js';
import type {
  CreateCustomerInput,
  CustomerDto,
  MaskedCustomerDto,
  SearchInput,
  UpdateCustomerInput,
} from './customers.schemas.js';
import * as store from './customers.store.js';

/**
 * The vault: the one gateway through which personal fields are written and read. Every call
 * decides, records its decision in the audit chain in the same transaction as its effect, and
 * only then (after the commit is durable) decrypts what it returns.
 */

type Ctx = AppContext;
type FieldValues = Map<FieldName, unknown>;

interface DataKey {
  readonly id: string;
  readonly category: DataCategory;
  readonly key: Buffer;
}

const denied = Symbol('denied');
type Denied = { readonly [denied]: DomainError };
function deny(error: DomainError): Denied {
  return { [denied]: error };
}
function isDenied(value: unknown): value is Denied {
  return typeof value === 'object' && value !== null && denied in value;
}

function notFound(): DomainError {
  return new DomainError('not_found', 'No such customer for this purpose.');
}

/** Validates and normalises the personal fields of a request; null means "remove". */
function normaliseFields(
  input: Pick<UpdateCustomerInput, 'identity' | 'contact' | 'preferences'>,
  ctx: Pick<Ctx, 'config' | 'clock'>,
): FieldValues {
  const values: FieldValues = new Map();
  const groups = {
    identity: input.identity,
    contact: input.contact,
    preferences: input.preferences,
  };
  for (const [category, group] of Object.entries(groups)) {
    if (group === undefined) continue;
    for (const [field, value] of Object.entries(group as Record<string, unknown>)) {
      if (value === undefined || !isFieldName(field) || fieldCategory[field] !== category) continue;
      if (value === null) {
        values.set(field, null);
        continue;
      }
      switch (field) {
        case 'email':
          values.set(field, normaliseEmail(value as string));
          break;
        case 'phone':
          values.set(field, normalisePhone(value as string, ctx.config.defaultRegion));
          break;
        case 'birthDate':
          values.set(field, normaliseBirthDate(value as string, ctx.clock.now()));
          break;
        case 'interests':
          values.set(field, [...new Set(value as string[])]);
          break;
        case 'channels':
          values.set(field, [...new Set(value as string[])]);
          break;
        case 'givenName':
        case 'familyName':
        case 'postalAddress':
          values.set(field, value);
      }
    }
  }
  return values;
}

function uncoveredFields(values: FieldValues, covered: ReadonlySet<DataCategory>): FieldName[] {
  return [...values]
    .filter(([field, value]) => value !== null && !covered.has(fieldCategory[field]))
    .map(([field]) => field);
}

function consentMissing(fields: readonly FieldName[]): DomainError {
  return new DomainError(
    'consent_missing',
    'No purpose the customer agreed to needs these fields; nothing was stored.',
    { fields: fields.map(fieldPath) },
  );
}

function bindingOf(workspaceId: string, customerId: string, category: string, keyId: string) {
  return { workspaceId, customerId, category, keyId };
}

const keyCaches = new WeakMap<object, DataKeyCache>();

function keyCache(ctx: Ctx): DataKeyCache {
  let cache = keyCaches.get(ctx.keys);
  if (cache === undefined) keyCaches.set(ctx.keys, (cache = new DataKeyCache()));
  return cache;
}

/**
 * Unwraps a data key read from the key store, or takes it from the cache. The caller has just
 * read the wrapped key, so a key destroyed by any process is never used, cached or not.
 */
function unwrapCached(ctx: Ctx, workspaceId: string, row: DataKeyTable): Buffer {
  const cache = keyCache(ctx);
  const cached = cache.get(row.id);
  if (cached !== undefined) return cached;
  const key = ctx.keyProvider.unwrapDataKey(
    row.wrapped,
    row.kek_version,
    bindingOf(workspaceId, row.customer_id, row.category, row.id),
  );
  cache.set(row.id, row.customer_id, key);
  return key;
}

/** Makes data keys for the categories that lack one; durable in the key store before use. */
async function ensureDataKeys(
  ctx: Ctx,
  workspaceId: string,
  customerId: string,
  categories: ReadonlySet<DataCategory>,
  existing: readonly DataKeyTable[],
): Promise<{ keys: Map<DataCategory, DataKey>; created: string[] }> {
  const keys = new Map<DataCategory, DataKey>();
  for (const row of existing) {
    if (!categories.has(row.category as DataCategory)) continue;
    keys.set(row.category as DataCategory, {
      id: row.id,
      category: row.category as DataCategory,
      key: unwrapCached(ctx, workspaceId, row),
    });
  }
  const rows: DataKeyTable[] = [];
  const now = ctx.clock.now().toISOString();
  for (const category of categories) {
    if (keys.has(category)) continue;
    const id = newId();
    const key = randomKey();
    const { kekVersion, wrapped } = ctx.keyProvider.wrapDataKey(
      key,
      bindingOf(workspaceId, customerId, category, id),
    );
    rows.push({
      workspace_id: workspaceId,
      id,
      customer_id: customerId,
      category,
      kek_version: kekVersion,
      wrapped,
      created_at: now,
    });
    keys.set(category, { id, category, key });
  }
  if (rows.length === 0) return { keys, created: [] };
  try {
    await ctx.keys.batch.run(workspaceId, ({ trx }) => keyStore.insertKeys(trx, rows));
  } catch (error) {
    // Another request made a key for the same category first (the key store allows one per
    // customer and category): use the keys that now exist, or fail as before.
    const now = await ctx.keys.read(workspaceId, (db) =>
      keyStore.findKeysOfCustomers(db, workspaceId, [customerId]),
    );
    if (![...categories].every((c) => now.some((k) => k.category === c))) throw error;
    return ensureDataKeys(ctx, workspaceId, customerId, categories, now);
  }
  return { keys, created: rows.map((r) => r.id) };
}

async function discardKeys(ctx: Ctx, workspaceId: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  try {
    await ctx.keys.batch.run(workspaceId, ({ trx }) =>
      keyStore.deleteKeysByIds(trx, workspaceId, ids),
    );
  } catch (error) {
    ctx.logger.warn({ err: error, keys: ids.length }, 'unused data keys left in the key store');
  }
}

function sealRows(
  ctx: Ctx,
  workspaceId: string,
  customerId: string,
  values: FieldValues,
  keys: ReadonlyMap<DataCategory, DataKey>,
  at: string,
): CustomerFieldTable[] {
  const rows: CustomerFieldTable[] = [];
  for (const [field, value] of values) {
    if (value === null) continue;
    const category = fieldCategory[field];
    const key = keys.get(category);
    if (key === undefined) throw new DomainError('internal_error', 'Missing data key.');
    rows.push({
      workspace_id: workspaceId,
      customer_id: customerId,
      field,
      category,
      data_key_id: key.id,
      ciphertext: sealField(key.key, JSON.stringify(value), {
        workspaceId,
        customerId,
        category,
        field,
        keyId: key.id,
      }),
      updated_at: at,
    });
  }
  return rows;
}

async function writeIndexes(
  ctx: Ctx,
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  values: FieldValues,
): Promise<void> {
  for (const field of indexedFields) {
    if (!values.has(field)) continue;
    const value = values.get(field);
    const digest =
      value === null || value === undefined
        ? null
        : ctx.blindIndex.digest(workspaceId, field, value as string);
    await store.replaceDigest(db, workspaceId, customerId, field, digest);
  }
}

/** Decrypts field rows after the audit entry that allowed them is durable. */
async function decryptRows(
  ctx: Ctx,
  workspaceId: string,
  rows: readonly CustomerFieldTable[],
): Promise<Map<string, Map<FieldName, unknown>>> {
  const keyRows = await ctx.keys.read(workspaceId, (db) =>
    keyStore.findKeysByIds(db, workspaceId, [...new Set(rows.map((r) => r.data_key_id))]),
  );
  const keys = new Map<string, Buffer>();
  for (const k of keyRows) keys.set(k.id, unwrapCached(ctx, workspaceId, k));
  const result = new Map<string, Map<FieldName, unknown>>();
  for (const row of rows) {
    const key = keys.get(row.data_key_id);
    if (key === undefined || !isFieldName(row.field)) {
      throw new DomainError('decryption_failed', 'Stored data could not be decrypted.');
    }
    const plain = openField(key, row.ciphertext, {
      workspaceId,
      customerId: row.customer_id,
      category: row.category,
      field: row.field,
      keyId: row.data_key_id,
    });
    let perCustomer = result.get(row.customer_id);
    if (perCustomer === undefined)
      result.set(row.customer_id, (perCustomer = new Map<FieldName, unknown>()));
    perCustomer.set(row.field, JSON.parse(plain) as unknown);
  }
  return result;
}

function toDto(
  customer: { id: string; created_at: string; updated_at: string },
  purpose: string,
  values: ReadonlyMap<FieldName, unknown> | undefined,
): CustomerDto {
  const groups: Record<string, Record<string, unknown>> = {};
  for (const field of fieldNames) {
    const value = values?.get(field);
    if (value === undefined) continue;
    (groups[fieldCategory[field]] ??= {})[field] = value;
  }
  return {
    id: customer.id,
    purpose,
    createdAt: customer.created_at,
    updatedAt: customer.updated_at,
    ...(groups as Pick<CustomerDto, 'identity' | 'contact' | 'preferences'>),
  };
}

export async function createCustomer(
  ctx: Ctx,
  actor: Actor,
  input: CreateCustomerInput,
  origin?: RequestOrigin,
): Promise<{ id: CustomerId }> {
  const values = normaliseFields(input, ctx);
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const now = ctx.clock.now();
  const seen = new Set<string>();
  const checked: { grant: (typeof input.consents)[number]; terms: NoticeTerms }[] = [];
  input.consents.forEach((grant, i) => {
    const { terms } = checkGrant(purposes, grant, `body.consents.${i}`, now);
    if (seen.has(grant.purpose)) {
      throw new DomainError('invalid_input', 'A purpose is named twice.', {
        fields: [`body.consents.${i}.purpose`],
      });
    }
    seen.add(grant.purpose);
    checked.push({ grant, terms });
  });
  const id = newId<CustomerId>();
  const at = now.toISOString();
  const grants = grantRows(ctx, actor, id, checked, origin, at);
  const agreements = grants.map((g) => ({
    purpose: g.purpose_key,
    grantId: g.id,
    noticeVersion: g.notice_version,
    basis: null,
    startsAt: g.starts_at,
    expiresAt: g.expires_at,
    reference: g.reference,
    endedBy: null,
  }));
  const missing = uncoveredFields(
    values,
    coveredCategories(
      purposes,
      agreements.filter((a) => a.startsAt === null || a.startsAt <= at),
    ),
  );
  if (missing.length > 0) {
    await recordAudit(ctx, actor, {
      action: 'customer.create',
      fields: missing,
      outcome: 'denied',
      reason: 'consent_missing',
    });
    throw consentMissing(missing);
  }
  const categories = new Set([...values.keys()].map((f) => fieldCategory[f]));
  const { keys, created } = await ensureDataKeys(ctx, actor.workspaceId, id, categories, []);
  const rows = sealRows(ctx, actor.workspaceId, id, values, keys, at);
  const digests = indexedFields.flatMap((field) => {
    const value = values.get(field);
    return typeof value === 'string'
      ? [
          {
            workspace_id: actor.workspaceId,
            customer_id: id,
            field,
            digest: ctx.blindIndex.digest(actor.workspaceId, field, value),
          },
        ]
      : [];
  });
  try {
    await ctx.data.batch.run(actor.workspaceId, async (scope) => {
      // The purposes as committed: one retired by another process since the cache was filled
      // takes no new agreement.
      await requireStillActive(
        scope.trx,
        actor.workspaceId,
        input.consents.map((c) => c.purpose),
        'body.consents',
      );
      await store.insertCustomer(scope.trx, {
        workspace_id: actor.workspaceId,
        id,
        created_at: at,
        updated_at: at,
      });
      await insertConsentEvents(scope.trx, grants);
      await store.insertFields(scope.trx, rows);
      await store.insertDigests(scope.trx, digests);
      // One entry records the creation and the grants it carries (each event by id, purpose,
      // notice version and method): three entries per creation cost a third of its throughput.
      await appendAudit(ctx, scope, actor, {
        action: 'customer.create',
        customerId: id,
        purpose: [...seen].sort().join(','),
        fields: [...values.keys()],
        outcome: 'done',
        reason: `consent.granted:${grants
          .map((g) => `${g.id}@${g.purpose_key}/${g.notice_version}/${g.method}`)
          .join(',')}`,
      });
    });
  } catch (error) {
    await discardKeys(ctx, actor.workspaceId, created);
    throw error;
  }
  return { id };
}

function requirePurpose(
  purposes: ReadonlyMap<string, Purpose>,
  key: string,
  path: string,
): Purpose {
  const p = getPurpose(purposes, key, path);
  if (p.status !== 'active') {
    throw new DomainError('purpose_retired', 'This purpose is retired.', { fields: [path] });
  }
  return p;
}

/**
 * How the gateway asks whether a staff member holds a grant: an open task assigned to them for
 * this customer and purpose (the tasks module answers, inside the read's transaction).
 */
export interface TaskGrants {
  hasTaskGrant(
    trx: Kysely<DataDb>,
    grant: {
      readonly workspaceId: string;
      readonly staffId: string;
      readonly customerId: string;
      readonly purpose: string;
      readonly taskId: string;
      readonly now: Date;
    },
  ): Promise<boolean>;
  hasBreakGlassGrant(
    trx: Kysely<DataDb>,
    grant: {
      readonly workspaceId: string;
      readonly staffId: string;
      readonly customerId: string;
      readonly purpose: string;
      readonly breakGlassId: string;
      readonly now: Date;
    },
  ): Promise<boolean>;
  /** The customers for whom this staff member holds an open task that is not yet due. */
  customersWithOpenTasks(
    trx: Kysely<DataDb>,
    holder: { readonly workspaceId: string; readonly staffId: string; readonly now: Date },
  ): Promise<Set<string>>;
}

/** Who reads, and under which grant: staff need a task; integrations (API tokens) do not. */
export interface ReadAccess {
  readonly taskId: string | undefined;
  /** Instead of a task: a live break-glass grant of the reader (audited, reviewed later). */
  readonly breakGlassId?: string | undefined;
  readonly grants: TaskGrants;
}

async function hasGrant(
  trx: Kysely<DataDb>,
  actor: Actor,
  customerId: string,
  purpose: string,
  access: ReadAccess,
  now: Date,
): Promise<boolean> {
  const base = { workspaceId: actor.workspaceId, staffId: actor.id, customerId, purpose, now };
  if (access.taskId !== undefined) {
    return access.grants.hasTaskGrant(trx, { ...base, taskId: access.taskId });
  }
  if (access.breakGlassId !== undefined) {
    return access.grants.hasBreakGlassGrant(trx, { ...base, breakGlassId: access.breakGlassId });
  }
  return false;
}

/** Reads within one unit: the customer's fields of the purpose's categories, audited. */
async function readUnderPurpose(
  ctx: Ctx,
  scope: BatchScope<DataDb>,
  actor: Actor,
  action: string,
  purpose: Purpose,
  customerIds: readonly string[],
  access: ReadAccess,
): Promise<{
  customers: { id: string; created_at: string; updated_at: string }[];
  rows: CustomerFieldTable[];
  /** Customers the staff reader has no grant for: their rows are the masked fields only. */
  masked: ReadonlySet<string>;
}> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const masked = new Set<string>();
  const active = await activeAgreementsOf(
    scope.trx,
    actor.workspaceId,
    customerIds,
    ctx.clock.now(),
  );
  const allowed: { id: string; created_at: string; updated_at: string }[] = [];
  const granted = new Map<string, Set<string>>();
  const now = ctx.clock.now();
  // Only a staff reader's grant is checked, so only theirs is recorded as the reason.
  const taskReason =
    actor.type !== 'staff'
      ? null
      : access.taskId !== undefined
        ? `task:${access.taskId}`
        : access.breakGlassId !== undefined
          ? `break_glass:${access.breakGlassId}`
          : null;
  for (const id of customerIds) {
    const customer = await store.findCustomer(scope.trx, actor.workspaceId, id);
    const noGrant =
      actor.type === 'staff' && !(await hasGrant(scope.trx, actor, id, purpose.key, access, now));
    if (customer === undefined) {
      await appendAudit(ctx, scope, actor, {
        action,
        customerId: id,
        purpose: purpose.key,
        outcome: 'denied',
        reason: taskReason === null ? 'not_found' : `not_found;${taskReason}`,
      });
    } else if (active.get(id)?.get(purpose.key) === undefined) {
      await appendAudit(ctx, scope, actor, {
        action,
        customerId: id,
        purpose: purpose.key,
        outcome: 'denied',
        reason: taskReason === null ? 'purpose_not_active' : `purpose_not_active;${taskReason}`,
      });
    } else {
      allowed.push(customer);
      // Staff read plaintext only under an open task assigned to them (or break-glass);
      // without one they get the masked values a list shows.
      if (noGrant) masked.add(id);
      // Only the categories of the notice version this customer agreed to.
      const agreement = active.get(id)?.get(purpose.key);
      granted.set(id, new Set(agreement === undefined ? [] : categoriesOf(purposes, agreement)));
    }
  }
  const rows = (
    await store.listFields(
      scope.trx,
      actor.workspaceId,
      allowed.map((c) => c.id),
      { categories: purpose.categories },
    )
  ).filter(
    (r) =>
      granted.get(r.customer_id)?.has(r.category) === true &&
      (!masked.has(r.customer_id) || maskedFields.includes(r.field as FieldName)),
  );
  for (const c of allowed) {
    const fields = rows.filter((r) => r.customer_id === c.id).map((r) => r.field);
    await appendAudit(
      ctx,
      scope,
      actor,
      masked.has(c.id)
        ? {
            action,
            customerId: c.id,
            purpose: purpose.key,
            fields: fields.map((f) => `masked:${f}`),
            outcome: 'denied',
            reason: taskReason === null ? 'no_task' : `no_grant;${taskReason}`,
          }
        : {
            action,
            customerId: c.id,
            purpose: purpose.key,
            fields,
            outcome: 'allowed',
            reason: taskReason,
          },
    );
  }
  return { customers: allowed, rows, masked };
}

/** The masked form of a customer's values, as lists show them. */
function maskValues(values: ReadonlyMap<FieldName, unknown> | undefined): Record<string, string> {
  const masked: Record<string, string> = {};
  for (const [field, value] of values ?? []) {
    const m = maskField(field, value);
    if (m !== undefined) masked[field] = m;
  }
  return masked;
}

/** A read's answer: plaintext under a grant, masked values without one. */
function readDto(
  customer: { id: string; created_at: string; updated_at: string },
  purpose: string,
  values: ReadonlyMap<FieldName, unknown> | undefined,
  isMasked: boolean,
): CustomerDto {
  if (!isMasked) return { ...toDto(customer, purpose, values), access: 'granted' };
  return {
    ...toDto(customer, purpose, undefined),
    access: 'masked',
    masked: maskValues(values),
  };
}

export async function readCustomer(
  ctx: Ctx,
  actor: Actor,
  id: string,
  purposeKey: string,
  access: ReadAccess,
): Promise<CustomerDto> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const purpose = purposes.get(purposeKey);
  if (purpose === undefined || purpose.status !== 'active') {
    await recordAudit(ctx, actor, {
      action: 'customer.read',
      customerId: id,
      purpose: purposeKey,
      outcome: 'denied',
      reason: 'purpose_unknown',
    });
    requirePurpose(purposes, purposeKey, 'querystring.purpose');
  }
  const result = await ctx.data.batch.run(actor.workspaceId, (scope) =>
    readUnderPurpose(ctx, scope, actor, 'customer.read', purpose as Purpose, [id], access),
  );
  const customer = result.customers[0];
  if (customer === undefined) throw notFound();
  const values = await decryptRows(ctx, actor.workspaceId, result.rows);
  return readDto(customer, purposeKey, values.get(customer.id), result.masked.has(customer.id));
}

export async function searchCustomers(
  ctx: Ctx,
  actor: Actor,
  input: SearchInput,
  access: ReadAccess,
): Promise<CustomerDto[]> {
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  const found = purposes.get(input.purpose);
  if (found === undefined || found.status !== 'active') {
    await recordAudit(ctx, actor, {
      action: 'customer.search',
      purpose: input.purpose,
      outcome: 'denied',
      reason: 'purpose_unknown',
    });
  }
  const purpose = requirePurpose(purposes, input.purpose, 'body.purpose');
  let field: IndexedField;
  let value: string;
  if ('email' in input) {
    field = 'email';
    value = normaliseEmail(input.email, 'body.email');
  } else {
    field = 'phone';
    value = normalisePhone(input.phone, ctx.config.defaultRegion, 'body.phone');
  }
  const digest = ctx.blindIndex.digest(actor.workspaceId, field, value);
  const result = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const ids = await store.findByDigest(scope.trx, actor.workspaceId, field, digest, 50);
    if (ids.length === 0) {
      await appendAudit(ctx, scope, actor, {
        action: 'customer.search',
        purpose: purpose.key,
        fields: [field],
        outcome: 'done',
        reason: 'no_match',
      });
      return { customers: [], rows: [], masked: new Set<string>() };
    }
    return readUnderPurpose(ctx, scope, actor, 'customer.search', purpose, ids, access);
  });
  const values = await decryptRows(ctx, actor.workspaceId, result.rows);
  return result.customers.map((c) =>
    readDto(c, purpose.key, values.get(c.id), result.masked.has(c.id)),
  );
}

/**
 * What a write must respect of erasures in progress: data keys recorded for destruction are
 * never used again. `settle` finishes the customer's pending category erasures before keys are
 * chosen; `destroyedKeyIds` (read inside the write's transaction) catches one that began since.
 */
export interface WriteGuard {
  settle(workspaceId: string, customerId: string): Promise<void>;
  destroyedKeyIds(
    trx: Kysely<DataDb>,
    workspaceId: string,
    customerId: string,
  ): Promise<Set<string>>;
}

export async function updateCustomer(
  ctx: Ctx,
  actor: Actor,
  id: string,
  input: UpdateCustomerInput,
  guard: WriteGuard,
): Promise<{ id: string; updatedAt: string }> {
  const values = normaliseFields(input, ctx);
  if (values.size === 0)
    throw new DomainError('invalid_input', 'Nothing to change.', { fields: ['body'] });
  await guard.settle(actor.workspaceId, id);
  const purposes = await cachedPurposes(ctx, actor.workspaceId);
  // A first, non-authoritative check, so that no keys are made for a write that will be refused.
  const preActive =
    (
      await ctx.data.read(actor.workspaceId, (db) =>
        activeAgreementsOf(db, actor.workspaceId, [id], ctx.clock.now()),
      )
    ).get(id) ?? new Map();
  const preMissing = uncoveredFields(values, coveredCategories(purposes, preActive.values()));
  const exists =
    (await ctx.data.read(actor.workspaceId, (db) =>
      store.findCustomer(db, actor.workspaceId, id),
    )) !== undefined;
  let keys = new Map<DataCategory, DataKey>();
  let created: string[] = [];
  if (exists && preMissing.length === 0) {
    const categories = new Set(
      [...values].filter(([, v]) => v !== null).map(([f]) => fieldCategory[f]),
    );
    const existing = await ctx.keys.read(actor.workspaceId, (db) =>
      keyStore.findKeysOfCustomers(db, actor.workspaceId, [id]),
    );
    ({ keys, created } = await ensureDataKeys(ctx, actor.workspaceId, id, categories, existing));
  }
  const at = ctx.clock.now().toISOString();
  const rows =
    exists && preMissing.length === 0 ? sealRows(ctx, actor.workspaceId, id, values, keys, at) : [];
  let outcome: { id: string; updatedAt: string } | Denied;
  try {
    outcome = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
      const customer = await store.findCustomerForUpdate(
        scope.trx,
        ctx.data.dialect,
        actor.workspaceId,
        id,
      );
      if (customer === undefined) {
        await appendAudit(ctx, scope, actor, {
          action: 'customer.update',
          customerId: id,
          fields: [...values.keys()],
          outcome: 'denied',
          reason: 'not_found',
        });
        return deny(new DomainError('not_found', 'No such customer.'));
      }
      const active =
        (await activeAgreementsOf(scope.trx, actor.workspaceId, [id], ctx.clock.now())).get(id) ??
        new Map();
      const missing = uncoveredFields(values, coveredCategories(purposes, active.values()));
      if (
        missing.length > 0 ||
        rows.length !== [...values.values()].filter((v) => v !== null).length
      ) {
        const fields = missing.length > 0 ? missing : preMissing;
        await appendAudit(ctx, scope, actor, {
          action: 'customer.update',
          customerId: id,
          fields,
          outcome: 'denied',
          reason: 'consent_missing',
        });
        return deny(consentMissing(fields));
      }
      const destroyed = await guard.destroyedKeyIds(scope.trx, actor.workspaceId, id);
      if (rows.some((r) => destroyed.has(r.data_key_id))) {
        await appendAudit(ctx, scope, actor, {
          action: 'customer.update',
          customerId: id,
          fields: [...values.keys()],
          outcome: 'denied',
          reason: 'erasure_in_progress',
        });
        return deny(
          new DomainError('conflict', 'An erasure of this data finished meanwhile; try again.'),
        );
      }
      await store.upsertFields(scope.trx, rows);
      await store.deleteFields(
        scope.trx,
        actor.workspaceId,
        id,
        [...values].filter(([, v]) => v === null).map(([f]) => f),
      );
      await writeIndexes(ctx, scope.trx, actor.workspaceId, id, values);
      await store.touchCustomer(scope.trx, actor.workspaceId, id, at);
      await appendAudit(ctx, scope, actor, {
        action: 'customer.update',
        customerId: id,
        fields: [...values.keys()],
        outcome: 'done',
      });
      return { id, updatedAt: at };
    });
  } catch (error) {
    await discardKeys(ctx, actor.workspaceId, created);
    throw error;
  }
  if (isDenied(outcome)) {
    await discardKeys(ctx, actor.workspaceId, created);
    throw outcome[denied];
  }
  return outcome;
}

const maskedFields: readonly FieldName[] = ['givenName', 'familyName', 'email', 'phone'];

export async function listCustomers(
  ctx: Ctx,
  actor: Actor,
  page: { limit: number; cursor?: string | undefined },
): Promise<{ items: MaskedCustomerDto[]; nextCursor: string | null }> {
  const result = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const customers = await store.pageCustomers(
      scope.trx,
      actor.workspaceId,
      page.cursor,
      page.limit + 1,
    );
    const shown = customers.slice(0, page.limit);
    const rows = await store.listFields(
      scope.trx,
      actor.workspaceId,
      shown.map((c) => c.id),
      { fields: maskedFields },
    );
    // One entry per customer shown, so each can later see who saw even their masked values.
    for (const c of shown) {
      await appendAudit(ctx, scope, actor, {
        action: 'customer.list',
        customerId: c.id,
        fields: rows.filter((r) => r.customer_id === c.id).map((r) => `masked:${r.field}`),
        outcome: 'allowed',
      });
    }
    return { shown, rows, more: customers.length > page.limit };
  });
  const values = await decryptRows(ctx, actor.workspaceId, result.rows);
  const items = result.shown.map((c) => ({
    id: c.id,
    createdAt: c.created_at,
    masked: maskValues(values.get(c.id)),
  }));
  return { items, nextCursor: result.more ? (result.shown.at(-1)?.id ?? null) : null };
}

/**
 * The customers whose email (or phone) is this value, by the blind index: the portal finds who
 * is signing in without decrypting anyone. Reads nothing personal and decrypts nothing.
 */
export async function findCustomersByContact(
  ctx: Ctx,
  workspaceId: string,
  field: IndexedField,
  value: string,
): Promise<string[]> {
  const normalised =
    field === 'email'
      ? normaliseEmail(value, 'body.email')
      : normalisePhone(value, ctx.config.defaultRegion, 'body.phone');
  const digest = ctx.blindIndex.digest(workspaceId, field, normalised);
  return ctx.data.read(workspaceId, (db) => store.findByDigest(db, workspaceId, field, digest, 2));
}

/** The blind-index digest of a contact value as the vault stores it (normalised first). */
export function contactDigest(
  ctx: Ctx,
  workspaceId: string,
  field: IndexedField,
  value: string,
): string {
  const normalised =
    field === 'email'
      ? normaliseEmail(value, 'body.value')
      : normalisePhone(value, ctx.config.defaultRegion, 'body.value');
  return ctx.blindIndex.digest(workspaceId, field, normalised);
}

/**
 * A customer's own read of everything the vault holds for them (the portal). The customer is
 * the actor; the read is audited in the same transaction, and decrypted after it commits. A
 * customer who is not there answers `not_found`.
 */
export async function readOwnCustomer(
  ctx: Ctx,
  actor: Actor,
  action: string,
  only?: readonly FieldName[],
): Promise<{
  id: string;
  createdAt: string;
  updatedAt: string;
  values: Map<FieldName, unknown>;
}> {
  const customerId = actor.id;
  const result = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const customer = await store.findCustomer(scope.trx, actor.workspaceId, customerId);
    if (customer === undefined) {
      await appendAudit(ctx, scope, actor, {
        action,
        customerId,
        outcome: 'denied',
        reason: 'not_found',
      });
      return undefined;
    }
    const rows = await store.listFields(
      scope.trx,
      actor.workspaceId,
      [customerId],
      only === undefined ? {} : { fields: only },
    );
    await appendAudit(ctx, scope, actor, {
      action,
      customerId,
      fields: rows.map((r) => r.field),
      outcome: 'allowed',
      reason: 'self',
    });
    return { customer, rows };
  });
  if (result === undefined) throw new DomainError('not_found', 'No such customer.');
  const values = await decryptRows(ctx, actor.workspaceId, result.rows);
  return {
    id: result.customer.id,
    createdAt: result.customer.created_at,
    updatedAt: result.customer.updated_at,
    values: values.get(customerId) ?? new Map<FieldName, unknown>(),
  };
}

/** What erasure needs to know before it starts: the categories held and their key ids. */
export async function describeHoldings(
  ctx: Ctx,
  workspaceId: string,
  customerId: string,
): Promise<{
  exists: boolean;
  categories: string[];
  keyIds: string[];
  keys: { id: string; category: string }[];
}> {
  const customer = await ctx.data.read(workspaceId, (db) =>
    store.findCustomer(db, workspaceId, customerId),
  );
  const keys = await ctx.keys.read(workspaceId, (db) =>
    keyStore.findKeysOfCustomers(db, workspaceId, [customerId]),
  );
  const fields = await ctx.data.read(workspaceId, (db) =>
    store.listFields(db, workspaceId, [customerId], {}),
  );
  const categories = new Set([...keys.map((k) => k.category), ...fields.map((f) => f.category)]);
  return {
    exists: customer !== undefined,
    categories: [...categories].sort(),
    keyIds: keys.map((k) => k.id).sort(),
    keys: keys.map((k) => ({ id: k.id, category: k.category })),
  };
}

/** The categories a customer holds data or keys for. */
export async function heldCategories(
  ctx: Ctx,
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<Set<DataCategory>> {
  const keys = await ctx.keys.read(workspaceId, (db) =>
    keyStore.findKeysOfCustomers(db, workspaceId, [customerId]),
  );
  const fields = await store.listFields(db, workspaceId, [customerId], {});
  // Only the categories of customer fields: task titles are not a purpose's data.
  return new Set(
    [...keys.map((k) => k.category), ...fields.map((f) => f.category)].filter(
      (c): c is DataCategory => (dataCategories as readonly string[]).includes(c),
    ),
  );
}

/**
 * Locks the customer for the rest of the caller's transaction (see the store); answers whether
 * the customer exists. Every unit that changes a customer's agreements takes it first.
 */
export async function lockCustomer(
  ctx: Ctx,
  trx: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<boolean> {
  return (
    (await store.findCustomerForUpdate(trx, ctx.data.dialect, workspaceId, customerId)) !==
    undefined
  );
}

/** Deletes the fields of these categories and their index entries, in the caller's unit. */
export async function deleteCategoryData(
  trx: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  categories: readonly DataCategory[],
): Promise<void> {
  const indexed = indexedFields.filter((f) => categories.includes(fieldCategory[f]));
  await store.deleteCategoryRows(trx, workspaceId, customerId, categories, indexed);
}

/**
 * Crypto-shredding of some of a customer's data keys, by id (the ids recorded with the intent,
 * so a key made later for new data is never touched); idempotent. Answers the ids destroyed now.
 */
export async function destroyDataKeys(
  ctx: Ctx,
  workspaceId: string,
  customerId: string,
  keyIds: readonly string[],
): Promise<string[]> {
  keyCache(ctx).forgetKeys(keyIds);
  return ctx.keys.batch.run(workspaceId, ({ trx }) =>
    keyStore.deleteCustomerKeysByIds(trx, workspaceId, customerId, keyIds),
  );
}

/** Crypto-shredding: destroys every data key of the customer; idempotent. */
export async function destroyCustomerKeys(
  ctx: Ctx,
  workspaceId: string,
  customerId: string,
): Promise<string[]> {
  keyCache(ctx).forgetCustomer(customerId);
  return ctx.keys.batch.run(workspaceId, ({ trx }) =>
    keyStore.deleteKeysOfCustomer(trx, workspaceId, customerId),
  );
}

/** Deletes the customer's rows and index entries inside the caller's unit of work. */
export async function deleteCustomerData(
  trx: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await store.deleteCustomerRows(trx, workspaceId, customerId);
}

/**
 * Rewraps every data key not under the current KEK version; data is not re-encrypted.
 * Resumable: each page is committed before the next is read.
 */
export async function rewrapDataKeys(
  ctx: Pick<Ctx, 'keys' | 'keyProvider'>,
): Promise<{ rewrapped: number; version: number }> {
  const version = ctx.keyProvider.currentKekVersion();
  let rewrapped = 0;
  for (;;) {
    const page = await ctx.keys.read(EVERY_WORKSPACE, (db) =>
      keyStore.pageKeysNotOnVersion(db, version, 500),
    );
    if (page.length === 0) break;
    const updates = page.map((row) => {
      const binding = bindingOf(row.workspace_id, row.customer_id, row.category, row.id);
      const key = ctx.keyProvider.unwrapDataKey(row.wrapped, row.kek_version, binding);
      const { kekVersion, wrapped } = ctx.keyProvider.wrapDataKey(key, binding);
      if (kekVersion !== version) {
        throw new DomainError(
          'conflict',
          'The key-encryption key changed during the rewrap; run it again.',
        );
      }
      return { row, kekVersion, wrapped };
    });
    // Rewrapping crosses workspaces: each page holds keys of any of them.
    await ctx.keys.batch.run(EVERY_WORKSPACE, async ({ trx }) => {
      for (const u of updates) {
        await keyStore.updateWrapped(
          trx,
          {
            workspace_id: u.row.workspace_id,
            id: u.row.id,
            kek_version: u.kekVersion,
            wrapped: u.wrapped,
          },
          u.row.kek_version,
        );
      }
    });
    rewrapped += updates.length;
  }
  return { rewrapped, version };
}

export async function countDataKeysByKekVersion(
  ctx: Pick<Ctx, 'keys'>,
): Promise<Map<number, number>> {
  return ctx.keys.read(EVERY_WORKSPACE, (db) => keyStore.countByKekVersion(db));
}

/**
 * Key-store categories of data that is not a customer's field: staff members' own data (subject:
 * the staff member), and task titles (subject: the customer the task is about, so erasing the
 * customer shreds them too).
 */
export type SubjectCategory = 'staff' | 'tasks' | 'requests' | 'portal';

async function subjectKey(
  ctx: Ctx,
  workspaceId: string,
  subjectId: string,
  category: SubjectCategory,
  create: boolean,
): Promise<{ id: string; key: Buffer } | undefined> {
  const rows = (
    await ctx.keys.read(workspaceId, (db) =>
      keyStore.findKeysOfCustomers(db, workspaceId, [subjectId]),
    )
  ).filter((r) => r.category === category);
  const row = rows[0];
  if (row !== undefined) return { id: row.id, key: unwrapCached(ctx, workspaceId, row) };
  if (!create) return undefined;
  const id = newId();
  const key = randomKey();
  const { kekVersion, wrapped } = ctx.keyProvider.wrapDataKey(
    key,
    bindingOf(workspaceId, subjectId, category, id),
  );
  try {
    await ctx.keys.batch.run(workspaceId, ({ trx }) =>
      keyStore.insertKeys(trx, [
        {
          workspace_id: workspaceId,
          id,
          customer_id: subjectId,
          category,
          kek_version: kekVersion,
          wrapped,
          created_at: ctx.clock.now().toISOString(),
        },
      ]),
    );
  } catch (error) {
    // Another request made it first (one key per subject and category): use that one.
    const made = await subjectKey(ctx, workspaceId, subjectId, category, false);
    if (made === undefined) throw error;
    return made;
  }
  return { id, key };
}

/**
 * Seals fields that are not a customer's vault fields (a staff member's email, name and TOTP
 * secret; task titles) under the subject's own data key in the key store, so that rotation
 * rewraps it and destroying it shreds them like any personal data.
 */
export async function sealSubjectFields(
  ctx: Ctx,
  workspaceId: string,
  subjectId: string,
  category: SubjectCategory,
  fields: Readonly<Record<string, string>>,
): Promise<Record<string, Buffer>> {
  const k = await subjectKey(ctx, workspaceId, subjectId, category, true);
  if (k === undefined) throw new DomainError('internal_error', 'Missing data key.');
  const out: Record<string, Buffer> = {};
  for (const [field, value] of Object.entries(fields)) {
    out[field] = sealField(k.key, value, {
      workspaceId,
      customerId: subjectId,
      category,
      field,
      keyId: k.id,
    });
  }
  return out;
}

/** Opens fields sealed by `sealSubjectFields`; one generic `decryption_failed` for any failure. */
export async function openSubjectFields(
  ctx: Ctx,
  workspaceId: string,
  subjectId: string,
  category: SubjectCategory,
  sealed: Readonly<Record<string, Uint8Array>>,
): Promise<Record<string, string>> {
  const k = await subjectKey(ctx, workspaceId, subjectId, category, false);
  if (k === undefined)
    throw new DomainError('decryption_failed', 'Stored data could not be decrypted.');
  const out: Record<string, string> = {};
  for (const [field, envelope] of Object.entries(sealed)) {
    out[field] = openField(k.key, envelope, {
      workspaceId,
      customerId: subjectId,
      category,
      field,
      keyId: k.id,
    });
  }
  return out;
}
