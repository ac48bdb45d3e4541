import type { Kysely, Migration } from 'kysely';
import { newId } from '../src/platform/ids.js';

/**
 * The plaintext baseline: the same customer, consent, field and lookup rows that Custodia writes
 * on creation, in the same table shapes (keys led by workspace_id, the same foreign keys and
 * indexes), but with the values in plain text and without data keys, blind-index HMACs or audit
 * entries.
 */

export interface PlainDb {
  customer: { workspace_id: string; id: string; created_at: string; updated_at: string };
  consent_event: {
    workspace_id: string;
    id: string;
    customer_id: string;
    purpose_key: string;
    notice_version: string;
    method: string;
    event: string;
    at: string;
  };
  customer_field: {
    workspace_id: string;
    customer_id: string;
    field: string;
    category: string;
    value: string;
    updated_at: string;
  };
  lookup_index: { workspace_id: string; field: string; value: string; customer_id: string };
}

export function plainMigrations(): Record<string, Migration> {
  return {
    '0001_plain': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('customer')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('customer_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createTable('consent_event')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('purpose_key', 'text', (c) => c.notNull())
          .addColumn('notice_version', 'text', (c) => c.notNull())
          .addColumn('method', 'text', (c) => c.notNull())
          .addColumn('event', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('consent_event_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('consent_event_customer_idx')
          .on('consent_event')
          .columns(['workspace_id', 'customer_id'])
          .execute();
        await db.schema
          .createTable('customer_field')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('field', 'text', (c) => c.notNull())
          .addColumn('category', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('customer_field_pk', ['workspace_id', 'customer_id', 'field'])
          .addForeignKeyConstraint(
            'customer_field_customer_fk',
            ['workspace_id', 'customer_id'],
            'customer',
            ['workspace_id', 'id'],
            (c) => c.onDelete('cascade'),
          )
          .execute();
        await db.schema
          .createTable('lookup_index')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('field', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('lookup_index_pk', [
            'workspace_id',
            'field',
            'value',
            'customer_id',
          ])
          .addForeignKeyConstraint(
            'lookup_index_customer_fk',
            ['workspace_id', 'customer_id'],
            'customer',
            ['workspace_id', 'id'],
            (c) => c.onDelete('cascade'),
          )
          .execute();
        await db.schema
          .createIndex('lookup_index_customer_idx')
          .on('lookup_index')
          .columns(['workspace_id', 'customer_id'])
          .execute();
      },
    },
  };
}

const WORKSPACE = 'bench-workspace';

const fieldCategories: Readonly<Record<string, string>> = {
  givenName: 'identity',
  familyName: 'identity',
  birthDate: 'identity',
  email: 'contact',
  phone: 'contact',
  postalAddress: 'contact',
};
const lookupFields = ['email', 'phone'] as const;

export interface PlainCreation {
  readonly consents: readonly { purpose: string; noticeVersion: string; method: string }[];
  readonly fields: ReadonlyMap<string, unknown>;
}

/** A light shape check of a creation body; undefined when it is not one. */
export function parsePlainCreation(body: unknown): PlainCreation | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { consents, identity, contact } = body as Record<string, unknown>;
  if (!Array.isArray(consents) || consents.length === 0) return undefined;
  const checked: { purpose: string; noticeVersion: string; method: string }[] = [];
  for (const c of consents as unknown[]) {
    if (typeof c !== 'object' || c === null) return undefined;
    const { purpose, noticeVersion, method } = c as Record<string, unknown>;
    if (typeof purpose !== 'string' || typeof noticeVersion !== 'string') return undefined;
    if (typeof method !== 'string') return undefined;
    checked.push({ purpose, noticeVersion, method });
  }
  const fields = new Map<string, unknown>();
  for (const group of [identity, contact]) {
    if (group === undefined) continue;
    if (typeof group !== 'object' || group === null) return undefined;
    for (const [field, value] of Object.entries(group)) {
      if (fieldCategories[field] === undefined) return undefined;
      fields.set(
        field,
        field === 'email' && typeof value === 'string' ? value.trim().toLowerCase() : value,
      );
    }
  }
  return { consents: checked, fields };
}

/**
 * Writes one customer as a plaintext CRM naturally would: the customer row, then its consents,
 * fields and lookup entries, each in one multi-row insert.
 */
export async function insertPlainCustomer(
  db: Kysely<PlainDb>,
  input: PlainCreation,
): Promise<string> {
  const id = newId();
  const at = new Date().toISOString();
  await db
    .insertInto('customer')
    .values({ workspace_id: WORKSPACE, id, created_at: at, updated_at: at })
    .execute();
  await db
    .insertInto('consent_event')
    .values(
      input.consents.map((c) => ({
        workspace_id: WORKSPACE,
        id: newId(),
        customer_id: id,
        purpose_key: c.purpose,
        notice_version: c.noticeVersion,
        method: c.method,
        event: 'granted',
        at,
      })),
    )
    .execute();
  const fields = [...input.fields].map(([field, value]) => ({
    workspace_id: WORKSPACE,
    customer_id: id,
    field,
    category: fieldCategories[field] ?? 'contact',
    value: JSON.stringify(value),
    updated_at: at,
  }));
  if (fields.length > 0) await db.insertInto('customer_field').values(fields).execute();
  const lookups = lookupFields.flatMap((field) => {
    const value = input.fields.get(field);
    return typeof value === 'string'
      ? [{ workspace_id: WORKSPACE, field, value, customer_id: id }]
      : [];
  });
  if (lookups.length > 0) await db.insertInto('lookup_index').values(lookups).execute();
  return id;
}
