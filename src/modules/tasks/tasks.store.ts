import type { Kysely, Updateable } from 'kysely';
import type { BreakGlassTable, DataDb, TaskTable } from '../../platform/db/schema.js';

export async function insertTask(db: Kysely<DataDb>, row: TaskTable): Promise<void> {
  await db.insertInto('task').values(row).execute();
}

export async function findTask(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<TaskTable | undefined> {
  return db
    .selectFrom('task')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function listTasks(
  db: Kysely<DataDb>,
  workspaceId: string,
  assigneeId: string | undefined,
): Promise<TaskTable[]> {
  let q = db.selectFrom('task').selectAll().where('workspace_id', '=', workspaceId);
  if (assigneeId !== undefined) q = q.where('assignee_id', '=', assigneeId);
  return q.orderBy('id').limit(500).execute();
}

export async function openTaskCustomers(
  db: Kysely<DataDb>,
  workspaceId: string,
  assigneeId: string,
  now: string,
): Promise<string[]> {
  const rows = await db
    .selectFrom('task')
    .select('customer_id')
    .distinct()
    .where('workspace_id', '=', workspaceId)
    .where('assignee_id', '=', assigneeId)
    .where('status', '=', 'open')
    .where('due_at', '>', now)
    .execute();
  return rows.map((r) => r.customer_id);
}

export async function updateTask(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  changes: Updateable<TaskTable>,
): Promise<void> {
  await db
    .updateTable('task')
    .set(changes)
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
}

export async function deleteTasksOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await db
    .deleteFrom('task')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
}

export async function insertBreakGlass(db: Kysely<DataDb>, row: BreakGlassTable): Promise<void> {
  await db.insertInto('break_glass').values(row).execute();
}

export async function findBreakGlass(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<BreakGlassTable | undefined> {
  return db
    .selectFrom('break_glass')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function listBreakGlass(
  db: Kysely<DataDb>,
  workspaceId: string,
  status: string,
): Promise<BreakGlassTable[]> {
  return db
    .selectFrom('break_glass')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('review_status', '=', status)
    .orderBy('id')
    .limit(500)
    .execute();
}

/** Records a review of a pending entry; answers how many it changed (0: reviewed already). */
export async function reviewBreakGlass(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  review: Pick<BreakGlassTable, 'review_status' | 'reviewed_by' | 'reviewed_at' | 'note_sealed'>,
): Promise<number> {
  const r = await db
    .updateTable('break_glass')
    .set(review)
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('review_status', '=', 'pending')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function deleteBreakGlassOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await db
    .deleteFrom('break_glass')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
}
