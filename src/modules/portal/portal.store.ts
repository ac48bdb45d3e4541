import { sql, type Kysely } from 'kysely';
import type {
  ChangeRequestTable,
  ContactVerificationTable,
  DataDb,
  PortalCodeTable,
  PortalSessionTable,
} from '../../platform/db/schema.js';

export async function insertCode(db: Kysely<DataDb>, row: PortalCodeTable): Promise<void> {
  await db.insertInto('portal_code').values(row).execute();
}

/** How many codes were issued since `since` for this address, or to this source. */
export async function countCodesSince(
  db: Kysely<DataDb>,
  workspaceId: string,
  by: { addressDigest: string } | { sourceDigest: string },
  since: string,
): Promise<number> {
  let q = db
    .selectFrom('portal_code')
    .select(sql<number | string>`count(*)`.as('n'))
    .where('workspace_id', '=', workspaceId)
    .where('created_at', '>=', since);
  q =
    'addressDigest' in by
      ? q.where('address_digest', '=', by.addressDigest)
      : q.where('source_digest', '=', by.sourceDigest);
  const row = await q.executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The newest code of this kind for the address (and session, for codes bound to one). */
export async function findLatestCode(
  db: Kysely<DataDb>,
  workspaceId: string,
  kind: string,
  addressDigest: string | null,
  sessionId: string | null,
): Promise<PortalCodeTable | undefined> {
  let q = db
    .selectFrom('portal_code')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('kind', '=', kind);
  if (addressDigest !== null) q = q.where('address_digest', '=', addressDigest);
  if (sessionId !== null) q = q.where('session_id', '=', sessionId);
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
}

/** Counts an attempt; answers the attempts made, including this one. */
export async function countAttempt(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<number> {
  await db
    .updateTable('portal_code')
    .set({ attempts: sql<number>`attempts + 1` })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
  const row = await db
    .selectFrom('portal_code')
    .select('attempts')
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return row.attempts;
}

/** Marks a code used; answers false when it was already used (a code passes once). */
export async function useCode(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  at: string,
): Promise<boolean> {
  const result = await db
    .updateTable('portal_code')
    .set({ used_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function insertSession(db: Kysely<DataDb>, row: PortalSessionTable): Promise<void> {
  await db.insertInto('portal_session').values(row).execute();
}

export async function findSessionByToken(
  db: Kysely<DataDb>,
  tokenHash: string,
): Promise<PortalSessionTable | undefined> {
  return db
    .selectFrom('portal_session')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .where('ended_at', 'is', null)
    .executeTakeFirst();
}

export async function updateSession(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  change: Partial<
    Pick<PortalSessionTable, 'last_seen_at' | 'reverified_at' | 'ended_at' | 'language'>
  >,
): Promise<void> {
  await db
    .updateTable('portal_session')
    .set(change)
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
}

export async function endSessionsOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  at: string,
): Promise<void> {
  await db
    .updateTable('portal_session')
    .set({ ended_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .where('ended_at', 'is', null)
    .execute();
}

export async function upsertVerification(
  db: Kysely<DataDb>,
  row: ContactVerificationTable,
): Promise<void> {
  await db
    .insertInto('contact_verification')
    .values(row)
    .onConflict((oc) =>
      oc
        .columns(['workspace_id', 'customer_id', 'field'])
        .doUpdateSet({ value_digest: row.value_digest, verified_at: row.verified_at }),
    )
    .execute();
}

export async function listVerifications(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<ContactVerificationTable[]> {
  return db
    .selectFrom('contact_verification')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
}

export async function insertChangeRequest(
  db: Kysely<DataDb>,
  row: ChangeRequestTable,
): Promise<void> {
  await db.insertInto('change_request').values(row).execute();
}

export async function findChangeRequest(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<ChangeRequestTable | undefined> {
  return db
    .selectFrom('change_request')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function listChangeRequests(
  db: Kysely<DataDb>,
  workspaceId: string,
  filter: { customerId?: string; status?: string },
): Promise<ChangeRequestTable[]> {
  let q = db.selectFrom('change_request').selectAll().where('workspace_id', '=', workspaceId);
  if (filter.customerId !== undefined) q = q.where('customer_id', '=', filter.customerId);
  if (filter.status !== undefined) q = q.where('status', '=', filter.status);
  return q.orderBy('created_at').orderBy('id').limit(500).execute();
}

/** Decides a pending request; answers false when it was no longer pending. */
export async function decideChangeRequest(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  change: Pick<ChangeRequestTable, 'status' | 'decided_at' | 'decided_by' | 'reason_sealed'>,
): Promise<boolean> {
  const result = await db
    .updateTable('change_request')
    .set(change)
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Deletes codes issued before `codesBefore` (past every limit's window) and sessions that can no
 * longer be used: ended, past their absolute limit, or idle since `idleBefore`. Every workspace.
 */
export async function purgeStale(
  db: Kysely<DataDb>,
  input: { codesBefore: string; now: string; idleBefore: string },
): Promise<{ codes: number; sessions: number }> {
  const codes = await db
    .deleteFrom('portal_code')
    .where('created_at', '<', input.codesBefore)
    .executeTakeFirst();
  const sessions = await db
    .deleteFrom('portal_session')
    .where((eb) =>
      eb.or([
        eb('ended_at', 'is not', null),
        eb('expires_at', '<=', input.now),
        eb('last_seen_at', '<', input.idleBefore),
      ]),
    )
    .executeTakeFirst();
  return { codes: Number(codes.numDeletedRows), sessions: Number(sessions.numDeletedRows) };
}

/** Everything the portal keeps about a customer, deleted with them (erasure). */
export async function deletePortalRowsOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  for (const table of [
    'portal_code',
    'portal_session',
    'contact_verification',
    'change_request',
  ] as const) {
    await db
      .deleteFrom(table)
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', '=', customerId)
      .execute();
  }
}
