import { sql, type Kysely, type Transaction } from 'kysely';
import type { DialectName } from '../../platform/db/database.js';
import { prepared } from '../../platform/db/prepared.js';
import type { AuditCheckpointTable, AuditEntryTable, DataDb } from '../../platform/db/schema.js';

export async function findHead(
  trx: Transaction<DataDb>,
  dialect: DialectName,
  workspaceId: string,
): Promise<{ seq: number; hash: string } | undefined> {
  let query = trx
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .where('workspace_id', '=', workspaceId);
  // PostgreSQL: several processes may append; the head row serialises them per workspace.
  if (dialect === 'postgres') query = query.forUpdate();
  return query.executeTakeFirst();
}

/** Creates the head row if missing; concurrent creators (other processes) are harmless. */
export async function ensureHeadRow(
  trx: Transaction<DataDb>,
  workspaceId: string,
  genesisHash: string,
): Promise<void> {
  await trx
    .insertInto('audit_head')
    .values({ workspace_id: workspaceId, seq: 0, hash: genesisHash })
    .onConflict((oc) => oc.column('workspace_id').doNothing())
    .execute();
}

export async function readHead(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<{ seq: number; hash: string } | undefined> {
  return db
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
}

export async function updateHead(
  trx: Transaction<DataDb>,
  workspaceId: string,
  seq: number,
  hash: string,
): Promise<void> {
  await trx
    .updateTable('audit_head')
    .set({ seq, hash })
    .where('workspace_id', '=', workspaceId)
    .execute();
}

const insertEntryRow = prepared((db: Kysely<DataDb>, row: AuditEntryTable) =>
  db.insertInto('audit_entry').values(row),
);

export async function insertEntry(trx: Transaction<DataDb>, row: AuditEntryTable): Promise<void> {
  await insertEntryRow(trx, row);
}

export async function insertCheckpoint(
  trx: Transaction<DataDb>,
  row: AuditCheckpointTable,
): Promise<void> {
  await trx.insertInto('audit_checkpoint').values(row).execute();
}

export async function listWorkspacesWithEntries(db: Kysely<DataDb>): Promise<string[]> {
  const rows = await db
    .selectFrom('audit_head')
    .select('workspace_id')
    .union(db.selectFrom('audit_entry').select('workspace_id').distinct())
    .union(db.selectFrom('audit_checkpoint').select('workspace_id').distinct())
    .execute();
  return rows.map((r) => r.workspace_id).sort();
}

export async function pageEntries(
  db: Kysely<DataDb>,
  workspaceId: string,
  afterSeq: number,
  limit: number,
  customerId?: string,
): Promise<AuditEntryTable[]> {
  let query = db
    .selectFrom('audit_entry')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('seq', '>', afterSeq);
  if (customerId !== undefined) query = query.where('customer_id', '=', customerId);
  return query.orderBy('seq').limit(limit).execute();
}

export async function listCheckpoints(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<AuditCheckpointTable[]> {
  return db
    .selectFrom('audit_checkpoint')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('seq')
    .execute();
}

export async function countEntries(db: Kysely<DataDb>): Promise<number> {
  const row = await db
    .selectFrom('audit_entry')
    .select(sql<number | string>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** How many entries of one action and outcome each calendar month (UTC) holds. */
export async function countActionPerMonth(
  db: Kysely<DataDb>,
  workspaceId: string,
  action: string,
  outcome: string,
): Promise<{ month: string; count: number }[]> {
  const rows = await db
    .selectFrom('audit_entry')
    .select('at')
    .where('workspace_id', '=', workspaceId)
    .where('action', '=', action)
    .where('outcome', '=', outcome)
    .execute();
  const months = new Map<string, number>();
  for (const r of rows) months.set(r.at.slice(0, 7), (months.get(r.at.slice(0, 7)) ?? 0) + 1);
  return [...months]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([month, count]) => ({ month, count }));
}
