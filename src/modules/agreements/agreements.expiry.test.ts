import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeContext, openContext } from '../../main.js';
import type { AppContext } from '../../platform/context.js';
import { createLogger } from '../../platform/logger.js';
import {
  authHeader,
  countCanary,
  dialects,
  forEachDialect,
  LogCapture,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { verifyAuditChain } from '../audit/index.js';
import { sweepAgreements } from './index.js';

const DAY = 24 * 60 * 60 * 1000;

const loyalty = { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' } as const;
const offersUntil = (expiresAt: Date) =>
  ({
    purpose: 'personalized_offers',
    noticeVersion: '1',
    method: 'web_form',
    expiresAt: expiresAt.toISOString(),
  }) as const;
const supportUntil = (expiresAt: Date) =>
  ({
    purpose: 'customer_support',
    noticeVersion: '1',
    method: 'phone',
    documentRef: 'CALL-2026-0001',
    expiresAt: expiresAt.toISOString(),
  }) as const;

function monthsAfter(from: Date, months: number): Date {
  const d = new Date(from);
  d.setUTCMonth(d.getUTCMonth() + months);
  return d;
}

let seq = 0;
/** A value that appears nowhere else, to look for in stored bytes. */
function canary(label: string): string {
  seq += 1;
  return `${label}Canary${seq}x${Math.random().toString(36).slice(2, 10)}`;
}

async function createCustomer(rt: TestRuntime, token: string, body: object): Promise<string> {
  const res = await rt.app.inject({
    method: 'POST',
    url: '/api/v1/customers',
    headers: authHeader(token),
    payload: body,
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: string }>().id;
}

async function consentEvents(rt: TestRuntime, customerId: string) {
  return rt.inspect.data
    .selectFrom('consent_event')
    .selectAll()
    .where('customer_id', '=', customerId)
    .orderBy('id')
    .execute();
}

async function grantIdOf(rt: TestRuntime, customerId: string, purpose: string): Promise<string> {
  const row = await rt.inspect.data
    .selectFrom('consent_event')
    .select('id')
    .where('customer_id', '=', customerId)
    .where('purpose_key', '=', purpose)
    .where('event', '=', 'granted')
    .executeTakeFirstOrThrow();
  return row.id;
}

async function fieldCategories(rt: TestRuntime, customerId: string): Promise<string[]> {
  const rows = await rt.inspect.data
    .selectFrom('customer_field')
    .select('category')
    .distinct()
    .where('customer_id', '=', customerId)
    .execute();
  return rows.map((r) => r.category).sort();
}

async function dataKeys(rt: TestRuntime, customerId: string) {
  const rows = await rt.inspect.keys
    .selectFrom('data_key')
    .select(['id', 'category'])
    .where('customer_id', '=', customerId)
    .execute();
  return rows.sort((a, b) => a.category.localeCompare(b.category));
}

async function categoryErasures(rt: TestRuntime, customerId: string) {
  return rt.inspect.data
    .selectFrom('category_erasure')
    .selectAll()
    .where('customer_id', '=', customerId)
    .execute();
}

async function auditActions(rt: TestRuntime, customerId: string) {
  return rt.inspect.data
    .selectFrom('audit_entry')
    .select(['action', 'outcome', 'reason', 'actor_id', 'purpose'])
    .where('customer_id', '=', customerId)
    .orderBy('seq')
    .execute();
}

forEachDialect((dialect) => {
  describe(`agreement expiry on ${dialect}`, () => {
    let clock: TestClock;
    let rt: TestRuntime;
    let agent: string;
    // A runtime per test: each moves its own clock, so no test's customers expire in another.
    beforeEach(async () => {
      clock = new TestClock();
      rt = await startRuntime(dialect, { clock });
      agent = await rt.token('agent');
    });
    afterEach(async () => {
      await rt.close();
    });

    const read = (id: string, purpose: string) =>
      rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=${purpose}`,
        headers: authHeader(agent),
      });

    it('refuses reads from the instant of expiry, and the sweep ends it once and shreds only what nothing else covers', async () => {
      const expiresAt = monthsAfter(clock.now(), 24);
      const givenName = canary('Identity');
      const interest = canary('Pref');
      const email = `${canary('mail').toLowerCase()}@example.net`;
      const id = await createCustomer(rt, agent, {
        consents: [loyalty, offersUntil(expiresAt)],
        identity: { givenName, familyName: 'Ortega' },
        contact: { email },
        preferences: { interests: [interest], channels: ['sms'] },
      });
      const offersGrant = await grantIdOf(rt, id, 'personalized_offers');
      const keysBefore = await dataKeys(rt, id);
      expect(keysBefore.map((k) => k.category)).toEqual(['contact', 'identity', 'preferences']);
      const preferencesKey = keysBefore.find((k) => k.category === 'preferences')!.id;

      clock.advance(expiresAt.getTime() - clock.now().getTime() - 1);
      expect(await sweepAgreements(rt.ctx)).toEqual({ ended: 0, skipped: 0 });
      expect((await read(id, 'personalized_offers')).statusCode).toBe(200);
      expect(await fieldCategories(rt, id)).toEqual(['contact', 'identity', 'preferences']);

      // Exactly at the expiry the agreement no longer holds, before any sweep has run.
      clock.advance(1);
      const refused = await read(id, 'personalized_offers');
      expect(refused.statusCode).toBe(404);
      expect(refused.body).not.toContain(interest);
      const write = await rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(agent),
        payload: { preferences: { interests: ['late write'] } },
      });
      expect(write.statusCode).toBe(409);
      expect(write.json<{ error: { code: string } }>().error.code).toBe('consent_missing');
      expect(await auditActions(rt, id)).toContainEqual(
        expect.objectContaining({
          action: 'customer.read',
          purpose: 'personalized_offers',
          outcome: 'denied',
          reason: 'purpose_not_active',
        }),
      );

      expect(await sweepAgreements(rt.ctx)).toEqual({ ended: 1, skipped: 0 });

      const ending = (await consentEvents(rt, id)).filter((e) => e.event !== 'granted');
      expect(ending).toHaveLength(1);
      expect(ending[0]).toMatchObject({
        event: 'expired',
        purpose_key: 'personalized_offers',
        ends_id: offersGrant,
        method: 'system',
        actor_type: 'system',
        actor_id: 'consent-expiry',
        at: expiresAt.toISOString(),
      });
      const history = await rt.app.inject({
        url: `/api/v1/customers/${id}/consents`,
        headers: authHeader(agent),
      });
      expect(history.statusCode).toBe(200);
      const body = history.json<{
        current: { purpose: string; state: string }[];
        history: { event: string; endsEventId: string | null }[];
      }>();
      expect(body.current.map((c) => [c.purpose, c.state])).toEqual([
        ['loyalty_program', 'active'],
        ['personalized_offers', 'expired'],
      ]);
      expect(body.history.filter((e) => e.event === 'expired')).toEqual([
        expect.objectContaining({ endsEventId: offersGrant }),
      ]);

      // Preferences are shredded: their rows and their key are gone, with a ledger entry.
      expect(await fieldCategories(rt, id)).toEqual(['contact', 'identity']);
      expect((await dataKeys(rt, id)).map((k) => k.category)).toEqual(['contact', 'identity']);
      const erasures = await categoryErasures(rt, id);
      expect(erasures).toHaveLength(1);
      expect(erasures[0]).toMatchObject({
        purpose_key: 'personalized_offers',
        cause: 'expired',
        event_id: ending[0]!.id,
        status: 'completed',
        actor_id: 'consent-expiry',
      });
      expect(JSON.parse(erasures[0]!.categories)).toEqual(['preferences']);
      expect(JSON.parse(erasures[0]!.destroyed_key_ids)).toEqual([preferencesKey]);
      const bySweep = (await auditActions(rt, id)).filter((a) => a.actor_id === 'consent-expiry');
      expect(bySweep).toEqual([
        expect.objectContaining({ action: 'consent.expired', outcome: 'done' }),
        expect.objectContaining({ action: 'shred.start', outcome: 'done' }),
        expect.objectContaining({ action: 'shred.complete', outcome: 'done' }),
      ]);

      // What loyalty covers stays readable.
      const kept = await read(id, 'loyalty_program');
      expect(kept.statusCode).toBe(200);
      expect(kept.json<{ identity?: { givenName?: string } }>().identity?.givenName).toBe(
        givenName,
      );
      expect(kept.json<{ contact?: { email?: string } }>().contact?.email).toBe(email);

      // A second sweep finds nothing left to do.
      expect(await sweepAgreements(rt.ctx)).toEqual({ ended: 0, skipped: 0 });
      expect((await consentEvents(rt, id)).filter((e) => e.event !== 'granted')).toHaveLength(1);
      expect(await categoryErasures(rt, id)).toHaveLength(1);

      expect(countCanary(await rt.storeBytes(), interest)).toBe(0);
      expect(countCanary(Buffer.from(rt.logs.text()), interest)).toBe(0);
    });

    it('erases the customer when the agreement that runs out is their last', async () => {
      const expiresAt = monthsAfter(clock.now(), 24);
      const interest = canary('Last');
      const id = await createCustomer(rt, agent, {
        consents: [offersUntil(expiresAt)],
        contact: { email: `last.${seq}@example.net` },
        preferences: { interests: [interest] },
      });
      const keyIds = (await dataKeys(rt, id)).map((k) => k.id).sort();
      expect(keyIds).toHaveLength(2);

      clock.advance(expiresAt.getTime() - clock.now().getTime() + 1000);
      expect(await sweepAgreements(rt.ctx)).toEqual({ ended: 1, skipped: 0 });

      const erasure = await rt.inspect.data
        .selectFrom('erasure')
        .selectAll()
        .where('customer_id', '=', id)
        .executeTakeFirstOrThrow();
      expect(erasure.status).toBe('completed');
      expect(JSON.parse(erasure.destroyed_key_ids)).toEqual(keyIds);
      expect(
        await rt.inspect.data.selectFrom('customer').select('id').where('id', '=', id).execute(),
      ).toEqual([]);
      expect(await fieldCategories(rt, id)).toEqual([]);
      expect(await dataKeys(rt, id)).toEqual([]);
      expect(await consentEvents(rt, id)).toEqual([]);
      expect(
        await rt.inspect.data
          .selectFrom('blind_index')
          .select('field')
          .where('customer_id', '=', id)
          .execute(),
      ).toEqual([]);
      expect((await read(id, 'personalized_offers')).statusCode).toBe(404);
      const history = await rt.app.inject({
        url: `/api/v1/customers/${id}/consents`,
        headers: authHeader(agent),
      });
      expect(history.statusCode).toBe(404);
      expect(await auditActions(rt, id)).toContainEqual(
        expect.objectContaining({ action: 'erasure.complete', actor_id: 'consent-expiry' }),
      );
      expect(await sweepAgreements(rt.ctx)).toEqual({ ended: 0, skipped: 0 });
      expect(countCanary(await rt.storeBytes(), interest)).toBe(0);
    });
  });

  describe(`the in-process expiry job on ${dialect}`, () => {
    let clock: TestClock;
    let rt: TestRuntime;
    beforeAll(async () => {
      clock = new TestClock();
      rt = await startRuntime(dialect, { clock, config: { expirySweepSeconds: '1' } });
    });
    afterAll(async () => {
      await rt.close();
    });

    it('ends a lapsed agreement without anyone calling the sweep', async () => {
      const agent = await rt.token('agent');
      const expiresAt = new Date(clock.now().getTime() + DAY);
      const id = await createCustomer(rt, agent, {
        consents: [loyalty, offersUntil(expiresAt)],
        identity: { givenName: 'Sched' },
        preferences: { channels: ['post'] },
      });
      const grant = await grantIdOf(rt, id, 'personalized_offers');
      clock.advance(2 * DAY);

      const deadline = Date.now() + 5000;
      let ended: Awaited<ReturnType<typeof consentEvents>> = [];
      let shredded: Awaited<ReturnType<typeof categoryErasures>> = [];
      while (Date.now() < deadline) {
        ended = (await consentEvents(rt, id)).filter((e) => e.ends_id === grant);
        shredded = await categoryErasures(rt, id);
        if (ended.length > 0 && shredded[0]?.status === 'completed') break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(ended).toEqual([
        expect.objectContaining({ event: 'expired', actor_id: 'consent-expiry' }),
      ]);
      expect(shredded).toEqual([
        expect.objectContaining({ cause: 'expired', status: 'completed' }),
      ]);
      expect(await fieldCategories(rt, id)).toEqual(['identity']);
    });
  });
});

// Several processes share one database only on PostgreSQL; SQLite is embedded in one process,
// so this block runs only when CUSTODIA_TEST_PG_URL names a test server.
const hasPostgres = dialects.includes('postgres');
describe.runIf(hasPostgres)(
  `expiry workers sharing one PostgreSQL database${hasPostgres ? '' : ' (skipped: CUSTODIA_TEST_PG_URL is not set)'}`,
  () => {
    let clock: TestClock;
    let rt: TestRuntime;
    let agent: string;
    let workers: AppContext[];
    beforeAll(async () => {
      clock = new TestClock();
      rt = await startRuntime('postgres', { clock });
      agent = await rt.token('agent');
      // Two more processes' worth of context on the same databases, keyring and clock.
      workers = [
        rt.ctx,
        ...(await Promise.all(
          [1, 2].map(() =>
            openContext(rt.config, { clock, logger: createLogger('info', new LogCapture()) }),
          ),
        )),
      ];
    });
    afterAll(async () => {
      for (const w of workers.slice(1)) await closeContext(w);
      await rt.close();
    });

    /** Every worker sweeps at once; answers how many agreements each ended. */
    async function sweepTogether(): Promise<number[]> {
      return (await Promise.all(workers.map((w) => sweepAgreements(w)))).map((r) => r.ended);
    }

    async function expectChainVerifies(): Promise<void> {
      const result = await verifyAuditChain(rt.ctx.data, (ws) => rt.ctx.signer.publicKey(ws));
      expect(result).toMatchObject({ ok: true });
    }

    it('ends each due grant exactly once and shreds once per customer', async () => {
      const grants = new Map<string, string>();
      let ended = 0;
      for (let round = 0; round < 4; round += 1) {
        const expiresAt = new Date(clock.now().getTime() + DAY);
        const ids = await Promise.all(
          Array.from({ length: 5 }, () =>
            createCustomer(rt, agent, {
              consents: [loyalty, offersUntil(expiresAt)],
              identity: { givenName: 'Worker' },
              preferences: { interests: ['racing'] },
            }),
          ),
        );
        for (const id of ids) grants.set(id, await grantIdOf(rt, id, 'personalized_offers'));
        clock.advance(2 * DAY);
        ended += (await sweepTogether()).reduce((a, b) => a + b, 0);
      }
      expect(await sweepTogether()).toEqual([0, 0, 0]);
      expect(ended).toBe(grants.size);

      for (const [id, grant] of grants) {
        const endings = await rt.inspect.data
          .selectFrom('consent_event')
          .select(['event', 'customer_id'])
          .where('ends_id', '=', grant)
          .execute();
        expect(endings).toEqual([{ event: 'expired', customer_id: id }]);
        const erasures = await categoryErasures(rt, id);
        expect(erasures).toHaveLength(1);
        expect(erasures[0]).toMatchObject({ status: 'completed', cause: 'expired' });
        expect(JSON.parse(erasures[0]!.categories)).toEqual(['preferences']);
        expect(await fieldCategories(rt, id)).toEqual(['identity']);
        expect((await dataKeys(rt, id)).map((k) => k.category)).toEqual(['identity']);
        // A worker that lost the race left nothing in the audit chain either.
        const actions = (await auditActions(rt, id)).map((a) => a.action);
        expect(actions.filter((a) => a === 'consent.expired')).toHaveLength(1);
        expect(actions.filter((a) => a === 'shred.start')).toHaveLength(1);
        expect(actions.filter((a) => a === 'shred.complete')).toHaveLength(1);
      }
      await expectChainVerifies();
    });

    /**
     * Starts the work while another connection holds the audit head, which every unit of work
     * locks before it commits: each unit gets that far and waits. Once `waiters` sessions wait
     * on a lock, the head is let go and the work runs on to its end.
     */
    async function withAuditHeadHeld(waiters: number, work: () => Promise<void>): Promise<void> {
      const holder = new pg.Client({ connectionString: rt.config.databaseUrl });
      await holder.connect();
      let done: Promise<void> = Promise.resolve();
      try {
        await holder.query('begin');
        await holder.query('select * from audit_head for update');
        done = work();
        done.catch(() => undefined);
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          const { rows } = await holder.query<{ n: string }>(
            "select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
          );
          if (Number(rows[0]?.n) >= waiters) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await holder.query('rollback');
        await holder.end();
      }
      await done;
    }

    it('erases each customer exactly once when all their agreements run out together', async () => {
      const expiresAt = new Date(clock.now().getTime() + DAY);
      const ids = await Promise.all(
        Array.from({ length: 10 }, () =>
          createCustomer(rt, agent, {
            consents: [offersUntil(expiresAt), supportUntil(expiresAt)],
            identity: { givenName: 'Leaving' },
            contact: { email: `leaving.${canary('m').toLowerCase()}@example.net` },
            preferences: { channels: ['email'] },
          }),
        ),
      );
      clock.advance(2 * DAY);
      let ended = 0;
      for (let round = 0; round < 3; round += 1)
        ended += (await sweepTogether()).reduce((a, b) => a + b, 0);

      for (const id of ids) {
        // The first agreement to end erases the customer; nothing is left for a second end.
        const expiries = (await auditActions(rt, id)).filter((a) => a.action === 'consent.expired');
        expect(expiries, 'agreements ended for an erased customer').toHaveLength(1);
        const erasures = await rt.inspect.data
          .selectFrom('erasure')
          .select(['status'])
          .where('customer_id', '=', id)
          .execute();
        expect(erasures).toEqual([{ status: 'completed' }]);
        expect(
          await rt.inspect.data.selectFrom('customer').select('id').where('id', '=', id).execute(),
        ).toEqual([]);
        expect(await consentEvents(rt, id)).toEqual([]);
        expect(await fieldCategories(rt, id)).toEqual([]);
        expect(await dataKeys(rt, id)).toEqual([]);
        expect(await categoryErasures(rt, id)).toEqual([]);
        const actions = (await auditActions(rt, id)).map((a) => a.action);
        expect(actions.filter((a) => a === 'erasure.start')).toHaveLength(1);
        expect(actions.filter((a) => a === 'erasure.complete')).toHaveLength(1);
      }
      expect(ended).toBe(ids.length);
      await expectChainVerifies();
    });

    it('ends a grant once when two workers reach it together and its end erases the customer', async () => {
      const expiresAt = new Date(clock.now().getTime() + DAY);
      const id = await createCustomer(rt, agent, {
        consents: [offersUntil(expiresAt)],
        preferences: { channels: ['sms'] },
      });
      clock.advance(2 * DAY);
      // One worker writes the ending event and waits for the audit head; the other waits on
      // that event (one per grant). Then both go on.
      let results: { ended: number }[] = [];
      await withAuditHeadHeld(2, async () => {
        results = await Promise.all([sweepAgreements(workers[1]!), sweepAgreements(workers[2]!)]);
      });

      expect(results.reduce((n, r) => n + r.ended, 0)).toBe(1);
      const expiries = (await auditActions(rt, id)).filter((a) => a.action === 'consent.expired');
      expect(expiries).toHaveLength(1);
      expect(await consentEvents(rt, id)).toEqual([]);
      const erasures = await rt.inspect.data
        .selectFrom('erasure')
        .select(['status'])
        .where('customer_id', '=', id)
        .execute();
      expect(erasures).toEqual([{ status: 'completed' }]);
      await expectChainVerifies();
    });

    it('does not acknowledge a grant for a customer that an expiry erases at the same time', async () => {
      const expiresAt = new Date(clock.now().getTime() + DAY);
      const id = await createCustomer(rt, agent, {
        consents: [offersUntil(expiresAt)],
        preferences: { channels: ['sms'] },
      });
      clock.advance(2 * DAY);
      // The expiry (another process) and the grant both read the customer's agreements before
      // either commits.
      let response = { statusCode: 0, body: '' };
      await withAuditHeadHeld(2, async () => {
        [, response] = await Promise.all([
          sweepAgreements(workers[1]!),
          rt.app.inject({
            method: 'POST',
            url: `/api/v1/customers/${id}/consents`,
            headers: authHeader(agent),
            payload: { consents: [loyalty] },
          }),
        ]);
      });

      const customer = await rt.inspect.data
        .selectFrom('customer')
        .select('id')
        .where('id', '=', id)
        .execute();
      const events = await consentEvents(rt, id);
      // Either the grant came first and loyalty keeps the customer, or the erasure came first
      // and the grant is refused; never an acknowledged grant for an erased customer.
      if (response.statusCode === 200) {
        expect(customer, 'the grant was acknowledged but the customer was erased').toEqual([
          { id },
        ]);
        expect(events.map((e) => [e.purpose_key, e.event])).toEqual(
          expect.arrayContaining([['loyalty_program', 'granted']]),
        );
      } else {
        expect(response.statusCode, response.body).toBe(404);
        expect(customer).toEqual([]);
        expect(events).toEqual([]);
      }
      await expectChainVerifies();
    });
  },
);
