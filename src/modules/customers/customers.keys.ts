import type { Kysely } from 'kysely';
import { prepared } from '../../platform/db/prepared.js';
import type { DataKeyTable, KeyDb } from '../../platform/db/schema.js';

/** Rows of the key store: wrapped data keys, one per (customer, category). */

export async function findKeysOfCustomers(
  db: Kysely<KeyDb>,
  workspaceId: string,
  customerIds: readonly string[],
): Promise<DataKeyTable[]> {
  if (customerIds.length === 0) return [];
  return db
    .selectFrom('data_key')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', 'in', [...customerIds])
    .execute();
}

export async function findKeysByIds(
  db: Kysely<KeyDb>,
  workspaceId: string,
  ids: readonly string[],
): Promise<DataKeyTable[]> {
  if (ids.length === 0) return [];
  return selectKeysByIds(db, workspaceId, ids);
}

const selectKeysByIds = prepared((db: Kysely<KeyDb>, workspaceId: string, ids: readonly string[]) =>
  db
    .selectFrom('data_key')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', 'in', ids),
);

export async function insertKeys(db: Kysely<KeyDb>, rows: readonly DataKeyTable[]): Promise<void> {
  if (rows.length === 0) return;
  await insertKeyRows(db, rows);
}

const insertKeyRows = prepared((db: Kysely<KeyDb>, rows: readonly DataKeyTable[]) =>
  db.insertInto('data_key').values([...rows]),
);

export async function deleteKeysOfCustomer(
  db: Kysely<KeyDb>,
  workspaceId: string,
  customerId: string,
): Promise<string[]> {
  const rows = await db
    .deleteFrom('data_key')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function deleteKeysOfCategories(
  db: Kysely<KeyDb>,
  workspaceId: string,
  customerId: string,
  categories: readonly string[],
): Promise<string[]> {
  if (categories.length === 0) return [];
  const rows = await db
    .deleteFrom('data_key')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .where('category', 'in', [...categories])
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function deleteCustomerKeysByIds(
  db: Kysely<KeyDb>,
  workspaceId: string,
  customerId: string,
  ids: readonly string[],
): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .deleteFrom('data_key')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .where('id', 'in', [...ids])
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function deleteKeysByIds(
  db: Kysely<KeyDb>,
  workspaceId: string,
  ids: readonly string[],
): Promise<void> {
  if (ids.length === 0) return;
  await db
    .deleteFrom('data_key')
    .where('workspace_id', '=', workspaceId)
    .where('id', 'in', [...ids])
    .execute();
}

export async function pageKeysNotOnVersion(
  db: Kysely<KeyDb>,
  version: number,
  limit: number,
): Promise<DataKeyTable[]> {
  return db
    .selectFrom('data_key')
    .selectAll()
    .where('kek_version', '!=', version)
    .orderBy('workspace_id')
    .orderBy('id')
    .limit(limit)
    .execute();
}

export async function updateWrapped(
  db: Kysely<KeyDb>,
  row: Pick<DataKeyTable, 'workspace_id' | 'id' | 'kek_version' | 'wrapped'>,
  previousVersion: number,
): Promise<void> {
  await db
    .updateTable('data_key')
    .set({ kek_version: row.kek_version, wrapped: row.wrapped })
    .where('workspace_id', '=', row.workspace_id)
    .where('id', '=', row.id)
    .where('kek_version', '=', previousVersion)
    .execute();
}

export async function countByKekVersion(db: Kysely<KeyDb>): Promise<Map<number, number>> {
  const rows = await db
    .selectFrom('data_key')
    .select((eb) => ['kek_version', eb.fn.countAll<number>().as('n')])
    .groupBy('kek_version')
    .execute();
  return new Map(rows.map((r) => [r.kek_version, r.n]));
}
