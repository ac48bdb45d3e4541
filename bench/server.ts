import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { loadConfig } from '../src/platform/config.js';
import { openStore } from '../src/platform/db/database.js';
import { GroupCommit } from '../src/platform/db/group-commit.js';
import { EVERY_WORKSPACE } from '../src/platform/db/row-scope.js';
import { closeContext, createServer, openContext } from '../src/main.js';
import { createApiToken } from '../src/modules/staff/index.js';
import { DEFAULT_WORKSPACE, getWorkspaceByName } from '../src/modules/workspaces/index.js';
import {
  insertPlainCustomer,
  parsePlainCreation,
  plainMigrations,
  type PlainDb,
} from './plain-store.js';
import {
  BENCH_LOG_LEVEL,
  BENCH_RATE_LIMIT,
  CUSTOMERS_PATH,
  isRunnerMessage,
  serverModes,
  type ServerArgs,
  type ServerMessage,
} from './protocol.js';

/**
 * One server under test, run as a child of the bench runner (never in the runner's process, so
 * that the load generator does not share its event loop). Started as
 * `node dist/bench/server.js '<ServerArgs as JSON>'`; it reports its port over IPC, profiles its
 * CPU between `profile-start` and `profile-stop`, and exits cleanly on `stop`.
 */

function send(message: ServerMessage): void {
  process.send?.(message);
}

interface Running {
  readonly port: number;
  readonly token?: string;
  close(): Promise<void>;
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

function requireDataDir(args: ServerArgs): string {
  if (args.dataDir === undefined) throw new Error(`${args.mode} needs a data directory`);
  return args.dataDir;
}

async function startCustodia(args: ServerArgs): Promise<Running> {
  const config = loadConfig(
    {
      dataDir: requireDataDir(args),
      logLevel: BENCH_LOG_LEVEL,
      rateLimitPerMinute: BENCH_RATE_LIMIT,
    },
    {},
  );
  const ctx = await openContext(config);
  const app = await createServer(ctx);
  const workspaceId = await getWorkspaceByName(ctx, DEFAULT_WORKSPACE);
  const { token } = await createApiToken(
    ctx,
    { type: 'system', id: 'bench', role: null, workspaceId, requestId: null },
    { role: 'agent', label: 'bench' },
  );
  const port = await listen(app);
  return {
    port,
    token,
    close: async () => {
      await app.close();
      await closeContext(ctx);
    },
  };
}

/** A minimal Fastify server, no plugins, answering every read with one constant object. */
async function startBare(args: ServerArgs): Promise<Running> {
  const body = args.body ?? {};
  const app = Fastify();
  app.get(`${CUSTOMERS_PATH}/:id`, () => body);
  const port = await listen(app);
  return { port, close: () => app.close() };
}

/**
 * A minimal Fastify server that stores creations in plain text in a SQLite store opened exactly
 * as Custodia opens its own (WAL, synchronous=FULL, statement cache), committing either one
 * transaction per request or through Custodia's GroupCommit class (the built one, as the data
 * store uses it).
 */
async function startPlain(args: ServerArgs, grouped: boolean): Promise<Running> {
  const store = await openStore<PlainDb>(
    { kind: 'sqlite', file: path.join(requireDataDir(args), 'plain.db') },
    plainMigrations,
  );
  const batch = new GroupCommit(store.db);
  const app = Fastify();
  app.post(CUSTOMERS_PATH, async (request, reply) => {
    const input = parsePlainCreation(request.body);
    if (input === undefined) return reply.code(400).send({ error: { code: 'invalid_input' } });
    const id = grouped
      ? await batch.run(EVERY_WORKSPACE, ({ trx }) => insertPlainCustomer(trx, input))
      : await store.db.transaction().execute((trx) => insertPlainCustomer(trx, input));
    return reply.code(201).send({ id });
  });
  const port = await listen(app);
  return {
    port,
    close: async () => {
      await app.close();
      await batch.close();
      await store.close();
    },
  };
}

function parseArgs(): ServerArgs {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('usage: server.js <ServerArgs as JSON>');
  const args = JSON.parse(raw) as ServerArgs;
  if (!(serverModes as readonly string[]).includes(args.mode)) {
    throw new Error('unknown server mode');
  }
  return args;
}

async function start(args: ServerArgs): Promise<Running> {
  switch (args.mode) {
    case 'custodia':
      return startCustodia(args);
    case 'bare':
      return startBare(args);
    case 'plain-commit':
      return startPlain(args, false);
    case 'plain-group':
      return startPlain(args, true);
  }
}

async function main(): Promise<void> {
  const running = await start(parseArgs());
  let session: Session | undefined;
  process.on('message', (message: unknown) => {
    if (!isRunnerMessage(message)) return;
    void (async () => {
      try {
        switch (message.type) {
          case 'cpu':
            send({ type: 'cpu', ...process.cpuUsage() });
            break;
          case 'memory':
            send({ type: 'memory', usage: process.memoryUsage() });
            break;
          case 'profile-start':
            session = new Session();
            session.connect();
            await session.post('Profiler.enable');
            await session.post('Profiler.setSamplingInterval', { interval: 1000 });
            await session.post('Profiler.start');
            break;
          case 'profile-stop': {
            if (session === undefined) break;
            const { profile } = await session.post('Profiler.stop');
            session.disconnect();
            session = undefined;
            await writeFile(message.file, JSON.stringify(profile));
            send({ type: 'profile-saved', file: message.file });
            break;
          }
          case 'stop':
            await running.close();
            process.exit(0);
        }
      } catch (error) {
        send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
        process.exit(1);
      }
    })();
  });
  // The runner's end is this process's end, whatever the runner's fate.
  process.on('disconnect', () => process.exit(0));
  send({
    type: 'ready',
    port: running.port,
    ...(running.token === undefined ? {} : { token: running.token }),
  });
}

main().catch((error: unknown) => {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
