import { readdir, readFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailer, readOutbox } from '../../platform/mail/index.js';
import { outboxTextSender, readTextOutbox } from '../../platform/sms.js';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { purgePortalLeftovers, type PortalDeps } from './index.js';
import { CODES_PER_ADDRESS_PER_DAY } from './portal.access.js';

/**
 * Without SMTP settings, codes are written as files under `data/outbox`: those files hold an
 * address, so they go when the customer leaves, and every message goes once its code expired.
 */

interface Portal {
  readonly cookie: string;
  readonly csrf: string;
}

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Date.now().toString(36)}`;
}

function codeIn(text: string): string {
  const code = /\b(\d{6})\b/.exec(text)?.[1];
  if (code === undefined) throw new Error('no code in the message');
  return code;
}

function errorCode(res: LightMyRequestResponse): string | undefined {
  return res.json<{ error?: { code: string } }>().error?.code;
}

/** Every byte of every file under a directory (the outbox, the SQLite files, anything else). */
async function filesUnder(dir: string): Promise<Buffer> {
  const names = await readdir(dir, { recursive: true });
  const parts = await Promise.all(
    names.map((n) => readFile(path.join(dir, n)).catch(() => Buffer.alloc(0))),
  );
  return Buffer.concat(parts);
}

async function eventually<T>(probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 100; i += 1) {
    const found = await probe();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('nothing arrived');
}

forEachDialect((dialect) => {
  describe(`portal mail kept in the outbox on ${dialect}`, () => {
    let rt: TestRuntime;
    let agent: string;
    let deps: PortalDeps;
    const clock = new TestClock();
    let address = 0;
    const ip = () => {
      address += 1;
      return `127.1.${Math.floor(address / 250)}.${(address % 250) + 1}`;
    };

    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      agent = await rt.token('agent');
      // The same senders the server builds from the configuration (no SMTP host: the outbox).
      deps = {
        mailer: createMailer(rt.ctx.config, rt.ctx.logger),
        texts: outboxTextSender(rt.dataDir),
        guard: {
          settle: () => Promise.resolve(),
          destroyedKeyIds: () => Promise.resolve(new Set<string>()),
        },
      };
    });
    afterAll(async () => {
      await deps.mailer.close();
      await rt.close();
    });

    function post(url: string, payload?: object, portal?: Portal, from = ip()) {
      return rt.app.inject({
        method: 'POST',
        url,
        remoteAddress: from,
        headers: portal === undefined ? {} : { cookie: portal.cookie, 'x-csrf-token': portal.csrf },
        ...(payload === undefined ? {} : { payload }),
      });
    }

    async function newCustomer() {
      const tag = unique('');
      const canaries = {
        givenName: `Outboxgiven${tag}`,
        email: `outbox.canary.${tag}@example.org`,
        phone: `+3461${String(1_000_000 + seq * 7919).slice(-7)}`,
      };
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: canaries.givenName },
          contact: { email: canaries.email },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return { id: res.json<{ id: string }>().id, canaries };
    }

    const mailTo = (email: string) =>
      eventually(async () => (await readOutbox(rt.dataDir)).filter((m) => m.to === email).at(-1));
    const textTo = (phone: string) =>
      eventually(async () =>
        (await readTextOutbox(rt.dataDir)).filter((m) => m.to === phone).at(-1),
      );

    async function signIn(email: string): Promise<Portal> {
      expect((await post('/api/v1/portal/login', { email })).statusCode).toBe(202);
      const code = codeIn((await mailTo(email)).text);
      const res = await post('/api/v1/portal/login/verify', { email, code });
      expect(res.statusCode, res.body).toBe(200);
      const header = res.headers['set-cookie'];
      const cookie = (Array.isArray(header) ? header[0] : header) ?? '';
      return {
        cookie: cookie.split(';')[0] ?? '',
        csrf: res.json<{ csrfToken: string }>().csrfToken,
      };
    }

    it('leaves no message to the customer in the outbox after they withdraw, and no canary in any file', async () => {
      const { canaries } = await newCustomer();
      const bystander = await newCustomer();
      await signIn(bystander.canaries.email);
      const portal = await signIn(canaries.email);
      // A phone added with a code: its message waits in the SMS outbox.
      expect(
        (await post('/api/v1/portal/me/contact', { field: 'phone', value: canaries.phone }, portal))
          .statusCode,
      ).toBe(202);
      const sms = await textTo(canaries.phone);
      const added = await post(
        '/api/v1/portal/me/contact/verify',
        { code: codeIn(sms.text) },
        portal,
      );
      expect(added.statusCode, added.body).toBe(200);
      expect((await post('/api/v1/portal/reverify', undefined, portal)).statusCode).toBe(202);
      const again = await eventually(async () => {
        const all = (await readOutbox(rt.dataDir)).filter((m) => m.to === canaries.email);
        return all.length >= 2 ? all.at(-1) : undefined;
      });
      expect(
        (await post('/api/v1/portal/reverify/verify', { code: codeIn(again.text) }, portal))
          .statusCode,
      ).toBe(200);
      expect(countCanary(await filesUnder(rt.dataDir), canaries.email)).toBeGreaterThan(0);

      const left = await post('/api/v1/portal/withdraw', undefined, portal);
      expect(left.statusCode, left.body).toBe(200);

      expect((await readOutbox(rt.dataDir)).filter((m) => m.to === canaries.email)).toEqual([]);
      expect((await readTextOutbox(rt.dataDir)).filter((m) => m.to === canaries.phone)).toEqual([]);
      const bytes = await filesUnder(rt.dataDir);
      for (const canary of Object.values(canaries)) expect(countCanary(bytes, canary)).toBe(0);
      // Another customer's mail is not touched.
      expect(
        (await readOutbox(rt.dataDir)).filter((m) => m.to === bystander.canaries.email).length,
      ).toBeGreaterThan(0);
    });

    it('purges outbox messages once their code expired, and stale codes and sessions', async () => {
      const { canaries } = await newCustomer();
      await signIn(canaries.email);
      expect((await readOutbox(rt.dataDir)).some((m) => m.to === canaries.email)).toBe(true);

      // Files written under ten minutes ago stay.
      await purgePortalLeftovers(rt.ctx, deps);
      expect((await readOutbox(rt.dataDir)).some((m) => m.to === canaries.email)).toBe(true);

      // Aged past the code's ten minutes (files carry the machine's time), they go.
      const old = new Date(Date.now() - 11 * 60_000);
      for (const m of await readOutbox(rt.dataDir)) await utimes(m.file, old, old);
      clock.advance(25 * 60 * 60_000);
      const purged = await purgePortalLeftovers(rt.ctx, deps);
      expect(purged.messages).toBeGreaterThan(0);
      expect(purged.codes).toBeGreaterThan(0);
      expect(purged.sessions).toBeGreaterThan(0);
      expect(await readOutbox(rt.dataDir)).toEqual([]);
      const left = await rt.inspect.data
        .selectFrom('portal_code')
        .select('id')
        .where('created_at', '<', new Date(clock.now().getTime() - 24 * 60 * 60_000).toISOString())
        .execute();
      expect(left).toEqual([]);
      const sessions = await rt.inspect.data
        .selectFrom('portal_session')
        .select('id')
        .where('workspace_id', '=', rt.workspaceId)
        .execute();
      expect(sessions).toEqual([]);
    });

    it(`gives an address at most ${String(CODES_PER_ADDRESS_PER_DAY)} codes a day`, async () => {
      const { canaries } = await newCustomer();
      let sent = 0;
      // Three codes per 15 minutes, window after window, until the day's allowance is spent.
      while (sent < CODES_PER_ADDRESS_PER_DAY) {
        const res = await post('/api/v1/portal/login', { email: canaries.email });
        if (res.statusCode === 429) {
          clock.advance(16 * 60_000);
          continue;
        }
        expect(res.statusCode, res.body).toBe(202);
        sent += 1;
      }
      clock.advance(16 * 60_000);
      const refused = await post('/api/v1/portal/login', { email: canaries.email });
      expect(refused.statusCode).toBe(429);
      expect(errorCode(refused)).toBe('rate_limited');
      expect(refused.body).not.toContain(canaries.email);
      const audit = await rt.inspect.data
        .selectFrom('audit_entry')
        .select('reason')
        .where('workspace_id', '=', rt.workspaceId)
        .where('action', '=', 'portal.code.login')
        .where('outcome', '=', 'denied')
        .execute();
      expect(audit.map((a) => a.reason)).toContain('address_daily_limit');
      // A day after the first code, the address is served again.
      clock.advance(24 * 60 * 60_000);
      expect((await post('/api/v1/portal/login', { email: canaries.email })).statusCode).toBe(202);
      // Every code granted was mailed (and the refused one was not).
      await eventually(async () => {
        const mails = (await readOutbox(rt.dataDir)).filter((m) => m.to === canaries.email);
        return mails.length === CODES_PER_ADDRESS_PER_DAY + 1 ? mails : undefined;
      });
    });
  });
});
