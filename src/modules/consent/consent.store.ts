import type { Kysely } from 'kysely';
import { prepared } from '../../platform/db/prepared.js';
import type { ConsentEventTable, DataDb } from '../../platform/db/schema.js';

export async function insertEvents(
  db: Kysely<DataDb>,
  rows: readonly ConsentEventTable[],
): Promise<void> {
  if (rows.length === 0) return;
  await insertEventRows(db, rows);
}

const insertEventRows = prepared((db: Kysely<DataDb>, rows: readonly ConsentEventTable[]) =>
  db.insertInto('consent_event').values([...rows]),
);

export async function listEvents(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerIds: readonly string[],
): Promise<Pick<ConsentEventTable, 'customer_id' | 'purpose_key' | 'event' | 'id'>[]> {
  if (customerIds.length === 0) return [];
  return selectEvents(db, workspaceId, customerIds);
}

// Ordered by customer, then event id: the (workspace_id, customer_id, id) index serves it.
const selectEvents = prepared(
  (db: Kysely<DataDb>, workspaceId: string, customerIds: readonly string[]) =>
    db
      .selectFrom('consent_event')
      .select(['customer_id', 'purpose_key', 'event', 'id'])
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', 'in', customerIds)
      .orderBy('customer_id')
      .orderBy('id'),
);

export async function deleteEvents(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await db
    .deleteFrom('consent_event')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
}
