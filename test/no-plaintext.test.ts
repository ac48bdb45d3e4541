import { execFile } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openField } from '../src/platform/crypto/index.js';
import type { DataDb } from '../src/platform/db/schema.js';
import { EVERY_WORKSPACE_OPTIONS } from '../src/platform/db/row-scope.js';
import {
  authHeader,
  countCanary,
  createPgDatabases,
  pgDumpArgs,
  pgDumpEnv,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../src/testing/harness.js';

const run = promisify(execFile);
const consents = [
  { purpose: 'loyalty_program', noticeVersion: '1', method: 'web_form' },
  { purpose: 'personalized_offers', noticeVersion: '1', method: 'web_form' },
];

/** Distinctive values that occur nowhere else; each customer gets its own set. */
function canaries(n: number) {
  const tag = `Cnry${n}x${Math.random().toString(36).slice(2, 8)}`;
  const digits = String(600000000 + Math.floor(Math.random() * 99999999)).slice(0, 9);
  return {
    givenName: `${tag}Given`,
    familyName: `${tag}Family`,
    email: `${tag.toLowerCase()}.mail@canary-domain.test`,
    phone: `+34 ${digits}`,
    phoneE164: `+34${digits}`,
    street: `${tag} Street 5`,
    interest: `${tag}Interest`,
    updatedGiven: `${tag}Updated`,
    badEmail: `${tag}-not-an-email`,
  };
}

type Canaries = ReturnType<typeof canaries>;

function allValues(c: Canaries): string[] {
  return [
    c.givenName,
    c.familyName,
    c.email,
    c.phoneE164,
    c.phone.slice(4),
    c.street,
    c.interest,
    c.updatedGiven,
    c.badEmail,
  ];
}

forEachDialect((dialect) => {
  describe(`no plaintext anywhere on ${dialect}`, () => {
    let rt: TestRuntime;
    let agent: string;
    let officer: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect);
      agent = await rt.token('agent');
      officer = await rt.token('privacy_officer');
    });
    afterAll(async () => {
      await rt.close();
    });

    it('holds no canary in any store file, WAL, key store, dump or log after create, read, update, search, list and erase', async () => {
      const sets = Array.from({ length: 6 }, (_, i) => canaries(i));
      const ids: string[] = [];
      for (const c of sets) {
        const res = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers',
          headers: authHeader(agent),
          payload: {
            consents,
            identity: { givenName: c.givenName, familyName: c.familyName, birthDate: '1985-07-14' },
            contact: {
              email: c.email,
              phone: c.phone,
              postalAddress: {
                lines: [c.street],
                locality: 'Sevilla',
                postalCode: '41001',
                country: 'ES',
              },
            },
            preferences: { interests: [c.interest], channels: ['email', 'sms'] },
          },
        });
        expect(res.statusCode, res.body).toBe(201);
        ids.push(res.json<{ id: string }>().id);
        // A refused request with a canary in it: neither the answer nor the log may repeat it.
        const bad = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers',
          headers: authHeader(agent),
          payload: { consents, contact: { email: c.badEmail } },
        });
        expect(bad.statusCode).toBe(400);
        expect(bad.body).not.toContain(c.badEmail);
      }
      for (const [i, id] of ids.entries()) {
        const c = sets[i]!;
        const read = await rt.app.inject({
          url: `/api/v1/customers/${id}?purpose=loyalty_program`,
          headers: authHeader(agent),
        });
        expect(read.body).toContain(c.givenName);
        const search = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers/search',
          headers: authHeader(agent),
          payload: { email: c.email, purpose: 'personalized_offers' },
        });
        expect(search.body).toContain(c.interest);
        const byPhone = await rt.app.inject({
          method: 'POST',
          url: '/api/v1/customers/search',
          headers: authHeader(agent),
          payload: { phone: c.phone, purpose: 'loyalty_program' },
        });
        expect(byPhone.json<{ items: unknown[] }>().items).toHaveLength(1);
        const upd = await rt.app.inject({
          method: 'PATCH',
          url: `/api/v1/customers/${id}`,
          headers: authHeader(agent),
          payload: { identity: { givenName: c.updatedGiven } },
        });
        expect(upd.statusCode).toBe(200);
      }
      const list = await rt.app.inject({
        url: '/api/v1/customers?limit=100',
        headers: authHeader(agent),
      });
      expect(list.statusCode).toBe(200);
      for (const c of sets) for (const v of allValues(c)) expect(list.body).not.toContain(v);
      // Erase half; the other half stays stored (encrypted).
      for (const id of ids.slice(0, 3)) {
        const res = await rt.app.inject({
          method: 'DELETE',
          url: `/api/v1/customers/${id}`,
          headers: authHeader(officer),
        });
        expect(res.statusCode).toBe(200);
      }

      const scan = (label: string, bytes: Buffer) => {
        expect(bytes.length, `${label} is empty`).toBeGreaterThan(1000);
        for (const c of sets)
          for (const v of allValues(c)) expect(countCanary(bytes, v), `${label}: ${v}`).toBe(0);
      };
      const live = await rt.storeBytes();
      scan('stores while running', live);
      // Sanity check of the scanner itself: a value that is stored in plaintext is found.
      expect(countCanary(live, 'loyalty_program')).toBeGreaterThan(0);
      scan('server log', Buffer.from(rt.logs.text()));
      expect(rt.logs.lines.length).toBeGreaterThan(0);
      await rt.stop();
      const closed = await rt.storeBytes();
      scan('stores after shutdown', closed);
      if (dialect === 'sqlite') {
        const files = await readdir(rt.dataDir);
        expect(files).toEqual(
          expect.arrayContaining(['custodia.db', 'keystore.db', 'keyring.json']),
        );
      }
      rt = await rt.restart();
    });

    it('a copy of the data store taken before an erasure cannot be decrypted after it with the live key store', async () => {
      const c = canaries(99);
      const res = await rt.app.inject({
        method: 'POST',
        url: '/api/v1/customers',
        headers: authHeader(agent),
        payload: { consents, identity: { givenName: c.givenName }, contact: { email: c.email } },
      });
      const id = res.json<{ id: string }>().id;

      // The copy: a consistent backup of the data store as it is now.
      let copy: Kysely<DataDb>;
      let dropCopy: () => Promise<void>;
      if (dialect === 'sqlite') {
        const file = path.join(rt.dataDir, 'backup-copy.db');
        await sql`vacuum into ${file}`.execute(rt.inspect.data);
        const conn = new SqliteDatabase(file, { readonly: true });
        copy = new Kysely<DataDb>({ dialect: new SqliteDialect({ database: conn }) });
        dropCopy = async () => {
          await copy.destroy();
          await rm(file, { force: true });
        };
      } else {
        const target = await createPgDatabases();
        const dumpFile = path.join(rt.dataDir, 'backup-copy.dump');
        // The backup procedure of the README: dump as the owner with every workspace's rows.
        await run(
          'pg_dump',
          pgDumpArgs(rt.config.databaseUrl!, '--format=custom', '--file', dumpFile),
          { env: pgDumpEnv() },
        );
        await run('pg_restore', [
          '--no-owner',
          '--exit-on-error',
          '--dbname',
          target.dataUrl,
          dumpFile,
        ]);
        copy = new Kysely<DataDb>({
          dialect: new PostgresDialect({
            pool: new pg.Pool({
              connectionString: target.dataUrl,
              max: 1,
              options: EVERY_WORKSPACE_OPTIONS,
            }),
          }),
        });
        dropCopy = async () => {
          await copy.destroy();
          await target.drop();
        };
      }
      try {
        const rows = await copy
          .selectFrom('customer_field')
          .selectAll()
          .where('customer_id', '=', id)
          .execute();
        expect(rows.map((r) => r.field).sort()).toEqual(['email', 'givenName']);

        const tryOpen = async (): Promise<string[]> => {
          const keys = await rt.inspect.keys.selectFrom('data_key').selectAll().execute();
          const opened: string[] = [];
          for (const row of rows) {
            for (const k of keys) {
              try {
                const key = rt.ctx.keyProvider.unwrapDataKey(k.wrapped, k.kek_version, {
                  workspaceId: k.workspace_id,
                  customerId: k.customer_id,
                  category: k.category,
                  keyId: k.id,
                });
                opened.push(
                  openField(key, row.ciphertext, {
                    workspaceId: row.workspace_id,
                    customerId: row.customer_id,
                    category: row.category,
                    field: row.field,
                    keyId: row.data_key_id,
                  }),
                );
              } catch {
                // Not this key.
              }
            }
          }
          return opened;
        };
        // Before the erasure the live key store opens the copy: the test can tell the difference.
        expect((await tryOpen()).join('|')).toContain(c.givenName);

        const erased = await rt.app.inject({
          method: 'DELETE',
          url: `/api/v1/customers/${id}`,
          headers: authHeader(officer),
        });
        expect(erased.statusCode).toBe(200);
        // The copy still holds the ciphertext, but no live key opens any of it.
        expect(
          await copy
            .selectFrom('customer_field')
            .select('field')
            .where('customer_id', '=', id)
            .execute(),
        ).toHaveLength(2);
        expect(await tryOpen()).toEqual([]);
        const copyBytes = await readFile(
          path.join(rt.dataDir, dialect === 'sqlite' ? 'backup-copy.db' : 'backup-copy.dump'),
        );
        expect(copyBytes.length).toBeGreaterThan(0);
        for (const v of [c.givenName, c.email]) expect(countCanary(copyBytes, v)).toBe(0);
      } finally {
        await dropCopy();
      }
    });
  });
});
