import { sql, type Kysely, type Updateable } from 'kysely';
import type { DialectName } from '../../platform/db/database.js';
import type {
  DataDb,
  StaffAccountTable,
  StaffInvitationTable,
  StaffSessionTable,
} from '../../platform/db/schema.js';

export async function insertAccount(db: Kysely<DataDb>, row: StaffAccountTable): Promise<void> {
  await db.insertInto('staff_account').values(row).execute();
}

export async function findAccount(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<StaffAccountTable | undefined> {
  return db
    .selectFrom('staff_account')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** The account row, locked for the rest of the transaction on PostgreSQL. */
export async function findAccountForUpdate(
  db: Kysely<DataDb>,
  dialect: DialectName,
  workspaceId: string,
  id: string,
): Promise<StaffAccountTable | undefined> {
  const q = db
    .selectFrom('staff_account')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id);
  // SQLite has no row locks: a process's write transactions run one after another.
  return (dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
}

/** Adds one to the failure count, atomically; answers the new count. */
export async function incrementFailures(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<number> {
  const row = await db
    .updateTable('staff_account')
    .set({ failed_logins: sql<number>`failed_logins + 1` })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .returning('failed_logins')
    .executeTakeFirst();
  return row?.failed_logins ?? 0;
}

export async function findByEmailDigest(
  db: Kysely<DataDb>,
  workspaceId: string,
  digest: string,
): Promise<StaffAccountTable | undefined> {
  return db
    .selectFrom('staff_account')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('email_digest', '=', digest)
    .executeTakeFirst();
}

export async function listAccounts(
  db: Kysely<DataDb>,
  workspaceId: string,
): Promise<StaffAccountTable[]> {
  return db
    .selectFrom('staff_account')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('id')
    .execute();
}

export async function updateAccount(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  changes: Updateable<StaffAccountTable>,
): Promise<void> {
  await db
    .updateTable('staff_account')
    .set(changes)
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
}

export async function insertInvitation(
  db: Kysely<DataDb>,
  row: StaffInvitationTable,
): Promise<void> {
  await db.insertInto('staff_invitation').values(row).execute();
}

export async function findInvitationByHash(
  db: Kysely<DataDb>,
  tokenHash: string,
): Promise<StaffInvitationTable | undefined> {
  return db
    .selectFrom('staff_invitation')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
}

/** Marks an unused invitation used; answers how many it marked (0: used already). */
export async function useInvitation(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  at: string,
): Promise<number> {
  const r = await db
    .updateTable('staff_invitation')
    .set({ used_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function insertSession(db: Kysely<DataDb>, row: StaffSessionTable): Promise<void> {
  await db.insertInto('staff_session').values(row).execute();
}

/** A session that is not revoked, with its account's role and status. */
export async function findLiveSession(
  db: Kysely<DataDb>,
  tokenHash: string,
): Promise<(StaffSessionTable & { role: string; status: string }) | undefined> {
  return db
    .selectFrom('staff_session as s')
    .innerJoin('staff_account as a', (j) =>
      j.onRef('a.workspace_id', '=', 's.workspace_id').onRef('a.id', '=', 's.staff_id'),
    )
    .selectAll('s')
    .select(['a.role', 'a.status'])
    .where('s.token_hash', '=', tokenHash)
    .where('s.revoked_at', 'is', null)
    .executeTakeFirst();
}

export async function touchSession(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  at: string,
): Promise<void> {
  await db
    .updateTable('staff_session')
    .set({ last_seen_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
}

export async function markSessionMfa(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  at: string,
): Promise<void> {
  await db
    .updateTable('staff_session')
    .set({ mfa_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
}

/** Revokes the member's live sessions (only `onlyId`, when given). */
export async function revokeSessions(
  db: Kysely<DataDb>,
  workspaceId: string,
  staffId: string,
  at: string,
  onlyId?: string,
): Promise<void> {
  let q = db
    .updateTable('staff_session')
    .set({ revoked_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('staff_id', '=', staffId)
    .where('revoked_at', 'is', null);
  if (onlyId !== undefined) q = q.where('id', '=', onlyId);
  await q.execute();
}

export async function replaceRecoveryCodes(
  db: Kysely<DataDb>,
  workspaceId: string,
  staffId: string,
  hashes: readonly string[],
): Promise<void> {
  await db
    .deleteFrom('staff_recovery_code')
    .where('workspace_id', '=', workspaceId)
    .where('staff_id', '=', staffId)
    .execute();
  await db
    .insertInto('staff_recovery_code')
    .values(
      hashes.map((code_hash) => ({
        workspace_id: workspaceId,
        staff_id: staffId,
        code_hash,
        used_at: null,
      })),
    )
    .execute();
}

/** Uses an unused recovery code; answers 1 if it was one, 0 otherwise. */
export async function useRecoveryCode(
  db: Kysely<DataDb>,
  workspaceId: string,
  staffId: string,
  codeHash: string,
  at: string,
): Promise<number> {
  const r = await db
    .updateTable('staff_recovery_code')
    .set({ used_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('staff_id', '=', staffId)
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/**
 * Counts one more login attempt from a client address in its window, atomically, before the
 * password is checked; answers the count. A successful login gives its attempt back.
 */
export async function reserveSourceAttempt(
  db: Kysely<DataDb>,
  source: string,
  windowStart: string,
): Promise<number> {
  // INSERT ... ON CONFLICT DO UPDATE ... RETURNING: the same SQL on both dialects.
  const row = await db
    .insertInto('login_throttle')
    .values({ source, window_start: windowStart, failures: 1 })
    .onConflict((oc) =>
      oc.columns(['source', 'window_start']).doUpdateSet({
        failures: sql<number>`login_throttle.failures + 1`,
      }),
    )
    .returning('failures')
    .executeTakeFirstOrThrow();
  await db.deleteFrom('login_throttle').where('window_start', '<', windowStart).execute();
  return row.failures;
}

export async function countSourceFailures(
  db: Kysely<DataDb>,
  source: string,
  windowStart: string,
): Promise<number> {
  const row = await db
    .selectFrom('login_throttle')
    .select('failures')
    .where('source', '=', source)
    .where('window_start', '=', windowStart)
    .executeTakeFirst();
  return row?.failures ?? 0;
}

export async function releaseSourceAttempt(
  db: Kysely<DataDb>,
  source: string,
  windowStart: string,
): Promise<void> {
  await db
    .updateTable('login_throttle')
    .set({ failures: sql<number>`failures - 1` })
    .where('source', '=', source)
    .where('window_start', '=', windowStart)
    .execute();
}
