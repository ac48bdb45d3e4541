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

/** What deriving the current agreements needs from each event. */
const summaryColumns = [
  'customer_id',
  'purpose_key',
  'event',
  'id',
  'notice_version',
  'basis',
  'starts_at',
  'expires_at',
  'reference',
  'ends_id',
] as const;

export type EventSummary = Pick<
  ConsentEventTable,
  | 'customer_id'
  | 'purpose_key'
  | 'event'
  | 'id'
  | 'notice_version'
  | 'basis'
  | 'starts_at'
  | 'expires_at'
  | 'reference'
  | 'ends_id'
>;

export async function listEvents(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerIds: readonly string[],
): Promise<EventSummary[]> {
  if (customerIds.length === 0) return [];
  return selectEvents(db, workspaceId, customerIds);
}

// Ordered by customer, then event id: the (workspace_id, customer_id, id) index serves it.
const selectEvents = prepared(
  (db: Kysely<DataDb>, workspaceId: string, customerIds: readonly string[]) =>
    db
      .selectFrom('consent_event')
      .select(summaryColumns)
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', 'in', customerIds)
      .orderBy('customer_id')
      .orderBy('id'),
);

export async function listHistory(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<ConsentEventTable[]> {
  return db
    .selectFrom('consent_event')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .orderBy('id')
    .execute();
}

export async function listWorkspaceEvents(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<(EventSummary & Pick<ConsentEventTable, 'at'>)[]> {
  return db
    .selectFrom('consent_event')
    .select([...summaryColumns, 'at'])
    .where('workspace_id', '=', workspaceId)
    .orderBy('customer_id')
    .orderBy('id')
    .execute();
}

/**
 * Grants that have run out, or whose purpose was retired, and that no event has ended yet:
 * the work of the expiry job. A grant superseded by a newer one is not current, so not listed.
 */
export async function listEndableGrants(
  db: Kysely<DataDb>,
  now: string,
  limit: number,
  only?: { readonly workspaceId: string; readonly purposeKey: string },
): Promise<Pick<ConsentEventTable, 'workspace_id' | 'customer_id' | 'purpose_key' | 'id'>[]> {
  let query = db
    .selectFrom('consent_event as g')
    .select(['g.workspace_id', 'g.customer_id', 'g.purpose_key', 'g.id'])
    .where('g.event', '=', 'granted')
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('consent_event as e')
            .select('e.id')
            .whereRef('e.workspace_id', '=', 'g.workspace_id')
            .whereRef('e.ends_id', '=', 'g.id'),
        ),
      ),
    )
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('consent_event as n')
            .select('n.id')
            .whereRef('n.workspace_id', '=', 'g.workspace_id')
            .whereRef('n.customer_id', '=', 'g.customer_id')
            .whereRef('n.purpose_key', '=', 'g.purpose_key')
            .where('n.event', '=', 'granted')
            .whereRef('n.id', '>', 'g.id'),
        ),
      ),
    );
  if (only === undefined) {
    query = query.where((eb) =>
      eb.or([
        eb('g.expires_at', '<=', now),
        eb.exists(
          eb
            .selectFrom('purpose as p')
            .select('p.id')
            .whereRef('p.workspace_id', '=', 'g.workspace_id')
            .whereRef('p.key', '=', 'g.purpose_key')
            .where('p.status', '=', 'retired'),
        ),
      ]),
    );
  } else {
    query = query
      .where('g.workspace_id', '=', only.workspaceId)
      .where('g.purpose_key', '=', only.purposeKey);
  }
  return query.orderBy('g.id').limit(limit).execute();
}

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
