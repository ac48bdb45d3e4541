import path from 'node:path';
import { z } from 'zod';
import { isHostName, mailboxAddress } from './mail/address.js';

/**
 * One table of settings: its environment variable, its command-line flag, its default.
 * The README's configuration table is written from the same facts.
 */
export const settings = {
  dataDir: { env: 'CUSTODIA_DATA_DIR', flag: '--data-dir', default: './data' },
  host: { env: 'CUSTODIA_HOST', flag: '--host', default: '127.0.0.1' },
  port: { env: 'CUSTODIA_PORT', flag: '--port', default: '8080' },
  databaseUrl: { env: 'CUSTODIA_DATABASE_URL', flag: '--database-url', default: undefined },
  keystoreUrl: { env: 'CUSTODIA_KEYSTORE_URL', flag: '--keystore-url', default: undefined },
  keyringFile: { env: 'CUSTODIA_KEYRING_FILE', flag: '--keyring-file', default: undefined },
  masterKey: { env: 'CUSTODIA_MASTER_KEY', flag: undefined, default: undefined },
  defaultRegion: { env: 'CUSTODIA_DEFAULT_REGION', flag: '--default-region', default: 'ES' },
  logLevel: { env: 'CUSTODIA_LOG_LEVEL', flag: '--log-level', default: 'info' },
  rateLimitPerMinute: { env: 'CUSTODIA_RATE_LIMIT', flag: '--rate-limit', default: '600' },
  bodyLimitBytes: { env: 'CUSTODIA_BODY_LIMIT', flag: '--body-limit', default: '65536' },
  trustProxy: { env: 'CUSTODIA_TRUST_PROXY', flag: '--trust-proxy', default: 'false' },
  expirySweepSeconds: {
    env: 'CUSTODIA_EXPIRY_SWEEP_SECONDS',
    flag: '--expiry-sweep-seconds',
    default: '60',
  },
  smtpHost: { env: 'CUSTODIA_SMTP_HOST', flag: '--smtp-host', default: undefined },
  smtpPort: { env: 'CUSTODIA_SMTP_PORT', flag: '--smtp-port', default: '587' },
  smtpSecure: { env: 'CUSTODIA_SMTP_SECURE', flag: '--smtp-secure', default: 'false' },
  smtpUser: { env: 'CUSTODIA_SMTP_USER', flag: '--smtp-user', default: undefined },
  smtpPassword: { env: 'CUSTODIA_SMTP_PASSWORD', flag: undefined, default: undefined },
  mailFrom: {
    env: 'CUSTODIA_MAIL_FROM',
    flag: '--mail-from',
    default: 'Custodia <no-reply@localhost>',
  },
} as const satisfies Record<
  string,
  { env: string; flag: string | undefined; default: string | undefined }
>;

export type SettingName = keyof typeof settings;
export type ConfigInput = Partial<Record<SettingName, string | undefined>>;

const postgresUrl = z
  .string()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// URL');

const oneLine = z
  .string()
  .min(1)
  .refine((v) => !/\p{Cc}/u.test(v), 'must not contain control characters');

const schema = z
  .object({
    dataDir: z.string().min(1),
    host: z.string().min(1),
    port: z.coerce.number().int().min(0).max(65535),
    databaseUrl: postgresUrl.optional(),
    keystoreUrl: postgresUrl.optional(),
    keyringFile: z.string().min(1).optional(),
    masterKey: z
      .string()
      .refine(isMasterKeySpec, 'must be base64 of 32 bytes, or a list "1:<base64>,2:<base64>"')
      .optional(),
    defaultRegion: z.string().regex(/^[A-Z]{2}$/, 'must be a two-letter region code'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    rateLimitPerMinute: z.coerce.number().int().min(1).max(10_000_000),
    bodyLimitBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .max(10 * 1024 * 1024),
    trustProxy: z.enum(['true', 'false']).transform((v) => v === 'true'),
    expirySweepSeconds: z.coerce.number().int().min(0).max(86_400),
    smtpHost: z.string().refine(isHostName, 'must be a host name or an IP address').optional(),
    smtpPort: z.coerce.number().int().min(1).max(65535),
    smtpSecure: z.enum(['true', 'false']).transform((v) => v === 'true'),
    smtpUser: oneLine.optional(),
    smtpPassword: oneLine.optional(),
    mailFrom: z
      .string()
      .refine(
        (v) => mailboxAddress(v) !== undefined,
        'must be an address, "user@example.org" or "Name <user@example.org>"',
      ),
  })
  .superRefine((c, ctx) => {
    if (c.databaseUrl !== undefined && c.keystoreUrl === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['keystoreUrl'],
        message: 'is required when the data store is PostgreSQL (the key store is kept apart)',
      });
    }
    if (c.keystoreUrl !== undefined && c.databaseUrl === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['databaseUrl'],
        message: 'is required when the key store is PostgreSQL',
      });
    }
    if (c.databaseUrl !== undefined && c.databaseUrl === c.keystoreUrl) {
      ctx.addIssue({
        code: 'custom',
        path: ['keystoreUrl'],
        message: 'must name a different database from the data store',
      });
    }
    if (c.smtpUser !== undefined && c.smtpPassword === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['smtpPassword'],
        message: `is required when ${settings.smtpUser.env} is set`,
      });
    }
    if (c.smtpPassword !== undefined && c.smtpUser === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['smtpUser'],
        message: `is required when ${settings.smtpPassword.env} is set`,
      });
    }
    if (c.smtpHost === undefined && (c.smtpUser !== undefined || c.smtpPassword !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['smtpHost'],
        message: 'is required when SMTP credentials are set',
      });
    }
  });

