import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, SqliteDialect, type Migration } from 'kysely';
import pg from 'pg';
import { GroupCommit } from './group-commit.js';
import { migrateToLatest } from './migrator.js';
import { bindSqliteConnection, cachedStatement, unbindSqliteConnection } from './prepared.js';
import { enterRowScope, type RowScope } from './row-scope.js';

export type DialectName = 'sqlite' | 'postgres';

/**
 * One store (the data store or the key store): the group-commit queue that every durable
 * write goes through, and reads outside it. Both name the row scope they work in.
 */
export interface Store<DB> {
  readonly dialect: DialectName;
  /**
   * The unscoped handle, for migrations, tooling and tests. On PostgreSQL it sees no row of
   * any workspace (row-level security) until a scope is set; application code goes through
   * `batch` and `read`.
   */
  readonly db: Kysely<DB>;
  readonly batch: GroupCommit<DB>;
  /**
   * Reads outside a unit of work, seeing only the rows of `scope`. On PostgreSQL the reads run
   * in one read-only, repeatable-read transaction (one snapshot); on SQLite on the reader
   * connection, in one snapshot only with `snapshot`.
   */
  read<T>(
    scope: RowScope,
    fn: (db: Kysely<DB>) => Promise<T>,
    options?: { readonly snapshot?: boolean },
  ): Promise<T>;
  /**
   * Whether PostgreSQL's row-level security binds this store's connections: `bypassed` when
   * the database role is a superuser or has BYPASSRLS; `unavailable` on SQLite.
   */
  readonly rowSecurity: 'enforced' | 'bypassed' | 'unavailable';
  /** The SQLite files of this store (empty on PostgreSQL), for backups and scans. */
  readonly files: readonly string[];
  close(): Promise<void>;
}

export type StoreLocation = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

// PostgreSQL int8 (bigint) as a JS number: audit sequence numbers stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** better-sqlite3 prepares a statement per query under Kysely; reuse them by SQL text. */
function withStatementCache(
  db: SqliteDatabase.Database,
): ConstructorParameters<typeof SqliteDialect>[0]['database'] {
  return { close: () => db.close(), prepare: (sql: string) => cachedStatement(db, sql) };
}

function openSqliteConnection(file: string, readOnly: boolean): SqliteDatabase.Database {
  const conn = new SqliteDatabase(file);
  conn.pragma('journal_mode = WAL');
  // Durability first: a committed audit entry survives a power loss.
  conn.pragma('synchronous = FULL');
  conn.pragma('foreign_keys = ON');
  conn.pragma('busy_timeout = 5000');
  if (readOnly) conn.pragma('query_only = ON');
  return conn;
}

export async function openStore<DB>(
  location: StoreLocation,
  migrations: (dialect: DialectName) => Record<string, Migration>,
): Promise<Store<DB>> {
  if (location.kind === 'sqlite') {
    mkdirSync(path.dirname(location.file), { recursive: true, mode: 0o700 });
    const writerConn = openSqliteConnection(location.file, false);
    const db = new Kysely<DB>({
      dialect: new SqliteDialect({ database: withStatementCache(writerConn) }),
    });
    await migrateToLatest(db, migrations(location.kind));
    const readerConn = openSqliteConnection(location.file, true);
    const reader = new Kysely<DB>({
      dialect: new SqliteDialect({ database: withStatementCache(readerConn) }),
    });
    // Prepared queries run straight on the connection: the reader's, or the writer's inside a
    // batch transaction (never the writer outside one, where another batch may be open).
    bindSqliteConnection(reader, readerConn);
    const batch = new GroupCommit(db, {
      onTransaction: (trx) => bindSqliteConnection(trx, writerConn),
      onTransactionEnd: (trx) => unbindSqliteConnection(trx),
    });
    return {
      dialect: 'sqlite',
      db,
      rowSecurity: 'unavailable',
      batch,
      read: (_scope, fn, options) =>
        options?.snapshot === true ? reader.transaction().execute(fn) : fn(reader),
      files: [location.file, `${location.file}-wal`, `${location.file}-shm`],
      close: async () => {
        await batch.close();
        await reader.destroy();
        // Fold the WAL back into the main file so a copy of the directory is one file a store.
        writerConn.pragma('wal_checkpoint(TRUNCATE)');
        await db.destroy();
      },
    };
  }
  const pool = new pg.Pool({ connectionString: location.url, max: 10 });
  // A connection the server ends must fail the query that uses it, not the process.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  await migrateToLatest(db, migrations(location.kind));
  const batch = new GroupCommit(db, { enterScope: enterRowScope });
  const role = await sql<{ bypass: boolean }>`
    select rolsuper or rolbypassrls as bypass from pg_roles where rolname = current_user
  `.execute(db);
  return {
    dialect: 'postgres',
    db,
    rowSecurity: role.rows[0]?.bypass === false ? 'enforced' : 'bypassed',
    batch,
    read: (scope, fn) =>
      db
        .transaction()
        .setIsolationLevel('repeatable read')
        .setAccessMode('read only')
        .execute(async (trx) => {
          await enterRowScope(trx, scope);
          return fn(trx);
        }),
    files: [],
    close: async () => {
      await batch.close();
      await db.destroy();
    },
  };
}
