import type SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, type Compilable, type Kysely } from 'kysely';

/**
 * Hot queries, built with Kysely once per shape and then re-executed with new values.
 *
 * Building and compiling a Kysely query costs several times what SQLite takes to run it, so
 * the gateway's per-request statements go through here. The query is still written with the
 * query builder (one source of truth for both dialects); its SQL is compiled once per dialect
 * and per shape (array lengths, object keys) with marker values in place of the arguments, and
 * each call binds the real values in the positions the markers took. On SQLite the statement
 * runs directly on the connection that Kysely would have used (the transaction's, or the
 * reader's); on PostgreSQL it goes through Kysely's executor.
 */

/** A scalar, an array of scalars, a row object of scalars, or an array of row objects. */
export type Arg = unknown;

type Path = readonly (string | number)[];
type Slot = { readonly arg: Path } | { readonly constant: unknown };

interface Template {
  readonly sql: string;
  readonly slots: readonly Slot[];
}

const rawConnections = new WeakMap<object, SqliteDatabase.Database>();
const statementCaches = new WeakMap<
  SqliteDatabase.Database,
  Map<string, SqliteDatabase.Statement>
>();

/** Records that queries on `db` (a Kysely instance or transaction) run on this connection. */
export function bindSqliteConnection(db: object, conn: SqliteDatabase.Database): void {
  rawConnections.set(db, conn);
}

/** Forgets a binding: a finished transaction must never reach the connection again. */
export function unbindSqliteConnection(db: object): void {
  rawConnections.delete(db);
}

/** Statements are prepared once per connection and SQL text. */
export function cachedStatement(
  conn: SqliteDatabase.Database,
  sql: string,
): SqliteDatabase.Statement {
  let cache = statementCaches.get(conn);
  if (cache === undefined)
    statementCaches.set(conn, (cache = new Map<string, SqliteDatabase.Statement>()));
  let stmt = cache.get(sql);
  if (stmt === undefined) {
    stmt = conn.prepare(sql);
    if (cache.size >= 1000) cache.clear();
    cache.set(sql, stmt);
  }
  return stmt;
}

const MARK = '\u0000custodia-arg\u0000';

function isRow(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !(value instanceof Uint8Array);
}

function markerize(value: Arg, path: Path): unknown {
  if (Array.isArray(value)) return value.map((v: unknown, i) => markerize(v, [...path, i]));
  if (isRow(value)) {
    return Object.fromEntries(
      Object.keys(value).map((k) => [k, `${MARK}${JSON.stringify([...path, k])}`]),
    );
  }
  return `${MARK}${JSON.stringify(path)}`;
}

function shapeOf(args: readonly Arg[]): string {
  return args
    .map((a) => {
      if (Array.isArray(a)) {
        const first: unknown = a[0];
        return isRow(first) ? `[${a.length}:${Object.keys(first).join(',')}]` : `[${a.length}]`;
      }
      return isRow(a) ? `{${Object.keys(a).join(',')}}` : '.';
    })
    .join('|');
}

function resolve(args: readonly Arg[], path: Path): unknown {
  let value: unknown = args;
  for (const key of path) value = (value as Record<string | number, unknown>)[key];
  return value;
}

/**
 * Defines a prepared query. `build` must use its arguments only as values (never to choose
 * the query's structure other than through array lengths and object keys).
 */
export function prepared<DB, A extends readonly Arg[], R>(
  build: (db: Kysely<DB>, ...args: A) => Compilable<R>,
): (db: Kysely<DB>, ...args: A) => Promise<R[]> {
  const templates = new Map<string, Template>();
  return async (db, ...args) => {
    const key = `${db.getExecutor().adapter.constructor.name}#${shapeOf(args)}`;
    let template = templates.get(key);
    if (template === undefined) {
      const marked = args.map((a, i) => markerize(a, [i])) as unknown as A;
      const compiled = build(db, ...marked).compile();
      template = {
        sql: compiled.sql,
        slots: compiled.parameters.map((p) =>
          typeof p === 'string' && p.startsWith(MARK)
            ? { arg: JSON.parse(p.slice(MARK.length)) as Path }
            : { constant: p },
        ),
      };
      templates.set(key, template);
    }
    const parameters = template.slots.map((s) => ('arg' in s ? resolve(args, s.arg) : s.constant));
    const conn = rawConnections.get(db);
    if (conn !== undefined) {
      const stmt = cachedStatement(conn, template.sql);
      if (stmt.reader) return stmt.all(parameters) as R[];
      stmt.run(parameters);
      return [];
    }
    const result = await db.executeQuery<R>(CompiledQuery.raw(template.sql, parameters));
    return [...result.rows];
  };
}
