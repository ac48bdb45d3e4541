import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, settings, type ConfigInput } from './config.js';

const KEY_A = Buffer.alloc(32, 0xa1).toString('base64');
const KEY_B = Buffer.alloc(32, 0xb2).toString('base64');

/** Everything a ConfigError could show: message, stack, fields, inspection, JSON. */
function everythingShown(error: ConfigError): string {
  return [
    error.message,
    error.stack ?? '',
    String(error),
    error.problems.join('\n'),
    inspect(error, { depth: 5 }),
    JSON.stringify(error),
  ].join('\n');
}

function configError(flags: ConfigInput, env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(flags, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  expect.fail('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('applies the defaults when nothing is given', () => {
    const config = loadConfig({}, {});
    const dataDir = path.resolve('./data');
    expect(config).toEqual({
      dataDir,
      host: '127.0.0.1',
      port: 8080,
      databaseUrl: undefined,
      keystoreUrl: undefined,
      keyringFile: path.join(dataDir, 'keyring.json'),
      masterKey: undefined,
      defaultRegion: 'ES',
      logLevel: 'info',
      rateLimitPerMinute: 600,
      bodyLimitBytes: 65536,
      trustProxy: false,
      expirySweepSeconds: 60,
      smtpHost: undefined,
      smtpPort: 587,
      smtpSecure: false,
      smtpUser: undefined,
      smtpPassword: undefined,
      mailFrom: 'Custodia <no-reply@localhost>',
    });
  });

  it('takes the environment over the defaults, ignoring empty variables', () => {
    const config = loadConfig(
      {},
      {
        CUSTODIA_DATA_DIR: '/var/lib/custodia',
        CUSTODIA_HOST: '0.0.0.0',
        CUSTODIA_PORT: '9090',
        CUSTODIA_DATABASE_URL: 'postgres://app@db/custodia',
        CUSTODIA_KEYSTORE_URL: 'postgresql://keys@db/custodia_keys',
        CUSTODIA_MASTER_KEY: `1:${KEY_A},2:${KEY_B}`,
        CUSTODIA_DEFAULT_REGION: 'PT',
        CUSTODIA_LOG_LEVEL: 'debug',
        CUSTODIA_RATE_LIMIT: '1200',
        CUSTODIA_BODY_LIMIT: '2048',
        CUSTODIA_TRUST_PROXY: 'true',
        CUSTODIA_EXPIRY_SWEEP_SECONDS: '300',
        CUSTODIA_SMTP_HOST: 'smtp.example.org',
        CUSTODIA_SMTP_PORT: '465',
        CUSTODIA_SMTP_SECURE: 'true',
        CUSTODIA_SMTP_USER: 'custodia',
        CUSTODIA_SMTP_PASSWORD: 'an SMTP password',
        CUSTODIA_MAIL_FROM: 'Portal Custodia <portal@example.org>',
        CUSTODIA_KEYRING_FILE: '',
        UNRELATED: 'x',
      },
    );
    expect(config).toEqual({
      dataDir: '/var/lib/custodia',
      host: '0.0.0.0',
      port: 9090,
      databaseUrl: 'postgres://app@db/custodia',
      keystoreUrl: 'postgresql://keys@db/custodia_keys',
      keyringFile: '/var/lib/custodia/keyring.json',
      masterKey: `1:${KEY_A},2:${KEY_B}`,
      defaultRegion: 'PT',
      logLevel: 'debug',
      rateLimitPerMinute: 1200,
      bodyLimitBytes: 2048,
      trustProxy: true,
      expirySweepSeconds: 300,
      smtpHost: 'smtp.example.org',
      smtpPort: 465,
      smtpSecure: true,
      smtpUser: 'custodia',
      smtpPassword: 'an SMTP password',
      mailFrom: 'Portal Custodia <portal@example.org>',
    });
  });

  it('takes flags over the environment', () => {
    const config = loadConfig(
      { port: '7070', logLevel: 'warn', defaultRegion: 'FR', keyringFile: '/etc/k.json' },
      {
        CUSTODIA_PORT: '9090',
        CUSTODIA_LOG_LEVEL: 'debug',
        CUSTODIA_DEFAULT_REGION: 'PT',
        CUSTODIA_KEYRING_FILE: '/env/k.json',
        CUSTODIA_HOST: '10.0.0.1',
      },
    );
    expect(config.port).toBe(7070);
    expect(config.logLevel).toBe('warn');
    expect(config.defaultRegion).toBe('FR');
    expect(config.keyringFile).toBe('/etc/k.json');
    expect(config.host).toBe('10.0.0.1');
  });

  it('returns a frozen object', () => {
    const config = loadConfig({}, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(8080);
  });

  const invalid: {
    name: string;
    flags?: ConfigInput;
    env?: Record<string, string>;
    canary: string;
    names: string;
  }[] = [
    {
      name: 'port, not a number',
      env: { CUSTODIA_PORT: 'port-canary-77' },
      canary: 'port-canary-77',
      names: 'CUSTODIA_PORT',
    },
    {
      name: 'port out of range',
      env: { CUSTODIA_PORT: '987654' },
      canary: '987654',
      names: 'CUSTODIA_PORT',
    },
    {
      name: 'port given as a flag',
      flags: { port: '-31337' },
      canary: '31337',
      names: 'CUSTODIA_PORT',
    },
    {
      name: 'region',
      env: { CUSTODIA_DEFAULT_REGION: 'es-canary' },
      canary: 'es-canary',
      names: 'CUSTODIA_DEFAULT_REGION',
    },
    {
      name: 'log level',
      env: { CUSTODIA_LOG_LEVEL: 'loud-canary' },
      canary: 'loud-canary',
      names: 'CUSTODIA_LOG_LEVEL',
    },
    {
      name: 'master key too short',
      env: { CUSTODIA_MASTER_KEY: 'c2VjcmV0LWNhbmFyeS12YWx1ZQ==' },
      canary: 'c2VjcmV0LWNhbmFyeS12YWx1ZQ',
      names: 'CUSTODIA_MASTER_KEY',
    },
    {
      name: 'master key list with a bad entry',
      env: { CUSTODIA_MASTER_KEY: `1:${KEY_A},2:c2VjcmV0LWNhbmFyeS12YWx1ZQ==` },
      canary: 'c2VjcmV0LWNhbmFyeS12YWx1ZQ',
      names: 'CUSTODIA_MASTER_KEY',
    },
    {
      name: 'master key list with a good key',
      env: { CUSTODIA_MASTER_KEY: `1:${KEY_A},1:${KEY_B}` },
      canary: KEY_A.slice(0, 20),
      names: 'CUSTODIA_MASTER_KEY',
    },
    {
      name: 'database URL of another scheme',
      env: {
        CUSTODIA_DATABASE_URL: 'mysql://app:pw-canary-123@db/custodia',
        CUSTODIA_KEYSTORE_URL: 'postgres://k@db/keys',
      },
      canary: 'pw-canary-123',
      names: 'CUSTODIA_DATABASE_URL',
    },
    {
      name: 'keystore URL of another scheme',
      env: {
        CUSTODIA_DATABASE_URL: 'postgres://app@db/custodia',
        CUSTODIA_KEYSTORE_URL: 'http://k:pw-canary-123@db/keys',
      },
      canary: 'pw-canary-123',
      names: 'CUSTODIA_KEYSTORE_URL',
    },
    {
      name: 'rate limit',
      env: { CUSTODIA_RATE_LIMIT: '-4242424' },
      canary: '4242424',
      names: 'CUSTODIA_RATE_LIMIT',
    },
    {
      name: 'body limit',
      env: { CUSTODIA_BODY_LIMIT: '98765432101' },
      canary: '98765432101',
      names: 'CUSTODIA_BODY_LIMIT',
    },
    {
      name: 'trust proxy',
      env: { CUSTODIA_TRUST_PROXY: 'yes-canary' },
      canary: 'yes-canary',
      names: 'CUSTODIA_TRUST_PROXY',
    },
    {
      name: 'SMTP host given as a URL',
      env: { CUSTODIA_SMTP_HOST: 'smtp://mailer:pw-canary-123@mail.example.org' },
      canary: 'pw-canary-123',
      names: 'CUSTODIA_SMTP_HOST',
    },
    {
      name: 'SMTP host with a space',
      flags: { smtpHost: 'mail canary.example.org' },
      canary: 'canary',
      names: 'CUSTODIA_SMTP_HOST',
    },
    {
      name: 'SMTP port',
      env: { CUSTODIA_SMTP_HOST: 'mail.example.org', CUSTODIA_SMTP_PORT: 'smtp-port-canary' },
      canary: 'smtp-port-canary',
      names: 'CUSTODIA_SMTP_PORT',
    },
    {
      name: 'SMTP port out of range',
      env: { CUSTODIA_SMTP_PORT: '-25025' },
      canary: '25025',
      names: 'CUSTODIA_SMTP_PORT',
    },
    {
      name: 'SMTP secure',
      env: { CUSTODIA_SMTP_SECURE: 'yes-canary' },
      canary: 'yes-canary',
      names: 'CUSTODIA_SMTP_SECURE',
    },
    {
      name: 'SMTP password with a line break',
      env: {
        CUSTODIA_SMTP_HOST: 'mail.example.org',
        CUSTODIA_SMTP_USER: 'custodia',
        CUSTODIA_SMTP_PASSWORD: 'pw-canary-123\nmore',
      },
      canary: 'pw-canary-123',
      names: 'CUSTODIA_SMTP_PASSWORD',
    },
    {
      name: 'SMTP user with a control character',
      env: {
        CUSTODIA_SMTP_HOST: 'mail.example.org',
        CUSTODIA_SMTP_USER: 'user-canary\u0000',
        CUSTODIA_SMTP_PASSWORD: 'pw-canary-123',
      },
      canary: 'user-canary',
      names: 'CUSTODIA_SMTP_USER',
    },
    {
      name: 'sender without an address',
      env: { CUSTODIA_MAIL_FROM: 'from-canary' },
      canary: 'from-canary',
      names: 'CUSTODIA_MAIL_FROM',
    },
    {
      name: 'sender with a header break',
      env: { CUSTODIA_MAIL_FROM: 'a@example.org\r\nBcc: canary@evil.example' },
      canary: 'canary@evil',
      names: 'CUSTODIA_MAIL_FROM',
    },
    {
      name: 'sender with two addresses',
      flags: { mailFrom: 'a@example.org, canary@evil.example' },
      canary: 'canary@evil',
      names: 'CUSTODIA_MAIL_FROM',
    },
  ];

  it.each(invalid)('refuses an invalid $name, naming the variable, never the value', (c) => {
    const error = configError(c.flags ?? {}, c.env ?? {});
    expect(error.message).toContain(c.names);
    expect(error.problems.some((p) => p.startsWith(c.names))).toBe(true);
    const shown = everythingShown(error);
    expect(shown).not.toContain(c.canary);
    // The decoded master-key canary must not leak either.
    expect(shown).not.toContain('secret-canary-value');
  });

  it('names the flag beside the variable, and only the variable for env-only settings', () => {
    expect(configError({}, { CUSTODIA_PORT: 'x' }).message).toContain('CUSTODIA_PORT (--port)');
    const masterKey = configError({}, { CUSTODIA_MASTER_KEY: 'x' });
    expect(settings.masterKey.flag).toBeUndefined();
    expect(masterKey.problems).toEqual([expect.stringMatching(/^CUSTODIA_MASTER_KEY: /)]);
  });

  it('reports every invalid setting at once', () => {
    const error = configError(
      {},
      { CUSTODIA_PORT: 'x', CUSTODIA_LOG_LEVEL: 'y', CUSTODIA_DEFAULT_REGION: 'z' },
    );
    expect(error.problems).toHaveLength(3);
    for (const name of ['CUSTODIA_PORT', 'CUSTODIA_LOG_LEVEL', 'CUSTODIA_DEFAULT_REGION']) {
      expect(error.message).toContain(name);
    }
  });

  it('accepts a sender as a bare address or with a display name', () => {
    for (const mailFrom of [
      'no-reply@mail.example.org',
      'Custodia <no-reply@localhost>',
      'Atención al cliente <hola@example.es>',
      '"Custodia, soporte" <soporte@example.es>',
      '<no-reply@example.org>',
    ]) {
      expect(loadConfig({ mailFrom }, {}).mailFrom).toBe(mailFrom);
    }
    for (const mailFrom of [
      'a@',
      '@example.org',
      'a@-x.org',
      'Name a@b.org',
      'a@b.org <c@d.org>',
    ]) {
      expect(configError({ mailFrom }, {}).message).toContain('CUSTODIA_MAIL_FROM');
    }
  });

  it('accepts an SMTP host as a name or an IP address', () => {
    for (const smtpHost of ['mail.example.org', 'localhost', '127.0.0.1', '::1', 'fd00::25']) {
      expect(loadConfig({ smtpHost }, {}).smtpHost).toBe(smtpHost);
    }
  });

  it('never shows the SMTP password, and takes it from the environment only', () => {
    expect(settings.smtpPassword.flag).toBeUndefined();
    const password = 'pw-canary-8815';
    const cases: Record<string, string>[] = [
      // A password without a user, or credentials without a host.
      { CUSTODIA_SMTP_HOST: 'mail.example.org', CUSTODIA_SMTP_PASSWORD: password },
      { CUSTODIA_SMTP_USER: 'custodia', CUSTODIA_SMTP_PASSWORD: password },
      // A valid password beside another setting's mistake.
      {
        CUSTODIA_SMTP_HOST: 'mail.example.org',
        CUSTODIA_SMTP_USER: 'custodia',
        CUSTODIA_SMTP_PASSWORD: password,
        CUSTODIA_SMTP_PORT: 'x',
      },
    ];
    const expected = [
      ['CUSTODIA_SMTP_USER (--smtp-user): is required when CUSTODIA_SMTP_PASSWORD is set'],
      ['CUSTODIA_SMTP_HOST (--smtp-host): is required when SMTP credentials are set'],
      ['CUSTODIA_SMTP_PORT (--smtp-port): is not valid'],
    ];
    cases.forEach((env, i) => {
      const error = configError({}, env);
      expect(error.problems).toEqual(expected[i]);
      expect(everythingShown(error)).not.toContain(password);
    });
  });

  it('refuses an SMTP user without a password', () => {
    const error = configError({}, { CUSTODIA_SMTP_HOST: 'mail', CUSTODIA_SMTP_USER: 'custodia' });
    expect(error.problems).toEqual([
      'CUSTODIA_SMTP_PASSWORD: is required when CUSTODIA_SMTP_USER is set',
    ]);
  });

  it('refuses a PostgreSQL data store without a separate key store', () => {
    const url = 'postgres://app:pw-canary-123@db.internal:5432/custodia';
    const error = configError({}, { CUSTODIA_DATABASE_URL: url });
    expect(error.message).toContain('CUSTODIA_KEYSTORE_URL');
    expect(everythingShown(error)).not.toContain('pw-canary-123');
    expect(everythingShown(error)).not.toContain('db.internal');

    const onlyKeys = configError({}, { CUSTODIA_KEYSTORE_URL: url });
    expect(onlyKeys.message).toContain('CUSTODIA_DATABASE_URL');
    expect(everythingShown(onlyKeys)).not.toContain('pw-canary-123');
  });

  it('refuses the same database for the data store and the key store', () => {
    const url = 'postgres://app:pw-canary-123@db.internal:5432/custodia';
    for (const [flags, env] of [
      [{}, { CUSTODIA_DATABASE_URL: url, CUSTODIA_KEYSTORE_URL: url }],
      [{ databaseUrl: url, keystoreUrl: url }, {}],
      [{ keystoreUrl: url }, { CUSTODIA_DATABASE_URL: url }],
    ] as const) {
      const error = configError(flags, env);
      expect(error.message).toContain('CUSTODIA_KEYSTORE_URL');
      expect(everythingShown(error)).not.toContain('pw-canary-123');
    }
    const ok = loadConfig({}, { CUSTODIA_DATABASE_URL: url, CUSTODIA_KEYSTORE_URL: `${url}_keys` });
    expect(ok.keystoreUrl).toBe(`${url}_keys`);
  });
});
