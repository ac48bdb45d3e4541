import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import type { Actor, ActorType } from '../../platform/context.js';
import { randomKey, Signer } from '../../platform/crypto/index.js';
import type { AuditEntryTable, DataDb } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import {
  authHeader,
  countCanary,
  forEachDialect,
  startRuntime,
  type TestDialect,
  type TestRuntime,
} from '../../testing/harness.js';
import { checkpointMessage, type ChainedEntry } from './audit.chain.js';
import {
  appendAudit,
  entryHash,
  GENESIS_HASH,
  recordAudit,
  verifyAuditChain,
  type AuditEvent,
  type AuditOutcome,
  type VerifyResult,
} from './index.js';

const actions = ['customer.read', 'customer.create', 'customer.update', 'token.create', 'erasure'];
const fieldNames = [
  'identity.givenName',
  'identity.familyName',
  'contact.email',
  'contact.phone',
  'preferences.interests',
];
const outcomes: readonly AuditOutcome[] = ['allowed', 'denied', 'done', 'failed'];
const actorTypes: readonly ActorType[] = ['system', 'token', 'staff', 'customer'];

const eventArb: fc.Arbitrary<AuditEvent> = fc.record({
  action: fc.constantFrom(...actions),
  customerId: fc.option(fc.uuid(), { nil: null }),
  purpose: fc.option(fc.constantFrom('loyalty_program', 'personalized_offers'), { nil: null }),
  fields: fc.uniqueArray(fc.constantFrom(...fieldNames), { maxLength: 4 }),
  outcome: fc.constantFrom(...outcomes),
  reason: fc.option(
    fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !s.includes('\u0000')),
    { nil: null },
  ),
});

/** Who acts, apart from the workspace (filled in per run). */
const actorArb = fc.record({
  type: fc.constantFrom(...actorTypes),
  id: fc.constantFrom('test', 'cli', '01928c1e-0000-7000-8000-000000000001'),
  role: fc.option(fc.constantFrom('agent', 'admin'), { nil: null }),
  requestId: fc.option(fc.constantFrom('req-1', 'req-2'), { nil: null }),
});

/** Units issued in the same tick (one group-commit batch), groups one after another. */
const groupsArb = (minGroups: number) =>
  fc.array(fc.array(fc.tuple(eventArb, actorArb), { minLength: 1, maxLength: 5 }), {
    minLength: minGroups,
    maxLength: 5,
  });

type Groups = (readonly (readonly [AuditEvent, Omit<Actor, 'workspaceId'>])[])[];

type Db = Kysely<DataDb>;

async function entriesOf(db: Db, ws: string): Promise<AuditEntryTable[]> {
  return db
    .selectFrom('audit_entry')
    .selectAll()
    .where('workspace_id', '=', ws)
    .orderBy('seq')
    .execute();
}

async function checkpointSeqs(db: Db, ws: string): Promise<number[]> {
  const rows = await db
    .selectFrom('audit_checkpoint')
    .select('seq')
    .where('workspace_id', '=', ws)
    .orderBy('seq')
    .execute();
  return rows.map((r) => r.seq);
}

