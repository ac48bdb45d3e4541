import type { Kysely } from 'kysely';
import type { Actor, AppContext } from '../../platform/context.js';
import { sha256Hex } from '../../platform/crypto/index.js';
import type { DataDb, PurposeNoticeTable, PurposeTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { newId, type PurposeId } from '../../platform/ids.js';
import { appendAudit } from '../audit/index.js';
import {
  dataCategories,
  defaultPurposes,
  noticeLanguages,
  specialCategories,
  type DataCategory,
  type LawfulBasis,
  type NoticeLanguage,
} from './purposes.catalogue.js';
import * as store from './purposes.store.js';

type Texts = { readonly en: string; readonly es: string };

/** What a customer agreed to under one notice version: the basis, categories and retention. */
export interface NoticeTerms {
  readonly version: string;
  readonly lawfulBasis: LawfulBasis;
  readonly categories: readonly DataCategory[];
  readonly retentionDays: number;
}

export interface Purpose {
  readonly id: PurposeId;
  readonly key: string;
  readonly lawfulBasis: LawfulBasis;
  readonly categories: readonly DataCategory[];
  readonly retentionDays: number;
  /** The current notice version; new agreements should name it. */
  readonly noticeVersion: string;
  readonly name: Texts;
  readonly description: Texts;
  readonly status: 'active' | 'retired';
  /** Every notice version ever published for this purpose. */
  readonly notices: ReadonlyMap<string, NoticeTerms>;
}

export interface Notice extends NoticeTerms {
  readonly purpose: string;
  readonly language: NoticeLanguage;
  readonly name: string;
  readonly description: string;
  readonly contentHash: string;
  readonly createdAt: string;
}

export interface PurposeInput {
  readonly key: string;
  readonly lawfulBasis: LawfulBasis;
  readonly categories: readonly DataCategory[];
  readonly retentionDays: number;
  readonly name: Texts;
  readonly description: Texts;
}

export interface PurposeChange {
  readonly categories?: readonly DataCategory[] | undefined;
  readonly retentionDays?: number | undefined;
  readonly name?: Texts | undefined;
  readonly description?: Texts | undefined;
}

function parseCategories(json: string): DataCategory[] {
  return (JSON.parse(json) as string[]).filter((c): c is DataCategory =>
    (dataCategories as readonly string[]).includes(c),
  );
}

function toPurpose(row: PurposeTable, notices: readonly PurposeNoticeTable[]): Purpose {
  const terms = new Map<string, NoticeTerms>();
  for (const n of notices) {
    if (terms.has(n.version)) continue;
    terms.set(n.version, {
      version: n.version,
      lawfulBasis: n.lawful_basis as LawfulBasis,
      categories: parseCategories(n.categories),
      retentionDays: n.retention_days,
    });
  }
  return {
    id: row.id as PurposeId,
    key: row.key,
    lawfulBasis: row.lawful_basis as LawfulBasis,
    categories: parseCategories(row.categories),
    retentionDays: row.retention_days,
    noticeVersion: row.notice_version,
    name: { en: row.name_en, es: row.name_es },
    description: { en: row.description_en, es: row.description_es },
    status: row.status === 'retired' ? 'retired' : 'active',
    notices: terms,
  };
}

function toNotice(row: PurposeNoticeTable): Notice {
  return {
    purpose: row.purpose_key,
    version: row.version,
    language: row.language as NoticeLanguage,
    lawfulBasis: row.lawful_basis as LawfulBasis,
    categories: parseCategories(row.categories),
    retentionDays: row.retention_days,
    name: row.name,
    description: row.description,
    contentHash: row.content_hash,
    createdAt: row.created_at,
  };
}

/**
 * The hash a notice is known by: SHA-256 over a canonical encoding of everything the customer
 * is shown and agrees to, so that a consent can prove which text it refers to.
 */
export function noticeContentHash(n: Omit<Notice, 'contentHash' | 'createdAt'>): string {
  return sha256Hex(
    JSON.stringify([
      'custodia-notice-v1',
      n.purpose,
      n.version,
      n.language,
      n.lawfulBasis,
      [...n.categories].sort(),
      n.retentionDays,
      n.name,
      n.description,
    ]),
  );
}

function noticeRows(
  workspaceId: string,
  p: Omit<PurposeInput, 'key'> & { readonly key: string; readonly version: string },
  at: string,
): PurposeNoticeTable[] {
  return noticeLanguages.map((language) => {
    const notice = {
      purpose: p.key,
      version: p.version,
      language,
      lawfulBasis: p.lawfulBasis,
      categories: [...p.categories],
      retentionDays: p.retentionDays,
      name: p.name[language],
      description: p.description[language],
    };
    return {
      workspace_id: workspaceId,
      purpose_key: p.key,
      version: p.version,
      language,
      lawful_basis: p.lawfulBasis,
      categories: JSON.stringify(notice.categories),
      retention_days: p.retentionDays,
      name: notice.name,
      description: notice.description,
      content_hash: noticeContentHash(notice),
      created_at: at,
    };
  });
}

/** Special categories (health) may be processed only on explicit consent. */
function checkBasis(lawfulBasis: LawfulBasis, categories: readonly DataCategory[]): void {
  if (lawfulBasis !== 'explicit_consent' && categories.some((c) => specialCategories.includes(c))) {
    throw new DomainError(
      'invalid_input',
      'Health data may only be processed on explicit consent.',
      { fields: ['body.lawfulBasis'] },
    );
  }
}

/**
 * Adds the default purposes a workspace lacks, and the notice rows of any purpose whose current
 * version has none (databases created before notices existed); existing purposes stay as they are.
 */
export async function seedDefaultPurposes(
  ctx: Pick<AppContext, 'data' | 'clock'>,
  workspaceId: string,
): Promise<void> {
  forgetPurposes(ctx, workspaceId);
  const at = ctx.clock.now().toISOString();
  await ctx.data.batch.run(workspaceId, async ({ trx }) => {
    const existing = await store.listPurposeRows(trx, workspaceId);
    const known = new Set(existing.map((r) => r.key));
    for (const p of defaultPurposes) {
      if (known.has(p.key)) continue;
      await store.insertPurpose(trx, {
        workspace_id: workspaceId,
        id: newId(),
        key: p.key,
        lawful_basis: p.lawfulBasis,
        categories: JSON.stringify(p.categories),
        retention_days: p.retentionDays,
        notice_version: p.noticeVersion,
        name_en: p.name.en,
        name_es: p.name.es,
        description_en: p.description.en,
        description_es: p.description.es,
        status: 'active',
        created_at: at,
        retired_at: null,
      });
      await store.insertNotices(
        trx,
        noticeRows(workspaceId, { ...p, version: p.noticeVersion }, at),
      );
    }
    const notices = await store.listNoticeRows(trx, workspaceId);
    for (const r of existing) {
      if (notices.some((n) => n.purpose_key === r.key && n.version === r.notice_version)) continue;
      const p = toPurpose(r, []);
      await store.insertNotices(
        trx,
        noticeRows(workspaceId, { ...p, version: r.notice_version }, at),
      );
    }
  });
}

const PURPOSE_CACHE_MS = 2_000;
const purposeCaches = new WeakMap<
  object,
  Map<string, { purposes: Map<string, Purpose>; expiresAt: number }>
>();

function forgetPurposes(ctx: Pick<AppContext, 'data'>, workspaceId: string): void {
  purposeCaches.get(ctx.data)?.delete(workspaceId);
}

/**
 * The workspace's purposes from a cache renewed every two seconds: every request of the gate
 * needs them, and they change rarely. Changes made in this process clear it.
 */
export async function cachedPurposes(
  ctx: Pick<AppContext, 'data'>,
  workspaceId: string,
): Promise<Map<string, Purpose>> {
  let cache = purposeCaches.get(ctx.data);
  if (cache === undefined)
    purposeCaches.set(
      ctx.data,
      (cache = new Map<string, { purposes: Map<string, Purpose>; expiresAt: number }>()),
    );
  const now = Date.now();
  const hit = cache.get(workspaceId);
  if (hit !== undefined && hit.expiresAt > now) return hit.purposes;
  const purposes = await ctx.data.read(workspaceId, (db) => loadPurposes(db, workspaceId));
  cache.set(workspaceId, { purposes, expiresAt: now + PURPOSE_CACHE_MS });
  return purposes;
}

/** Every purpose of the workspace, keyed by purpose key, with the terms of every notice. */
export async function loadPurposes(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<Map<string, Purpose>> {
  const rows = await store.listPurposeRows(db, workspaceId);
  const notices = await store.listNoticeRows(db, workspaceId);
  return new Map(
    rows.map((r) => [
      r.key,
      toPurpose(
        r,
        notices.filter((n) => n.purpose_key === r.key),
      ),
    ]),
  );
}

/**
 * Inside a write's transaction: refuses (409 `purpose_retired`, naming `${path}.N.purpose`) a
 * purpose that is no longer active as committed, whatever this process's cache says.
 */
export async function requireStillActive(
  db: Kysely<DataDb>,
  workspaceId: string,
  keys: readonly string[],
  path: string,
): Promise<void> {
  const active = new Set(await store.selectActiveKeys(db, workspaceId, keys));
  const i = keys.findIndex((k) => !active.has(k));
  if (i !== -1) {
    throw new DomainError('purpose_retired', 'This purpose is retired; nobody can agree to it.', {
      fields: [`${path}.${i}.purpose`],
    });
  }
}

/** `get*`: the purpose, or `unknown_purpose` naming the input path. */
export function getPurpose(
  purposes: ReadonlyMap<string, Purpose>,
  key: string,
  path: string,
): Purpose {
  const p = purposes.get(key);
  if (p === undefined) {
    throw new DomainError('unknown_purpose', 'No purpose with this key.', { fields: [path] });
  }
  return p;
}

export async function createPurpose(
  ctx: AppContext,
  actor: Actor,
  input: PurposeInput,
): Promise<Purpose> {
  checkBasis(input.lawfulBasis, input.categories);
  const at = ctx.clock.now().toISOString();
  const categories = [...new Set(input.categories)];
  const created = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    if ((await store.findPurposeRow(scope.trx, actor.workspaceId, input.key)) !== undefined) {
      return false;
    }
    await store.insertPurpose(scope.trx, {
      workspace_id: actor.workspaceId,
      id: newId(),
      key: input.key,
      lawful_basis: input.lawfulBasis,
      categories: JSON.stringify(categories),
      retention_days: input.retentionDays,
      notice_version: '1',
      name_en: input.name.en,
      name_es: input.name.es,
      description_en: input.description.en,
      description_es: input.description.es,
      status: 'active',
      created_at: at,
      retired_at: null,
    });
    await store.insertNotices(
      scope.trx,
      noticeRows(actor.workspaceId, { ...input, categories, version: '1' }, at),
    );
    await appendAudit(ctx, scope, actor, {
      action: 'purpose.create',
      purpose: input.key,
      fields: categories,
      outcome: 'done',
      reason: 'notice:1',
    });
    return true;
  });
  forgetPurposes(ctx, actor.workspaceId);
  if (!created) {
    throw new DomainError('conflict', 'A purpose with this key exists.', { fields: ['body.key'] });
  }
  return getPurpose(
    await ctx.data.read(actor.workspaceId, (db) => loadPurposes(db, actor.workspaceId)),
    input.key,
    'body.key',
  );
}

