import type { Kysely } from 'kysely';
import type { ApiTokenTable, DataDb } from '../../platform/db/schema.js';

export async function insertToken(db: Kysely<DataDb>, row: ApiTokenTable): Promise<void> {
  await db.insertInto('api_token').values(row).execute();
}

export async function findActiveTokenByHash(
  db: Kysely<DataDb>,
  tokenHash: string,
): Promise<Pick<ApiTokenTable, 'id' | 'workspace_id' | 'role'> | undefined> {
  return db
    .selectFrom('api_token')
    .select(['id', 'workspace_id', 'role'])
    .where('token_hash', '=', tokenHash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
}

export async function listTokens(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<ApiTokenTable[]> {
  return db
    .selectFrom('api_token')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('id')
    .execute();
}

export async function countActiveTokensWithRole(db: Kysely<DataDb>, role: string): Promise<number> {
  const rows = await db
    .selectFrom('api_token')
    .select('id')
    .where('role', '=', role)
    .where('revoked_at', 'is', null)
    .limit(1)
    .execute();
  return rows.length;
}

export async function revokeToken(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  at: string,
): Promise<number> {
  const result = await db
    .updateTable('api_token')
    .set({ revoked_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
