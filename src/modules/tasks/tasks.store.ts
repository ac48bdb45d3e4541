import type { Kysely, Updateable } from 'kysely';
import type { DataDb, TaskTable } from '../../platform/db/schema.js';

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
