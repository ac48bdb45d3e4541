import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../../testing/harness.js';

const loyalty = { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' } as const;
const offers = { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' } as const;

forEachDialect((dialect) => {
  describe(`customers API on ${dialect}`, () => {
    let rt: TestRuntime;
    let agent: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect);
      agent = await rt.token('agent');
    });
    afterAll(async () => {
      await rt.close();
    });

    async function create(body: unknown) {
      return rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: body as object,
      });
    }

    it('creates a customer and reads back only the fields of the purpose', async () => {
      const res = await create({
        consents: [loyalty, offers],
        identity: { givenName: 'Lucía', familyName: 'Martín' },
        contact: { email: ' Lucia@Example.ORG ', phone: '612 345 678' },
        preferences: { interests: ['wine'], channels: ['email'] },
      });
      expect(res.statusCode).toBe(201);
      const { id } = res.json<{ id: string }>();
      const read = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: authHeader(agent),
      });
      expect(read.statusCode).toBe(200);
      expect(read.headers['cache-control']).toBe('no-store');
      const body = read.json<Record<string, unknown>>();
      expect(body['identity']).toEqual({ givenName: 'Lucía', familyName: 'Martín' });
      expect(body['contact']).toEqual({ email: 'lucia@example.org', phone: '+34612345678' });
      expect(body['preferences']).toBeUndefined();
      const offersRead = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=personalized_offers`,
        headers: authHeader(agent),
      });
      expect(offersRead.json<Record<string, unknown>>()['identity']).toBeUndefined();
      expect(offersRead.json<Record<string, unknown>>()['preferences']).toEqual({
        interests: ['wine'],
        channels: ['email'],
      });
    });
  });
});
