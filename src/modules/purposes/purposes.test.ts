import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authHeader,
  forEachDialect,
  startRuntime,
  type TestRuntime,
} from '../../testing/harness.js';
import { verifyAuditChain } from '../audit/index.js';
import {
  defaultPurposes,
  noticeContentHash,
  type DataCategory,
  type LawfulBasis,
  type NoticeLanguage,
} from './index.js';

interface PurposeDto {
  key: string;
  lawfulBasis: LawfulBasis;
  categories: DataCategory[];
  retentionDays: number;
  noticeVersion: string;
  noticeVersions: string[];
  name: { en: string; es: string };
  description: { en: string; es: string };
  status: 'active' | 'retired';
}

interface NoticeDto {
  purpose: string;
  version: string;
  language: NoticeLanguage;
  lawfulBasis: LawfulBasis;
  categories: DataCategory[];
  retentionDays: number;
  name: string;
  description: string;
  contentHash: string;
  createdAt: string;
}

interface ErrorBody {
  error: { code: string; fields?: string[] };
}

interface ConsentsDto {
  current: { purpose: string; state: string; noticeVersion: string; grantEventId: string }[];
  history: { event: string; purpose: string; endsEventId: string | null }[];
}

const seeded: [string, LawfulBasis, DataCategory[], string, string][] = [
  [
    'customer_support',
    'legitimate_interest',
    ['identity', 'contact', 'interactions'],
    'Customer support',
    'Atención al cliente',
  ],
  ['health_services', 'explicit_consent', ['health'], 'Health services', 'Servicios de salud'],
  [
    'loyalty_program',
    'contract',
    ['identity', 'contact', 'commercial'],
    'Loyalty programme',
    'Programa de fidelización',
  ],
  ['payments', 'contract', ['payment'], 'Payments', 'Pagos'],
  [
    'personalized_offers',
    'consent',
    ['contact', 'preferences', 'commercial'],
    'Personalised offers',
    'Ofertas personalizadas',
  ],
];

/** The hash a notice should carry, recomputed from what the API shows. */
function expectedHash(n: NoticeDto): string {
  return noticeContentHash({
    purpose: n.purpose,
    version: n.version,
    language: n.language,
    lawfulBasis: n.lawfulBasis,
    categories: n.categories,
    retentionDays: n.retentionDays,
    name: n.name,
    description: n.description,
  });
}

const grant = (purpose: string, noticeVersion = '1') => ({
  purpose,
  noticeVersion,
  method: 'web_form',
});

describe('noticeContentHash', () => {
  it('changes with every term and text the customer is shown, and not with the order of categories', () => {
    const base = {
      purpose: 'newsletter',
      version: '1',
      language: 'en',
      lawfulBasis: 'consent',
      categories: ['contact', 'preferences'],
      retentionDays: 365,
      name: 'Newsletter',
      description: 'We send you our newsletter.',
    } as const;
    const hash = noticeContentHash(base);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(noticeContentHash({ ...base, categories: ['preferences', 'contact'] })).toBe(hash);
    const variants = [
      { purpose: 'newsletters' },
      { version: '2' },
      { language: 'es' },
      { lawfulBasis: 'legitimate_interest' },
      { categories: ['contact'] },
      { retentionDays: 366 },
      { name: 'Newsletters' },
      { description: 'We send you our newsletter monthly.' },
    ] as const;
    for (const change of variants) {
      expect(noticeContentHash({ ...base, ...change }), JSON.stringify(change)).not.toBe(hash);
    }
  });
});

let seq = 0;

