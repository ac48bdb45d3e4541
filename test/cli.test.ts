import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../src/platform/crypto/index.js';
import { authHeader, countCanary, startRuntime, TestClock } from '../src/testing/harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cliPath = path.join(root, 'dist', 'src', 'cli', 'main.js');
const TOKEN_SHAPE = /^cust_[A-Za-z0-9_-]{43}$/;

/** The environment of a user who configured nothing: no CUSTODIA_* variable leaks in. */
const cleanEnv: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter(
    (e): e is [string, string] => !e[0].startsWith('CUSTODIA_') && e[1] !== undefined,
  ),
);

interface CliResult {
  readonly code: number | string | null;
  readonly stdout: string;
  readonly stderr: string;
}

let workDir = '';

function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { cwd: workDir, env: { ...cleanEnv, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : (error.code ?? null), stdout, stderr });
      },
    );
  });
}

async function ok(args: readonly string[]): Promise<string> {
  const r = await cli(args);
  expect(r, r.stderr).toMatchObject({ code: 0 });
  return r.stdout;
}

async function newestSource(dir: string): Promise<number> {
  let newest = 0;
  for (const f of await readdir(dir, { recursive: true })) {
    if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f.startsWith('testing')) continue;
    newest = Math.max(newest, (await stat(path.join(dir, f))).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than the sources (npm test's pretest builds too). */
async function ensureBuilt(): Promise<void> {
  const built = existsSync(cliPath) ? (await stat(cliPath)).mtimeMs : 0;
  if (built >= (await newestSource(path.join(root, 'src')))) return;
  await new Promise<void>((resolve) => {
    execFile('npm', ['run', '--silent', 'build'], { cwd: root }, () => resolve());
  });
  expect(existsSync(cliPath)).toBe(true);
}

async function filesOf(dir: string): Promise<Buffer> {
  const names = await readdir(dir, { recursive: true });
  const parts = await Promise.all(
    names.map((f) => readFile(path.join(dir, f)).catch(() => Buffer.alloc(0))),
  );
  return Buffer.concat(parts);
}

interface KeyringJson {
  keks: { version: number; key: string | null; retiredAt: string | null }[];
}
async function keyring(dir: string): Promise<KeyringJson> {
  return JSON.parse(await readFile(path.join(dir, 'keyring.json'), 'utf8')) as KeyringJson;
}

function withDataDb<T>(dir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path.join(dir, 'custodia.db'));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

let dirs = 0;
function newDataDir(): string {
  dirs += 1;
  return path.join(workDir, `data-${dirs}`);
}

async function initialised(): Promise<string> {
  const dir = newDataDir();
  await ok(['init', '--data-dir', dir]);
  return dir;
}

describe('custodia CLI (built, as a process)', () => {
  beforeAll(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'custodia-cli-'));
    await ensureBuilt();
  }, 120_000);
  afterAll(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it('init creates an owner-only keyring, the data store and the key store', async () => {
    const dir = newDataDir();
    const out = await ok(['init', '--data-dir', dir]);
    expect(out).toContain('initialised Custodia');
    expect((await stat(path.join(dir, 'keyring.json'))).mode & 0o777).toBe(0o600);
    expect(existsSync(path.join(dir, 'custodia.db'))).toBe(true);
    expect(existsSync(path.join(dir, 'keystore.db'))).toBe(true);
    for (const f of await readdir(dir)) {
      expect({ f, groupOrOther: (await stat(path.join(dir, f))).mode & 0o077 }).toEqual({
        f,
        groupOrOther: 0,
      });
    }
    const before = await readFile(path.join(dir, 'keyring.json'), 'utf8');
    expect((await keyring(dir)).keks).toHaveLength(1);
    // A second init keeps the keys it finds: replacing them would lose every customer's data.
    await ok(['init', '--data-dir', dir]);
    expect(await readFile(path.join(dir, 'keyring.json'), 'utf8')).toBe(before);
  });

  describe.concurrent('help', () => {
    it.for([
      'init',
      'serve',
      'token create',
      'audit verify',
      'keys rotate',
      'keys status',
      'keys retire',
      'consent expire',
    ])('%s --help exits 0 and documents --data-dir', async (command, { expect }) => {
      const r = await cli([...command.split(' '), '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('--data-dir');
      expect(r.stdout).toContain('CUSTODIA_DATA_DIR');
    });
  });

  it('token create prints the token alone on the last line and stores only its hash', async () => {
    const dir = await initialised();
    const r = await cli(['token', 'create', '--role', 'agent', '--data-dir', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    const token = r.stdout.trimEnd().split('\n').at(-1)!;
    expect(token).toMatch(TOKEN_SHAPE);
    expect(r.stderr).not.toContain(token);
    const stored = await filesOf(dir);
    expect(countCanary(stored, token)).toBe(0);
    expect(countCanary(stored, token.slice('cust_'.length))).toBe(0);
    const hashes = withDataDb(dir, (db) =>
      db
        .prepare('select token_hash, role from api_token')
        .all()
        .map((row) => row as { token_hash: string; role: string }),
    );
    expect(hashes).toEqual([{ token_hash: sha256Hex(token), role: 'agent' }]);
  });

  it('token create refuses an unknown role and creates nothing', async () => {
    const dir = await initialised();
    const r = await cli(['token', 'create', '--role', 'nope', '--data-dir', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toMatch(/cust_/);
    const count = withDataDb(
      dir,
      (db) => db.prepare('select count(*) as n from api_token').get() as { n: number },
    );
    expect(count.n).toBe(0);
  });

  it('consent expire ends lapsed agreements and shreds what they alone covered', async () => {
    const dir = await initialised();
    // The test clock runs in January 2026, so an expiry a week after it has passed for the CLI.
    const clock = new TestClock();
    const expiresAt = new Date(clock.now().getTime() + 7 * 86_400_000).toISOString();
    const rt = await startRuntime('sqlite', { clock, config: { dataDir: dir } });
    let id = '';
    try {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(await rt.token('agent')),
        payload: {
          consents: [
            { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
            { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form', expiresAt },
          ],
          identity: { givenName: 'Leocadia' },
          preferences: { interests: ['canary-lapsed-interest'] },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      id = res.json<{ id: string }>().id;
    } finally {
      await rt.close();
    }
    expect(await ok(['consent', 'expire', '--data-dir', dir])).toBe('ended 1 agreements\n');
    expect(await ok(['consent', 'expire', '--data-dir', dir])).toBe('ended 0 agreements\n');
    const left = withDataDb(dir, (db) => ({
      fields: db
        .prepare('select category from customer_field where customer_id = ? order by category')
        .all(id),
      shredded: db
        .prepare('select categories, status, cause from category_erasure where customer_id = ?')
        .all(id),
    }));
    expect(left).toEqual({
      fields: [{ category: 'identity' }],
      shredded: [{ categories: '["preferences"]', status: 'completed', cause: 'expired' }],
    });
    expect(await ok(['audit', 'verify', '--data-dir', dir])).toMatch(/^audit chain ok/);
  });

  it('audit verify passes on a sound chain and names sequence number 1 once it is edited', async () => {
    const dir = await initialised();
    await ok(['token', 'create', '--role', 'agent', '--data-dir', dir]);
    await ok(['token', 'create', '--role', 'admin', '--data-dir', dir]);
    const sound = await cli(['audit', 'verify', '--data-dir', dir]);
    expect(sound).toMatchObject({ code: 0, stdout: 'audit chain ok: 2 entries\n' });
    withDataDb(dir, (db) => db.prepare(`update audit_entry set action = 'x' where seq = 1`).run());
    const broken = await cli(['audit', 'verify', '--data-dir', dir]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/first bad sequence number 1\b/);
    expect(broken.stdout).not.toContain('audit chain ok');
  });

  it('audit verify detects deleted tail entries', async () => {
    const dir = await initialised();
    for (const role of ['agent', 'admin', 'auditor']) {
      await ok(['token', 'create', '--role', role, '--data-dir', dir]);
    }
    expect(await ok(['audit', 'verify', '--data-dir', dir])).toBe('audit chain ok: 3 entries\n');
    withDataDb(dir, (db) => db.prepare('delete from audit_entry where seq > 1').run());
    const broken = await cli(['audit', 'verify', '--data-dir', dir]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/first bad sequence number 2\b/);
  });

  it('keys rotate rewraps every data key; retire destroys only an unused old version', async () => {
    const dir = await initialised();
    const people = [
      { givenName: 'Xiomara', email: 'xiomara@example.com' },
      { givenName: 'Wenceslao', email: 'wenceslao@example.com' },
    ];
    const ids: string[] = [];
    const rt = await startRuntime('sqlite', { config: { dataDir: dir } });
    try {
      const agent = await rt.token('agent');
      for (const p of people) {
        const res = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers',
          headers: authHeader(agent),
          payload: {
            consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
            identity: { givenName: p.givenName },
            contact: { email: p.email },
          },
        });
        expect(res.statusCode, res.body).toBe(201);
        ids.push(res.json<{ id: string }>().id);
      }
    } finally {
      await rt.close();
    }
    const readsBack = async () => {
      const again = await startRuntime('sqlite', { config: { dataDir: dir } });
      try {
        const agent = await again.token('agent');
        for (const [i, id] of ids.entries()) {
          const res = await again.app.inject({
            url: `/api/v1/customers/${id}?purpose=loyalty_program`,
            headers: authHeader(agent),
          });
          expect(res.statusCode, res.body).toBe(200);
          expect(res.json()).toMatchObject({
            identity: { givenName: people[i]!.givenName },
            contact: { email: people[i]!.email },
          });
        }
      } finally {
        await again.close();
      }
    };
    await readsBack();

    const status1 = await ok(['keys', 'status', '--data-dir', dir]);
    const match = /^KEK v1 current: (\d+) data keys$/m.exec(status1);
    expect(match, status1).not.toBeNull();
    const keys = Number(match![1]);
    expect(keys).toBeGreaterThanOrEqual(people.length);
    // v1 still wraps every key: it cannot go.
    const early = await cli(['keys', 'retire', '1', '--data-dir', dir]);
    expect(early.code).not.toBe(0);
    expect((await keyring(dir)).keks[0]!.key).not.toBeNull();

    const rotated = await cli(['keys', 'rotate', '--data-dir', dir]);
    expect(rotated).toMatchObject({
      code: 0,
      stdout: `current KEK version 2: ${keys} data keys rewrapped\n`,
    });
    expect((await stat(path.join(dir, 'keyring.json'))).mode & 0o777).toBe(0o600);
    expect((await keyring(dir)).keks.map((k) => k.version)).toEqual([1, 2]);
    const status2 = await ok(['keys', 'status', '--data-dir', dir]);
    expect(status2).toContain('KEK v1 active: 0 data keys\n');
    expect(status2).toContain(`KEK v2 current: ${keys} data keys\n`);
    await readsBack();

    const retired = await cli(['keys', 'retire', '1', '--data-dir', dir]);
    expect(retired).toMatchObject({ code: 0, stdout: 'KEK v1 retired\n' });
    const ring = await keyring(dir);
    expect(ring.keks[0]).toMatchObject({ version: 1, key: null });
    expect(ring.keks[0]!.retiredAt).not.toBeNull();
    // Soft: a retired version missing from the listing should not hide the checks below.
    expect
      .soft(await ok(['keys', 'status', '--data-dir', dir]))
      .toContain('KEK v1 retired: 0 data keys\n');
    await readsBack();

    const current = await cli(['keys', 'retire', '2', '--data-dir', dir]);
    expect(current.code).not.toBe(0);
    expect(current.stdout).not.toContain('retired');
    expect((await keyring(dir)).keks[1]).toMatchObject({ version: 2, retiredAt: null });
    expect((await keyring(dir)).keks[1]!.key).not.toBeNull();
    await readsBack();
    expect(await ok(['audit', 'verify', '--data-dir', dir])).toMatch(
      /^audit chain ok: \d+ entries\n$/,
    );
  });

  describe.concurrent(
    'invalid configuration stops the process, naming the setting but not its value',
    () => {
      // base64 of 19 bytes: well-formed, but not a 32-byte key.
      const masterCanary = 'Y2FuYXJ5LXNlY3JldC1rZXktOQ==';
      const cases = [
        { setting: 'CUSTODIA_PORT', flags: ['--port', '99999'], env: {}, secrets: ['99999'] },
        {
          setting: 'CUSTODIA_MASTER_KEY',
          flags: [],
          env: { CUSTODIA_MASTER_KEY: masterCanary },
          secrets: [masterCanary, 'canary-secret-key-9'],
        },
        {
          setting: 'CUSTODIA_KEYSTORE_URL',
          flags: [],
          env: { CUSTODIA_DATABASE_URL: 'postgres://u:pw-canary-9@127.0.0.1/x' },
          secrets: ['pw-canary-9', 'postgres://u:'],
        },
      ];
      for (const command of [['init'], ['serve'], ['audit', 'verify']]) {
        for (const c of cases) {
          it(`${command.join(' ')} with a bad ${c.setting}`, async ({ expect }) => {
            const dir = newDataDir();
            const r = await cli([...command, ...c.flags, '--data-dir', dir], c.env);
            expect(r.code).toBe(2);
            expect(r.stderr).toContain(c.setting);
            for (const secret of c.secrets) {
              expect(r.stdout).not.toContain(secret);
              expect(r.stderr).not.toContain(secret);
            }
            // Nothing was created before the configuration was checked.
            expect(existsSync(dir)).toBe(false);
          });
        }
      }
    },
  );
});
