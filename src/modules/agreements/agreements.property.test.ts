import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  TestClock,
  type TestRuntime,
} from '../../testing/harness.js';
import { sweepAgreements } from './index.js';

/**
 * A model of one customer's agreements and stored categories, checked against the real app
 * after every command of a random sequence: a category can be written only while an active
 * agreement covers it, stays stored only while one does, and the end of the last agreement
 * erases the customer. Time can pass without the expiry job, so lapsed agreements that the job
 * has not ended yet are part of the model.
 */

const DAY = 24 * 60 * 60 * 1000;

const purposeKeys = ['loyalty_program', 'personalized_offers', 'customer_support'] as const;
type PurposeKey = (typeof purposeKeys)[number];
const writable = ['identity', 'contact', 'preferences'] as const;
type Category = (typeof writable)[number];

/** The seeded purposes' categories (notice version 1). */
const categoriesOf: Record<PurposeKey, readonly string[]> = {
  loyalty_program: ['identity', 'contact', 'commercial'],
  personalized_offers: ['contact', 'preferences', 'commercial'],
  customer_support: ['identity', 'contact', 'interactions'],
};

type Command =
  | { readonly kind: 'grant'; readonly purpose: PurposeKey; readonly expiresInDays: number | null }
  | { readonly kind: 'withdraw'; readonly purpose: PurposeKey }
  /** Time passes, then the expiry job runs (0 days: the job alone). */
  | { readonly kind: 'expire'; readonly days: number }
  /** Time passes and the expiry job does not run. */
  | { readonly kind: 'advance'; readonly days: number }
  | { readonly kind: 'write'; readonly category: Category };

type Grant = Extract<Command, { kind: 'grant' }>;

const grantArb: fc.Arbitrary<Grant> = fc.record({
  kind: fc.constant('grant' as const),
  purpose: fc.constantFrom(...purposeKeys),
  expiresInDays: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
});