export function isMasterKeySpec(value: string): boolean {
  try {
    parseMasterKeys(value);
    return true;
  } catch {
    return false;
  }
}

/** `base64` (version 1) or `1:base64,2:base64`; every key is 32 bytes. */
export function parseMasterKeys(value: string): Map<number, Buffer> {
  const keys = new Map<number, Buffer>();
  const parts = value.split(',').map((p) => p.trim());
  for (const part of parts) {
    const m = /^(?:(\d{1,6}):)?([A-Za-z0-9+/=_-]+)$/.exec(part);
    if (m === null) throw new Error('malformed');
    const version = m[1] === undefined ? 1 : Number(m[1]);
    const key = Buffer.from(m[2] ?? '', 'base64');
    if (key.length !== 32 || version < 1 || keys.has(version)) throw new Error('malformed');
    if (m[1] === undefined && parts.length > 1) throw new Error('malformed');
    keys.set(version, key);
  }
  return keys;
}

export type Config = Readonly<{
  dataDir: string;
  host: string;
  port: number;
  databaseUrl: string | undefined;
  keystoreUrl: string | undefined;
  keyringFile: string;
  masterKey: string | undefined;
  defaultRegion: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  rateLimitPerMinute: number;
  bodyLimitBytes: number;
  trustProxy: boolean;
  /** How often `serve` ends lapsed agreements; 0 turns the in-process job off. */
  expirySweepSeconds: number;
  /** Unset: mail is written to `<dataDir>/outbox` instead of being sent. */
  smtpHost: string | undefined;
  smtpPort: number;
  /** Implicit TLS (usually port 465); otherwise STARTTLS, required unless the host is loopback. */
  smtpSecure: boolean;
  smtpUser: string | undefined;
  smtpPassword: string | undefined;
  /** The sender, `user@example.org` or `Name <user@example.org>`. */
  mailFrom: string;
}>;

/** Raised for invalid configuration; names the settings, never their values. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function describe(name: SettingName): string {
  const s = settings[name];
  return s.flag === undefined ? s.env : `${s.env} (${s.flag})`;
}

/** Flags over environment over defaults; validated once; frozen. */
export function loadConfig(
  flags: ConfigInput = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): Config {
  const raw: Record<string, string | undefined> = {};
  for (const name of Object.keys(settings) as SettingName[]) {
    const s = settings[name];
    const fromFlag = flags[name];
    const fromEnv = env[s.env];
    raw[name] = fromFlag ?? (fromEnv === '' ? undefined : fromEnv) ?? s.default;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '') as SettingName;
      const label = name in settings ? describe(name) : 'configuration';
      return `${label}: ${issue.code === 'custom' || issue.code === 'invalid_format' ? issue.message : 'is not valid'}`;
    });
    throw new ConfigError(problems);
  }
  const c = parsed.data;
  const dataDir = path.resolve(c.dataDir);
  return Object.freeze({
    dataDir,
    host: c.host,
    port: c.port,
    databaseUrl: c.databaseUrl,
    keystoreUrl: c.keystoreUrl,
    keyringFile: path.resolve(c.keyringFile ?? path.join(dataDir, 'keyring.json')),
    masterKey: c.masterKey,
    defaultRegion: c.defaultRegion,
    logLevel: c.logLevel,
    rateLimitPerMinute: c.rateLimitPerMinute,
    bodyLimitBytes: c.bodyLimitBytes,
    trustProxy: c.trustProxy,
    expirySweepSeconds: c.expirySweepSeconds,
    smtpHost: c.smtpHost,
    smtpPort: c.smtpPort,
    smtpSecure: c.smtpSecure,
    smtpUser: c.smtpUser,
    smtpPassword: c.smtpPassword,
    mailFrom: c.mailFrom,
  });
}