async function countEntriesOutside(db: Db, workspaces: readonly string[]): Promise<number> {
  const row = await db
    .selectFrom('audit_entry')
    .select(sql<number | string>`count(*)`.as('n'))
    .where('workspace_id', 'not in', workspaces)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function purge(db: Db, workspaces: readonly string[]): Promise<void> {
  await db.deleteFrom('audit_entry').where('workspace_id', 'in', workspaces).execute();
  await db.deleteFrom('audit_checkpoint').where('workspace_id', 'in', workspaces).execute();
  await db.deleteFrom('audit_head').where('workspace_id', 'in', workspaces).execute();
}

function chained(row: AuditEntryTable): ChainedEntry {
  return {
    workspaceId: row.workspace_id,
    seq: row.seq,
    at: row.at,
    actorType: row.actor_type,
    actorId: row.actor_id,
    actorRole: row.actor_role,
    action: row.action,
    customerId: row.customer_id,
    purpose: row.purpose,
    fields: JSON.parse(row.fields) as string[],
    outcome: row.outcome,
    reason: row.reason,
    requestId: row.request_id,
  };
}

/** Appends the groups: every unit of a group in the same tick, the groups in turn. */
async function appendGroups(
  rt: TestRuntime,
  groups: readonly (readonly (readonly [AuditEvent, Omit<Actor, 'workspaceId'>, string])[])[],
): Promise<void> {
  for (const group of groups) {
    await Promise.all(
      group.map(([event, actor, ws]) => recordAudit(rt.ctx, { ...actor, workspaceId: ws }, event)),
    );
  }
}

function verify(rt: TestRuntime): Promise<VerifyResult> {
  return verifyAuditChain(rt.ctx.data, (ws) => rt.ctx.signer.publicKey(ws));
}

/** The sequence numbers at which each group's batch committed, where its checkpoint signs. */
function boundaries(sizes: readonly number[]): number[] {
  const out: number[] = [];
  let total = 0;
  for (const s of sizes) {
    if (s === 0) continue;
    total += s;
    out.push(total);
  }
  return out;
}

function flipHex(hex: string): string {
  return hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
}

const columns = [
  'action',
  'fields',
  'outcome',
  'customer_id',
  'at',
  'actor_id',
  'actor_type',
  'actor_role',
  'purpose',
  'reason',
  'request_id',
  'prev_hash',
  'hash',
] as const;
type Column = (typeof columns)[number];

function tamperedValue(column: Column, row: AuditEntryTable): string {
  switch (column) {
    case 'fields':
      return JSON.stringify([...(JSON.parse(row.fields) as string[]), 'contact.email']);
    case 'at':
      return new Date(Date.parse(row.at) + 1000).toISOString();
    case 'prev_hash':
    case 'hash':
      return flipHex(row[column]);
    case 'action':
    case 'outcome':
    case 'customer_id':
    case 'actor_id':
    case 'actor_type':
    case 'actor_role':
    case 'purpose':
    case 'reason':
    case 'request_id': {
      const old = row[column];
      return old === null ? 'tampered' : `${old}x`;
    }
  }
}

const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('column'), column: fc.constantFrom(...columns), pick: fc.nat() }),
  fc.record({ kind: fc.constant('delete'), pick: fc.nat() }),
  fc.record({ kind: fc.constant('swap'), pick: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('renumber'), pick: fc.nat() }),
  fc.record({ kind: fc.constant('truncate'), pick: fc.nat(), dropCheckpoints: fc.boolean() }),
  fc.record({
    kind: fc.constant('forge'),
    pick: fc.nat(),
    how: fc.constantFrom('signature', 'hash', 'at', 'foreign-key', 'public-key'),
  }),
  fc.record({ kind: fc.constant('rewrite'), pick: fc.nat() }),
);
type Mutation = typeof mutationArb extends fc.Arbitrary<infer M> ? M : never;

