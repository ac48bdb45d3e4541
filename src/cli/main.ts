#!/usr/bin/env node
import { Command, Option } from 'commander';
import {
  ConfigError,
  loadConfig,
  settings,
  type ConfigInput,
  type SettingName,
} from '../platform/config.js';
import { systemActor } from '../platform/context.js';
import { REFRESH_MS } from '../platform/crypto/index.js';
import { isDomainError } from '../platform/errors.js';
import { closeContext, createServer, openContext } from '../main.js';
import { sweepAgreements } from '../modules/agreements/index.js';
import { verifyAuditChain } from '../modules/audit/index.js';
import { countDataKeysByKekVersion, rewrapDataKeys } from '../modules/customers/index.js';
import { createApiToken, hasActiveToken, roles } from '../modules/staff/index.js';
import { DEFAULT_WORKSPACE, getWorkspaceByName } from '../modules/workspaces/index.js';

const flagAttribute = new Map<SettingName, string>();

/** Every command takes the same configuration flags, named as in the README's table. */
function withConfigOptions(cmd: Command): Command {
  for (const [name, s] of Object.entries(settings)) {
    if (s.flag === undefined) continue;
    const def = s.default === undefined ? '' : ` (default: ${s.default})`;
    const option = new Option(`${s.flag} <value>`, `${s.env}${def}`);
    flagAttribute.set(name as SettingName, option.attributeName());
    cmd.addOption(option);
  }
  return cmd;
}

function configFrom(cmd: Command) {
  const opts = cmd.opts<Record<string, string | undefined>>();
  const flags: ConfigInput = {};
  for (const name of Object.keys(settings) as SettingName[]) {
    const v = opts[flagAttribute.get(name) ?? name];
    if (typeof v === 'string') flags[name] = v;
  }
  return loadConfig(flags, process.env);
}

