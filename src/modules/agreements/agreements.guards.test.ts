import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { newId } from '../../platform/ids.js';
import { verifyAuditChain } from '../audit/index.js';
import { cachedPurposes } from '../purposes/index.js';
import { sweepAgreements } from './index.js';

const DAY = 24 * 60 * 60 * 1000;

const loyalty = { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' } as const;
const offers = { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' } as const;
const support = { purpose: 'customer_support', noticeVersion: '1', method: 'phone' } as const;
const health = { purpose: 'health_services', noticeVersion: '1' } as const;

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

interface ConsentState {
  purpose: string;
  state: 'active' | 'pending' | 'withdrawn' | 'expired';
  grantEventId: string;
  noticeVersion: string;
  startsAt: string | null;
  expiresAt: string | null;
}

interface Granted {
  granted: { purpose: string; eventId: string; created: boolean }[];
}

let seq = 0;
/** A value that occurs nowhere else, to look for in responses and stored bytes. */
function canary(label: string): string {
  seq += 1;
  return `${label}${seq}q${Math.random().toString(36).slice(2, 10)}`;
}

forEachDialect((dialect) => {
  describe(`agreement guards on ${dialect}`, () => {
    // The clock never moves here: the sweep must find nothing lapsed, only what was left pending.
    const clock = new TestClock();
    let rt: TestRuntime;
    let agent: string;
    let admin: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      agent = await rt.token('agent');
      admin = await rt.token('admin');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function createCustomer(body: object): Promise<string> {
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: body,
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }
    const createRaw = (body: object) =>
      rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: body,
      });
    const grant = (id: string, consents: object[]) =>
      rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents`,
        headers: authHeader(agent),
        payload: { consents },
      });
    const withdraw = (id: string, purpose: string, body: object) =>
      rt.app.inject({
        method: 'POST',
        url: `/api/v1/customers/${id}/consents/${purpose}/withdraw`,
        headers: authHeader(agent),
        payload: body,
      });
    const read = (id: string, purpose: string) =>
      rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=${purpose}`,
        headers: authHeader(agent),
      });
    const patch = (id: string, payload: object) =>
      rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/customers/${id}`,
        headers: authHeader(agent),
        payload,
      });

    async function currentOf(id: string, purpose: string): Promise<ConsentState | undefined> {
      const res = await rt.app.inject({
        url: `/api/v1/customers/${id}/consents`,
        headers: authHeader(agent),
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json<{ current: ConsentState[] }>().current.find((c) => c.purpose === purpose);
    }
    const eventsOf = (id: string) =>
      rt.inspect.data
        .selectFrom('consent_event')
        .select(['id', 'event', 'purpose_key'])
        .where('customer_id', '=', id)
        .orderBy('id')
        .execute();
    const allEventIds = async () =>
      (await rt.inspect.data.selectFrom('consent_event').select('id').orderBy('id').execute()).map(
        (e) => e.id,
      );
    const allCustomerIds = async () =>
      (await rt.inspect.data.selectFrom('customer').select('id').orderBy('id').execute()).map(
        (c) => c.id,
      );
    const keysOf = (id: string) =>
      rt.inspect.keys
        .selectFrom('data_key')
        .select(['id', 'category'])
        .where('customer_id', '=', id)
        .orderBy('category')
        .execute();
    const categoryErasure = (erasureId: string) =>
      rt.inspect.data
        .selectFrom('category_erasure')
        .selectAll()
        .where('id', '=', erasureId)
        .executeTakeFirstOrThrow();

    function expectRefused(
      res: Awaited<ReturnType<typeof grant>>,
      status: number,
      code: string,
      field: string,
    ): void {
      expect(res.statusCode, res.body).toBe(status);
      expect(res.json<ErrorBody>().error).toMatchObject({ code, fields: [field] });
    }

    let purposeSeq = 0;
    /** A new consent purpose covering contact data, published by an admin (notice version 1). */
    async function publishPurpose(): Promise<string> {
      purposeSeq += 1;
      const key = `guarded_${purposeSeq}_${Math.random().toString(36).slice(2, 8)}`;
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/purposes',
        headers: authHeader(admin),
        payload: {
          key,
          lawfulBasis: 'consent',
          categories: ['contact'],
          retentionDays: 365,
          name: { en: 'Newsletter', es: 'Boletín' },
          description: { en: 'We send you our newsletter.', es: 'Te enviamos nuestro boletín.' },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return key;
    }

    /**
     * What a withdrawal that crashed after its data transaction leaves behind: the preferences
     * rows deleted and a pending category erasure recording the key still in the key store.
     */
    async function leavePendingShred(id: string): Promise<{ erasureId: string; keyId: string }> {
      const keyId = (await keysOf(id)).find((k) => k.category === 'preferences')!.id;
      const erasureId = newId();
      await rt.inspect.data
        .insertInto('category_erasure')
        .values({
          workspace_id: rt.workspaceId,
          id: erasureId,
          customer_id: id,
          purpose_key: 'personalized_offers',
          cause: 'withdrawn',
          event_id: newId(),
          status: 'pending',
          requested_at: clock.now().toISOString(),
          completed_at: null,
          categories: JSON.stringify(['preferences']),
          destroyed_key_ids: JSON.stringify([keyId]),
          actor_type: 'token',
          actor_id: 'crashed',
        })
        .execute();
      await rt.inspect.data
        .deleteFrom('customer_field')
        .where('customer_id', '=', id)
        .where('category', '=', 'preferences')
        .execute();
      return { erasureId, keyId };
    }

    it('requires a documentRef for phone and import, on every route that records an instruction', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const customers = await allCustomerIds();
      const events = await allEventIds();

      expectRefused(
        await grant(id, [support]),
        400,
        'invalid_input',
        'body.consents.0.documentRef',
      );
      expectRefused(
        await grant(id, [{ ...offers, method: 'import' }]),
        400,
        'invalid_input',
        'body.consents.0.documentRef',
      );
      expectRefused(
        await createRaw({ consents: [support] }),
        400,
        'invalid_input',
        'body.consents.0.documentRef',
      );
      expectRefused(
        await createRaw({ consents: [{ ...offers, method: 'import' }] }),
        400,
        'invalid_input',
        'body.consents.0.documentRef',
      );
      for (const method of ['phone', 'import']) {
        expectRefused(
          await withdraw(id, 'loyalty_program', { method }),
          400,
          'invalid_input',
          'body.documentRef',
        );
      }

      // Nothing was recorded: no customer, no event; the agreement is still in force.
      expect(await allCustomerIds()).toEqual(customers);
      expect(await allEventIds()).toEqual(events);
      expect((await currentOf(id, 'loyalty_program'))?.state).toBe('active');

      // With the reference of its document, the same instruction is taken.
      const recorded = await grant(id, [{ ...support, documentRef: 'CALL-2026-0100' }]);
      expect(recorded.statusCode, recorded.body).toBe(200);
      expect(recorded.json<Granted>().granted).toMatchObject([
        { purpose: 'customer_support', created: true },
      ]);
      const ended = await withdraw(id, 'customer_support', {
        method: 'phone',
        documentRef: 'CALL-2026-0101',
      });
      expect(ended.statusCode, ended.body).toBe(200);
    });

    it('refuses explicit consent given by import, even with the reference of a document', async () => {
      const id = await createCustomer({ consents: [loyalty] });
      const customers = await allCustomerIds();
      const events = await allEventIds();
      const imported = { ...health, method: 'import', documentRef: 'BATCH-2026-0007' };

      expectRefused(await grant(id, [imported]), 400, 'invalid_input', 'body.consents.0.method');
      expectRefused(
        await createRaw({ consents: [imported] }),
        400,
        'invalid_input',
        'body.consents.0.method',
      );
      expect(await allCustomerIds()).toEqual(customers);
      expect(await allEventIds()).toEqual(events);
      expect(await currentOf(id, 'health_services')).toBeUndefined();

      // On paper, with its document, explicit consent is recorded.
      const paper = await grant(id, [
        { ...health, method: 'paper', documentRef: 'SCAN-2026-0008' },
      ]);
      expect(paper.statusCode, paper.body).toBe(200);
    });

    it('refuses a renewal that would start later while the agreement is in force, and renews from now', async () => {
      const interest = canary('renew');
      const expiresAt = new Date(clock.now().getTime() + 30 * DAY).toISOString();
      const id = await createCustomer({
        consents: [loyalty, { ...offers, expiresAt }],
        identity: { givenName: 'Renata' },
        preferences: { interests: [interest] },
      });
      const before = await currentOf(id, 'personalized_offers');
      expect(before).toMatchObject({ state: 'active', expiresAt });
      const events = await eventsOf(id);

      const later = await grant(id, [
        {
          ...offers,
          startsAt: new Date(clock.now().getTime() + 10 * DAY).toISOString(),
          expiresAt: new Date(clock.now().getTime() + 400 * DAY).toISOString(),
        },
      ]);
      expect(later.statusCode, later.body).toBe(409);
      expect(later.json<ErrorBody>().error.code).toBe('conflict');
      expect(await eventsOf(id)).toEqual(events);
      expect(await currentOf(id, 'personalized_offers')).toEqual(before);
      // The data stays covered: nothing made the purpose pending.
      const still = await read(id, 'personalized_offers');
      expect(still.statusCode, still.body).toBe(200);

      const renewedUntil = new Date(clock.now().getTime() + 400 * DAY).toISOString();
      const renewal = await grant(id, [{ ...offers, expiresAt: renewedUntil }]);
      expect(renewal.statusCode, renewal.body).toBe(200);
      const [granted] = renewal.json<Granted>().granted;
      expect(granted).toMatchObject({ purpose: 'personalized_offers', created: true });
      expect(granted!.eventId).not.toBe(before!.grantEventId);
      expect(await currentOf(id, 'personalized_offers')).toMatchObject({
        state: 'active',
        grantEventId: granted!.eventId,
        startsAt: null,
        expiresAt: renewedUntil,
      });
      const readNow = await read(id, 'personalized_offers');
      expect(readNow.statusCode, readNow.body).toBe(200);
      expect(readNow.json<Record<string, unknown>>()['preferences']).toEqual({
        interests: [interest],
      });
    });

    it('refuses a grant to a notice version that a newer one replaced', async () => {
      const key = await publishPurpose();
      const id = await createCustomer({ consents: [loyalty] });
      const changed = await rt.app.inject({
        method: 'PATCH',
        url: `/api/v1/purposes/${key}`,
        headers: authHeader(admin),
        payload: {
          description: {
            en: 'We send you our monthly newsletter.',
            es: 'Te enviamos nuestro boletín mensual.',
          },
        },
      });
      expect(changed.statusCode, changed.body).toBe(200);
      expect(changed.json<{ noticeVersion: string }>().noticeVersion).toBe('2');
      const events = await allEventIds();

      const outdated = { purpose: key, noticeVersion: '1', method: 'web_form' };
      expectRefused(
        await grant(id, [outdated]),
        409,
        'notice_outdated',
        'body.consents.0.noticeVersion',
      );
      expectRefused(
        await createRaw({ consents: [loyalty, outdated] }),
        409,
        'notice_outdated',
        'body.consents.1.noticeVersion',
      );
      expect(await allEventIds()).toEqual(events);
      expect(await currentOf(id, key)).toBeUndefined();

      const current = await grant(id, [{ ...outdated, noticeVersion: '2' }]);
      expect(current.statusCode, current.body).toBe(200);
      expect(await currentOf(id, key)).toMatchObject({ state: 'active', noticeVersion: '2' });
    });

    it('refuses a grant to a purpose another process just retired, while this process still caches it as active', async () => {
      const key = await publishPurpose();
      const id = await createCustomer({ consents: [loyalty] });
      // Warms this process's purpose cache with the purpose active.
      expect((await read(id, 'loyalty_program')).statusCode).toBe(200);
      await rt.inspect.data
        .updateTable('purpose')
        .set({ status: 'retired' })
        .where('workspace_id', '=', rt.workspaceId)
        .where('key', '=', key)
        .execute();
      // The precondition of the race: the cache has not seen the retirement.
      expect((await cachedPurposes(rt.ctx, rt.workspaceId)).get(key)?.status).toBe('active');
      const events = await allEventIds();

      expectRefused(
        await grant(id, [{ purpose: key, noticeVersion: '1', method: 'web_form' }]),
        409,
        'purpose_retired',
        'body.consents.0.purpose',
      );
      expect(await allEventIds()).toEqual(events);
      expect(await currentOf(id, key)).toBeUndefined();
    });

    it('refuses a new customer agreeing to a purpose another process just retired, while this process still caches it as active', async () => {
      const key = await publishPurpose();
      expect(
        (await read(await createCustomer({ consents: [loyalty] }), 'loyalty_program')).statusCode,
      ).toBe(200);
      await rt.inspect.data
        .updateTable('purpose')
        .set({ status: 'retired' })
        .where('workspace_id', '=', rt.workspaceId)
        .where('key', '=', key)
        .execute();
      expect((await cachedPurposes(rt.ctx, rt.workspaceId)).get(key)?.status).toBe('active');
      const customers = await allCustomerIds();
      const events = await allEventIds();

      const res = await createRaw({
        consents: [loyalty, { purpose: key, noticeVersion: '1', method: 'web_form' }],
        contact: { email: `${canary('retired')}@example.org` },
      });
      expectRefused(res, 409, 'purpose_retired', 'body.consents.1.purpose');
      expect(await allCustomerIds()).toEqual(customers);
      expect(await allEventIds()).toEqual(events);
    });

    it('a write after a category erasure left pending gets a new key, and survives the erasure being resumed', async () => {
      const interest = canary('later');
      const id = await createCustomer({
        consents: [loyalty, offers],
        identity: { givenName: 'Pendiente' },
        preferences: { channels: ['email'] },
      });
      const { erasureId, keyId } = await leavePendingShred(id);
      const identityKey = (await keysOf(id)).find((k) => k.category === 'identity')!;

      const written = await patch(id, { preferences: { interests: [interest] } });
      expect(written.statusCode, written.body).toBe(200);

      // The doomed key was destroyed before the write, and the write sealed under a new one.
      const keys = await keysOf(id);
      expect(keys.map((k) => k.id)).not.toContain(keyId);
      const preferencesKey = keys.find((k) => k.category === 'preferences');
      expect(preferencesKey).toBeDefined();
      expect(preferencesKey!.id).not.toBe(keyId);
      expect(keys).toContainEqual(identityKey);
      const fields = await rt.inspect.data
        .selectFrom('customer_field')
        .select(['field', 'data_key_id'])
        .where('customer_id', '=', id)
        .where('category', '=', 'preferences')
        .execute();
      expect(fields).toEqual([{ field: 'interests', data_key_id: preferencesKey!.id }]);
      const ledger = await categoryErasure(erasureId);
      expect(ledger.status).toBe('completed');
      expect(JSON.parse(ledger.destroyed_key_ids)).toEqual([keyId]);

      // A restart resumes pending erasures: none is left to destroy what was written since.
      rt = await rt.restart();
      const after = await read(id, 'personalized_offers');
      expect(after.statusCode, after.body).toBe(200);
      expect(after.json<Record<string, unknown>>()['preferences']).toEqual({
        interests: [interest],
      });
      const identity = await read(id, 'loyalty_program');
      expect(identity.statusCode, identity.body).toBe(200);
      expect(identity.json<Record<string, unknown>>()['identity']).toEqual({
        givenName: 'Pendiente',
      });
      expect(await keysOf(id)).toEqual(keys);

      const completions = await rt.inspect.data
        .selectFrom('audit_entry')
        .select(['action', 'reason'])
        .where('customer_id', '=', id)
        .where('action', '=', 'shred.complete')
        .execute();
      expect(completions).toEqual([
        { action: 'shred.complete', reason: `category_erasure:${erasureId}` },
      ]);
      expect(countCanary(await rt.storeBytes(), interest)).toBe(0);
    });

    it('the agreement sweep finishes a category erasure left pending, destroying only the key it recorded', async () => {
      const id = await createCustomer({
        consents: [loyalty, offers],
        identity: { givenName: 'Barrida' },
        contact: { email: `${canary('sweep')}@example.org` },
        preferences: { channels: ['sms'] },
      });
      const { erasureId, keyId } = await leavePendingShred(id);
      const kept = (await keysOf(id)).filter((k) => k.id !== keyId);
      expect(kept.map((k) => k.category)).toEqual(['contact', 'identity']);
      expect((await categoryErasure(erasureId)).status).toBe('pending');

      await sweepAgreements(rt.ctx);

      const ledger = await categoryErasure(erasureId);
      expect(ledger.status).toBe('completed');
      expect(ledger.completed_at).toBe(clock.now().toISOString());
      expect(JSON.parse(ledger.destroyed_key_ids)).toEqual([keyId]);
      expect(await keysOf(id)).toEqual(kept);
      const res = await read(id, 'loyalty_program');
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<Record<string, unknown>>()).toMatchObject({
        identity: { givenName: 'Barrida' },
      });
      // Nothing the sweep should have ended was ended: the clock has not moved.
      expect((await currentOf(id, 'personalized_offers'))?.state).toBe('active');
    });

    it('leaves an audit chain that verifies', async () => {
      const result = await verifyAuditChain(rt.ctx.data, (ws) => rt.ctx.signer.publicKey(ws));
      expect(result).toMatchObject({ ok: true });
      expect(result.entries).toBeGreaterThan(20);
    });
  });
});