/** Applies one mutation with plain SQL, as someone with write access to the file would. */
async function mutate(
  db: Db,
  ws: string,
  n: number,
  cps: readonly number[],
  m: Mutation,
): Promise<{ expected: number; description: string }> {
  const rows = await entriesOf(db, ws);
  const at = (m.pick % n) + 1;
  const row = (seq: number) => rows[seq - 1]!;
  const where = (seq: number) => sql`workspace_id = ${ws} and seq = ${seq}`;
  switch (m.kind) {
    case 'column': {
      await sql`update audit_entry set ${sql.ref(m.column)} = ${tamperedValue(m.column, row(at))} where ${where(at)}`.execute(
        db,
      );
      return { expected: at, description: `${m.column} of ${at}` };
    }
    case 'delete': {
      await sql`delete from audit_entry where ${where(at)}`.execute(db);
      return { expected: at, description: `delete ${at}` };
    }
    case 'swap': {
      let other = (m.other % n) + 1;
      if (other === at) other = (at % n) + 1;
      const [i, j] = at < other ? [at, other] : [other, at];
      // Everything but the key, so the row at seq i now holds entry j and the reverse.
      const content = (r: AuditEntryTable) =>
        Object.fromEntries(
          Object.entries(r).filter(([k]) => k !== 'workspace_id' && k !== 'seq'),
        ) as Omit<AuditEntryTable, 'workspace_id' | 'seq'>;
      await db
        .updateTable('audit_entry')
        .set(content(row(j)))
        .where('workspace_id', '=', ws)
        .where('seq', '=', i)
        .execute();
      await db
        .updateTable('audit_entry')
        .set(content(row(i)))
        .where('workspace_id', '=', ws)
        .where('seq', '=', j)
        .execute();
      return { expected: i, description: `swap ${i} and ${j}` };
    }
    case 'renumber': {
      await sql`update audit_entry set seq = ${n + 100} where ${where(at)}`.execute(db);
      return { expected: at, description: `renumber ${at}` };
    }
    case 'truncate': {
      const k = (m.pick % n) + 1;
      let remaining = n - k;
      const inside = Array.from({ length: n - 1 }, (_, x) => x + 1).filter((s) => !cps.includes(s));
      // Dropping the checkpoints as well is detectable only when the cut falls inside a batch.
      const dropCheckpoints = m.dropCheckpoints && inside.length > 0;
      if (dropCheckpoints) remaining = inside[m.pick % inside.length]!;
      await db
        .deleteFrom('audit_entry')
        .where('workspace_id', '=', ws)
        .where('seq', '>', remaining)
        .execute();
      if (!dropCheckpoints) {
        return { expected: remaining + 1, description: `truncate to ${remaining}` };
      }
      await db
        .deleteFrom('audit_checkpoint')
        .where('workspace_id', '=', ws)
        .where('seq', '>', remaining)
        .execute();
      const lastSigned = Math.max(0, ...cps.filter((c) => c < remaining));
      return {
        expected: lastSigned + 1,
        description: `truncate to ${remaining} with its checkpoints`,
      };
    }
    case 'forge': {
      const seq = cps[m.pick % cps.length]!;
      const cp = await db
        .selectFrom('audit_checkpoint')
        .selectAll()
        .where('workspace_id', '=', ws)
        .where('seq', '=', seq)
        .executeTakeFirstOrThrow();
      const other = new Signer(randomKey());
      const change = {
        signature: { signature: other.sign(ws, 'not the checkpoint') },
        hash: { hash: flipHex(cp.hash) },
        at: { at: new Date(Date.parse(cp.at) + 1).toISOString() },
        // Claims another key; the signature itself is untouched.
        'public-key': { public_key: other.publicKey(ws) },
        // Re-signed by someone else's key, published beside it.
        'foreign-key': {
          public_key: other.publicKey(ws),
          signature: other.sign(ws, checkpointMessage(ws, seq, cp.hash, cp.at)),
        },
      }[m.how];
      await db
        .updateTable('audit_checkpoint')
        .set(change)
        .where('workspace_id', '=', ws)
        .where('seq', '=', seq)
        .execute();
      return { expected: seq, description: `forge checkpoint ${seq} (${m.how})` };
    }
    case 'rewrite': {
      // Change one entry and recompute every hash after it: the chain is consistent again,
      // so only the first signed checkpoint at or after it can tell.
      let prev = at === 1 ? GENESIS_HASH : row(at - 1).hash;
      for (let s = at; s <= n; s += 1) {
        const entry = chained(row(s));
        const changed = s === at ? { ...entry, action: `${entry.action}x` } : entry;
        const hash = entryHash(prev, changed);
        await db
          .updateTable('audit_entry')
          .set({ action: changed.action, prev_hash: prev, hash })
          .where('workspace_id', '=', ws)
          .where('seq', '=', s)
          .execute();
        prev = hash;
      }
      return {
        expected: cps.find((c) => c >= at)!,
        description: `rewrite from ${at}`,
      };
    }
  }
}

/** Every kind of mutation on one fixed chain (batches of 2, 1 and 3), besides the random ones. */
const everyMutationOnce: [Groups, Mutation][] = (() => {
  const unit = (action: string, outcome: AuditOutcome): Groups[number][number] => [
    { action, customerId: null, purpose: null, fields: ['contact.email'], outcome, reason: null },
    { type: 'system', id: 'test', role: null, requestId: null },
  ];
  const groups: Groups = [
    [unit('a', 'done'), unit('b', 'allowed')],
    [unit('c', 'denied')],
    [unit('d', 'failed'), unit('e', 'done'), unit('f', 'done')],
  ];
  const mutations: Mutation[] = [
    ...columns.map((column, i) => ({ kind: 'column' as const, column, pick: i })),
    { kind: 'delete', pick: 2 },
    { kind: 'delete', pick: 5 },
    { kind: 'swap', pick: 1, other: 4 },
    { kind: 'renumber', pick: 3 },
    { kind: 'truncate', pick: 1, dropCheckpoints: false },
    { kind: 'truncate', pick: 5, dropCheckpoints: false },
    { kind: 'truncate', pick: 0, dropCheckpoints: true },
    ...(['signature', 'hash', 'at', 'foreign-key', 'public-key'] as const).map((how, i) => ({
      kind: 'forge' as const,
      pick: i,
      how,
    })),
    { kind: 'rewrite', pick: 0 },
    { kind: 'rewrite', pick: 3 },
  ];
  return mutations.map((m) => [groups, m]);
})();

