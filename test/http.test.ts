import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../src/testing/harness.js';

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

const consents = [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }];

forEachDialect((dialect) => {
  describe(`HTTP hardening on ${dialect}`, () => {
    let rt: TestRuntime;
    let agent: string;
    let admin: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect);
      agent = await rt.token('agent');
      admin = await rt.token('admin');
    });
    afterAll(async () => {
      await rt.close();
    });

    it('serves OpenAPI 3.1 documenting every route with its permission and errors, and a UI', async () => {
      const res = await rt.app.inject({ url: '/docs/json' });
      expect(res.statusCode).toBe(200);
      const doc = res.json<{
        openapi: string;
        paths: Record<
          string,
          Record<string, { responses: Record<string, unknown>; security?: unknown[] }>
        >;
      }>();
      expect(doc.openapi).toBe('3.1.0');
      const expected = [
        ['/api/v1/health', 'get'],
        ['/api/v1/purposes', 'get'],
        ['/api/v1/purposes', 'post'],
        ['/api/v1/purposes/{key}', 'patch'],
        ['/api/v1/purposes/{key}/retire', 'post'],
        ['/api/v1/purposes/{key}/notices', 'get'],
        ['/api/v1/purposes/{key}/notices/{version}', 'get'],
        ['/api/v1/customers/{id}/consents', 'get'],
        ['/api/v1/customers/{id}/consents', 'post'],
        ['/api/v1/customers/{id}/consents/{purpose}/withdraw', 'post'],
        ['/api/v1/consent/stats', 'get'],
        ['/api/v1/staff', 'post'],
        ['/api/v1/staff', 'get'],
        ['/api/v1/staff/{id}', 'patch'],
        ['/api/v1/auth/invitations/accept', 'post'],
        ['/api/v1/auth/login', 'post'],
        ['/api/v1/auth/mfa/enroll', 'post'],
        ['/api/v1/auth/mfa/verify', 'post'],
        ['/api/v1/auth/session', 'get'],
        ['/api/v1/auth/logout', 'post'],
        ['/api/v1/auth/password', 'post'],
        ['/api/v1/tasks', 'post'],
        ['/api/v1/tasks', 'get'],
        ['/api/v1/tasks/{id}', 'patch'],
        ['/api/v1/tasks/{id}/close', 'post'],
        ['/api/v1/break-glass', 'post'],
        ['/api/v1/break-glass', 'get'],
        ['/api/v1/break-glass/{id}/review', 'post'],
        ['/api/v1/customers', 'post'],
        ['/api/v1/customers', 'get'],
        ['/api/v1/customers/{id}', 'get'],
        ['/api/v1/customers/{id}', 'patch'],
        ['/api/v1/customers/{id}', 'delete'],
        ['/api/v1/customers/search', 'post'],
        ['/api/v1/tokens', 'post'],
        ['/api/v1/tokens', 'get'],
        ['/api/v1/tokens/{id}', 'delete'],
        ['/api/v1/audit', 'get'],
        ['/api/v1/audit/verify', 'get'],
        ['/api/v1/subject-requests', 'post'],
        ['/api/v1/subject-requests', 'get'],
        ['/api/v1/subject-requests/{id}', 'get'],
        ['/api/v1/subject-requests/{id}/extend', 'post'],
        ['/api/v1/subject-requests/{id}/close', 'post'],
        ['/api/v1/portal/login', 'post'],
        ['/api/v1/portal/login/verify', 'post'],
        ['/api/v1/portal/keys', 'get'],
        ['/api/v1/portal/logout', 'post'],
        ['/api/v1/portal/reverify', 'post'],
        ['/api/v1/portal/reverify/verify', 'post'],
        ['/api/v1/portal/me', 'get'],
        ['/api/v1/portal/me', 'patch'],
        ['/api/v1/portal/me/export', 'get'],
        ['/api/v1/portal/me/contact', 'post'],
        ['/api/v1/portal/me/contact/verify', 'post'],
        ['/api/v1/portal/me/change-requests', 'post'],
        ['/api/v1/portal/me/change-requests', 'get'],
        ['/api/v1/portal/consents', 'get'],
        ['/api/v1/portal/consents/{purpose}', 'post'],
        ['/api/v1/portal/consents/{purpose}/withdraw', 'post'],
        ['/api/v1/portal/access-log', 'get'],
        ['/api/v1/portal/withdraw', 'post'],
        ['/api/v1/change-requests', 'get'],
        ['/api/v1/change-requests/{id}/decide', 'post'],
      ] as const;
      for (const [p, m] of expected) {
        const op = doc.paths[p]?.[m];
        expect(op, `${m} ${p}`).toBeDefined();
        expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(['429', '500']));
        const isPublic =
          p === '/api/v1/health' ||
          p.endsWith('/login') ||
          p.endsWith('/accept') ||
          p === '/api/v1/portal/login/verify' ||
          p === '/api/v1/portal/keys';
        if (!isPublic) {
          expect(op!.security).toEqual([{ bearerAuth: [] }]);
          expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(['401', '403']));
        }
      }
      const ops = Object.values(doc.paths).flatMap((methods) => Object.keys(methods));
      expect(ops).toHaveLength(expected.length);
      const ui = await rt.app.inject({ url: '/docs' });
      expect([200, 302]).toContain(ui.statusCode);
    });

    it('publishes the schema of the portal export and of the customer view in the OpenAPI document', async () => {
      const doc = (await rt.app.inject({ url: '/docs/json' })).json<{
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      }>();
      const schemaText = (p: string) => JSON.stringify(doc.paths[p]?.['get']?.responses['200']);
      const exported = schemaText('/api/v1/portal/me/export');
      for (const property of [
        'custodia.portal-export',
        'exportedAt',
        'changeRequests',
        'contactPoints',
        'verifiedAt',
        'lawfulBasis',
        'retentionDays',
        'sources',
        'recipients',
        'givenName',
        'postalAddress',
      ]) {
        expect(exported, property).toContain(`"${property}"`);
      }
      const me = schemaText('/api/v1/portal/me');
      expect(me).toContain('"contactPoints"');
      expect(me).not.toContain('custodia.portal-export');
    });

    it('answers health without a token and sends security headers', async () => {
      const res = await rt.app.inject({ url: '/api/v1/health' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok', dialect });
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['strict-transport-security']).toBeDefined();
      expect(res.headers['x-frame-options']).toBeDefined();
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('rejects unknown keys, wrong content types, oversized and malformed bodies with stable codes', async () => {
      const unknown = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: { consents, identity: { givenName: 'A' }, secretCanary: 'zz-canary-1' },
      });
      expect(unknown.statusCode).toBe(400);
      const body = unknown.json<ErrorBody>();
      expect(body.error.code).toBe('invalid_input');
      expect(body.error.fields).toEqual(['body.secretCanary']);
      expect(unknown.body).not.toContain('zz-canary-1');
      expect(body.error.requestId).toBe(unknown.headers['x-request-id']);

      const text = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: { ...authHeader(agent), 'content-type': 'text/plain' },
        payload: 'name=zz-canary-2',
      });
      expect(text.statusCode).toBe(415);
      expect(text.json<ErrorBody>().error.code).toBe('unsupported_media_type');

      const form = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: { ...authHeader(agent), 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'name=zz-canary-2',
      });
      expect(form.statusCode).toBe(415);

      const big = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: { ...authHeader(agent), 'content-type': 'application/json' },
        payload: JSON.stringify({
          consents,
          identity: { givenName: 'x'.repeat(rt.config.bodyLimitBytes) },
        }),
      });
      expect(big.statusCode).toBe(413);
      expect(big.json<ErrorBody>().error.code).toBe('payload_too_large');

      const malformed = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: { ...authHeader(agent), 'content-type': 'application/json' },
        payload: '{"consents": [zz-canary-3',
      });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json<ErrorBody>().error.code).toBe('invalid_input');
      expect(malformed.body).not.toContain('zz-canary-3');

      const badId = await rt.app.inject({
        url: '/api/v1/customers/zz-canary-4?purpose=loyalty_program',
        headers: authHeader(agent),
      });
      expect(badId.statusCode).toBe(400);
      expect(badId.body).not.toContain('zz-canary-4');

      const nowhere = await rt.app.inject({ url: '/api/v1/nowhere' });
      expect(nowhere.statusCode).toBe(404);
      expect(nowhere.json<ErrorBody>().error.code).toBe('not_found');
      for (const res of [unknown, text, form, big, malformed, badId, nowhere]) {
        expect(res.body).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
        expect(Object.keys(res.json<ErrorBody>().error).sort()).toEqual(
          expect.arrayContaining(['code', 'message', 'requestId']),
        );
      }
    });

    it('authenticates before it validates: no token and a bad body is a 401, a refused role a 403 that is audited', async () => {
      const anonymous = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        payload: { nonsense: 'zz-canary-5' },
      });
      expect(anonymous.statusCode).toBe(401);
      const marketer = await rt.token('marketer');
      const refused = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(marketer),
        payload: { nonsense: 'zz-canary-6' },
      });
      expect(refused.statusCode).toBe(403);
      const denied = await rt.inspect.data
        .selectFrom('audit_entry')
        .selectAll()
        .where('action', '=', 'access.denied')
        .where('reason', '=', 'permission:customers:create')
        .where('actor_role', '=', 'marketer')
        .execute();
      expect(denied).toHaveLength(1);
    });

    it('manages API tokens: shown once, listed without secrets, revoked tokens stop working', async () => {
      // An admin reads no personal data, so it cannot hand out a role that does.
      for (const role of ['agent', 'privacy_officer', 'marketer', 'auditor']) {
        const refused = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/tokens',
          headers: authHeader(admin),
          payload: { role, label: 'escalation' },
        });
        expect(refused.statusCode, role).toBe(403);
      }
      const created = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: authHeader(admin),
        payload: { role: 'admin', label: 'front desk' },
      });
      expect(created.statusCode).toBe(201);
      expect(created.headers['cache-control']).toBe('no-store');
      const { id, token } = created.json<{ id: string; token: string }>();
      expect(token).toMatch(/^cust_[A-Za-z0-9_-]{43}$/);
      const works = await rt.app.inject({ url: '/api/v1/purposes', headers: authHeader(token) });
      expect(works.statusCode).toBe(200);
      const list = await rt.app.inject({ url: '/api/v1/tokens', headers: authHeader(admin) });
      expect(list.statusCode).toBe(200);
      expect(list.body).not.toContain(token);
      expect(list.body).not.toMatch(/hash/i);
      expect(list.json<{ items: { id: string }[] }>().items.map((t) => t.id)).toContain(id);
      const stored = await rt.inspect.data
        .selectFrom('api_token')
        .select('token_hash')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      expect(stored.token_hash).not.toContain(token);
      expect(stored.token_hash).toMatch(/^[0-9a-f]{64}$/);
      const agentTry = await rt.app.inject({ url: '/api/v1/tokens', headers: authHeader(agent) });
      expect(agentTry.statusCode).toBe(403);
      const revoked = await rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/tokens/${id}`,
        headers: authHeader(admin),
      });
      expect(revoked.statusCode).toBe(204);
      const after = await rt.app.inject({ url: '/api/v1/purposes', headers: authHeader(token) });
      expect(after.statusCode).toBe(401);
      const again = await rt.app.inject({
        method: 'DELETE',
        url: `/api/v1/tokens/${id}`,
        headers: authHeader(admin),
      });
      expect(again.statusCode).toBe(404);
    });

    it('lists the seeded purposes with their categories', async () => {
      const res = await rt.app.inject({ url: '/api/v1/purposes', headers: authHeader(agent) });
      const items = res.json<{
        items: { key: string; categories: string[]; noticeVersion: string }[];
      }>().items;
      expect(items.map((p) => [p.key, p.categories, p.noticeVersion])).toEqual(
        expect.arrayContaining([
          ['loyalty_program', ['identity', 'contact', 'commercial'], '1'],
          ['personalized_offers', ['contact', 'preferences', 'commercial'], '1'],
          ['customer_support', ['identity', 'contact', 'interactions'], '1'],
        ]),
      );
    });
  });

  describe(`rate limits on ${dialect}`, () => {
    let rt: TestRuntime;
    beforeAll(async () => {
      rt = await startRuntime(dialect, { config: { rateLimitPerMinute: '5' } });
    });
    afterAll(async () => {
      await rt.close();
    });

    it('answers 429 with the error format once a client exceeds the limit', async () => {
      const responses = [];
      for (let i = 0; i < 7; i += 1) responses.push(await rt.app.inject({ url: '/api/v1/health' }));
      const statuses = responses.map((r) => r.statusCode);
      const last = responses[6]!;
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(statuses.slice(5)).toEqual([429, 429]);
      expect(last.json<ErrorBody>().error.code).toBe('rate_limited');
      expect(last.headers['retry-after']).toBeDefined();
    });
  });
});
