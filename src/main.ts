import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from './platform/clock.js';
import type { Config } from './platform/config.js';
import type { AppContext } from './platform/context.js';
import { BlindIndexer, openKeyProvider, Signer } from './platform/crypto/index.js';
import { openStore, type StoreLocation } from './platform/db/database.js';
import { dataMigrations, keyMigrations } from './platform/db/migrations.js';
import type { DataDb, KeyDb } from './platform/db/schema.js';
import { buildApp } from './platform/http/app.js';
import { healthRoutes } from './platform/http/health.js';
import { createLogger, type Logger } from './platform/logger.js';
import { auditRoutes } from './modules/audit/index.js';
import { subjectRequestRoutes } from './modules/requests/index.js';
import { customerRoutes } from './modules/customers/index.js';
import { changeRequestRoutes, portalRoutes, purgePortalLeftovers } from './modules/portal/index.js';
import { createMailer } from './platform/mail/index.js';
import { outboxTextSender } from './platform/sms.js';
import {
  erasureRoutes,
  resumePendingCategoryErasures,
  resumePendingErasures,
  shreddedKeyIds,
} from './modules/erasure/index.js';
import { agreementRoutes, startExpirySweep, sweepAgreements } from './modules/agreements/index.js';
import { purposeRoutes, seedDefaultPurposes } from './modules/purposes/index.js';
import { staffAccountRoutes, staffRoutes } from './modules/staff/index.js';
import {
  customersWithOpenTasks,
  hasBreakGlassGrant,
  hasTaskGrant,
  taskRoutes,
} from './modules/tasks/index.js';
import {
  DEFAULT_WORKSPACE,
  ensureWorkspace,
  listWorkspaceIds,
} from './modules/workspaces/index.js';

export interface RuntimeOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Create the keyring when missing (init, serve); other commands require it to exist. */
  readonly createKeyring?: boolean;
}

export function storeLocations(config: Config): { data: StoreLocation; keys: StoreLocation } {
  if (config.databaseUrl !== undefined && config.keystoreUrl !== undefined) {
    return {
      data: { kind: 'postgres', url: config.databaseUrl },
      keys: { kind: 'postgres', url: config.keystoreUrl },
    };
  }
  return {
    data: { kind: 'sqlite', file: path.join(config.dataDir, 'custodia.db') },
    keys: { kind: 'sqlite', file: path.join(config.dataDir, 'keystore.db') },
  };
}

/** Opens the keyring and both stores, migrates them, and makes the default workspace. */
export async function openContext(
  config: Config,
  options: RuntimeOptions = {},
): Promise<AppContext> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const keyProvider = await openKeyProvider(config, clock.now(), options.createKeyring ?? true);
  const locations = storeLocations(config);
  const data = await openStore<DataDb>(locations.data, dataMigrations);
  let keys;
  try {
    keys = await openStore<KeyDb>(locations.keys, keyMigrations);
  } catch (error) {
    await data.close();
    throw error;
  }
  const ctx: AppContext = {
    config,
    clock,
    logger,
    data,
    keys,
    keyProvider,
    blindIndex: new BlindIndexer(keyProvider.indexRoot()),
    signer: new Signer(keyProvider.signingRoot()),
  };
  for (const [store, state] of [
    ['data', data.rowSecurity],
    ['keys', keys.rowSecurity],
  ] as const) {
    if (state === 'bypassed') {
      // Workspace isolation then rests on the queries alone; run as a plain role (README).
      logger.warn(
        { store },
        'row-level security is bypassed: the PostgreSQL role is a superuser or has BYPASSRLS',
      );
    }
  }
  const { id } = await ensureWorkspace(ctx, DEFAULT_WORKSPACE);
  for (const ws of new Set([id, ...(await listWorkspaceIds(ctx))]))
    await seedDefaultPurposes(ctx, ws);
  return ctx;
}

export async function closeContext(ctx: AppContext): Promise<void> {
  await ctx.data.close();
  await ctx.keys.close();
}

/**
 * The composition root: context, interrupted erasures finished, then the HTTP app, with the
 * expiry job running in-process until the app closes.
 */
export async function createServer(ctx: AppContext): Promise<FastifyInstance> {
  const resumed = (await resumePendingErasures(ctx)) + (await resumePendingCategoryErasures(ctx));
  if (resumed > 0) ctx.logger.info({ resumed }, 'finished interrupted erasures');
  const guard = {
    settle: async (workspaceId: string, customerId: string) => {
      await resumePendingCategoryErasures(ctx, { workspaceId, customerId });
    },
    destroyedKeyIds: shreddedKeyIds,
  };
  const grants = { hasTaskGrant, hasBreakGlassGrant, customersWithOpenTasks };
  const mailer = createMailer(ctx.config, ctx.logger);
  const portal = { mailer, texts: outboxTextSender(ctx.config.dataDir), guard };
  const app = await buildApp(ctx, {
    routes: [
      ...healthRoutes(ctx),
      ...purposeRoutes(ctx, {
        afterRetire: async (actor, purposeKey) =>
          (await sweepAgreements(ctx, { workspaceId: actor.workspaceId, purposeKey, actor })).ended,
      }),
      ...customerRoutes(ctx, guard, grants),
      ...taskRoutes(ctx),
      ...agreementRoutes(ctx),
      ...erasureRoutes(ctx),
      ...staffRoutes(ctx),
      ...staffAccountRoutes(ctx),
      ...auditRoutes(ctx),
      ...subjectRequestRoutes(ctx),
      ...portalRoutes(ctx, portal),
      ...changeRequestRoutes(ctx, portal, grants),
    ],
  });
  const stopSweep = startExpirySweep(ctx, [
    {
      name: 'portal leftovers',
      run: async () => {
        const purged = await purgePortalLeftovers(ctx, portal);
        if (purged.codes + purged.sessions + purged.messages > 0) {
          ctx.logger.info(purged, 'purged stale portal codes, sessions and outbox messages');
        }
      },
    },
  ]);
  app.addHook('onClose', stopSweep);
  app.addHook('onClose', () => mailer.close());
  await app.ready();
  return app;
}
