import type { Kysely, Updateable } from 'kysely';
import type { DataDb, SubjectRequestTable } from '../../platform/db/schema.js';

export async function insertRequest(db: Kysely<DataDb>, row: SubjectRequestTable): Promise<void> {
  await db.insertInto('subject_request').values(row).execute();
}

export async function findRequest(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<SubjectRequestTable | undefined> {
  return db
    .selectFrom('subject_request')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export interface RequestFilter {
  readonly status?: string | undefined;
  /** true: open and past the effective due date; false: everything else. */
  readonly overdue?: boolean | undefined;
  /** The UTC date that "past due" is measured against. */
  readonly today: string;
  /** Resume after this (effective due date, id). */
  readonly after?: { readonly dueOn: string; readonly id: string } | undefined;
  readonly limit: number;
}

/** Requests by effective due date (the extended one when there is one), soonest first, then id. */
export async function pageRequests(
  db: Kysely<DataDb>,
  workspaceId: string,
  filter: RequestFilter,
): Promise<SubjectRequestTable[]> {
  let q = db.selectFrom('subject_request').selectAll().where('workspace_id', '=', workspaceId);
  if (filter.status !== undefined) q = q.where('status', '=', filter.status);
  if (filter.overdue === true) {
    q = q
      .where('status', '=', 'open')
      .where((eb) => eb(eb.fn.coalesce('extended_to', 'due_on'), '<', filter.today));
  } else if (filter.overdue === false) {
    q = q.where((eb) =>
      eb.or([
        eb('status', '<>', 'open'),
        eb(eb.fn.coalesce('extended_to', 'due_on'), '>=', filter.today),
      ]),
    );
  }
  const after = filter.after;
  if (after !== undefined) {
    q = q.where((eb) => {
      const due = eb.fn.coalesce('extended_to', 'due_on');
      return eb.or([
        eb(due, '>', after.dueOn),
        eb.and([eb(due, '=', after.dueOn), eb('id', '>', after.id)]),
      ]);
    });
  }
  return q
    .orderBy((eb) => eb.fn.coalesce('extended_to', 'due_on'))
    .orderBy('id')
    .limit(filter.limit)
    .execute();
}

/**
 * Changes a request only while it is still open and its extended deadline is still
 * `expectedExtendedTo` (what the caller decided on); answers how many rows it changed.
 */
export async function updateOpenRequest(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  expectedExtendedTo: string | null | undefined,
  changes: Updateable<SubjectRequestTable>,
): Promise<number> {
  let q = db
    .updateTable('subject_request')
    .set(changes)
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('status', '=', 'open');
  if (expectedExtendedTo === null) q = q.where('extended_to', 'is', null);
  else if (expectedExtendedTo !== undefined) q = q.where('extended_to', '=', expectedExtendedTo);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}