forEachDialect((dialect) => {
  describe(`purposes on ${dialect}`, () => {
    let rt: TestRuntime;
    let admin: string;
    let agent: string;
    beforeAll(async () => {
      rt = await startRuntime(dialect);
      admin = await rt.token('admin');
      agent = await rt.token('agent');
    });
    afterAll(async () => {
      await rt.close();
    });

    const send = (method: 'GET' | 'POST' | 'PATCH', url: string, token: string, payload?: object) =>
      rt.app.inject({
        method,
        url,
        headers: authHeader(token),
        ...(payload === undefined ? {} : { payload }),
      });

    function uniqueKey(base = 'newsletter'): string {
      seq += 1;
      return `${base}_${seq}`;
    }

    async function createPurpose(body: Partial<PurposeDto> = {}): Promise<PurposeDto> {
      const res = await send('POST', '/api/v1/purposes', admin, {
        key: uniqueKey(),
        lawfulBasis: 'consent',
        categories: ['contact'],
        retentionDays: 365,
        name: { en: 'Newsletter', es: 'Boletín' },
        description: { en: 'We send you our newsletter.', es: 'Te enviamos nuestro boletín.' },
        ...body,
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<PurposeDto>();
    }

    async function purpose(key: string): Promise<PurposeDto | undefined> {
      const res = await send('GET', '/api/v1/purposes', agent);
      expect(res.statusCode).toBe(200);
      return res.json<{ items: PurposeDto[] }>().items.find((p) => p.key === key);
    }

    async function notices(key: string): Promise<NoticeDto[]> {
      const res = await send('GET', `/api/v1/purposes/${key}/notices`, agent);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<{ items: NoticeDto[] }>().items;
    }

    async function notice(key: string, version: string, language: NoticeLanguage) {
      const res = await send(
        'GET',
        `/api/v1/purposes/${key}/notices/${version}?language=${language}`,
        agent,
      );
      expect(res.statusCode, res.body).toBe(200);
      return res.json<NoticeDto>();
    }

    async function createCustomer(body: object): Promise<string> {
      const res = await send('POST', '/api/v1/customers', agent, body);
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    }

    async function readCustomer(id: string, purposeKey: string) {
      const res = await send('GET', `/api/v1/customers/${id}?purpose=${purposeKey}`, agent);
      expect(res.statusCode, res.body).toBe(200);
      return res.json<Record<string, unknown>>();
    }

    async function auditOf(action: string, purposeKey: string) {
      return rt.inspect.data
        .selectFrom('audit_entry')
        .select(['action', 'purpose', 'outcome', 'reason', 'actor_role', 'customer_id'])
        .where('action', '=', action)
        .where('purpose', '=', purposeKey)
        .orderBy('seq')
        .execute();
    }

    /** The categories of the customer's stored fields and of their data keys. */
    async function holdings(customerId: string) {
      const fields = await rt.inspect.data
        .selectFrom('customer_field')
        .select(['category', 'field'])
        .where('customer_id', '=', customerId)
        .execute();
      const keys = await rt.inspect.keys
        .selectFrom('data_key')
        .select('category')
        .where('customer_id', '=', customerId)
        .execute();
      return {
        fields: fields.map((f) => `${f.category}.${f.field}`).sort(),
        keys: keys.map((k) => k.category).sort(),
      };
    }

    async function expectChainOk() {
      const result = await verifyAuditChain(rt.ctx.data, (ws) => rt.ctx.signer.publicKey(ws));
      expect(result.ok).toBe(true);
    }

    it('seeds the five default purposes, each with its basis, categories and texts in Spanish and English', async () => {
      const res = await send('GET', '/api/v1/purposes', agent);
      expect(res.statusCode).toBe(200);
      const items = res.json<{ items: PurposeDto[] }>().items;
      const byKey = new Map(items.map((p) => [p.key, p]));
      for (const [key, lawfulBasis, categories, en, es] of seeded) {
        const description = defaultPurposes.find((p) => p.key === key)?.description;
        expect(byKey.get(key)).toEqual({
          key,
          lawfulBasis,
          categories,
          retentionDays: expect.any(Number) as number,
          noticeVersion: '1',
          noticeVersions: ['1'],
          name: { en, es },
          description,
          status: 'active',
        });
      }
    });

    it('publishes notice version 1 of every seeded purpose in both languages, with a hash of its content', async () => {
      for (const [key, lawfulBasis, categories, en, es] of seeded) {
        const items = await notices(key);
        expect(items.map((n) => [n.version, n.language])).toEqual([
          ['1', 'en'],
          ['1', 'es'],
        ]);
        expect(items.map((n) => n.name)).toEqual([en, es]);
        for (const n of items) {
          expect(n).toMatchObject({ purpose: key, lawfulBasis, categories });
          expect(n.contentHash).toBe(expectedHash(n));
        }
        expect(items[0]!.contentHash).not.toBe(items[1]!.contentHash);
        expect(await notice(key, '1', 'es')).toEqual(items[1]);
      }
    });

    it('lets an admin create a purpose with notice version 1, audited; a taken key is a conflict', async () => {
      const created = await createPurpose({ categories: ['contact', 'preferences'] });
      expect(created).toMatchObject({
        lawfulBasis: 'consent',
        categories: ['contact', 'preferences'],
        noticeVersion: '1',
        noticeVersions: ['1'],
        status: 'active',
      });
      const es = await notice(created.key, '1', 'es');
      expect(es).toMatchObject({ name: 'Boletín', description: 'Te enviamos nuestro boletín.' });
      expect(es.contentHash).toBe(expectedHash(es));

      for (const key of [created.key, 'payments']) {
        const again = await send('POST', '/api/v1/purposes', admin, {
          key,
          lawfulBasis: 'contract',
          categories: ['identity'],
          retentionDays: 30,
          name: { en: 'Other', es: 'Otro' },
          description: { en: 'Other.', es: 'Otro.' },
        });
        expect(again.statusCode).toBe(409);
        expect(again.json<ErrorBody>().error).toMatchObject({
          code: 'conflict',
          fields: ['body.key'],
        });
      }
      expect(await purpose(created.key)).toEqual(created);
      expect((await purpose('payments'))?.lawfulBasis).toBe('contract');
      expect(await auditOf('purpose.create', created.key)).toEqual([
        expect.objectContaining({ outcome: 'done', actor_role: 'admin', reason: 'notice:1' }),
      ]);
    });

    it('refuses health data on any basis but explicit consent (400 naming body.lawfulBasis)', async () => {
      const key = uniqueKey('wellbeing');
      const refused = await send('POST', '/api/v1/purposes', admin, {
        key,
        lawfulBasis: 'consent',
        categories: ['health'],
        retentionDays: 365,
        name: { en: 'Wellbeing', es: 'Bienestar' },
        description: { en: 'Wellbeing tips.', es: 'Consejos de bienestar.' },
      });
      expect(refused.statusCode).toBe(400);
      expect(refused.json<ErrorBody>().error).toMatchObject({
        code: 'invalid_input',
        fields: ['body.lawfulBasis'],
      });
      expect(await purpose(key)).toBeUndefined();

      const newsletter = await createPurpose();
      const added = await send('PATCH', `/api/v1/purposes/${newsletter.key}`, admin, {
        categories: ['contact', 'health'],
      });
      expect(added.statusCode).toBe(400);
      expect(added.json<ErrorBody>().error).toMatchObject({
        code: 'invalid_input',
        fields: ['body.lawfulBasis'],
      });
      expect(await purpose(newsletter.key)).toEqual(newsletter);

      const explicit = await createPurpose({
        key: uniqueKey('wellbeing'),
        lawfulBasis: 'explicit_consent',
        categories: ['health'],
      });
      expect(explicit.categories).toEqual(['health']);
    });

    it('does not let an agent create, change or retire a purpose (403)', async () => {
      const existing = await createPurpose();
      const key = uniqueKey();
      const attempts = [
        send('POST', '/api/v1/purposes', agent, {
          key,
          lawfulBasis: 'consent',
          categories: ['contact'],
          retentionDays: 30,
          name: { en: 'X', es: 'X' },
          description: { en: 'X.', es: 'X.' },
        }),
        send('PATCH', `/api/v1/purposes/${existing.key}`, agent, {
          name: { en: 'Changed', es: 'Cambiado' },
        }),
        send('POST', `/api/v1/purposes/${existing.key}/retire`, agent),
      ];
      for (const res of await Promise.all(attempts)) {
        expect(res.statusCode).toBe(403);
        expect(res.json<ErrorBody>().error.code).toBe('forbidden');
      }
      expect(await purpose(key)).toBeUndefined();
      expect(await purpose(existing.key)).toEqual(existing);
      expect(await notices(existing.key)).toHaveLength(2);
    });

    it('publishes version 2 when a text changes, and keeps version 1 word for word with its hash', async () => {
      const p = await createPurpose();
      const v1 = await notices(p.key);
      const changed = await send('PATCH', `/api/v1/purposes/${p.key}`, admin, {
        description: {
          en: 'We send you our newsletter once a month.',
          es: 'Te enviamos nuestro boletín una vez al mes.',
        },
      });
      expect(changed.statusCode, changed.body).toBe(200);
      expect(changed.json<PurposeDto>()).toMatchObject({
        noticeVersion: '2',
        noticeVersions: ['1', '2'],
        description: { en: 'We send you our newsletter once a month.' },
      });

      const all = await notices(p.key);
      expect(all.slice(0, 2)).toEqual(v1);
      expect(await notice(p.key, '1', 'en')).toEqual(v1[0]);
      const v2 = await notice(p.key, '2', 'es');
      expect(v2.description).toBe('Te enviamos nuestro boletín una vez al mes.');
      expect(v2.contentHash).toBe(expectedHash(v2));
      expect(v2.contentHash).not.toBe(v1[1]!.contentHash);
      expect(all.map((n) => n.contentHash)).toEqual(all.map(expectedHash));

      expect(await auditOf('purpose.change', p.key)).toEqual([
        expect.objectContaining({ outcome: 'done', actor_role: 'admin', reason: 'notice:2' }),
      ]);
      await expectChainOk();
    });

    it('publishes no version for a change that changes nothing', async () => {
      const p = await createPurpose({ categories: ['contact', 'preferences'] });
      for (const body of [
        {},
        {
          categories: ['preferences', 'contact'],
          retentionDays: p.retentionDays,
          name: p.name,
          description: p.description,
        },
      ]) {
        const res = await send('PATCH', `/api/v1/purposes/${p.key}`, admin, body);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json<PurposeDto>()).toEqual(p);
      }
      expect(await notices(p.key)).toHaveLength(2);
      expect(await auditOf('purpose.change', p.key)).toEqual([]);

      const longer = await send('PATCH', `/api/v1/purposes/${p.key}`, admin, {
        retentionDays: p.retentionDays + 1,
      });
      expect(longer.json<PurposeDto>().noticeVersion).toBe('2');
    });

    it('refuses to remove a category (409 conflict) and changes nothing', async () => {
      const p = await createPurpose({ categories: ['contact', 'preferences'] });
      const res = await send('PATCH', `/api/v1/purposes/${p.key}`, admin, {
        categories: ['contact'],
        name: { en: 'Emails', es: 'Correos' },
      });
      expect(res.statusCode).toBe(409);
      expect(res.json<ErrorBody>().error).toMatchObject({
        code: 'conflict',
        fields: ['body.categories'],
      });
      expect(await purpose(p.key)).toEqual(p);
      expect(await notices(p.key)).toHaveLength(2);
      expect(await auditOf('purpose.change', p.key)).toEqual([]);
    });

    it('refuses a change of lawful basis (400 naming body.lawfulBasis)', async () => {
      const p = await createPurpose();
      const res = await send('PATCH', `/api/v1/purposes/${p.key}`, admin, {
        lawfulBasis: 'legitimate_interest',
      });
      expect(res.statusCode).toBe(400);
      expect(res.json<ErrorBody>().error).toMatchObject({
        code: 'invalid_input',
        fields: ['body.lawfulBasis'],
      });
      expect(await purpose(p.key)).toEqual(p);
    });

    it('answers unknown_purpose and unknown_notice_version for what was never published', async () => {
      const p = await createPurpose();
      const cases = [
        [`/api/v1/purposes/${uniqueKey('nothing')}/notices`, 'unknown_purpose'],
        [`/api/v1/purposes/${p.key}/notices/2?language=en`, 'unknown_notice_version'],
      ] as const;
      for (const [url, code] of cases) {
        const res = await send('GET', url, agent);
        expect(res.statusCode).toBe(400);
        expect(res.json<ErrorBody>().error.code).toBe(code);
      }
    });

    it('does not let an agreement to version 1 cover a category added in version 2, until version 2 is agreed to', async () => {
      const p = await createPurpose({ categories: ['contact'] });
      const id = await createCustomer({
        consents: [grant(p.key)],
        contact: { email: `v1.${p.key}@example.net` },
      });
      const changed = await send('PATCH', `/api/v1/purposes/${p.key}`, admin, {
        categories: ['contact', 'preferences'],
      });
      expect(changed.json<PurposeDto>()).toMatchObject({
        noticeVersion: '2',
        categories: ['contact', 'preferences'],
      });

      const preferences = { preferences: { channels: ['email'] } };
      const refused = await send('PATCH', `/api/v1/customers/${id}`, agent, preferences);
      expect(refused.statusCode).toBe(409);
      expect(refused.json<ErrorBody>().error).toMatchObject({
        code: 'consent_missing',
        fields: ['preferences.channels'],
      });
      expect((await holdings(id)).fields).toEqual(['contact.email']);
      const newcomer = await send('POST', '/api/v1/customers', agent, {
        consents: [grant(p.key)],
        ...preferences,
      });
      // A new agreement must be to the notice in force, not the one version 2 replaced.
      expect(newcomer.statusCode).toBe(409);
      expect(newcomer.json<ErrorBody>().error).toMatchObject({
        code: 'notice_outdated',
        fields: ['body.consents.0.noticeVersion'],
      });

      const agreed = await send('POST', `/api/v1/customers/${id}/consents`, agent, {
        consents: [grant(p.key, '2')],
      });
      expect(agreed.statusCode, agreed.body).toBe(200);
      const written = await send('PATCH', `/api/v1/customers/${id}`, agent, preferences);
      expect(written.statusCode, written.body).toBe(200);
      expect(await readCustomer(id, p.key)).toMatchObject({
        contact: { email: `v1.${p.key}@example.net` },
        preferences: { channels: ['email'] },
      });
    });

    it('does not show, under version 1, data of a category that version 2 added', async () => {
      const p = await createPurpose({ categories: ['contact'] });
      const id = await createCustomer({
        consents: [grant(p.key), grant('personalized_offers')],
        contact: { email: `read.${p.key}@example.net` },
        preferences: { interests: ['jazz'] },
      });
      await send('PATCH', `/api/v1/purposes/${p.key}`, admin, {
        categories: ['contact', 'preferences'],
      });
      const underV1 = await readCustomer(id, p.key);
      expect(underV1['contact']).toEqual({ email: `read.${p.key}@example.net` });
      expect(underV1['preferences']).toBeUndefined();

      await send('POST', `/api/v1/customers/${id}/consents`, agent, {
        consents: [grant(p.key, '2')],
      });
      expect((await readCustomer(id, p.key))['preferences']).toEqual({ interests: ['jazz'] });
    });

    it('retires a purpose: its agreements expire, what only it covered is shredded, and nobody can agree to it again', async () => {
      const r = await createPurpose({ categories: ['contact', 'preferences'] });
      // Also in the loyalty programme: keeps identity and contact, loses preferences.
      const shared = await createCustomer({
        consents: [grant('loyalty_program'), grant(r.key)],
        identity: { givenName: 'Inés' },
        contact: { email: `shared.${r.key}@example.net` },
        preferences: { channels: ['sms'] },
      });
      // Only in the retired purpose: erased entirely.
      const only = await createCustomer({
        consents: [grant(r.key)],
        contact: { email: `only.${r.key}@example.net` },
        preferences: { channels: ['post'] },
      });
      expect((await holdings(shared)).keys).toEqual(['contact', 'identity', 'preferences']);
      const grantId = (await send('GET', `/api/v1/customers/${shared}/consents`, agent))
        .json<ConsentsDto>()
        .current.find((c) => c.purpose === r.key)?.grantEventId;

      const retired = await send('POST', `/api/v1/purposes/${r.key}/retire`, admin);
      expect(retired.statusCode, retired.body).toBe(200);
      expect(retired.json()).toEqual({
        purpose: { ...r, status: 'retired' },
        agreementsEnded: 2,
      });

      const consents = (
        await send('GET', `/api/v1/customers/${shared}/consents`, agent)
      ).json<ConsentsDto>();
      expect(consents.current.map((c) => [c.purpose, c.state])).toEqual([
        ['loyalty_program', 'active'],
        [r.key, 'expired'],
      ]);
      expect(consents.history.filter((e) => e.event === 'expired')).toEqual([
        expect.objectContaining({ purpose: r.key, endsEventId: grantId }),
      ]);

      expect(await holdings(shared)).toEqual({
        fields: ['contact.email', 'identity.givenName'],
        keys: ['contact', 'identity'],
      });
      expect(await readCustomer(shared, 'loyalty_program')).toMatchObject({
        identity: { givenName: 'Inés' },
        contact: { email: `shared.${r.key}@example.net` },
      });
      expect(await holdings(only)).toEqual({ fields: [], keys: [] });
      expect(
        await rt.inspect.data.selectFrom('customer').select('id').where('id', '=', only).execute(),
      ).toEqual([]);

      const refusals = [
        send('GET', `/api/v1/customers/${shared}?purpose=${r.key}`, agent),
        send('POST', `/api/v1/customers/${shared}/consents`, agent, { consents: [grant(r.key)] }),
        send('POST', '/api/v1/customers', agent, {
          consents: [grant(r.key)],
          contact: { email: `late.${r.key}@example.net` },
        }),
        send('PATCH', `/api/v1/purposes/${r.key}`, admin, { name: { en: 'Back', es: 'Vuelta' } }),
      ];
      for (const res of await Promise.all(refusals)) {
        expect(res.statusCode, res.body).toBe(409);
        expect(res.json<ErrorBody>().error.code).toBe('purpose_retired');
      }

      // Retired, but its notices remain: they prove what the ended agreements referred to.
      expect(await notices(r.key)).toHaveLength(2);
      expect(await auditOf('purpose.retire', r.key)).toEqual([
        expect.objectContaining({ outcome: 'done', actor_role: 'admin' }),
      ]);
      const expiries = await auditOf('consent.expired', r.key);
      expect(expiries.map((e) => e.customer_id).sort()).toEqual([shared, only].sort());
      expect(expiries.every((e) => e.reason?.includes('cause:purpose_retired'))).toBe(true);
      await expectChainOk();
    });
  });
});