// Writes and grants weigh more than ends, so that most runs hold data before they lose it.
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: grantArb, weight: 3 },
  {
    arbitrary: fc.record({
      kind: fc.constant('withdraw' as const),
      purpose: fc.constantFrom(...purposeKeys),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('expire' as const),
      days: fc.integer({ min: 0, max: 45 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      days: fc.integer({ min: 1, max: 45 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      category: fc.constantFrom(...writable),
    }),
    weight: 4,
  },
);

const initialArb = fc.uniqueArray(grantArb, {
  selector: (g) => g.purpose,
  minLength: 1,
  maxLength: 3,
});

interface Model {
  erased: boolean;
  /** Agreements nothing has ended yet, with their expiry (ISO) or null; some may have lapsed. */
  readonly agreements: Map<PurposeKey, string | null>;
  readonly held: Set<Category>;
  /** Canaries written per category and not yet shredded. */
  readonly canaries: Map<Category, string[]>;
  /** Canaries that no store may hold: their category was shredded, or their write refused. */
  readonly gone: string[];
}

function isActive(expiresAt: string | null, now: string): boolean {
  return expiresAt === null || expiresAt > now;
}

function activePurposes(model: Model, now: string): PurposeKey[] {
  return [...model.agreements].filter(([, e]) => isActive(e, now)).map(([p]) => p);
}

function covered(model: Model, now: string): Set<string> {
  return new Set(activePurposes(model, now).flatMap((p) => categoriesOf[p]));
}

/**
 * Ends these agreements: erases the customer when no active agreement remains, else shreds
 * the held categories that no active agreement covers.
 */
function endAgreements(model: Model, ended: readonly PurposeKey[], now: string): void {
  for (const p of ended) model.agreements.delete(p);
  if (activePurposes(model, now).length === 0) model.erased = true;
  const cover = covered(model, now);
  for (const c of [...model.held]) {
    if (model.erased || !cover.has(c)) {
      model.held.delete(c);
      model.gone.push(...(model.canaries.get(c) ?? []));
      model.canaries.delete(c);
    }
  }
}

let canarySeq = 0;
const canaryRun = Math.random().toString(36).slice(2, 8);
function nextCanary(): string {
  canarySeq += 1;
  return `Kanari${canaryRun}n${canarySeq}`;
}

function writeBody(category: Category, value: string): object {
  switch (category) {
    case 'identity':
      return { identity: { givenName: value } };
    case 'contact':
      return {
        contact: {
          postalAddress: { lines: [value], locality: 'Madrid', postalCode: '28013', country: 'ES' },
        },
      };
    case 'preferences':
      return { preferences: { interests: [value] } };
  }
}

interface ErrorBody {
  error: { code: string };
}

interface ConsentStates {
  current: { purpose: string; state: string; expiresAt: string | null }[];
}

forEachDialect((dialect) => {
  describe(`agreements over random command sequences on ${dialect}`, () => {
    let rt: TestRuntime;
    let clock: TestClock;
    let agent: string;
    beforeAll(async () => {
      clock = new TestClock();
      rt = await startRuntime(dialect, { clock });
      agent = await rt.token('agent');
    });
    afterAll(async () => {
      await rt.close();
    });

    const now = () => clock.now().toISOString();

    const consentOf = (g: Grant) => ({
      purpose: g.purpose,
      noticeVersion: '1',
      method: 'web_form',
      ...(g.expiresInDays === null
        ? {}
        : { expiresAt: new Date(clock.now().getTime() + g.expiresInDays * DAY).toISOString() }),
    });

    async function storedCategories(id: string): Promise<{ fields: string[]; keys: string[] }> {
      const fields = await rt.inspect.data
        .selectFrom('customer_field')
        .select('category')
        .distinct()
        .where('customer_id', '=', id)
        .execute();
      const keys = await rt.inspect.keys
        .selectFrom('data_key')
        .select('category')
        .where('customer_id', '=', id)
        .execute();
      return {
        fields: fields.map((r) => r.category).sort(),
        keys: keys.map((r) => r.category).sort(),
      };
    }

    async function expectMatches(id: string, model: Model, step: string): Promise<void> {
      const stored = await storedCategories(id);
      const held = [...model.held].sort();
      expect(stored, step).toEqual({ fields: held, keys: held });
      const consents = await rt.app.inject({
        url: `/api/v1/customers/${id}/consents`,
        headers: authHeader(agent),
      });
      if (model.erased) {
        expect(consents.statusCode, step).toBe(404);
        const customer = await rt.inspect.data
          .selectFrom('customer')
          .select('id')
          .where('id', '=', id)
          .execute();
        expect(customer, step).toEqual([]);
        const events = await rt.inspect.data
          .selectFrom('consent_event')
          .select('id')
          .where('customer_id', '=', id)
          .execute();
        expect(events, step).toEqual([]);
        return;
      }
      expect(consents.statusCode, step).toBe(200);
      // The model's agreements are active or lapsed; every other purpose granted before has
      // ended (withdrawn or expired).
      const current = consents.json<ConsentStates>().current;
      const at = now();
      for (const [purpose, expiresAt] of model.agreements) {
        expect(
          current.find((c) => c.purpose === purpose),
          `${step}: ${purpose}`,
        ).toMatchObject({ state: isActive(expiresAt, at) ? 'active' : 'expired', expiresAt });
      }
      for (const c of current.filter((c) => !model.agreements.has(c.purpose as PurposeKey))) {
        expect(['withdrawn', 'expired'], `${step}: ${c.purpose}`).toContain(c.state);
      }
    }

    async function run(id: string, model: Model, command: Command): Promise<void> {
      const step = JSON.stringify(command);
      const headers = authHeader(agent);
      switch (command.kind) {
        case 'grant': {
          const consent = consentOf(command);
          const res = await rt.app.inject({
            method: 'POST',
            url: `/api/v1/customers/${id}/consents`,
            headers,
            payload: { consents: [consent] },
          });
          if (model.erased) {
            expect(res.statusCode, step).toBe(404);
            return;
          }
          expect(res.statusCode, `${step} ${res.body}`).toBe(200);
          const current = model.agreements.get(command.purpose);
          const expiresAt = 'expiresAt' in consent ? consent.expiresAt : null;
          // Repeating an active agreement on the same terms writes nothing; new terms (another
          // expiry, or none) or a lapsed agreement make a new grant that supersedes it.
          const repeats =
            current !== undefined && isActive(current, now()) && expiresAt === current;
          expect(res.json<{ granted: { created: boolean }[] }>().granted, step).toEqual([
            expect.objectContaining({ created: !repeats }),
          ]);
          model.agreements.set(command.purpose, expiresAt);
          return;
        }
        case 'withdraw': {
          const res = await rt.app.inject({
            method: 'POST',
            url: `/api/v1/customers/${id}/consents/${command.purpose}/withdraw`,
            headers,
            payload: { method: 'web_form' },
          });
          if (model.erased) {
            expect(res.statusCode, step).toBe(404);
            return;
          }
          const current = model.agreements.get(command.purpose);
          if (current === undefined || !isActive(current, now())) {
            expect(res.statusCode, step).toBe(409);
            expect(res.json<ErrorBody>().error.code, step).toBe('consent_not_active');
            return;
          }
          expect(res.statusCode, `${step} ${res.body}`).toBe(200);
          const heldBefore = [...model.held];
          endAgreements(model, [command.purpose], now());
          const body = res.json<{
            shredded: { categories: string[] } | null;
            erasure: object | null;
          }>();
          if (model.erased) {
            expect(body.erasure, step).not.toBeNull();
            return;
          }
          // The ledger entry names only the held categories that nothing covers any more.
          const cover = covered(model, now());
          const uncovered = heldBefore.filter((c) => !cover.has(c)).sort();
          if (uncovered.length === 0) expect(body.shredded, step).toBeNull();
          else expect(body.shredded?.categories, step).toEqual(uncovered);
          expect(body.erasure, step).toBeNull();
          return;
        }
        case 'advance': {
          clock.advance(command.days * DAY);
          return;
        }
        case 'expire': {
          clock.advance(command.days * DAY);
          await sweepAgreements(rt.ctx);
          const at = now();
          const lapsed = [...model.agreements]
            .filter(([, expiresAt]) => !isActive(expiresAt, at))
            .map(([p]) => p);
          if (!model.erased && lapsed.length > 0) endAgreements(model, lapsed, at);
          return;
        }
        case 'write': {
          const value = nextCanary();
          const res = await rt.app.inject({
            method: 'PATCH',
            url: `/api/v1/customers/${id}`,
            headers,
            payload: writeBody(command.category, value),
          });
          if (model.erased) {
            expect(res.statusCode, step).toBe(404);
            return;
          }
          if (!covered(model, now()).has(command.category)) {
            expect(res.statusCode, step).toBe(409);
            expect(res.json<ErrorBody>().error.code, step).toBe('consent_missing');
            model.gone.push(value);
            return;
          }
          expect(res.statusCode, `${step} ${res.body}`).toBe(200);
          model.held.add(command.category);
          model.canaries.set(command.category, [
            ...(model.canaries.get(command.category) ?? []),
            value,
          ]);
          return;
        }
      }
    }

    it('stores a category only while an active agreement covers it, and destroys it after', async () => {
      await fc.assert(
        fc.asyncProperty(
          initialArb,
          fc.array(commandArb, { minLength: 2, maxLength: 10 }),
          async (initial, commands) => {
            const consents = initial.map(consentOf);
            const created = await rt.app.inject({
              method: 'POST',
              url: '/api/v1/customers',
              headers: authHeader(agent),
              payload: { consents },
            });
            expect(created.statusCode, created.body).toBe(201);
            const id = created.json<{ id: string }>().id;
            const model: Model = {
              erased: false,
              agreements: new Map(
                consents.map((c) => [c.purpose, 'expiresAt' in c ? c.expiresAt : null] as const),
              ),
              held: new Set(),
              canaries: new Map(),
              gone: [],
            };
            await expectMatches(id, model, 'created');
            for (const [i, command] of commands.entries()) {
              await run(id, model, command);
              await expectMatches(id, model, `after step ${i}: ${JSON.stringify(command)}`);
            }
            const bytes = await rt.storeBytes();
            const logs = Buffer.from(rt.logs.text());
            for (const value of model.gone) {
              expect(countCanary(bytes, value), `stored bytes hold ${value}`).toBe(0);
              expect(countCanary(logs, value), `logs hold ${value}`).toBe(0);
            }
          },
        ),
        {
          numRuns: 25,
          examples: [
            [
              [
                { kind: 'grant', purpose: 'loyalty_program', expiresInDays: null },
                { kind: 'grant', purpose: 'personalized_offers', expiresInDays: 10 },
              ],
              [
                { kind: 'write', category: 'preferences' },
                { kind: 'write', category: 'identity' },
                { kind: 'advance', days: 10 },
                { kind: 'write', category: 'preferences' },
                { kind: 'withdraw', purpose: 'personalized_offers' },
                { kind: 'expire', days: 0 },
                { kind: 'grant', purpose: 'personalized_offers', expiresInDays: null },
                { kind: 'write', category: 'preferences' },
                { kind: 'withdraw', purpose: 'loyalty_program' },
                { kind: 'withdraw', purpose: 'personalized_offers' },
              ],
            ],
          ],
        },
      );
    });
  });
});