function sameTexts(a: Texts, b: Texts): boolean {
  return a.en === b.en && a.es === b.es;
}

/**
 * Changes a purpose's categories or texts by publishing a new notice version; agreements keep
 * referring to the version they were given under, and cover only its categories. A category
 * cannot be dropped this way: retiring the purpose is what ends the need for data.
 */
export async function changePurpose(
  ctx: AppContext,
  actor: Actor,
  key: string,
  change: PurposeChange,
): Promise<Purpose> {
  const at = ctx.clock.now().toISOString();
  await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const row = await store.findPurposeRow(scope.trx, actor.workspaceId, key);
    if (row === undefined) {
      throw new DomainError('unknown_purpose', 'No purpose with this key.', {
        fields: ['params.key'],
      });
    }
    const current = toPurpose(row, []);
    if (current.status === 'retired') {
      throw new DomainError('purpose_retired', 'This purpose is retired.');
    }
    const categories = [...new Set(change.categories ?? current.categories)];
    if (current.categories.some((c) => !categories.includes(c))) {
      throw new DomainError(
        'conflict',
        'A category cannot be removed from a purpose; retire it and create another.',
        { fields: ['body.categories'] },
      );
    }
    checkBasis(current.lawfulBasis, categories);
    const next = {
      key,
      lawfulBasis: current.lawfulBasis,
      categories,
      retentionDays: change.retentionDays ?? current.retentionDays,
      name: change.name ?? current.name,
      description: change.description ?? current.description,
    };
    if (
      categories.length === current.categories.length &&
      next.retentionDays === current.retentionDays &&
      sameTexts(next.name, current.name) &&
      sameTexts(next.description, current.description)
    ) {
      return;
    }
    const versions = (await store.listNoticeRows(scope.trx, actor.workspaceId))
      .filter((n) => n.purpose_key === key)
      .map((n) => Number(n.version))
      .filter(Number.isInteger);
    const version = String(Math.max(0, ...versions) + 1);
    await store.insertNotices(scope.trx, noticeRows(actor.workspaceId, { ...next, version }, at));
    await store.updatePurpose(scope.trx, actor.workspaceId, key, {
      categories: JSON.stringify(categories),
      retention_days: next.retentionDays,
      notice_version: version,
      name_en: next.name.en,
      name_es: next.name.es,
      description_en: next.description.en,
      description_es: next.description.es,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'purpose.change',
      purpose: key,
      fields: categories,
      outcome: 'done',
      reason: `notice:${version}`,
    });
  });
  forgetPurposes(ctx, actor.workspaceId);
  return getPurpose(
    await ctx.data.read(actor.workspaceId, (db) => loadPurposes(db, actor.workspaceId)),
    key,
    'params.key',
  );
}

