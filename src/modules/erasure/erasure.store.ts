import type { Kysely } from 'kysely';
import type { CategoryErasureTable, DataDb, ErasureTable } from '../../platform/db/schema.js';

export async function findByCustomer(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<ErasureTable | undefined> {
  return db
    .selectFrom('erasure')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .executeTakeFirst();
}

export async function insertErasure(db: Kysely<DataDb>, row: ErasureTable): Promise<void> {
  await db.insertInto('erasure').values(row).execute();
}

/** Completes a pending entry; answers how many it completed (0 when already completed). */
export async function completeErasure(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  completedAt: string,
  destroyedKeyIds: readonly string[],
): Promise<number> {
  const result = await db
    .updateTable('erasure')
    .set({
      status: 'completed',
      completed_at: completedAt,
      destroyed_key_ids: JSON.stringify(destroyedKeyIds),
    })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function listPending(db: Kysely<DataDb>): Promise<ErasureTable[]> {
  return db
    .selectFrom('erasure')
    .selectAll()
    .where('status', '=', 'pending')
    .orderBy('id')
    .execute();
}

export async function insertCategoryErasure(
  db: Kysely<DataDb>,
  row: CategoryErasureTable,
): Promise<void> {
  await db.insertInto('category_erasure').values(row).execute();
}

/** Completes a pending category erasure; answers how many it completed. */
export async function completeCategoryErasure(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  completedAt: string,
  destroyedKeyIds: readonly string[],
): Promise<number> {
  const result = await db
    .updateTable('category_erasure')
    .set({
      status: 'completed',
      completed_at: completedAt,
      destroyed_key_ids: JSON.stringify(destroyedKeyIds),
    })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function listPendingCategoryErasures(
  db: Kysely<DataDb>,
): Promise<CategoryErasureTable[]> {
  return db
    .selectFrom('category_erasure')
    .selectAll()
    .where('status', '=', 'pending')
    .orderBy('id')
    .execute();
}

export async function findCategoryErasure(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<CategoryErasureTable | undefined> {
  return db
    .selectFrom('category_erasure')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function listCategoryErasuresOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<Pick<CategoryErasureTable, 'destroyed_key_ids' | 'status'>[]> {
  return db
    .selectFrom('category_erasure')
    .select(['destroyed_key_ids', 'status'])
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
}
