import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Clock } from '../platform/clock.js';
import { loadConfig, type Config, type ConfigInput } from '../platform/config.js';
import type { Actor, AppContext } from '../platform/context.js';
import { EVERY_WORKSPACE_OPTIONS } from '../platform/db/row-scope.js';
import type { DataDb, KeyDb } from '../platform/db/schema.js';
import { createLogger } from '../platform/logger.js';
import { closeContext, createServer, openContext } from '../main.js';
import { createApiToken, type Role } from '../modules/staff/index.js';
import { DEFAULT_WORKSPACE, getWorkspaceByName } from '../modules/workspaces/index.js';

const run = promisify(execFile);

export type TestDialect = 'sqlite' | 'postgres';

const pgUrl = process.env['CUSTODIA_TEST_PG_URL'];

/** SQLite always; PostgreSQL when CUSTODIA_TEST_PG_URL names a server (required in CI). */
export const dialects: readonly TestDialect[] =
  pgUrl !== undefined && pgUrl !== '' ? ['sqlite', 'postgres'] : ['sqlite'];

function pgUrlFor(database: string, user?: string): string {
  const url = new URL(pgUrl ?? '');
  url.pathname = `/${database}`;
  if (user !== undefined) {
    url.username = user;
    url.password = '';
  }
  return url.toString();
}

/**
 * The role the tests' Custodia runs as. Row-level security binds neither superusers nor
 * BYPASSRLS roles, so when the configured test user is one of them (a developer's `postgres`),
 * the databases go to a plain role, `custodia_app`, made here once; otherwise (CI's
 * `custodia_test`) the configured user owns them. Either way the policies bind the app.
 */
