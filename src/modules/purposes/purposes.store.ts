import type { Kysely, Updateable } from 'kysely';
import { prepared } from '../../platform/db/prepared.js';
import type { DataDb, PurposeNoticeTable, PurposeTable } from '../../platform/db/schema.js';

export async function listPurposeRows(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<PurposeTable[]> {
  return db
    .selectFrom('purpose')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('key')
    .execute();
}

export async function findPurposeRow(
  db: Kysely<DataDb>,
  workspaceId: string,
  key: string,
): Promise<PurposeTable | undefined> {
  return db
    .selectFrom('purpose')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('key', '=', key)
    .executeTakeFirst();
}

/** Of these keys, the purposes that are active as committed now (a prepared statement). */
export async function selectActiveKeys(
  db: Kysely<DataDb>,
  workspaceId: string,
  keys: readonly string[],
): Promise<string[]> {
  if (keys.length === 0) return [];
  return (await activeKeys(db, workspaceId, keys)).map((r) => r.key);
}

const activeKeys = prepared((db: Kysely<DataDb>, workspaceId: string, keys: readonly string[]) =>
  db
    .selectFrom('purpose')
    .select('key')
    .where('workspace_id', '=', workspaceId)
    .where('key', 'in', keys)
    .where('status', '=', 'active'),
);

export async function insertPurpose(db: Kysely<DataDb>, row: PurposeTable): Promise<void> {
  await db.insertInto('purpose').values(row).execute();
}

export async function updatePurpose(
  db: Kysely<DataDb>,
  workspaceId: string,
  key: string,
  changes: Updateable<PurposeTable>,
): Promise<void> {
  await db
    .updateTable('purpose')
    .set(changes)
    .where('workspace_id', '=', workspaceId)
    .where('key', '=', key)
    .execute();
}

export async function listNoticeRows(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<PurposeNoticeTable[]> {
  return db
    .selectFrom('purpose_notice')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('purpose_key')
    .orderBy('version')
    .execute();
}

export async function insertNotices(
  db: Kysely<DataDb>,
  rows: readonly PurposeNoticeTable[],
): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('purpose_notice')
    .values([...rows])
    .execute();
}
