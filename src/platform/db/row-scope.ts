import { sql, type Kysely } from 'kysely';

/**
 * Which rows a unit of work or a read may touch. On PostgreSQL, row-level security enforces
 * it on every table with workspace data: a workspace id shows that workspace's rows only, and
 * a query that sets no scope sees no rows at all. `EVERY_WORKSPACE` is for the few system
 * paths that must cross workspaces (a token found by its hash, the sweeps, key rotation,
 * audit verification); it has to be asked for by name. SQLite has no row-level security: the
 * scope is accepted and the queries' own workspace filters are the only guard.
 */
export const EVERY_WORKSPACE: unique symbol = Symbol('every workspace');
export type RowScope = string | typeof EVERY_WORKSPACE;

/** The PostgreSQL setting the policies read (see migration 0006). */
export const SCOPE_SETTING = 'custodia.workspace';
const EVERY_WORKSPACE_VALUE = '*';

/** The setting's value for a scope; refuses an id that would widen the scope. */
export function scopeValue(scope: RowScope): string {
  if (scope === EVERY_WORKSPACE) return EVERY_WORKSPACE_VALUE;
  if (scope === '' || scope === EVERY_WORKSPACE_VALUE) {
    throw new Error('invalid workspace scope');
  }
  return scope;
}

/** Sets the scope for the rest of the current transaction (PostgreSQL). */
export async function enterRowScope<DB>(trx: Kysely<DB>, scope: RowScope): Promise<void> {
  await sql`select set_config(${SCOPE_SETTING}, ${scopeValue(scope)}, true)`.execute(trx);
}

/** Connection options that give a session every workspace's rows (pg_dump, tests' inspection). */
export const EVERY_WORKSPACE_OPTIONS = `-c ${SCOPE_SETTING}=${EVERY_WORKSPACE_VALUE}`;
