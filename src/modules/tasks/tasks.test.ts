import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import {
  asStaffSession,
  inviteStaffMember,
  newStaffMember,
  type InvitedStaffMember,
  type StaffSession,
} from '../../testing/staff.js';
import { seedDefaultPurposes } from '../purposes/index.js';
import { createApiToken, type Role } from '../staff/index.js';
import { ensureWorkspace } from '../workspaces/index.js';

interface ErrorBody {
  error: { code: string; message: string; requestId: string; fields?: string[] };
}

interface Member {
  readonly id: string;
  readonly session: StaffSession;
}

interface TaskDto {
  id: string;
  customerId: string;
  purpose: string;
  title: string;
  assigneeId: string;
  createdBy: string;
  createdAt: string;
  dueAt: string;
  status: 'open' | 'closed';
  closedAt: string | null;
}

interface CustomerBody {
  id: string;
  purpose: string;
  identity?: Record<string, unknown>;
  contact?: Record<string, unknown>;
  preferences?: Record<string, unknown>;
}

/** The personal values a customer was created with, each unique to the customer. */
interface Canaries {
  readonly givenName: string;
  readonly familyName: string;
  readonly email: string;
  readonly interest: string;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const LOYALTY = 'loyalty_program';
const OFFERS = 'personalized_offers';
const loyalty = { purpose: LOYALTY, noticeVersion: '1', method: 'web_form' } as const;
const offers = { purpose: OFFERS, noticeVersion: '1', method: 'web_form' } as const;

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Math.random().toString(36).slice(2, 10)}`;
}

function errorOf(res: LightMyRequestResponse): ErrorBody['error'] {
  return res.json<ErrorBody>().error;
}

function canariesIn(res: LightMyRequestResponse, canaries: Partial<Canaries>): number {
  const body = Buffer.from(res.body, 'utf8');
  return Object.values(canaries).reduce((n, c) => n + countCanary(body, c), 0);
}

forEachDialect((dialect) => {
  describe(`tasks as the staff grant to read, on ${dialect}`, () => {
    const clock = new TestClock();
    let rt: TestRuntime;
    let admin: string;
    let agentToken: string;
    let officerToken: string;
    let alice: Member;
    let bob: Member;
    let carol: Member;
    let officer: Member;
    let marketerId: string;
    let adminStaffId: string;
    let auditorId: string;
    let foreignStaffId: string;
    let foreignCustomerId: string;

    /** A request as a cookie session; writes carry its CSRF token. */
    function asSession(
      session: StaffSession,
      method: 'GET' | 'POST' | 'PATCH',
      url: string,
      payload?: object,
    ) {
      return asStaffSession(rt, session, method, url, payload);
    }

    /** Invites and accepts: an active member of the role, without a session. */
    function activeMember(granterToken: string, role: Role): Promise<InvitedStaffMember> {
      return inviteStaffMember(rt, { role, granterToken });
    }

    /** An active member signed in with the second factor passed. */
    function fullMember(role: Role): Promise<Member> {
      // Roles that read personal data are granted by a privacy officer, the others by an admin.
      const granterToken = role === 'agent' || role === 'privacy_officer' ? officerToken : admin;
      return newStaffMember(rt, { role, granterToken, clock });
    }

    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      admin = await rt.token('admin');
      agentToken = await rt.token('agent');
      officerToken = await rt.token('privacy_officer');
      alice = await fullMember('agent');
      bob = await fullMember('agent');
      carol = await fullMember('agent');
      officer = await fullMember('privacy_officer');
      marketerId = (await activeMember(admin, 'marketer')).id;
      adminStaffId = (await activeMember(admin, 'admin')).id;
      auditorId = (await activeMember(admin, 'auditor')).id;

      const { id: foreignWs } = await ensureWorkspace(rt.ctx, unique('elsewhere'));
      await seedDefaultPurposes(rt.ctx, foreignWs);
      const foreignActor = {
        type: 'system' as const,
        id: 'test',
        role: null,
        workspaceId: foreignWs,
        requestId: null,
      };
      const foreignOfficer = (
        await createApiToken(rt.ctx, foreignActor, { role: 'privacy_officer', label: 't' })
      ).token;
      const foreignAgent = (
        await createApiToken(rt.ctx, foreignActor, { role: 'agent', label: 't' })
      ).token;
      foreignStaffId = (await activeMember(foreignOfficer, 'agent')).id;
      const foreign = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(foreignAgent),
        payload: { consents: [loyalty], identity: { givenName: 'Foreign' } },
      });
      expect(foreign.statusCode, foreign.body).toBe(201);
      foreignCustomerId = foreign.json<{ id: string }>().id;
    });
    afterAll(async () => {
      await rt.close();
    });

    async function newCustomer(
      consents: readonly object[] = [loyalty, offers],
      email?: string,
    ): Promise<{ id: string; canaries: Canaries }> {
      const canaries: Canaries = {
        givenName: unique('Given'),
        familyName: unique('Family'),
        email: email ?? `${unique('canary.')}@example.org`,
        interest: unique('interest'),
      };
      const agreesToOffers = consents.some((c) => (c as { purpose: string }).purpose === OFFERS);
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agentToken),
        payload: {
          consents,
          identity: { givenName: canaries.givenName, familyName: canaries.familyName },
          contact: { email: canaries.email },
          ...(agreesToOffers ? { preferences: { interests: [canaries.interest] } } : {}),
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return { id: res.json<{ id: string }>().id, canaries };
    }

    const inADay = () => new Date(clock.now().getTime() + 24 * HOUR).toISOString();

    function postTask(
      by: Member,
      input: {
        customerId: string;
        purpose?: string;
        title?: string;
        assigneeId?: string;
        dueAt?: string;
      },
    ) {
      return asSession(by.session, 'POST', '/api/v1/tasks', {
        customerId: input.customerId,
        purpose: input.purpose ?? LOYALTY,
        title: input.title ?? 'Call back about the loyalty card',
        assigneeId: input.assigneeId ?? by.id,
        dueAt: input.dueAt ?? inADay(),
      });
    }

    async function openTask(by: Member, input: Parameters<typeof postTask>[1]): Promise<TaskDto> {
      const res = await postTask(by, input);
      expect(res.statusCode, res.body).toBe(201);
      return res.json<TaskDto>();
    }

    function read(member: Member, customerId: string, purpose: string, taskId?: string) {
      const query = new URLSearchParams({ purpose, ...(taskId === undefined ? {} : { taskId }) });
      return asSession(
        member.session,
        'GET',
        `/api/v1/customers/${customerId}?${query.toString()}`,
      );
    }

    function search(member: Member, email: string, purpose: string, taskId?: string) {
      return asSession(member.session, 'POST', '/api/v1/customers/search', {
        email,
        purpose,
        ...(taskId === undefined ? {} : { taskId }),
      });
    }

    async function taskRows(customerId: string) {
      return rt.inspect.data
        .selectFrom('task')
        .selectAll()
        .where('customer_id', '=', customerId)
        .execute();
    }

    async function readAudit(customerId: string, action = 'customer.read') {
      return rt.inspect.data
        .selectFrom('audit_entry')
        .select(['actor_type', 'actor_id', 'action', 'purpose', 'outcome', 'reason', 'fields'])
        .where('customer_id', '=', customerId)
        .where('action', '=', action)
        .orderBy('seq')
        .execute();
    }

    /** What a member is told about a customer that does not exist. */
    async function missingCustomerError(member: Member, taskId?: string) {
      const res = await read(member, crypto.randomUUID(), LOYALTY, taskId);
      expect(res.statusCode).toBe(404);
      return errorOf(res);
    }

    /** The last audit entry of this action on the customer is this member's refusal. */
    async function expectDeniedEntry(
      customerId: string,
      member: Member,
      reason: string,
      action = 'customer.read',
    ) {
      const last = (await readAudit(customerId, action)).at(-1);
      expect(last).toMatchObject({ actor_type: 'staff', actor_id: member.id, outcome: 'denied' });
      expect(last?.reason).toMatch(/^(no_task|no_grant;)/);
      expect(last?.reason).toBe(reason);
    }

    /**
     * A read without a grant: the masked values a list shows, never a plaintext value, and a
     * denial in the audit chain with the reason.
     */
    async function expectRefused(
      res: LightMyRequestResponse,
      member: Member,
      customer: { id: string; canaries: Canaries },
      reason: string,
    ) {
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json<CustomerBody & { access?: string; masked?: Record<string, string> }>();
      expect(body.id).toBe(customer.id);
      expect(body.access).toBe('masked');
      expect(body.identity).toBeUndefined();
      expect(body.contact).toBeUndefined();
      expect(body.preferences).toBeUndefined();
      expect(body.masked).toEqual({
        givenName: `${customer.canaries.givenName.slice(0, 1)}•••`,
        familyName: `${customer.canaries.familyName.slice(0, 1)}•••`,
        email: expect.stringMatching(/^.•••@•••\.[a-z]+$/) as unknown,
      });
      expect(canariesIn(res, customer.canaries)).toBe(0);
      await expectDeniedEntry(customer.id, member, reason);
      // A customer who does not exist is still a 404, whatever the task.
      await missingCustomerError(member);
    }

    describe('reading under a task', () => {
      it("reads a customer under an open task assigned to the reader: only that purpose's fields, audited with the task", async () => {
        const customer = await newCustomer();
        const task = await openTask(alice, { customerId: customer.id });
        expect(task).toMatchObject({
          customerId: customer.id,
          purpose: LOYALTY,
          assigneeId: alice.id,
          createdBy: alice.id,
          status: 'open',
          closedAt: null,
        });

        const res = await read(alice, customer.id, LOYALTY, task.id);
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json<CustomerBody>();
        expect(body.id).toBe(customer.id);
        expect(body.identity).toEqual({
          givenName: customer.canaries.givenName,
          familyName: customer.canaries.familyName,
        });
        expect(body.contact).toEqual({ email: customer.canaries.email });
        // Preferences belong to personalized_offers, not to the task's purpose.
        expect(body.preferences).toBeUndefined();
        expect(countCanary(Buffer.from(res.body), customer.canaries.interest)).toBe(0);

        const audit = await readAudit(customer.id);
        expect(audit).toHaveLength(1);
        expect(audit[0]).toMatchObject({
          actor_type: 'staff',
          actor_id: alice.id,
          purpose: LOYALTY,
          outcome: 'allowed',
          reason: `task:${task.id}`,
        });
        expect((JSON.parse(audit[0]!.fields) as string[]).sort()).toEqual([
          'email',
          'familyName',
          'givenName',
        ]);
      });

      it('should not let staff read without a task, or under a task of another member, customer or purpose', async () => {
        const customer = await newCustomer();
        const other = await newCustomer();
        const bobs = await openTask(alice, { customerId: customer.id, assigneeId: bob.id });
        const otherCustomers = await openTask(alice, { customerId: other.id });
        const otherPurpose = await openTask(alice, { customerId: customer.id, purpose: OFFERS });

        await expectRefused(await read(alice, customer.id, LOYALTY), alice, customer, 'no_task');
        const unknown = crypto.randomUUID();
        for (const taskId of [bobs.id, otherCustomers.id, otherPurpose.id, unknown]) {
          await expectRefused(
            await read(alice, customer.id, LOYALTY, taskId),
            alice,
            customer,
            `no_grant;task:${taskId}`,
          );
        }
        // Each of those tasks does grant what it names, to whom it names.
        expect((await read(bob, customer.id, LOYALTY, bobs.id)).statusCode).toBe(200);
        expect((await read(alice, other.id, LOYALTY, otherCustomers.id)).statusCode).toBe(200);
        const asOffers = await read(alice, customer.id, OFFERS, otherPurpose.id);
        expect(asOffers.statusCode).toBe(200);
        expect(asOffers.json<CustomerBody>().identity).toBeUndefined();
        expect(asOffers.json<CustomerBody>().preferences).toEqual({
          interests: [customer.canaries.interest],
        });

        const denied = (await readAudit(customer.id)).filter((e) => e.outcome === 'denied');
        expect(denied.map((e) => e.reason)).toEqual([
          'no_task',
          `no_grant;task:${bobs.id}`,
          `no_grant;task:${otherCustomers.id}`,
          `no_grant;task:${otherPurpose.id}`,
          `no_grant;task:${unknown}`,
        ]);
      });

      it('answers a missing customer and a foreign one alike, and audits the task the reader named', async () => {
        const task = await openTask(alice, { customerId: (await newCustomer()).id });
        const missing = crypto.randomUUID();
        const answers = [];
        for (const customerId of [missing, foreignCustomerId]) {
          const res = await read(alice, customerId, LOYALTY, task.id);
          expect(res.statusCode).toBe(404);
          const { code, message } = errorOf(res);
          answers.push({ code, message });
          expect((await readAudit(customerId)).at(-1)).toMatchObject({
            actor_id: alice.id,
            outcome: 'denied',
            reason: `not_found;task:${task.id}`,
          });
        }
        expect(answers[0]).toEqual(answers[1]);
        // Agreed to loyalty only: a read for offers under the task is refused as if missing.
        const loyal = await newCustomer([loyalty]);
        const offers = await read(alice, loyal.id, OFFERS, task.id);
        expect(offers.statusCode).toBe(404);
        expect({ code: errorOf(offers).code, message: errorOf(offers).message }).toEqual(
          answers[0],
        );
        expect((await readAudit(loyal.id)).at(-1)?.reason).toBe(
          `purpose_not_active;task:${task.id}`,
        );
      });

      it('should not let a privacy officer on staff read without a task either', async () => {
        const customer = await newCustomer();
        await expectRefused(
          await read(officer, customer.id, LOYALTY),
          officer,
          customer,
          'no_task',
        );
        const task = await openTask(officer, { customerId: customer.id });
        expect((await read(officer, customer.id, LOYALTY, task.id)).statusCode).toBe(200);
      });

      it('ends the grant when the task is closed', async () => {
        const customer = await newCustomer();
        const task = await openTask(alice, { customerId: customer.id });
        expect((await read(alice, customer.id, LOYALTY, task.id)).statusCode).toBe(200);

        const closed = await asSession(alice.session, 'POST', `/api/v1/tasks/${task.id}/close`);
        expect(closed.statusCode, closed.body).toBe(200);
        expect(closed.json<TaskDto>()).toMatchObject({
          status: 'closed',
          closedAt: clock.now().toISOString(),
        });
        await expectRefused(
          await read(alice, customer.id, LOYALTY, task.id),
          alice,
          customer,
          `no_grant;task:${task.id}`,
        );
        const again = await asSession(alice.session, 'POST', `/api/v1/tasks/${task.id}/close`);
        expect(again.statusCode).toBe(409);
      });

      it('ends the grant when the task falls due', async () => {
        const customer = await newCustomer();
        const dueAt = new Date(clock.now().getTime() + 10 * MINUTE).toISOString();
        const task = await openTask(alice, { customerId: customer.id, dueAt });
        clock.advance(10 * MINUTE - 1000);
        expect((await read(alice, customer.id, LOYALTY, task.id)).statusCode).toBe(200);
        clock.advance(1000);
        await expectRefused(
          await read(alice, customer.id, LOYALTY, task.id),
          alice,
          customer,
          `no_grant;task:${task.id}`,
        );
      });

      it('moves the grant with a reassignment, and should not let an unrelated agent reassign or close', async () => {
        const customer = await newCustomer();
        const task = await openTask(alice, { customerId: customer.id });
        expect((await read(alice, customer.id, LOYALTY, task.id)).statusCode).toBe(200);

        const byCarol = await asSession(carol.session, 'PATCH', `/api/v1/tasks/${task.id}`, {
          assigneeId: carol.id,
        });
        expect(byCarol.statusCode).toBe(404);
        expect(errorOf(byCarol).code).toBe('not_found');
        const closeByCarol = await asSession(
          carol.session,
          'POST',
          `/api/v1/tasks/${task.id}/close`,
        );
        expect(closeByCarol.statusCode).toBe(404);
        await expectRefused(
          await read(carol, customer.id, LOYALTY, task.id),
          carol,
          customer,
          `no_grant;task:${task.id}`,
        );
        expect((await read(alice, customer.id, LOYALTY, task.id)).statusCode).toBe(200);

        const moved = await asSession(alice.session, 'PATCH', `/api/v1/tasks/${task.id}`, {
          assigneeId: bob.id,
        });
        expect(moved.statusCode, moved.body).toBe(200);
        expect(moved.json<TaskDto>()).toMatchObject({ assigneeId: bob.id, status: 'open' });
        await expectRefused(
          await read(alice, customer.id, LOYALTY, task.id),
          alice,
          customer,
          `no_grant;task:${task.id}`,
        );
        expect((await read(bob, customer.id, LOYALTY, task.id)).statusCode).toBe(200);
        const audit = await rt.inspect.data
          .selectFrom('audit_entry')
          .select(['actor_id', 'action', 'outcome'])
          .where('fields', 'like', `%task:${task.id}%`)
          .where('action', 'in', ['task.reassign', 'task.close'])
          .orderBy('seq')
          .execute();
        expect(audit.map((e) => [e.action, e.actor_id, e.outcome])).toEqual([
          ['task.reassign', carol.id, 'denied'],
          ['task.close', carol.id, 'denied'],
          ['task.reassign', alice.id, 'done'],
        ]);
      });

      it('shows by search only the customer the task is for in plaintext, and the others masked', async () => {
        const email = `${unique('shared.')}@example.org`;
        const customer = await newCustomer([loyalty, offers], email);
        const sibling = await newCustomer([loyalty, offers], email);
        const task = await openTask(alice, { customerId: customer.id });

        const found = await search(alice, email, LOYALTY, task.id);
        expect(found.statusCode, found.body).toBe(200);
        const items = found.json<{ items: (CustomerBody & { access?: string })[] }>().items;
        expect(items.map((c) => [c.id, c.access]).sort()).toEqual(
          [
            [customer.id, 'granted'],
            [sibling.id, 'masked'],
          ].sort(),
        );
        expect(items.find((c) => c.id === customer.id)?.identity).toEqual({
          givenName: customer.canaries.givenName,
          familyName: customer.canaries.familyName,
        });
        // The email is shared; the sibling's other values must not be in the answer.
        const { givenName, familyName, interest } = sibling.canaries;
        expect(canariesIn(found, { givenName, familyName, interest })).toBe(0);
        expect((await readAudit(customer.id, 'customer.search')).at(-1)).toMatchObject({
          actor_type: 'staff',
          actor_id: alice.id,
          outcome: 'allowed',
          reason: `task:${task.id}`,
        });
        await expectDeniedEntry(sibling.id, alice, `no_grant;task:${task.id}`, 'customer.search');

        for (const [member, taskId, reason] of [
          [alice, undefined, 'no_task'],
          [bob, task.id, `no_grant;task:${task.id}`],
        ] as const) {
          const refused = await search(member, email, LOYALTY, taskId);
          expect(refused.statusCode, refused.body).toBe(200);
          const shown = refused.json<{ items: (CustomerBody & { access?: string })[] }>().items;
          expect(shown.map((c) => c.access)).toEqual(['masked', 'masked']);
          expect(shown.every((c) => c.identity === undefined && c.contact === undefined)).toBe(
            true,
          );
          expect(canariesIn(refused, customer.canaries)).toBe(0);
          expect(canariesIn(refused, sibling.canaries)).toBe(0);
          await expectDeniedEntry(customer.id, member, reason, 'customer.search');
          await expectDeniedEntry(sibling.id, member, reason, 'customer.search');
        }
      });

      it('lets API-token integrations read without a task, as before', async () => {
        const customer = await newCustomer();
        const res = await rt.app.inject({
          method: 'GET',
          url: `/api/v1/customers/${customer.id}?purpose=${LOYALTY}`,
          headers: authHeader(agentToken),
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json<CustomerBody>().identity).toEqual({
          givenName: customer.canaries.givenName,
          familyName: customer.canaries.familyName,
        });
        const found = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers/search',
          headers: authHeader(agentToken),
          payload: { email: customer.canaries.email, purpose: LOYALTY },
        });
        expect(found.json<{ items: CustomerBody[] }>().items.map((c) => c.id)).toEqual([
          customer.id,
        ]);
        expect((await readAudit(customer.id)).at(-1)).toMatchObject({
          actor_type: 'token',
          outcome: 'allowed',
          reason: null,
        });
      });

      it('should not record an integration read as made under a task that was never checked', async () => {
        const customer = await newCustomer();
        const bobs = await openTask(bob, { customerId: customer.id });
        const res = await rt.app.inject({
          method: 'GET',
          url: `/api/v1/customers/${customer.id}?purpose=${LOYALTY}&taskId=${bobs.id}`,
          headers: authHeader(agentToken),
        });
        expect(res.statusCode, res.body).toBe(200);
        // The token holds no task; the audit must not claim the read was under Bob's.
        expect((await readAudit(customer.id)).at(-1)).toMatchObject({
          actor_type: 'token',
          outcome: 'allowed',
        });
        expect((await readAudit(customer.id)).at(-1)?.reason).not.toBe(`task:${bobs.id}`);
      });
    });

    describe('opening tasks', () => {
      it('should not open a task for a customer of another workspace', async () => {
        const res = await postTask(alice, { customerId: foreignCustomerId });
        expect(res.statusCode).toBe(404);
        expect(errorOf(res).code).toBe('not_found');
        expect(await taskRows(foreignCustomerId)).toEqual([]);
        expect((await readAudit(foreignCustomerId, 'task.create')).at(-1)).toMatchObject({
          actor_id: alice.id,
          outcome: 'denied',
          reason: 'not_found',
        });
      });

      it('refuses a purpose the customer has not agreed to, and creates nothing', async () => {
        const customer = await newCustomer([loyalty]);
        const keysBefore = await rt.inspect.keys
          .selectFrom('data_key')
          .select('category')
          .where('customer_id', '=', customer.id)
          .execute();
        const res = await postTask(alice, { customerId: customer.id, purpose: OFFERS });
        expect(res.statusCode).toBe(409);
        expect(errorOf(res).code).toBe('consent_not_active');
        expect(errorOf(res).fields).toEqual(['body.purpose']);
        expect(await taskRows(customer.id)).toEqual([]);
        const keysAfter = await rt.inspect.keys
          .selectFrom('data_key')
          .select('category')
          .where('customer_id', '=', customer.id)
          .execute();
        expect(keysAfter).toEqual(keysBefore);
        expect((await readAudit(customer.id, 'task.create')).at(-1)).toMatchObject({
          outcome: 'denied',
          reason: 'purpose_not_active',
        });
      });

      it('refuses an assignee who may not work with customers, naming body.assigneeId', async () => {
        const customer = await newCustomer();
        for (const assigneeId of [
          marketerId,
          adminStaffId,
          auditorId,
          foreignStaffId,
          crypto.randomUUID(),
        ]) {
          const res = await postTask(alice, { customerId: customer.id, assigneeId });
          expect(res.statusCode, res.body).toBe(400);
          expect(errorOf(res).code).toBe('invalid_input');
          expect(errorOf(res).fields).toEqual(['body.assigneeId']);
          expect(res.body).not.toContain(assigneeId);
        }
        expect(await taskRows(customer.id)).toEqual([]);

        const task = await openTask(alice, { customerId: customer.id });
        const reassigned = await asSession(alice.session, 'PATCH', `/api/v1/tasks/${task.id}`, {
          assigneeId: marketerId,
        });
        expect(reassigned.statusCode).toBe(400);
        expect(errorOf(reassigned).fields).toEqual(['body.assigneeId']);
        expect((await taskRows(customer.id))[0]?.assignee_id).toBe(alice.id);
        // Each refusal is audited.
        const creates = (await readAudit(customer.id, 'task.create')).filter(
          (e) => e.reason === 'assignee_not_eligible',
        );
        expect(creates).toHaveLength(5);
        expect(creates.every((e) => e.outcome === 'denied' && e.actor_id === alice.id)).toBe(true);
        const reassigns = await rt.inspect.data
          .selectFrom('audit_entry')
          .select(['outcome', 'reason', 'fields'])
          .where('action', '=', 'task.reassign')
          .where('reason', '=', 'assignee_not_eligible')
          .execute();
        expect(reassigns.some((e) => e.fields.includes(`task:${task.id}`))).toBe(true);
      });

      it('refuses a due date that is not in the future, naming body.dueAt', async () => {
        const customer = await newCustomer();
        for (const dueAt of [
          new Date(clock.now().getTime() - MINUTE).toISOString(),
          clock.now().toISOString(),
        ]) {
          const res = await postTask(alice, { customerId: customer.id, dueAt });
          expect(res.statusCode, res.body).toBe(400);
          expect(errorOf(res).fields).toEqual(['body.dueAt']);
        }
        expect(await taskRows(customer.id)).toEqual([]);
        const refusals = (await readAudit(customer.id, 'task.create')).map((e) => e.reason);
        expect(refusals).toEqual(['due_not_future', 'due_not_future']);
      });
    });

    describe('task titles', () => {
      it('seals the title, shows it to the assignee only, and erasing the customer removes the task', async () => {
        const customer = await newCustomer();
        const title = unique('TitleCanary');
        const task = await openTask(alice, {
          customerId: customer.id,
          assigneeId: bob.id,
          title: `Ring about ${title}`,
        });
        expect(task.title).toBe(`Ring about ${title}`);
        expect(countCanary(await rt.storeBytes(), title)).toBe(0);

        const bobs = await asSession(bob.session, 'GET', '/api/v1/tasks');
        expect(bobs.statusCode, bobs.body).toBe(200);
        expect(bobs.json<{ items: TaskDto[] }>().items).toContainEqual(
          expect.objectContaining({ id: task.id, title: `Ring about ${title}` }),
        );
        const carols = await asSession(carol.session, 'GET', '/api/v1/tasks');
        expect(carols.statusCode).toBe(200);
        expect(countCanary(Buffer.from(carols.body), title)).toBe(0);
        const officers = await asSession(officer.session, 'GET', '/api/v1/tasks');
        expect(officers.json<{ items: TaskDto[] }>().items.map((t) => t.id)).toContain(task.id);

        expect(await taskRows(customer.id)).toHaveLength(1);
        const erased = await rt.app.inject({
          method: 'DELETE',
          url: `/api/v1/customers/${customer.id}`,
          headers: authHeader(officerToken),
        });
        expect(erased.statusCode, erased.body).toBe(200);
        expect(await taskRows(customer.id)).toEqual([]);
        const keys = await rt.inspect.keys
          .selectFrom('data_key')
          .select('category')
          .where('customer_id', '=', customer.id)
          .execute();
        expect(keys).toEqual([]);
        expect(countCanary(await rt.storeBytes(), title)).toBe(0);

        const after = await asSession(bob.session, 'GET', '/api/v1/tasks');
        expect(after.statusCode, after.body).toBe(200);
        expect(after.json<{ items: TaskDto[] }>().items.map((t) => t.id)).not.toContain(task.id);
        expect((await read(bob, customer.id, LOYALTY, task.id)).statusCode).toBe(404);
      });
    });

    describe('erasure racing a new task', () => {
      /** Lets the event loop turn a few times, so that two requests interleave differently. */
      async function turns(n: number): Promise<void> {
        for (let i = 0; i < n; i += 1) await new Promise((resolve) => setImmediate(resolve));
      }

      // Runs last: an orphaned task breaks every task list that includes it.
      it('should not leave a task behind for a customer erased while it was being opened', async () => {
        const assignee = await activeMember(officerToken, 'agent');
        const orphans: { attempt: number; status: number }[] = [];
        for (let attempt = 0; attempt < 120; attempt += 1) {
          const customer = await newCustomer([loyalty]);
          const [opened, erased] = await Promise.all([
            rt.app.inject({
              method: 'POST',
              url: '/api/v1/tasks',
              headers: authHeader(agentToken),
              payload: {
                customerId: customer.id,
                purpose: LOYALTY,
                title: 'Racing the erasure',
                assigneeId: assignee.id,
                dueAt: inADay(),
              },
            }),
            turns(attempt % 12).then(() =>
              rt.app.inject({
                method: 'DELETE',
                url: `/api/v1/customers/${customer.id}`,
                headers: authHeader(officerToken),
              }),
            ),
          ]);
          expect(erased.statusCode, erased.body).toBe(200);
          if ((await taskRows(customer.id)).length > 0) {
            orphans.push({ attempt, status: opened.statusCode });
          }
        }
        expect(orphans).toEqual([]);
        const list = await rt.app.inject({
          method: 'GET',
          url: '/api/v1/tasks',
          headers: authHeader(officerToken),
        });
        expect(list.statusCode, list.body).toBe(200);
      });
    });
  });
});