let runNo = 0;
function freshWorkspace(dialect: TestDialect): string {
  runNo += 1;
  return `ws-${dialect}-${process.pid}-${Date.now().toString(36)}-${runNo}`;
}

forEachDialect((dialect) => {
  describe(`audit chain on ${dialect}`, () => {
    let rt: TestRuntime;
    let db: Db;
    beforeAll(async () => {
      rt = await startRuntime(dialect);
      db = rt.inspect.data;
    });
    afterAll(async () => {
      await rt.close();
    });

    it('appends concurrent units across workspaces into chains that verify', async () => {
      await fc.assert(
        fc.asyncProperty(
          groupsArb(1),
          fc.array(fc.boolean(), { maxLength: 25 }),
          async (groups, sides) => {
            const wsA = freshWorkspace(dialect);
            const wsB = freshWorkspace(dialect);
            let u = 0;
            const planned = groups.map((g) =>
              g.map(([event, actor]) => [event, actor, (sides[u++] ?? false) ? wsB : wsA] as const),
            );
            try {
              await appendGroups(rt, planned);
              const result = await verify(rt);
              const n = planned.flat().length;
              const others = await countEntriesOutside(db, [wsA, wsB]);
              expect(result).toMatchObject({ ok: true, entries: others + n });
              for (const ws of [wsA, wsB]) {
                const expected = planned.flat().filter(([, , w]) => w === ws);
                const rows = await entriesOf(db, ws);
                expect(rows.map((r) => r.seq)).toEqual(expected.map((_, i) => i + 1));
                rows.forEach((r, i) => {
                  const [event, actor] = expected[i]!;
                  expect(r).toMatchObject({
                    actor_type: actor.type,
                    actor_id: actor.id,
                    actor_role: actor.role,
                    request_id: actor.requestId,
                    action: event.action,
                    customer_id: event.customerId,
                    purpose: event.purpose,
                    fields: JSON.stringify([...(event.fields ?? [])].sort()),
                    outcome: event.outcome,
                    reason: event.reason,
                  });
                });
                // One signed checkpoint per batch that touched the workspace, at its head.
                const sizes = planned.map((g) => g.filter(([, , w]) => w === ws).length);
                expect(await checkpointSeqs(db, ws)).toEqual(boundaries(sizes));
              }
            } finally {
              await purge(db, [wsA, wsB]);
            }
          },
        ),
        { numRuns: 20 },
      );
    });

    it('names the first bad sequence number after any one tampering', async () => {
      await fc.assert(
        fc.asyncProperty(groupsArb(2), mutationArb, async (groups, mutation) => {
          const ws = freshWorkspace(dialect);
          try {
            await appendGroups(
              rt,
              groups.map((g) => g.map(([event, actor]) => [event, actor, ws] as const)),
            );
            const n = groups.flat().length;
            const cps = await checkpointSeqs(db, ws);
            expect(cps).toEqual(boundaries(groups.map((g) => g.length)));
            expect((await verify(rt)).ok).toBe(true);
            const { expected, description } = await mutate(db, ws, n, cps, mutation);
            const result = await verify(rt);
            expect({ description, result }).toMatchObject({
              description,
              result: { ok: false, workspaceId: ws, firstBadSeq: expected },
            });
          } finally {
            await purge(db, [ws]);
          }
        }),
        { numRuns: 30, examples: everyMutationOnce },
      );
    });

    it('reports a truncation at a checkpoint boundary while the head row records more', async () => {
      const ws = freshWorkspace(dialect);
      const actor = { ...rt.systemActor(), workspaceId: ws };
      try {
        for (let i = 0; i < 3; i += 1)
          await recordAudit(rt.ctx, actor, { action: 'a', outcome: 'done' });
        expect((await verify(rt)).ok).toBe(true);
        // Cut the last batch with its checkpoint; the head row still says seq 3.
        await db
          .deleteFrom('audit_entry')
          .where('workspace_id', '=', ws)
          .where('seq', '>', 2)
          .execute();
        await db
          .deleteFrom('audit_checkpoint')
          .where('workspace_id', '=', ws)
          .where('seq', '>', 2)
          .execute();
        expect(await verify(rt)).toMatchObject({ ok: false, workspaceId: ws, firstBadSeq: 3 });
      } finally {
        await purge(db, [ws]);
      }
    });

    it('reports a workspace whose entries and checkpoints were all deleted', async () => {
      const ws = freshWorkspace(dialect);
      const actor = { ...rt.systemActor(), workspaceId: ws };
      try {
        await recordAudit(rt.ctx, actor, { action: 'a', outcome: 'done' });
        await recordAudit(rt.ctx, actor, { action: 'b', outcome: 'done' });
        await db.deleteFrom('audit_entry').where('workspace_id', '=', ws).execute();
        await db.deleteFrom('audit_checkpoint').where('workspace_id', '=', ws).execute();
        expect(await verify(rt)).toMatchObject({ ok: false, workspaceId: ws, firstBadSeq: 1 });
      } finally {
        await purge(db, [ws]);
      }
    });

    it('stores what the event names, and only that', async () => {
      const ws = freshWorkspace(dialect);
      const actor: Actor = { ...rt.systemActor(), workspaceId: ws, requestId: 'req-7' };
      try {
        await recordAudit(rt.ctx, actor, {
          action: 'customer.read',
          customerId: '01928c1e-0000-7000-8000-00000000abcd',
          purpose: 'loyalty_program',
          fields: ['identity.givenName', 'contact.email'],
          outcome: 'allowed',
          reason: 'task 42',
        });
        const rows = await entriesOf(db, ws);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({
          workspace_id: ws,
          seq: 1,
          actor_type: 'system',
          actor_id: 'test',
          actor_role: null,
          action: 'customer.read',
          customer_id: '01928c1e-0000-7000-8000-00000000abcd',
          purpose: 'loyalty_program',
          fields: JSON.stringify(['contact.email', 'identity.givenName']),
          outcome: 'allowed',
          reason: 'task 42',
          request_id: 'req-7',
          prev_hash: GENESIS_HASH,
        });
        expect(rows[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
      } finally {
        await purge(db, [ws]);
      }
    });

    it('never holds the personal values of customers created and read through the API', async () => {
      const agent = await rt.token('agent');
      const given = 'Zephyrine-canary-41';
      const email = 'zephyrine.canary.41@example.org';
      const created = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: {
          consents: [{ purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' }],
          identity: { givenName: given },
          contact: { email },
        },
      });
      expect(created.statusCode).toBe(201);
      const { id } = created.json<{ id: string }>();
      const read = await rt.app.inject({
        url: `/api/v1/customers/${id}?purpose=loyalty_program`,
        headers: authHeader(agent),
      });
      expect(read.statusCode).toBe(200);
      expect(read.body).toContain(given);
      const rows = await db.selectFrom('audit_entry').selectAll().execute();
      const aboutCustomer = rows.filter((r) => r.customer_id === id);
      expect(aboutCustomer.length).toBeGreaterThanOrEqual(2);
      const dump = Buffer.from(JSON.stringify(rows), 'utf8');
      for (const canary of [given, email, 'Zephyrine', 'zephyrine']) {
        expect(countCanary(dump, canary)).toBe(0);
      }
      expect((await verify(rt)).ok).toBe(true);
    });

    describe('when the audit store refuses writes', () => {
      const install = async (when: string) => {
        if (dialect === 'sqlite') {
          await sql
            .raw(
              `create trigger audit_down before insert on audit_entry ${when === '' ? '' : `when ${when}`} begin select raise(abort, 'audit down'); end`,
            )
            .execute(db);
        } else {
          await sql
            .raw(
              `create or replace function audit_down() returns trigger language plpgsql as $$ begin raise exception 'audit down'; end $$`,
            )
            .execute(db);
          await sql
            .raw(
              `create trigger audit_down before insert on audit_entry for each row ${when === '' ? '' : `when (${when})`} execute function audit_down()`,
            )
            .execute(db);
        }
      };
      const uninstall = async () => {
        await sql
          .raw(
            `drop trigger if exists audit_down${dialect === 'postgres' ? ' on audit_entry' : ''}`,
          )
          .execute(db);
      };

      it('rejects with audit_unavailable and adds no entry', async () => {
        const ws = freshWorkspace(dialect);
        const actor = { ...rt.systemActor(), workspaceId: ws };
        try {
          await recordAudit(rt.ctx, actor, { action: 'before', outcome: 'done' });
          await install('');
          try {
            const attempt = recordAudit(rt.ctx, actor, { action: 'refused', outcome: 'done' });
            await expect(attempt).rejects.toBeInstanceOf(DomainError);
            await expect(attempt).rejects.toMatchObject({ code: 'audit_unavailable' });
          } finally {
            await uninstall();
          }
          const rows = await entriesOf(db, ws);
          expect(rows.map((r) => r.action)).toEqual(['before']);
          expect(await checkpointSeqs(db, ws)).toEqual([1]);
          await recordAudit(rt.ctx, actor, { action: 'after', outcome: 'done' });
          expect((await entriesOf(db, ws)).map((r) => [r.seq, r.action])).toEqual([
            [1, 'before'],
            [2, 'after'],
          ]);
          expect((await verify(rt)).ok).toBe(true);
        } finally {
          await purge(db, [ws]);
        }
      });

      it('rolls back the work of a unit whose audit entry cannot be written', async () => {
        const ws = freshWorkspace(dialect);
        const actor = { ...rt.systemActor(), workspaceId: ws };
        await install('');
        try {
          const attempt = rt.ctx.data.batch.run(EVERY_WORKSPACE, async (scope) => {
            await scope.trx
              .insertInto('workspace')
              .values({ id: ws, name: ws, created_at: new Date().toISOString() })
              .execute();
            await appendAudit(rt.ctx, scope, actor, {
              action: 'workspace.create',
              outcome: 'done',
            });
          });
          await expect(attempt).rejects.toMatchObject({ code: 'audit_unavailable' });
        } finally {
          await uninstall();
        }
        const ws_ = await db.selectFrom('workspace').select('id').where('id', '=', ws).execute();
        expect(ws_).toEqual([]);
        expect(await entriesOf(db, ws)).toEqual([]);
      });

      it('fails only the refused unit of a batch and keeps the chain whole', async () => {
        const ws = freshWorkspace(dialect);
        const actor = { ...rt.systemActor(), workspaceId: ws };
        await install(`NEW.action = 'refused'`);
        try {
          const results = await Promise.allSettled([
            recordAudit(rt.ctx, actor, { action: 'first', outcome: 'done' }),
            recordAudit(rt.ctx, actor, { action: 'refused', outcome: 'done' }),
            recordAudit(rt.ctx, actor, { action: 'third', outcome: 'done' }),
          ]);
          expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
          expect(results[1]).toMatchObject({ reason: { code: 'audit_unavailable' } });
        } finally {
          await uninstall();
        }
        try {
          expect((await entriesOf(db, ws)).map((r) => [r.seq, r.action])).toEqual([
            [1, 'first'],
            [2, 'third'],
          ]);
          expect(await checkpointSeqs(db, ws)).toEqual([2]);
          expect(await verify(rt)).toMatchObject({ ok: true });
          // The next batch continues the chain from its real head.
          await recordAudit(rt.ctx, actor, { action: 'later', outcome: 'done' });
          expect((await entriesOf(db, ws)).map((r) => r.seq)).toEqual([1, 2, 3]);
          expect(await verify(rt)).toMatchObject({ ok: true });
        } finally {
          await purge(db, [ws]);
        }
      });
    });

    it('keeps the chain whole when another unit of the batch fails after appending', async () => {
      const ws = freshWorkspace(dialect);
      const actor = { ...rt.systemActor(), workspaceId: ws };
      try {
        const results = await Promise.allSettled([
          recordAudit(rt.ctx, actor, { action: 'first', outcome: 'done' }),
          rt.ctx.data.batch.run(EVERY_WORKSPACE, async (scope) => {
            await appendAudit(rt.ctx, scope, actor, { action: 'undone', outcome: 'done' });
            throw new Error('the work after the audit entry failed');
          }),
          recordAudit(rt.ctx, actor, { action: 'third', outcome: 'done' }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect((await entriesOf(db, ws)).map((r) => [r.seq, r.action])).toEqual([
          [1, 'first'],
          [2, 'third'],
        ]);
        expect(await checkpointSeqs(db, ws)).toEqual([2]);
        expect(await verify(rt)).toMatchObject({ ok: true });
        await recordAudit(rt.ctx, actor, { action: 'later', outcome: 'done' });
        expect(await verify(rt)).toMatchObject({ ok: true });
      } finally {
        await purge(db, [ws]);
      }
    });
  });
});
