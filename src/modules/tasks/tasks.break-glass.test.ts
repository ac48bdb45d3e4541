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
import { asStaffSession, newStaffMember, type StaffSession } from '../../testing/staff.js';
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

type ReviewStatus = 'pending' | 'approved' | 'flagged';

interface BreakGlassDto {
  id: string;
  staffId: string;
  customerId: string;
  purpose: string;
  justification: string;
  createdAt: string;
  expiresAt: string;
  reviewStatus: ReviewStatus;
  reviewedBy: string | null;
  reviewedAt: string | null;
  note: string | null;
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

interface Customer {
  readonly id: string;
  readonly canaries: Canaries;
}

const MINUTE = 60_000;
const LOYALTY = 'loyalty_program';
const OFFERS = 'personalized_offers';
const loyalty = { purpose: LOYALTY, noticeVersion: '1', method: 'web_form' } as const;
const offers = { purpose: OFFERS, noticeVersion: '1', method: 'web_form' } as const;

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Math.random().toString(36).slice(2, 10)}`;
}

/** A justification of at least 20 characters that carries a unique canary. */
function justification(canary = unique('Justcanary')): string {
  return `Customer called the emergency line, ref ${canary}`;
}

function errorOf(res: LightMyRequestResponse): ErrorBody['error'] {
  return res.json<ErrorBody>().error;
}

function canariesIn(res: LightMyRequestResponse, canaries: Partial<Canaries>): number {
  const body = Buffer.from(res.body, 'utf8');
  return Object.values(canaries).reduce((n, c) => n + countCanary(body, c), 0);
}

forEachDialect((dialect) => {
  describe(`break-glass access on ${dialect}`, () => {
    const clock = new TestClock();
    let rt: TestRuntime;
    let admin: string;
    let agentToken: string;
    let officerToken: string;
    let alice: Member;
    let bob: Member;
    let officer: Member;
    let officer2: Member;
    let marketer: Member;
    let adminMember: Member;
    let foreignCustomer: Customer;

    /** A request as a cookie session; writes carry its CSRF token. */
    function asSession(
      session: StaffSession,
      method: 'GET' | 'POST' | 'PATCH',
      url: string,
      payload?: object,
    ) {
      return asStaffSession(rt, session, method, url, payload);
    }

    /** Invites, accepts, signs in and enrols the second factor: a member with a full session. */
    function fullMember(
      role: Role,
      // Roles that read personal data are granted by a privacy officer, the others by an admin.
      granterToken = role === 'agent' || role === 'privacy_officer' ? officerToken : admin,
    ): Promise<Member> {
      return newStaffMember(rt, { role, granterToken, clock });
    }

    /** Uses every session, so that none falls to the idle timeout while the clock moves. */
    async function keepAlive(): Promise<void> {
      for (const m of [alice, bob, officer, officer2, marketer, adminMember]) {
        const res = await asSession(m.session, 'GET', '/api/v1/auth/session');
        expect(res.statusCode, res.body).toBe(200);
      }
    }

    beforeAll(async () => {
      rt = await startRuntime(dialect, { clock });
      admin = await rt.token('admin');
      agentToken = await rt.token('agent');
      officerToken = await rt.token('privacy_officer');
      alice = await fullMember('agent');
      bob = await fullMember('agent');
      officer = await fullMember('privacy_officer');
      officer2 = await fullMember('privacy_officer');
      marketer = await fullMember('marketer');
      adminMember = await fullMember('admin');

      const { id: foreignWs } = await ensureWorkspace(rt.ctx, unique('elsewhere'));
      await seedDefaultPurposes(rt.ctx, foreignWs);
      const foreignActor = {
        type: 'system' as const,
        id: 'test',
        role: null,
        workspaceId: foreignWs,
        requestId: null,
      };
      const foreignAgent = (
        await createApiToken(rt.ctx, foreignActor, { role: 'agent', label: 't' })
      ).token;
      foreignCustomer = await newCustomer([loyalty], foreignAgent);
    });
    afterAll(async () => {
      await rt.close();
    });

    /** A customer who agreed to loyalty (and, by default, offers), with unique values. */
    async function newCustomer(
      consents: readonly object[] = [loyalty, offers],
      token = agentToken,
    ): Promise<Customer> {
      const canaries: Canaries = {
        givenName: unique('Given'),
        familyName: unique('Family'),
        email: `${unique('canary.')}@example.org`,
        interest: unique('interest'),
      };
      const agreesToOffers = consents.some((c) => (c as { purpose: string }).purpose === OFFERS);
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(token),
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

    function postBreakGlass(
      by: Member,
      input: { customerId: string; purpose?: string; justification?: string },
    ) {
      return asSession(by.session, 'POST', '/api/v1/break-glass', {
        customerId: input.customerId,
        purpose: input.purpose ?? LOYALTY,
        justification: input.justification ?? justification(),
      });
    }

    async function breakGlass(
      by: Member,
      input: Parameters<typeof postBreakGlass>[1],
    ): Promise<BreakGlassDto> {
      const res = await postBreakGlass(by, input);
      expect(res.statusCode, res.body).toBe(201);
      return res.json<BreakGlassDto>();
    }

    function read(
      member: Member,
      customerId: string,
      purpose: string,
      grant: { breakGlassId?: string; taskId?: string } = {},
    ) {
      const query = new URLSearchParams({ purpose, ...grant });
      return asSession(
        member.session,
        'GET',
        `/api/v1/customers/${customerId}?${query.toString()}`,
      );
    }

    function queue(member: Member, status?: string) {
      const query = status === undefined ? '' : `?status=${status}`;
      return asSession(member.session, 'GET', `/api/v1/break-glass${query}`);
    }

    async function queueItems(member: Member, status?: ReviewStatus): Promise<BreakGlassDto[]> {
      const res = await queue(member, status);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<{ items: BreakGlassDto[] }>().items;
    }

    function review(
      member: Member,
      id: string,
      body: { decision: 'approve' | 'flag'; note?: string },
    ) {
      return asSession(member.session, 'POST', `/api/v1/break-glass/${id}/review`, body);
    }

    async function breakGlassRows(customerId: string) {
      return rt.inspect.data
        .selectFrom('break_glass')
        .selectAll()
        .where('customer_id', '=', customerId)
        .execute();
    }

    async function auditOf(customerId: string, action: string) {
      return rt.inspect.data
        .selectFrom('audit_entry')
        .select(['actor_type', 'actor_id', 'action', 'purpose', 'outcome', 'reason', 'fields'])
        .where('customer_id', '=', customerId)
        .where('action', '=', action)
        .orderBy('seq')
        .execute();
    }

    /** The reviews that took effect on the customer's break-glass accesses. */
    async function reviewsDone(customerId: string) {
      return (await auditOf(customerId, 'break_glass.review')).filter((e) => e.outcome === 'done');
    }

    /** Without a grant: masked values only, audited as this member's refusal, without any value. */
    async function expectRefusedRead(
      res: LightMyRequestResponse,
      member: Member,
      customer: Customer,
      reason: string,
    ) {
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json<{ id: string; access?: string; masked?: object; identity?: object }>();
      expect(body).toMatchObject({ id: customer.id, access: 'masked' });
      expect(body.masked).toBeDefined();
      expect(body.identity).toBeUndefined();
      expect(canariesIn(res, customer.canaries)).toBe(0);
      const missing = await read(member, crypto.randomUUID(), LOYALTY);
      expect(missing.statusCode).toBe(404);
      const last = (await auditOf(customer.id, 'customer.read')).at(-1);
      expect(last).toMatchObject({ actor_type: 'staff', actor_id: member.id, outcome: 'denied' });
      expect(last?.reason).toMatch(/^(no_task|no_grant)/);
      expect(last?.reason).toBe(reason);
    }

    describe('breaking glass', () => {
      it('refuses a justification shorter than 20 characters, naming body.justification', async () => {
        const customer = await newCustomer();
        for (const text of ['x'.repeat(19), `   ${'y'.repeat(19)}   `, '', 'z'.repeat(1001)]) {
          const res = await postBreakGlass(alice, { customerId: customer.id, justification: text });
          expect(res.statusCode, res.body).toBe(400);
          expect(errorOf(res).fields).toContain('body.justification');
        }
        expect(await breakGlassRows(customer.id)).toHaveLength(0);
        const twenty = await postBreakGlass(alice, {
          customerId: customer.id,
          justification: 'j'.repeat(20),
        });
        expect(twenty.statusCode, twenty.body).toBe(201);
        expect(await breakGlassRows(customer.id)).toHaveLength(1);
      });

      it('should not let a marketer or an admin break glass (403), and audits the refusal', async () => {
        const customer = await newCustomer();
        const deniedOf = async (member: Member) =>
          (
            await rt.inspect.data
              .selectFrom('audit_entry')
              .select(['reason'])
              .where('action', '=', 'access.denied')
              .where('actor_id', '=', member.id)
              .execute()
          ).filter((e) => e.reason === 'permission:break_glass:use').length;
        for (const member of [marketer, adminMember]) {
          const before = await deniedOf(member);
          const res = await postBreakGlass(member, { customerId: customer.id });
          expect(res.statusCode, res.body).toBe(403);
          expect(canariesIn(res, customer.canaries)).toBe(0);
          expect(await deniedOf(member)).toBe(before + 1);
        }
        expect(await breakGlassRows(customer.id)).toHaveLength(0);
      });

      it('should not let an API token break glass: emergencies are for signed-in staff', async () => {
        const customer = await newCustomer();
        const res = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/break-glass',
          headers: authHeader(agentToken),
          payload: { customerId: customer.id, purpose: LOYALTY, justification: justification() },
        });
        expect(res.statusCode, res.body).toBe(403);
        expect(canariesIn(res, customer.canaries)).toBe(0);
        expect(await breakGlassRows(customer.id)).toHaveLength(0);
      });

      it('answers 404 for a customer not in the workspace, 409 for a purpose without agreement; both audited', async () => {
        const missing = crypto.randomUUID();
        for (const customerId of [foreignCustomer.id, missing]) {
          const res = await postBreakGlass(alice, { customerId });
          expect(res.statusCode, res.body).toBe(404);
          expect(canariesIn(res, foreignCustomer.canaries)).toBe(0);
          expect(await breakGlassRows(customerId)).toHaveLength(0);
          const entries = await auditOf(customerId, 'break_glass');
          expect(entries.at(-1)).toMatchObject({
            actor_id: alice.id,
            outcome: 'denied',
            reason: 'not_found',
          });
        }
        const loyalOnly = await newCustomer([loyalty]);
        const res = await postBreakGlass(alice, { customerId: loyalOnly.id, purpose: OFFERS });
        expect(res.statusCode, res.body).toBe(409);
        expect(errorOf(res).code).toBe('consent_not_active');
        expect(canariesIn(res, loyalOnly.canaries)).toBe(0);
        expect(await breakGlassRows(loyalOnly.id)).toHaveLength(0);
        expect((await auditOf(loyalOnly.id, 'break_glass')).at(-1)).toMatchObject({
          actor_id: alice.id,
          purpose: OFFERS,
          outcome: 'denied',
        });
      });

      it("lets an agent break glass and read only the purpose's fields, audited with the grant", async () => {
        const customer = await newCustomer();
        const text = justification();
        const grant = await breakGlass(alice, { customerId: customer.id, justification: text });
        expect(grant).toMatchObject({
          staffId: alice.id,
          customerId: customer.id,
          purpose: LOYALTY,
          justification: text,
          reviewStatus: 'pending',
          reviewedBy: null,
          reviewedAt: null,
          note: null,
        });
        expect(grant.createdAt).toBe(clock.now().toISOString());
        expect(Date.parse(grant.expiresAt) - Date.parse(grant.createdAt)).toBe(30 * MINUTE);

        const res = await read(alice, customer.id, LOYALTY, { breakGlassId: grant.id });
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json<CustomerBody>();
        expect(body.identity).toEqual({
          givenName: customer.canaries.givenName,
          familyName: customer.canaries.familyName,
        });
        expect(body.contact).toEqual({ email: customer.canaries.email });
        // Preferences belong to offers, not to the loyalty programme the grant is for.
        expect(body.preferences).toBeUndefined();
        expect(countCanary(Buffer.from(res.body), customer.canaries.interest)).toBe(0);

        expect(await auditOf(customer.id, 'break_glass')).toEqual([
          {
            actor_type: 'staff',
            actor_id: alice.id,
            action: 'break_glass',
            purpose: LOYALTY,
            outcome: 'allowed',
            reason: null,
            fields: JSON.stringify([`break_glass:${grant.id}`]),
          },
        ]);
        const reads = await auditOf(customer.id, 'customer.read');
        expect(reads).toHaveLength(1);
        expect(reads[0]).toMatchObject({
          actor_id: alice.id,
          purpose: LOYALTY,
          outcome: 'allowed',
          reason: `break_glass:${grant.id}`,
        });
        expect(JSON.parse(reads[0]?.fields ?? '[]')).toEqual(
          expect.arrayContaining(['email', 'familyName', 'givenName']),
        );
        expect(JSON.parse(reads[0]?.fields ?? '[]')).not.toContain('interests');
      });

      it('should not let another agent use the grant of an agent (masked, audited)', async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        const res = await read(bob, customer.id, LOYALTY, { breakGlassId: grant.id });
        await expectRefusedRead(res, bob, customer, `no_grant;break_glass:${grant.id}`);
        expect(
          (await read(alice, customer.id, LOYALTY, { breakGlassId: grant.id })).statusCode,
        ).toBe(200);
      });

      it('does not work for another customer or another purpose (masked)', async () => {
        const customer = await newCustomer();
        const other = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        const otherCustomer = await read(alice, other.id, LOYALTY, { breakGlassId: grant.id });
        await expectRefusedRead(otherCustomer, alice, other, `no_grant;break_glass:${grant.id}`);
        // The customer agreed to offers too: only the grant's purpose is missing.
        const otherPurpose = await read(alice, customer.id, OFFERS, { breakGlassId: grant.id });
        await expectRefusedRead(otherPurpose, alice, customer, `no_grant;break_glass:${grant.id}`);
      });

      it('masks a staff read without a taskId or breakGlassId, or with an unknown breakGlassId', async () => {
        const customer = await newCustomer();
        await breakGlass(alice, { customerId: customer.id });
        await expectRefusedRead(
          await read(alice, customer.id, LOYALTY),
          alice,
          customer,
          'no_task',
        );
        const unknown = crypto.randomUUID();
        await expectRefusedRead(
          await read(alice, customer.id, LOYALTY, { breakGlassId: unknown }),
          alice,
          customer,
          `no_grant;break_glass:${unknown}`,
        );
      });

      it('works for 30 minutes and no longer after 31', async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        clock.advance(15 * MINUTE);
        await keepAlive();
        clock.advance(14 * MINUTE);
        const late = await read(alice, customer.id, LOYALTY, { breakGlassId: grant.id });
        expect(late.statusCode, late.body).toBe(200);
        await keepAlive();
        clock.advance(2 * MINUTE);
        const expired = await read(alice, customer.id, LOYALTY, { breakGlassId: grant.id });
        await expectRefusedRead(expired, alice, customer, `no_grant;break_glass:${grant.id}`);
        await keepAlive();
      });

      it("deletes the customer's break-glass rows when the customer is erased", async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        expect(await breakGlassRows(customer.id)).toHaveLength(1);
        const erased = await rt.app.inject({
          method: 'DELETE',
          url: `/api/v1/customers/${customer.id}`,
          headers: authHeader(officerToken),
        });
        expect(erased.statusCode, erased.body).toBe(200);
        expect(await breakGlassRows(customer.id)).toHaveLength(0);
        expect((await queueItems(officer)).map((g) => g.id)).not.toContain(grant.id);
        const res = await read(alice, customer.id, LOYALTY, { breakGlassId: grant.id });
        expect(res.statusCode).toBe(404);
        expect(canariesIn(res, customer.canaries)).toBe(0);
      });
    });

    describe("the privacy officer's review", () => {
      it('shows each new grant in the pending queue with its justification', async () => {
        const customer = await newCustomer();
        const text = justification();
        const grant = await breakGlass(alice, { customerId: customer.id, justification: text });
        const byDefault = (await queueItems(officer)).find((g) => g.id === grant.id);
        expect(byDefault).toEqual(grant);
        const pending = (await queueItems(officer, 'pending')).find((g) => g.id === grant.id);
        expect(pending?.justification).toBe(text);
        const listed = await rt.inspect.data
          .selectFrom('audit_entry')
          .select(['actor_id', 'fields'])
          .where('action', '=', 'break_glass.list')
          .where('actor_id', '=', officer.id)
          .execute();
        expect(listed.some((e) => e.fields.includes(grant.id))).toBe(true);
      });

      it('approves one and flags another with a note; the queue filters by status', async () => {
        const customer = await newCustomer();
        const first = await breakGlass(alice, { customerId: customer.id });
        const second = await breakGlass(bob, { customerId: customer.id });
        const note = `Not an emergency ${unique('Notecanary')}`;

        const approved = await review(officer, first.id, { decision: 'approve' });
        expect(approved.statusCode, approved.body).toBe(200);
        expect(approved.json<BreakGlassDto>()).toMatchObject({
          id: first.id,
          reviewStatus: 'approved',
          reviewedBy: officer.id,
          reviewedAt: clock.now().toISOString(),
          note: null,
          justification: first.justification,
        });
        const flagged = await review(officer, second.id, { decision: 'flag', note });
        expect(flagged.statusCode, flagged.body).toBe(200);
        expect(flagged.json<BreakGlassDto>()).toMatchObject({
          id: second.id,
          reviewStatus: 'flagged',
          reviewedBy: officer.id,
          note,
        });

        const ids = async (status?: ReviewStatus) =>
          (await queueItems(officer, status)).map((g) => g.id);
        expect(await ids()).not.toContain(first.id);
        expect(await ids('pending')).not.toContain(second.id);
        expect(await ids('approved')).toContain(first.id);
        expect(await ids('approved')).not.toContain(second.id);
        expect(await ids('flagged')).toContain(second.id);
        expect(await ids('flagged')).not.toContain(first.id);
        const shown = (await queueItems(officer, 'flagged')).find((g) => g.id === second.id);
        expect(shown).toMatchObject({ note, justification: second.justification });
        expect((await queue(officer, 'closed')).statusCode).toBe(400);

        const reviews = await reviewsDone(customer.id);
        expect(reviews).toEqual([
          expect.objectContaining({
            actor_id: officer.id,
            purpose: LOYALTY,
            outcome: 'done',
            reason: 'approved',
            fields: JSON.stringify([`break_glass:${first.id}`]),
          }),
          expect.objectContaining({
            actor_id: officer.id,
            outcome: 'done',
            reason: 'flagged',
            fields: JSON.stringify([`break_glass:${second.id}`]),
          }),
        ]);
      });

      it('needs a note to flag (400 naming body.note)', async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        for (const body of [
          { decision: 'flag' as const },
          { decision: 'flag' as const, note: '  ' },
        ]) {
          const res = await review(officer, grant.id, body);
          expect(res.statusCode, res.body).toBe(400);
          expect(errorOf(res).fields).toContain('body.note');
        }
        expect((await breakGlassRows(customer.id))[0]?.review_status).toBe('pending');
        expect(await reviewsDone(customer.id)).toHaveLength(0);
      });

      it('reviews once only (409), also when two reviews race', async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        expect((await review(officer, grant.id, { decision: 'approve' })).statusCode).toBe(200);
        for (const body of [
          { decision: 'approve' as const },
          { decision: 'flag' as const, note: 'Changed my mind' },
        ]) {
          const again = await review(officer2, grant.id, body);
          expect(again.statusCode, again.body).toBe(409);
          expect(errorOf(again).code).toBe('conflict');
        }
        const row = (await breakGlassRows(customer.id))[0];
        expect(row).toMatchObject({
          review_status: 'approved',
          reviewed_by: officer.id,
          note_sealed: null,
        });
        expect(await reviewsDone(customer.id)).toHaveLength(1);

        const raced = await breakGlass(bob, { customerId: customer.id });
        const results = await Promise.all([
          review(officer, raced.id, { decision: 'approve' }),
          review(officer2, raced.id, { decision: 'flag', note: 'Looks unjustified' }),
        ]);
        expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
        expect(await reviewsDone(customer.id)).toHaveLength(2);
      });

      it('answers 404 when reviewing a break-glass access that does not exist', async () => {
        const res = await review(officer, crypto.randomUUID(), { decision: 'approve' });
        expect(res.statusCode, res.body).toBe(404);
      });

      it('should not let an agent see the queue or review (403)', async () => {
        const customer = await newCustomer();
        const text = justification();
        const grant = await breakGlass(bob, { customerId: customer.id, justification: text });
        for (const status of [undefined, 'pending', 'approved']) {
          const res = await queue(alice, status);
          expect(res.statusCode, res.body).toBe(403);
          expect(res.body).not.toContain(grant.id);
          expect(countCanary(Buffer.from(res.body), text)).toBe(0);
        }
        const res = await review(alice, grant.id, { decision: 'approve' });
        expect(res.statusCode, res.body).toBe(403);
        expect(countCanary(Buffer.from(res.body), text)).toBe(0);
        expect((await breakGlassRows(customer.id))[0]?.review_status).toBe('pending');
      });

      it('should not let an officer review their own break-glass access (403)', async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(officer, { customerId: customer.id });
        const read1 = await read(officer, customer.id, LOYALTY, { breakGlassId: grant.id });
        expect(read1.statusCode, read1.body).toBe(200);
        for (const body of [
          { decision: 'approve' as const },
          { decision: 'flag' as const, note: 'Flagging myself' },
        ]) {
          const res = await review(officer, grant.id, body);
          expect(res.statusCode, res.body).toBe(403);
          expect(errorOf(res).code).toBe('forbidden');
        }
        expect((await breakGlassRows(customer.id))[0]?.review_status).toBe('pending');
        const other = await review(officer2, grant.id, { decision: 'approve' });
        expect(other.statusCode, other.body).toBe(200);
        expect(other.json<BreakGlassDto>().reviewedBy).toBe(officer2.id);
      });

      // Like a refused task change (task.reassign/task.close denied) or a refused break-glass,
      // a refused review is a fact the audit log should hold.
      it('audits a refused review (their own, or a second one) as break_glass.review denied', async () => {
        const customer = await newCustomer();
        const own = await breakGlass(officer, { customerId: customer.id });
        expect((await review(officer, own.id, { decision: 'approve' })).statusCode).toBe(403);
        expect((await auditOf(customer.id, 'break_glass.review')).at(-1)).toMatchObject({
          actor_id: officer.id,
          outcome: 'denied',
          fields: JSON.stringify([`break_glass:${own.id}`]),
        });
        expect((await review(officer2, own.id, { decision: 'approve' })).statusCode).toBe(200);
        expect((await review(officer2, own.id, { decision: 'approve' })).statusCode).toBe(409);
        expect((await auditOf(customer.id, 'break_glass.review')).at(-1)).toMatchObject({
          actor_id: officer2.id,
          outcome: 'denied',
          fields: JSON.stringify([`break_glass:${own.id}`]),
        });
      });
    });

    describe('what is kept', () => {
      it('does not audit an API token read as made under a break-glass grant nobody checked', async () => {
        const customer = await newCustomer();
        const unchecked = crypto.randomUUID();
        const res = await rt.app.inject({
          method: 'GET',
          url: `/api/v1/customers/${customer.id}?purpose=${LOYALTY}&breakGlassId=${unchecked}`,
          headers: authHeader(agentToken),
        });
        // Integrations read without a grant; whether the id is refused or ignored, the audit
        // entry must not attribute the read to a break-glass access that does not exist.
        if (res.statusCode === 200) {
          const last = (await auditOf(customer.id, 'customer.read')).at(-1);
          expect(last).toMatchObject({ actor_type: 'token', outcome: 'allowed' });
          expect(last?.reason).not.toBe(`break_glass:${unchecked}`);
        } else {
          expect(res.statusCode, res.body).toBe(400);
        }
      });

      it('never stores the justification or the note in plaintext, nor logs them', async () => {
        const customer = await newCustomer();
        const justCanary = unique('Justcanary');
        const noteCanary = unique('Notecanary');
        const grant = await breakGlass(alice, {
          customerId: customer.id,
          justification: justification(justCanary),
        });
        const flagged = await review(officer, grant.id, {
          decision: 'flag',
          note: `Please explain ${noteCanary}`,
        });
        expect(flagged.statusCode, flagged.body).toBe(200);
        // Both texts are kept (the queue returns them), but only sealed.
        const shown = (await queueItems(officer, 'flagged')).find((g) => g.id === grant.id);
        expect(shown?.justification).toContain(justCanary);
        expect(shown?.note).toContain(noteCanary);
        const row = (await breakGlassRows(customer.id))[0];
        expect(row?.justification_sealed.length).toBeGreaterThan(0);
        expect(row?.note_sealed?.length).toBeGreaterThan(0);

        const bytes = await rt.storeBytes();
        expect(countCanary(bytes, justCanary)).toBe(0);
        expect(countCanary(bytes, noteCanary)).toBe(0);
        const logs = Buffer.from(rt.logs.text(), 'utf8');
        expect(countCanary(logs, justCanary)).toBe(0);
        expect(countCanary(logs, noteCanary)).toBe(0);
      });

      it("never puts the customer's values in a refused response", async () => {
        const customer = await newCustomer();
        const grant = await breakGlass(alice, { customerId: customer.id });
        const refused = [
          await read(bob, customer.id, LOYALTY, { breakGlassId: grant.id }),
          await read(alice, customer.id, OFFERS, { breakGlassId: grant.id }),
          await read(alice, customer.id, LOYALTY),
          await read(marketer, customer.id, LOYALTY, { breakGlassId: grant.id }),
          await read(adminMember, customer.id, LOYALTY, { breakGlassId: grant.id }),
          await postBreakGlass(marketer, { customerId: customer.id }),
          await postBreakGlass(alice, { customerId: customer.id, justification: 'too short' }),
        ];
        // Staff who may read customers get the masked values; the others are refused outright.
        expect(refused.map((res) => res.statusCode)).toEqual([200, 200, 200, 403, 403, 403, 400]);
        for (const res of refused) {
          expect(canariesIn(res, customer.canaries)).toBe(0);
        }
        const allowed = await read(alice, customer.id, LOYALTY, { breakGlassId: grant.id });
        expect(canariesIn(allowed, customer.canaries)).toBeGreaterThan(0);
      });
    });
  });
});