/**
 * Retires a purpose: no new agreement can name it, it covers no category any more, and the
 * caller then ends every agreement under it (which shreds what nothing else covers).
 */
export async function retirePurpose(ctx: AppContext, actor: Actor, key: string): Promise<Purpose> {
  const at = ctx.clock.now().toISOString();
  await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const row = await store.findPurposeRow(scope.trx, actor.workspaceId, key);
    if (row === undefined) {
      throw new DomainError('unknown_purpose', 'No purpose with this key.', {
        fields: ['params.key'],
      });
    }
    if (row.status === 'retired') return;
    await store.updatePurpose(scope.trx, actor.workspaceId, key, {
      status: 'retired',
      retired_at: at,
    });
    await appendAudit(ctx, scope, actor, {
      action: 'purpose.retire',
      purpose: key,
      outcome: 'done',
    });
  });
  forgetPurposes(ctx, actor.workspaceId);
  return getPurpose(
    await ctx.data.read(actor.workspaceId, (db) => loadPurposes(db, actor.workspaceId)),
    key,
    'params.key',
  );
}

/** Every notice of a purpose, oldest first; `unknown_purpose` when there is none. */
export async function listNotices(
  ctx: Pick<AppContext, 'data'>,
  workspaceId: string,
  key: string,
): Promise<Notice[]> {
  const rows = (
    await ctx.data.read(workspaceId, (db) => store.listNoticeRows(db, workspaceId))
  ).filter((n) => n.purpose_key === key);
  if (rows.length === 0) {
    throw new DomainError('unknown_purpose', 'No purpose with this key.', {
      fields: ['params.key'],
    });
  }
  return rows
    .map(toNotice)
    .sort((a, b) => Number(a.version) - Number(b.version) || a.language.localeCompare(b.language));
}

/** One notice's customer-facing text; `unknown_notice_version` when it does not exist. */
export async function getNotice(
  ctx: Pick<AppContext, 'data'>,
  workspaceId: string,
  key: string,
  version: string,
  language: NoticeLanguage,
): Promise<Notice> {
  const notices = await listNotices(ctx, workspaceId, key);
  const notice = notices.find((n) => n.version === version && n.language === language);
  if (notice === undefined) {
    throw new DomainError('unknown_notice_version', 'No such notice version.', {
      fields: ['params.version'],
    });
  }
  return notice;
}
