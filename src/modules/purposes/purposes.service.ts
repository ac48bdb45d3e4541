import type { Kysely } from 'kysely';
import type { AppContext } from '../../platform/context.js';
import type { DataDb, PurposeTable } from '../../platform/db/schema.js';
import { newId, type PurposeId } from '../../platform/ids.js';
import {
  dataCategories,
  defaultPurposes,
  type DataCategory,
  type LawfulBasis,
} from './purposes.catalogue.js';

export interface Purpose {
  readonly id: PurposeId;
  readonly key: string;
  readonly lawfulBasis: LawfulBasis;
  readonly categories: readonly DataCategory[];
  readonly retentionDays: number;
  readonly noticeVersion: string;
  readonly name: { readonly en: string; readonly es: string };
  readonly description: { readonly en: string; readonly es: string };
  readonly status: 'active' | 'retired';
}

function toPurpose(row: PurposeTable): Purpose {
  const categories = (JSON.parse(row.categories) as string[]).filter((c): c is DataCategory =>
    (dataCategories as readonly string[]).includes(c),
  );
  return {
    id: row.id as PurposeId,
    key: row.key,
    lawfulBasis: row.lawful_basis as LawfulBasis,
    categories,
    retentionDays: row.retention_days,
    noticeVersion: row.notice_version,
    name: { en: row.name_en, es: row.name_es },
    description: { en: row.description_en, es: row.description_es },
    status: row.status === 'retired' ? 'retired' : 'active',
  };
}

/** Adds the default purposes a workspace lacks; existing ones are left as they are. */
export async function seedDefaultPurposes(
  ctx: Pick<AppContext, 'data' | 'clock'>,
  workspaceId: string,
): Promise<void> {
  purposeCaches.get(ctx.data)?.delete(workspaceId);
  await ctx.data.batch.run(async ({ trx }) => {
    const existing = new Set(
      (
        await trx
          .selectFrom('purpose')
          .select('key')
          .where('workspace_id', '=', workspaceId)
          .execute()
      ).map((r) => r.key),
    );
    for (const p of defaultPurposes) {
      if (existing.has(p.key)) continue;
      await trx
        .insertInto('purpose')
        .values({
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
          created_at: ctx.clock.now().toISOString(),
        })
        .execute();
    }
  });
}

const PURPOSE_CACHE_MS = 2_000;
const purposeCaches = new WeakMap<
  object,
  Map<string, { purposes: Map<string, Purpose>; expiresAt: number }>
>();

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
  const purposes = await loadPurposes(ctx.data.reader, workspaceId);
  cache.set(workspaceId, { purposes, expiresAt: now + PURPOSE_CACHE_MS });
  return purposes;
}

/** Every purpose of the workspace, keyed by purpose key. */
export async function loadPurposes(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<Map<string, Purpose>> {
  const rows = await db
    .selectFrom('purpose')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .execute();
  return new Map(rows.map((r) => [r.key, toPurpose(r)]));
}