function fail(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  if (isDomainError(error)) {
    process.stderr.write(`error (${error.code}): ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`error: ${error instanceof Error ? error.message : 'unexpected failure'}\n`);
  process.exit(1);
}

// Every file Custodia creates (stores, keyring, outbox) is readable by its owner only.
process.umask(0o077);

const program = new Command('custodia')
  .description('Custodia: customer data held in trust for the customer')
  .showHelpAfterError();

withConfigOptions(program.command('init'))
  .description(
    'create the keyring, the data store and the key store, migrate them, add the default workspace',
  )
  .action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: true });
    await closeContext(ctx);
    process.stdout.write(
      `initialised Custodia in ${config.dataDir} (${config.databaseUrl === undefined ? 'SQLite' : 'PostgreSQL'})\n`,
    );
  });

withConfigOptions(program.command('serve'))
  .description('run the HTTP API')
  .action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: true });
    const app = await createServer(ctx);
    const address = await app.listen({ host: config.host, port: config.port });
    process.stderr.write(
      `Custodia listening on ${address} (${ctx.data.dialect === 'sqlite' ? `SQLite in ${config.dataDir}` : 'PostgreSQL'}); API docs at ${address}/docs\n`,
    );
    if (!(await hasActiveToken(ctx, 'admin'))) {
      process.stderr.write(
        'No admin token yet. Create one with:\n  npm run custodia -- token create --role admin\n' +
          '(and one for an agent, who works with customers: --role agent)\n',
      );
    }
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await app.close();
      await closeContext(ctx);
      process.exit(0);
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
  });

const token = program.command('token').description('API tokens');
withConfigOptions(token.command('create'))
  .description(
    'create an API token; the token is printed alone on the last line and never shown again',
  )
  .addOption(new Option('--role <role>', 'role of the token').choices(roles).makeOptionMandatory())
  .option('--label <label>', 'what the token is for', 'created with the CLI')
  .option('--workspace <name>', 'workspace', DEFAULT_WORKSPACE)
  .action(async (opts: { role: string; label: string; workspace: string }, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: true });
    try {
      const workspaceId = await getWorkspaceByName(ctx, opts.workspace);
      const created = await createApiToken(ctx, systemActor('cli', workspaceId), {
        role: opts.role,
        label: opts.label,
      });
      process.stderr.write(
        `created ${opts.role} token ${created.id} in workspace ${opts.workspace}; keep it secret:\n`,
      );
      process.stdout.write(`${created.token}\n`);
    } finally {
      await closeContext(ctx);
    }
  });

const audit = program.command('audit').description('the audit chain');
withConfigOptions(audit.command('verify'))
  .description('verify every hash link and signed checkpoint; exit 1 naming the first bad entry')
  .action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: false });
    try {
      const result = await verifyAuditChain(ctx.data, (ws) => ctx.signer.publicKey(ws));
      if (result.ok) {
        process.stdout.write(`audit chain ok: ${result.entries} entries\n`);
      } else {
        process.stdout.write(
          `audit chain broken: first bad sequence number ${result.firstBadSeq} in workspace ${result.workspaceId}: ${result.problem}\n`,
        );
        process.exitCode = 1;
      }
    } finally {
      await closeContext(ctx);
    }
  });

const consent = program.command('consent').description('the consent ledger');
withConfigOptions(consent.command('expire'))
  .description(
    'end every agreement that has lapsed or whose purpose is retired, shredding what nothing else covers (what serve does every --expiry-sweep-seconds)',
  )
  .action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: false });
    try {
      const { ended } = await sweepAgreements(ctx);
      process.stdout.write(`ended ${ended} agreements\n`);
    } finally {
      await closeContext(ctx);
    }
  });

const keys = program.command('keys').description('key-encryption keys');
withConfigOptions(keys.command('rotate'))
  .description(
    'add a KEK version (keyring file) and rewrap every data key under the current version',
  )
  .action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: false });
    try {
      if (ctx.keyProvider.kind === 'file') await ctx.keyProvider.addKekVersion();
      const { rewrapped, version } = await rewrapDataKeys(ctx);
      process.stdout.write(`current KEK version ${version}: ${rewrapped} data keys rewrapped\n`);
    } finally {
      await closeContext(ctx);
    }
  });
withConfigOptions(keys.command('status'))
  .description('list KEK versions and how many data keys each wraps')
  .action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: false });
    try {
      const counts = await countDataKeysByKekVersion(ctx);
      for (const k of ctx.keyProvider.listKeks()) {
        const state =
          k.retiredAt === null
            ? k.version === ctx.keyProvider.currentKekVersion()
              ? 'current'
              : 'active'
            : 'retired';
        process.stdout.write(
          `KEK v${k.version} ${state}: ${counts.get(k.version) ?? 0} data keys\n`,
        );
      }
    } finally {
      await closeContext(ctx);
    }
  });
withConfigOptions(keys.command('retire'))
  .description('destroy an old KEK version once no data key uses it')
  .argument('<version>', 'KEK version')
  .action(async (version: string, _opts, cmd: Command) => {
    const config = configFrom(cmd);
    const ctx = await openContext(config, { createKeyring: false });
    try {
      const v = Number(version);
      if (Number.isInteger(v) && v !== ctx.keyProvider.currentKekVersion()) {
        // Running servers learn a new KEK version within REFRESH_MS; one may have wrapped a
        // key under the old version just before. Wait past that, then rewrap any such key.
        await new Promise((r) => setTimeout(r, 2 * REFRESH_MS));
        await rewrapDataKeys(ctx);
      }
      const inUse = (await countDataKeysByKekVersion(ctx)).get(v) ?? 0;
      if (!Number.isInteger(v) || inUse > 0) {
        process.stderr.write(
          `KEK v${version} still wraps ${inUse} data keys (or is not a version); run keys rotate first\n`,
        );
        process.exitCode = 1;
        return;
      }
      await ctx.keyProvider.retireKekVersion(v);
      process.stdout.write(`KEK v${v} retired\n`);
    } finally {
      await closeContext(ctx);
    }
  });

program.parseAsync(process.argv).catch(fail);