let appRole: Promise<string | undefined> | undefined;
function appRoleFor(client: pg.Client): Promise<string | undefined> {
  appRole ??= (async () => {
    const me = await client.query<{ bypass: boolean }>(
      'select rolsuper or rolbypassrls as bypass from pg_roles where rolname = current_user',
    );
    if (me.rows[0]?.bypass !== true) return undefined;
    try {
      await client.query('create role custodia_app login nosuperuser nobypassrls');
    } catch (error) {
      // Another test process made it first (duplicate_object, or unique_violation in a race).
      const code = (error as { code?: string }).code;
      if (code !== '42710' && code !== '23505') throw error;
    }
    return 'custodia_app';
  })();
  return appRole;
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, empty pair of PostgreSQL databases (data and keys), dropped by the returned function. */
export async function createPgDatabases(): Promise<{
  dataUrl: string;
  keysUrl: string;
  drop: () => Promise<void>;
}> {
  const base = `custodia_t_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const owner = await withAdmin(async (c) => {
    const role = await appRoleFor(c);
    const ownedBy = role === undefined ? '' : ` owner ${role}`;
    await c.query(`create database ${base}${ownedBy}`);
    await c.query(`create database ${base}_keys${ownedBy}`);
    return role;
  });
  return {
    dataUrl: pgUrlFor(base, owner),
    keysUrl: pgUrlFor(`${base}_keys`, owner),
    drop: () =>
      withAdmin(async (c) => {
        await c.query(`drop database if exists ${base} with (force)`);
        await c.query(`drop database if exists ${base}_keys with (force)`);
      }),
  };
}

/** Collects every log line the server writes, to scan for canaries. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    done();
  }
  text(): string {
    return this.lines.join('');
  }
}

export interface TestRuntime {
  readonly dialect: TestDialect;
  readonly config: Config;
  readonly ctx: AppContext;
  readonly app: FastifyInstance;
  readonly dataDir: string;
  readonly logs: LogCapture;
  readonly workspaceId: string;
  /** A new API token with this role in the default workspace. */
  token(role: Role): Promise<string>;
  /** An actor for calling services directly. */
  systemActor(): Actor;
  /** Every byte of every store: the SQLite files, or a pg_dump of both databases. */
  storeBytes(): Promise<Buffer>;
  /**
   * Handles on the stores that see every workspace's rows, to inspect and tamper with them as
   * an attacker with database access would (on PostgreSQL the app's own handles see nothing
   * outside a row scope).
   */
  readonly inspect: { readonly data: Kysely<DataDb>; readonly keys: Kysely<KeyDb> };
  /** Closes app and stores, keeping the databases (for reopening). */
  stop(): Promise<void>;
  /** Opens the same stores and keyring again, as a restarted process would. */
  restart(): Promise<TestRuntime>;
  /** Stops and deletes everything. */
  close(): Promise<void>;
}

export interface RuntimeSettings {
  readonly clock?: Clock;
  readonly config?: ConfigInput;
}

export async function startRuntime(
  dialect: TestDialect,
  settings: RuntimeSettings = {},
): Promise<TestRuntime> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'custodia-test-'));
  const pgDbs = dialect === 'postgres' ? await createPgDatabases() : undefined;
  const config = loadConfig(
    {
      dataDir,
      logLevel: 'info',
      rateLimitPerMinute: '100000',
      expirySweepSeconds: '0',
      ...(pgDbs === undefined ? {} : { databaseUrl: pgDbs.dataUrl, keystoreUrl: pgDbs.keysUrl }),
      ...settings.config,
    },
    {},
  );
  const cleanup = async () => {
    await pgDbs?.drop();
    await rm(dataDir, { recursive: true, force: true });
  };
  return open(dialect, config, settings, dataDir, pgDbs, cleanup);
}

async function open(
  dialect: TestDialect,
  config: Config,
  settings: RuntimeSettings,
  dataDir: string,
  pgDbs: { dataUrl: string; keysUrl: string } | undefined,
  cleanup: () => Promise<void>,
): Promise<TestRuntime> {
  const logs = new LogCapture();
  const ctx = await openContext(config, {
    logger: createLogger('info', logs),
    ...(settings.clock === undefined ? {} : { clock: settings.clock }),
  });
  const app = await createServer(ctx);
  const workspaceId = await getWorkspaceByName(ctx, DEFAULT_WORKSPACE);
  const systemActor = (): Actor => ({
    type: 'system',
    id: 'test',
    role: null,
    workspaceId,
    requestId: null,
  });
  const inspectors: { destroy(): Promise<void> }[] = [];
  const inspector = <DB>(url: string | undefined, fallback: Kysely<DB>): Kysely<DB> => {
    if (pgDbs === undefined || url === undefined) return fallback;
    const pool = new pg.Pool({ connectionString: url, max: 2, options: EVERY_WORKSPACE_OPTIONS });
    // Tests that cut the database's connections must not fail the process through this pool.
    pool.on('error', () => undefined);
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    inspectors.push(db);
    return db;
  };
  const inspect = {
    data: inspector(pgDbs?.dataUrl, ctx.data.db),
    keys: inspector(pgDbs?.keysUrl, ctx.keys.db),
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await app.close();
    await closeContext(ctx);
    await Promise.all(inspectors.map((db) => db.destroy()));
  };
  const runtime: TestRuntime = {
    dialect,
    config,
    ctx,
    app,
    dataDir,
    logs,
    workspaceId,
    systemActor,
    inspect,
    token: async (role) =>
      (await createApiToken(ctx, systemActor(), { role, label: 'test' })).token,
    storeBytes: async () => {
      if (pgDbs === undefined) {
        const files = await readdir(dataDir, { recursive: true });
        const parts = await Promise.all(
          files.map(async (f) => readFile(path.join(dataDir, f)).catch(() => Buffer.alloc(0))),
        );
        return Buffer.concat(parts);
      }
      const dumps = await Promise.all(
        [pgDbs.dataUrl, pgDbs.keysUrl].map(async (url) => {
          const { stdout } = await run('pg_dump', pgDumpArgs(url), {
            encoding: 'buffer',
            maxBuffer: 512 * 1024 * 1024,
            env: pgDumpEnv(),
          });
          return stdout;
        }),
      );
      return Buffer.concat(dumps);
    },
    stop,
    restart: async () => {
      await stop();
      return open(dialect, config, settings, dataDir, pgDbs, cleanup);
    },
    close: async () => {
      await stop();
      await cleanup();
    },
  };
  return runtime;
}

/**
 * pg_dump of a Custodia database as its owner: row-level security binds the owner too, so the
 * dump enables it and asks for every workspace's rows (README, "Backups on PostgreSQL").
 */
export function pgDumpArgs(url: string, ...extra: string[]): string[] {
  return ['--enable-row-security', ...extra, '--dbname', url];
}

export function pgDumpEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PGOPTIONS: EVERY_WORKSPACE_OPTIONS };
}

/** Runs `describe`-style registration once per dialect. */
export function forEachDialect(fn: (dialect: TestDialect) => void): void {
  for (const d of dialects) fn(d);
}

/** A clock the test moves. */
export class TestClock implements Clock {
  #now: number;
  constructor(start = Date.UTC(2026, 0, 15, 9, 0, 0)) {
    this.#now = start;
  }
  now(): Date {
    return new Date(this.#now);
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** Counts occurrences of a canary (as UTF-8 and as UTF-16LE, and in JSON-escaped form). */
export function countCanary(haystack: Buffer, canary: string): number {
  let hits = 0;
  for (const needle of [
    Buffer.from(canary, 'utf8'),
    Buffer.from(canary, 'utf16le'),
    Buffer.from(JSON.stringify(canary).slice(1, -1), 'utf8'),
  ]) {
    let at = haystack.indexOf(needle);
    while (at !== -1) {
      hits += 1;
      at = haystack.indexOf(needle, at + 1);
    }
  }
  return hits;
}

export function authHeader(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}
