import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/platform/context.js';
import { healthRoutes } from '../src/platform/http/health.js';
import type { RouteDefinition } from '../src/platform/http/route.js';
import { agreementRoutes } from '../src/modules/agreements/index.js';
import { auditRoutes } from '../src/modules/audit/index.js';
import { subjectRequestRoutes } from '../src/modules/requests/index.js';
import { customerRoutes } from '../src/modules/customers/index.js';
import { changeRequestRoutes, portalRoutes } from '../src/modules/portal/index.js';
import { erasureRoutes, shreddedKeyIds } from '../src/modules/erasure/index.js';
import { purposeRoutes, seedDefaultPurposes } from '../src/modules/purposes/index.js';
import {
  createApiToken,
  roles,
  staffAccountRoutes,
  staffRoutes,
  type Role,
} from '../src/modules/staff/index.js';
import {
  grantableRoles,
  roleAllows,
  rolePermissions,
} from '../src/modules/staff/staff.permissions.js';
import {
  customersWithOpenTasks,
  hasBreakGlassGrant,
  hasTaskGrant,
  taskRoutes,
} from '../src/modules/tasks/index.js';
import { ensureWorkspace } from '../src/modules/workspaces/index.js';
import {
  authHeader,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../src/testing/harness.js';
import { newStaffMember, type StaffSession } from '../src/testing/staff.js';

/**
 * Every route × every role (and no credential at all) × own or foreign workspace, generated
 * from the routes the app registers and from `rolePermissions`; nothing is listed by hand
 * except request bodies.
 */

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
type Caller = Role | 'none';
type Side = 'own' | 'foreign';

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

interface Member {
  readonly id: string;
  readonly session: StaffSession;
}

/** The ids a request can name, in one workspace. */
interface World {
  readonly workspaceId: string;
  readonly workspace: string;
  readonly adminToken: string;
  readonly agentToken: string;
  readonly customerId: string;
  readonly taskId: string;
  readonly staffId: string;
  readonly tokenId: string;
  readonly breakGlassId: string;
  readonly subjectRequestId: string;
  readonly purposeKey: string;
  readonly member: Member;
  readonly otherMember: Member;
  readonly canaries: readonly string[];
}

const callers: readonly Caller[] = [...roles, 'none'];
const DAY = 24 * 60 * 60_000;

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Date.now().toString(36)}`;
}

/** Canary values: unique strings that must only ever come back from a permitted read. */
function canariesFor(tag: string) {
  return {
    givenName: `Canarygiven${tag}`,
    email: `canary.${tag.toLowerCase()}@example.org`,
    interest: `canaryinterest${tag}`,
  };
}

/** Fastify's `:param` as OpenAPI's `{param}`. */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z]+)/g, '{$1}');
}

function routeKey(method: string, url: string): string {
  return `${method.toUpperCase()} ${url}`;
}

const grants = { hasTaskGrant, hasBreakGlassGrant, customersWithOpenTasks };

const noSender = {
  send: () => Promise.resolve(),
  forget: () => Promise.resolve(0),
  purgeBefore: () => Promise.resolve(0),
};

/** The routes the app is composed of, built by the same factories as `createServer`. */
function allRoutes(rt: TestRuntime): RouteDefinition[] {
  const ctx = rt.ctx;
  const portalDeps = {
    // The route list only: these senders never run.
    mailer: { ...noSender, close: () => Promise.resolve() },
    texts: noSender,
    guard: { settle: () => Promise.resolve(), destroyedKeyIds: shreddedKeyIds },
  };
  return [
    ...healthRoutes(ctx),
    ...purposeRoutes(ctx, { afterRetire: () => Promise.resolve(0) }),
    ...customerRoutes(
      ctx,
      { settle: () => Promise.resolve(), destroyedKeyIds: shreddedKeyIds },
      grants,
    ),
    ...taskRoutes(ctx),
    ...agreementRoutes(ctx),
    ...erasureRoutes(ctx),
    ...staffRoutes(ctx),
    ...staffAccountRoutes(ctx),
    ...auditRoutes(ctx),
    ...subjectRequestRoutes(ctx),
    ...portalRoutes(ctx, portalDeps),
    ...changeRequestRoutes(ctx, portalDeps, grants),
  ];
}

function hasAny(body: string, needles: readonly string[]): string[] {
  return needles.filter((n) => body.includes(n));
}

forEachDialect((dialect) => {
  describe(`authorization matrix on ${dialect}`, () => {
    const clock = new TestClock();
    let rt: TestRuntime;
    let routes: RouteDefinition[];
    let own: World;
    let foreign: World;
    const tokens = new Map<Role, string>();

    function send(
      method: Method,
      url: string,
      auth: { token?: string; session?: StaffSession },
      payload?: object,
      remoteAddress = '127.0.0.1',
    ) {
      const headers: Record<string, string> = {};
      if (auth.token !== undefined) Object.assign(headers, authHeader(auth.token));
      if (auth.session !== undefined) {
        headers['cookie'] = auth.session.cookie;
        if (method !== 'GET') headers['x-csrf-token'] = auth.session.csrf;
      }
      return rt.app.inject({
        method,
        url,
        headers,
        remoteAddress,
        ...(payload === undefined ? {} : { payload }),
      });
    }

    async function expectStatus(
      res: Promise<LightMyRequestResponse>,
      status: number,
    ): Promise<LightMyRequestResponse> {
      const done = await res;
      expect(done.statusCode, done.body).toBe(status);
      return done;
    }

    async function newCustomer(world: { agentToken: string }, tag: string) {
      const c = canariesFor(tag);
      const res = await expectStatus(
        send(
          'POST',
          '/api/v1/customers',
          { token: world.agentToken },
          {
            consents: [
              { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
              { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' },
            ],
            identity: { givenName: c.givenName },
            contact: { email: c.email },
            preferences: { interests: [c.interest] },
          },
        ),
        201,
      );
      return { id: res.json<{ id: string }>().id, canaries: [c.givenName, c.email, c.interest] };
    }

    /** Invites, accepts, signs in and passes the second factor: a member with a full session. */
    function newMember(granterToken: string, workspace: string, role: Role): Promise<Member> {
      return newStaffMember(rt, {
        role,
        granterToken,
        clock,
        workspace,
        displayName: 'Matrix Member',
        stepBeforeLogin: true,
      });
    }

    function taskBody(customerId: string, assigneeId: string) {
      return {
        customerId,
        purpose: 'loyalty_program',
        title: 'Call back about the loyalty card',
        assigneeId,
        dueAt: new Date(clock.now().getTime() + DAY).toISOString(),
      };
    }

    async function newTask(token: string, customerId: string, assigneeId: string) {
      const res = await expectStatus(
        send('POST', '/api/v1/tasks', { token }, taskBody(customerId, assigneeId)),
        201,
      );
      return res.json<{ id: string }>().id;
    }

    /** An open data-subject request, made fresh for each cell that may extend or close it. */
    async function newSubjectRequest(world: { agentToken: string; customerId: string }) {
      const res = await expectStatus(
        send(
          'POST',
          '/api/v1/subject-requests',
          { token: world.agentToken },
          {
            kind: 'access',
            channel: 'letter',
            receivedOn: clock.now().toISOString().slice(0, 10),
            customerId: world.customerId,
          },
        ),
        201,
      );
      return res.json<{ id: string }>().id;
    }

    function purposeBody(key: string) {
      return {
        key,
        lawfulBasis: 'consent',
        categories: ['contact'],
        retentionDays: 365,
        name: { en: 'Matrix purpose', es: 'Propósito' },
        description: { en: 'A purpose for the matrix.', es: 'Un propósito.' },
      };
    }

    async function newPurpose(adminToken: string): Promise<string> {
      const key = unique('matrix_').toLowerCase();
      await expectStatus(
        send('POST', '/api/v1/purposes', { token: adminToken }, purposeBody(key)),
        201,
      );
      return key;
    }

    /** A workspace with one object of every kind a route can name. */
    async function buildWorld(
      workspace: string,
      workspaceId: string,
      tokenOf: (role: Role) => Promise<{ id: string; token: string }>,
    ): Promise<World> {
      const adminToken = (await tokenOf('admin')).token;
      const agentToken = (await tokenOf('agent')).token;
      const spare = await tokenOf('auditor');
      // Roles that read personal data are granted by a privacy officer, never by an admin.
      const officerToken = (await tokenOf('privacy_officer')).token;
      const member = await newMember(officerToken, workspace, 'agent');
      const otherMember = await newMember(officerToken, workspace, 'agent');
      const customer = await newCustomer({ agentToken }, unique(workspace.slice(0, 3)));
      const second = await newCustomer({ agentToken }, unique(workspace.slice(0, 3)));
      const taskId = await newTask(agentToken, customer.id, member.id);
      const glass = await expectStatus(
        send(
          'POST',
          '/api/v1/break-glass',
          { session: member.session },
          {
            customerId: second.id,
            purpose: 'loyalty_program',
            justification: 'The customer is on the phone and cannot wait.',
          },
        ),
        201,
      );
      return {
        workspace,
        workspaceId,
        adminToken,
        agentToken,
        customerId: customer.id,
        taskId,
        staffId: otherMember.id,
        tokenId: spare.id,
        breakGlassId: glass.json<{ id: string }>().id,
        subjectRequestId: await newSubjectRequest({ agentToken, customerId: customer.id }),
        purposeKey: await newPurpose(adminToken),
        member,
        otherMember,
        canaries: [...customer.canaries, ...second.canaries],
      };
    }

    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      routes = allRoutes(rt);
      for (const role of roles) tokens.set(role, await rt.token(role));
      own = await buildWorld('default', rt.workspaceId, (role) =>
        createApiToken(rt.ctx, rt.systemActor(), { role, label: 'matrix' }),
      );
      const { id: foreignId } = await ensureWorkspace(rt.ctx, 'matrix-foreign');
      await seedDefaultPurposes(rt.ctx, foreignId);
      const foreignActor: Actor = {
        type: 'system',
        id: 'test',
        role: null,
        workspaceId: foreignId,
        requestId: null,
      };
      foreign = await buildWorld('matrix-foreign', foreignId, (role) =>
        createApiToken(rt.ctx, foreignActor, { role, label: 'matrix' }),
      );
    });
    afterAll(async () => {
      await rt.close();
    });

    it('builds the matrix from every route the OpenAPI document lists', async () => {
      const res = await expectStatus(rt.app.inject({ url: '/docs/json' }), 200);
      const doc = res.json<{ paths: Record<string, Record<string, unknown>> }>();
      const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => routeKey(m, path)),
      );
      const matrix = routes.map((r) => routeKey(r.method, openApiPath(r.url)));
      expect(new Set(matrix).size).toBe(matrix.length);
      expect([...matrix].sort()).toEqual([...documented].sort());
    });

    /** Objects a permitted own-workspace write may change or destroy: made fresh per cell. */
    async function ownIds(route: RouteDefinition, mutates: boolean) {
      if (!mutates) {
        return {
          customerId: own.customerId,
          taskId: own.taskId,
          purposeKey: own.purposeKey,
          tokenId: own.tokenId,
          staffId: own.staffId,
        };
      }
      const customerId = url(route).startsWith('/api/v1/customers/:id')
        ? (await newCustomer(own, unique('Fresh'))).id
        : own.customerId;
      return {
        customerId,
        taskId: url(route).startsWith('/api/v1/tasks/:id')
          ? await newTask(own.agentToken, customerId, own.member.id)
          : own.taskId,
        purposeKey: url(route).startsWith('/api/v1/purposes/:key')
          ? await newPurpose(own.adminToken)
          : own.purposeKey,
        tokenId: url(route).startsWith('/api/v1/tokens/:id')
          ? (await createApiToken(rt.ctx, rt.systemActor(), { role: 'auditor', label: 'spare' })).id
          : own.tokenId,
        // Changing a member ends their sessions: never the members the session tests use.
        staffId: url(route).startsWith('/api/v1/staff/:id')
          ? (
              await expectStatus(
                send(
                  'POST',
                  '/api/v1/staff',
                  { token: own.adminToken },
                  {
                    email: `${unique('spare')}@example.net`,
                    displayName: 'Spare',
                    role: 'marketer',
                  },
                ),
                201,
              )
            ).json<{ id: string }>().id
          : own.staffId,
      };
    }

    function url(route: RouteDefinition): string {
      return route.url;
    }

    /** The request of one cell: path params filled, and a minimal valid body where there is one. */
    async function request(route: RouteDefinition, side: Side, mutates: boolean, caller: Caller) {
      const world = side === 'own' ? own : foreign;
      const ids = side === 'own' ? await ownIds(route, mutates) : foreign;
      const idFor: Record<string, string> = {
        customers: ids.customerId,
        tasks: ids.taskId,
        staff: ids.staffId,
        tokens: ids.tokenId,
        'break-glass': world.breakGlassId,
        // No request of that id: a permitted caller is told it is not there (404).
        'change-requests': crypto.randomUUID(),
        'subject-requests':
          side === 'own' ? await newSubjectRequest(own) : foreign.subjectRequestId,
      };
      const resource = /^\/api\/v1\/([a-z-]+)/.exec(route.url)?.[1] ?? '';
      let path = route.url
        .replace(':id', idFor[resource] ?? '')
        .replace(':key', ids.purposeKey)
        .replace(':version', '1')
        .replace(':purpose', 'loyalty_program');
      // The customer read needs a purpose; the staff-only grant parameters are tested below.
      if (route.method === 'GET' && route.url === '/api/v1/customers/:id') {
        path += '?purpose=loyalty_program';
      }
      const bodies: Record<string, object | undefined> = {
        'POST /api/v1/purposes': purposeBody(unique('matrix_').toLowerCase()),
        'PATCH /api/v1/purposes/:key': { retentionDays: 400 },
        'POST /api/v1/customers': {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: canariesFor(unique('New')).givenName },
        },
        'POST /api/v1/customers/search': {
          email: world.canaries[1],
          purpose: 'loyalty_program',
        },
        'PATCH /api/v1/customers/:id': { identity: { familyName: 'Matrix' } },
        'POST /api/v1/customers/:id/consents': {
          consents: [{ purpose: 'customer_support', noticeVersion: '1', method: 'web_form' }],
        },
        'POST /api/v1/customers/:id/consents/:purpose/withdraw': { method: 'web_form' },
        'POST /api/v1/tasks': taskBody(ids.customerId, own.member.id),
        'PATCH /api/v1/tasks/:id': { assigneeId: own.otherMember.id },
        'POST /api/v1/break-glass': {
          customerId: ids.customerId,
          purpose: 'loyalty_program',
          justification: 'The customer is on the phone and cannot wait.',
        },
        'POST /api/v1/break-glass/:id/review': { decision: 'approve' },
        'POST /api/v1/tokens': { role: 'admin', label: 'matrix' },
        // Each manager grants a role it may grant: agents come from a privacy officer, the
        // roles that read no personal data from an admin (the staff tests cover the refusals).
        'POST /api/v1/staff': {
          email: `${unique('invite')}@example.net`,
          displayName: 'Invited',
          role: caller === 'privacy_officer' ? 'agent' : 'marketer',
        },
        'PATCH /api/v1/staff/:id': { role: caller === 'privacy_officer' ? 'agent' : 'auditor' },
        'POST /api/v1/auth/invitations/accept': {
          token: 'inv_not_a_real_invitation',
          password: 'correct horse battery staple',
        },
        'POST /api/v1/auth/login': {
          email: `${unique('nobody')}@example.net`,
          password: 'correct horse battery staple',
        },
        'POST /api/v1/auth/mfa/verify': { code: '000000' },
        'POST /api/v1/portal/login': { email: `${unique('nobody')}@example.net` },
        'POST /api/v1/portal/login/verify': {
          email: `${unique('nobody')}@example.net`,
          code: '000000',
        },
        'POST /api/v1/change-requests/:id/decide': { decision: 'reject', reason: 'Not proven' },
        'POST /api/v1/subject-requests': {
          kind: 'access',
          channel: 'letter',
          receivedOn: clock.now().toISOString().slice(0, 10),
          customerId: ids.customerId,
        },
        'POST /api/v1/subject-requests/:id/extend': {
          months: 1,
          reason: 'Several archives must be searched.',
        },
        'POST /api/v1/subject-requests/:id/close': { outcome: 'completed' },
        'POST /api/v1/auth/password': {
          currentPassword: 'correct horse battery staple',
          newPassword: 'correct horse battery stapler',
        },
      };
      return { path, body: bodies[routeKey(route.method, route.url)] };
    }

    /** Whether the foreign cell names a foreign object (else it is the own cell again). */
    function namesForeignObject(route: RouteDefinition): boolean {
      return (
        route.url.includes(':') ||
        [
          'POST /api/v1/customers/search',
          'POST /api/v1/tasks',
          'POST /api/v1/break-glass',
          'POST /api/v1/subject-requests',
        ].includes(routeKey(route.method, route.url))
      );
    }

    it('answers every route × role × workspace as the permission table says', async () => {
      const failures: string[] = [];
      const publicStatus = new Map<string, number>();
      const counts = { cells: 0, refused: 0, permitted: 0, foreign: 0 };
      let address = 0;
      const allCanaries = [...own.canaries, ...foreign.canaries];
      const foreignSecrets = [
        ...foreign.canaries,
        foreign.customerId,
        foreign.taskId,
        foreign.staffId,
        foreign.tokenId,
        foreign.breakGlassId,
        foreign.subjectRequestId,
        foreign.purposeKey,
      ];
      for (const route of routes) {
        const key = routeKey(route.method, route.url);
        for (const side of ['own', 'foreign'] as const) {
          if (side === 'foreign' && !namesForeignObject(route)) continue;
          for (const caller of callers) {
            const allowed =
              route.permission === 'public' ||
              (caller !== 'none' && rolePermissions[caller].includes(route.permission));
            const mutates = allowed && route.method !== 'GET';
            const { path, body } = await request(route, side, mutates, caller);
            address += 1;
            const res = await send(
              route.method as Method,
              path,
              caller === 'none' ? {} : { token: tokens.get(caller) ?? '' },
              body,
              // Public sign-in failures are throttled per source: each cell is its own source.
              `10.9.${Math.floor(address / 250)}.${address % 250}`,
            );
            counts.cells += 1;
            const cell = `${key} as ${caller} (${side}) -> ${res.statusCode} ${res.body.slice(0, 160)}`;
            const fail = (why: string) => failures.push(`${why}: ${cell}`);
            const code = res.statusCode >= 400 ? res.json<ErrorBody>().error.code : undefined;

            if (res.statusCode >= 500) fail('server error');
            // Any refusal or failure, whatever its status, carries no personal value.
            if (res.statusCode >= 400) {
              counts.refused += 1;
              const leaked = hasAny(res.body, allCanaries);
              if (leaked.length > 0) fail(`refusal carries personal values ${leaked.join(',')}`);
            }
            // An own-workspace credential never sees anything of the other workspace. The own
            // audit chain is the exception: it records the foreign ids that own callers named in
            // the refused cells above, which tells them nothing they did not send.
            const seen = hasAny(res.body, foreignSecrets);
            if (seen.length > 0 && !route.url.startsWith('/api/v1/audit')) {
              fail(`foreign values in the response ${seen.join(',')}`);
            }

            if (route.permission === 'public') {
              // Public routes answer the same whoever calls.
              const first = publicStatus.get(`${key} ${side}`);
              if (first === undefined) publicStatus.set(`${key} ${side}`, res.statusCode);
              else if (first !== res.statusCode) fail(`public route answers by role (${first})`);
              if (res.statusCode === 403) fail('public route refused');
              continue;
            }
            if (caller === 'none') {
              if (res.statusCode !== 401 || code !== 'unauthenticated') fail('expected 401');
              continue;
            }
            if (!allowed && route.permission === 'portal:self') {
              // Portal routes serve a customer's portal session only, never a staff credential.
              if (res.statusCode !== 401) fail('expected 401 for a token on a portal route');
              continue;
            }
            if (!allowed) {
              if (res.statusCode !== 403 || code !== 'forbidden') fail('expected 403 forbidden');
              continue;
            }
            counts.permitted += 1;
            if (route.permission === 'session:self') {
              // Session routes serve a staff session, never an API token.
              if (res.statusCode !== 401) fail('expected 401 for a token on a session route');
              continue;
            }
            // Breaking the glass is for a signed-in member only: a token is refused by design.
            const staffOnly = key === 'POST /api/v1/break-glass';
            // Only a task's assignee, its creator or a privacy officer changes it: another
            // agent's token is answered as for a task that is not there.
            const notOwnersTask = [
              ...(caller === 'agent'
                ? ['PATCH /api/v1/tasks/:id', 'POST /api/v1/tasks/:id/close']
                : []),
              'POST /api/v1/change-requests/:id/decide',
            ];
            if (side === 'own') {
              if (staffOnly) {
                if (res.statusCode !== 403) fail('expected 403 for a token breaking the glass');
              } else if (res.statusCode === 401 || res.statusCode === 403) {
                fail('permitted role refused');
              } else if (res.statusCode >= 300 && !notOwnersTask.includes(key)) {
                // The bodies are valid, so a permitted own-workspace call succeeds.
                fail('permitted call did not succeed');
              }
              continue;
            }
            counts.foreign += 1;
            if (res.statusCode < 300) {
              // A search of the other workspace's value may answer, with nothing found.
              const items = res.json<{ items?: unknown[] }>().items;
              if (items === undefined || items.length > 0) fail('foreign object served');
            } else if (!staffOnly && ![400, 404].includes(res.statusCode)) {
              fail('expected 400 or 404 for a foreign object');
            }
          }
        }
      }
      expect(failures).toEqual([]);
      // Every route × every caller on the own side, plus the routes naming an object, foreign.
      expect(counts.cells).toBeGreaterThanOrEqual(routes.length * callers.length);
      expect(counts.refused).toBeGreaterThan(0);
      expect(counts.foreign).toBeGreaterThan(0);
      console.info(`authorization matrix on ${dialect}: ${JSON.stringify(counts)}`);
    });

    describe('customer reads by a staff session need the reader’s own open task', () => {
      const read = (session: StaffSession, customerId: string, taskId: string) =>
        send('GET', `/api/v1/customers/${customerId}?purpose=loyalty_program&taskId=${taskId}`, {
          session,
        });

      /** Without a grant a staff reader sees the masked values a list shows, nothing more. */
      function expectMasked(res: LightMyRequestResponse, customerId: string) {
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json<{
          id: string;
          access?: string;
          identity?: object;
          contact?: object;
        }>();
        expect(body).toMatchObject({ id: customerId, access: 'masked' });
        expect(body.identity).toBeUndefined();
        expect(body.contact).toBeUndefined();
      }

      it('reads a customer under an open task assigned to the reader', async () => {
        const res = await read(own.member.session, own.customerId, own.taskId);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.body).toContain(own.canaries[0]);
      });

      it('should not read a customer under a task assigned to another agent', async () => {
        const res = await read(own.otherMember.session, own.customerId, own.taskId);
        expectMasked(res, own.customerId);
        expect(hasAny(res.body, own.canaries)).toEqual([]);
      });

      it('should not read another customer with one’s own task', async () => {
        const second = await newCustomer(own, unique('Other'));
        const res = await read(own.member.session, second.id, own.taskId);
        expectMasked(res, second.id);
        expect(hasAny(res.body, [...own.canaries, ...second.canaries])).toEqual([]);
      });

      it('should not read without a task', async () => {
        const res = await send(
          'GET',
          `/api/v1/customers/${own.customerId}?purpose=loyalty_program`,
          { session: own.member.session },
        );
        expectMasked(res, own.customerId);
        expect(hasAny(res.body, own.canaries)).toEqual([]);
      });

      it('should not read a customer of another workspace, with either workspace’s task', async () => {
        for (const taskId of [own.taskId, foreign.taskId]) {
          const res = await read(own.member.session, foreign.customerId, taskId);
          expect(res.statusCode).toBe(404);
          expect(hasAny(res.body, foreign.canaries)).toEqual([]);
        }
        // And the foreign assignee, signed in to their own workspace, cannot reach ours.
        const res = await read(foreign.member.session, own.customerId, foreign.taskId);
        expect(res.statusCode).toBe(404);
        expect(hasAny(res.body, own.canaries)).toEqual([]);
      });

      it('should not close or reassign another agent’s task', async () => {
        const close = await send('POST', `/api/v1/tasks/${own.taskId}/close`, {
          session: own.otherMember.session,
        });
        expect(close.statusCode).toBe(404);
        const foreignClose = await send('POST', `/api/v1/tasks/${foreign.taskId}/close`, {
          session: own.member.session,
        });
        expect(foreignClose.statusCode).toBe(404);
      });
    });

    /**
     * Every route of `customers:read` × every role, as a staff session (cookie, CSRF, after the
     * second factor) × which task the read names × whose workspace the customer is in.
     */
    describe('customer reads by staff session × task × workspace, generated', () => {
      type TaskSide = 'own' | 'colleague' | 'foreign' | 'none';
      const taskSides: readonly TaskSide[] = ['own', 'colleague', 'foreign', 'none'];

      interface Target {
        readonly id: string;
        readonly email: string;
        /** givenName, email, interest: the first two are what `loyalty_program` reads. */
        readonly canaries: readonly string[];
      }

      interface ReadBody {
        id: string;
        access?: string;
        identity?: object;
        contact?: object;
        preferences?: object;
        masked?: object;
      }

      /**
       * Whether a member of the role can hold a task. `checkAssignee` in
       * src/modules/tasks/tasks.service.ts accepts as assignee only an active member whose role
       * has `customers:read`: for the other roles (admin, marketer, auditor) an "own task" cannot
       * exist (opening one is refused with 400, asserted below), so that cell is skipped. Their
       * other cells are refused with 403 by the route's permission before any task is looked at.
       */
      const holdsTasks = (role: Role) => rolePermissions[role].includes('customers:read');

      let readRoutes: RouteDefinition[];
      const members = new Map<Role, Member>();
      /** Each task-holding member's own open task, for `ownCustomer` and `loyalty_program`. */
      const ownTasks = new Map<Role, string>();
      let ownCustomer: Target;
      let foreignCustomer: Target;
      /** An open task for `ownCustomer`, assigned to another member of the own workspace. */
      let colleagueTask: string;
      /** An open task of the other workspace, for `foreignCustomer`, assigned to its member. */
      let foreignTask: string;

      async function target(world: { agentToken: string }, tag: string): Promise<Target> {
        const c = await newCustomer(world, unique(tag));
        return { id: c.id, email: c.canaries[1] ?? '', canaries: c.canaries };
      }

      beforeAll(async () => {
        readRoutes = routes.filter((r) => r.permission === 'customers:read');
        ownCustomer = await target(own, 'Sess');
        foreignCustomer = await target(foreign, 'Fsess');
        // Each member is invited by a role that may grant theirs (`grantableRoles`).
        for (const role of roles) {
          const granter = roles.find((g) => grantableRoles[g].includes(role));
          if (granter === undefined) throw new Error(`no role grants ${role}`);
          members.set(role, await newMember(tokens.get(granter) ?? '', 'default', role));
        }
        const colleague = await newMember(tokens.get('privacy_officer') ?? '', 'default', 'agent');
        colleagueTask = await newTask(own.agentToken, ownCustomer.id, colleague.id);
        foreignTask = await newTask(foreign.agentToken, foreignCustomer.id, foreign.member.id);
        for (const [role, member] of members) {
          if (holdsTasks(role)) {
            ownTasks.set(role, await newTask(own.agentToken, ownCustomer.id, member.id));
          } else {
            const res = await expectStatus(
              send(
                'POST',
                '/api/v1/tasks',
                { token: own.agentToken },
                taskBody(ownCustomer.id, member.id),
              ),
              400,
            );
            expect(res.json<ErrorBody>().error).toMatchObject({
              code: 'invalid_input',
              fields: ['body.assigneeId'],
            });
          }
        }
      });

      /** The request of one cell; a new `customers:read` route needs its request added here. */
      function readRequest(route: RouteDefinition, customer: Target, taskId: string | undefined) {
        const key = routeKey(route.method, route.url);
        if (key === 'GET /api/v1/customers/:id') {
          const task = taskId === undefined ? '' : `&taskId=${taskId}`;
          return {
            method: 'GET' as const,
            path: `/api/v1/customers/${customer.id}?purpose=loyalty_program${task}`,
            body: undefined,
          };
        }
        if (key === 'POST /api/v1/customers/search') {
          return {
            method: 'POST' as const,
            path: route.url,
            body: {
              email: customer.email,
              purpose: 'loyalty_program',
              ...(taskId === undefined ? {} : { taskId }),
            },
          };
        }
        throw new Error(`no request for ${key}`);
      }

      function taskFor(role: Role, side: TaskSide): string | undefined {
        switch (side) {
          case 'own':
            return ownTasks.get(role);
          case 'colleague':
            return colleagueTask;
          case 'foreign':
            return foreignTask;
          case 'none':
            return undefined;
        }
      }

      /** The customers a response names: the one read, or the search's items. */
      function customersOf(res: LightMyRequestResponse): ReadBody[] | undefined {
        if (res.statusCode !== 200) return undefined;
        const body = res.json<ReadBody | { items: ReadBody[] }>();
        return 'items' in body ? body.items : [body];
      }

      it('answers every customers:read route × role × task × workspace as the rules say', async () => {
        const failures: string[] = [];
        const counts = { cells: 0, forbidden: 0, granted: 0, masked: 0, foreign: 0 };
        const allCanaries = [...ownCustomer.canaries, ...foreignCustomer.canaries];
        const foreignSecrets = [...foreignCustomer.canaries, foreignCustomer.id, foreignTask];
        expect(readRoutes.length).toBeGreaterThan(0);
        for (const route of readRoutes) {
          const key = routeKey(route.method, route.url);
          for (const role of roles) {
            const member = members.get(role);
            if (member === undefined) throw new Error(`no member of ${role}`);
            const allowed = route.permission !== 'public' && roleAllows(role, route.permission);
            for (const taskSide of taskSides) {
              // See `holdsTasks`: no task can be assigned to this role.
              if (taskSide === 'own' && !holdsTasks(role)) continue;
              for (const side of ['own', 'foreign'] as const) {
                const customer = side === 'own' ? ownCustomer : foreignCustomer;
                const req = readRequest(route, customer, taskFor(role, taskSide));
                const res = await send(req.method, req.path, { session: member.session }, req.body);
                counts.cells += 1;
                const cell = `${key} as ${role} session, ${taskSide} task, ${side} customer -> ${res.statusCode} ${res.body.slice(0, 200)}`;
                const fail = (why: string) => failures.push(`${why}: ${cell}`);
                const granted = allowed && side === 'own' && taskSide === 'own';
                // Personal values come back in the granted cell only, and only the own ones.
                const leaked = hasAny(res.body, granted ? foreignCustomer.canaries : allCanaries);
                if (leaked.length > 0) fail(`personal values in the response ${leaked.join(',')}`);
                const seen = hasAny(res.body, foreignSecrets);
                if (seen.length > 0) fail(`foreign values in the response ${seen.join(',')}`);
                const found = customersOf(res);

                if (!allowed) {
                  counts.forbidden += 1;
                  const code = res.statusCode >= 400 ? res.json<ErrorBody>().error.code : '';
                  if (res.statusCode !== 403 || code !== 'forbidden')
                    fail('expected 403 forbidden');
                  continue;
                }
                if (side === 'foreign') {
                  counts.foreign += 1;
                  // A read of another workspace's customer is not found; a search finds nothing.
                  if (found === undefined) {
                    if (res.statusCode !== 404) fail('expected 404 for a foreign customer');
                  } else if (!('items' in res.json<object>()) || found.length > 0) {
                    fail('foreign customer served');
                  }
                  continue;
                }
                const item = found?.[0];
                if (found?.length !== 1 || item?.id !== ownCustomer.id) {
                  fail('expected 200 with the own customer');
                  continue;
                }
                if (granted) {
                  counts.granted += 1;
                  if (item.access !== 'granted') fail('expected access granted');
                  const plain = ownCustomer.canaries.slice(0, 2);
                  const shown = hasAny(res.body, plain);
                  if (shown.length !== plain.length) fail('expected the plain values');
                  // The interest is a preference, which `loyalty_program` does not read.
                  if (hasAny(res.body, ownCustomer.canaries.slice(2)).length > 0) {
                    fail('values outside the purpose');
                  }
                } else {
                  counts.masked += 1;
                  if (item.access !== 'masked') fail('expected access masked');
                  if (
                    item.identity !== undefined ||
                    item.contact !== undefined ||
                    item.preferences !== undefined ||
                    item.masked === undefined
                  ) {
                    fail('expected the masked values only');
                  }
                }
              }
            }
          }
        }
        expect(failures).toEqual([]);
        // Per route: each role × (4 task sides, 3 without "own" for a role holding no task) × 2.
        const holders = roles.filter(holdsTasks).length;
        const perRoute = (holders * taskSides.length + (roles.length - holders) * 3) * 2;
        expect(counts.cells).toBe(readRoutes.length * perRoute);
        // One granted cell per route and task-holding role; the rest of theirs split between
        // masked (own customer) and foreign.
        expect(counts.granted).toBe(readRoutes.length * holders);
        expect(counts.masked).toBe(readRoutes.length * holders * (taskSides.length - 1));
        expect(counts.foreign).toBe(readRoutes.length * holders * taskSides.length);
        expect(counts.forbidden).toBe(readRoutes.length * (roles.length - holders) * 3 * 2);
        console.info(`session read matrix on ${dialect}: ${JSON.stringify(counts)}`);
      });
    });
  });
});
