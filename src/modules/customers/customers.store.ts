import type { Kysely } from 'kysely';
import type { DialectName } from '../../platform/db/database.js';
import { prepared } from '../../platform/db/prepared.js';
import type {
  BlindIndexTable,
  CustomerFieldTable,
  CustomerTable,
  DataDb,
} from '../../platform/db/schema.js';

/** Rows of the vault. Only the customers service imports this file (enforced by lint). */

export async function findCustomer(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
): Promise<CustomerTable | undefined> {
  return (await selectCustomer(db, workspaceId, id))[0];
}

const selectCustomer = prepared((db: Kysely<DataDb>, workspaceId: string, id: string) =>
  db
    .selectFrom('customer')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id),
);

/**
 * The customer row, locked until the transaction ends (PostgreSQL `FOR UPDATE`), so that changes
 * to one customer's agreements and data from several processes happen one after another. SQLite
 * needs no lock: a process has one writer and its transactions run one at a time.
 */
export async function findCustomerForUpdate(
  db: Kysely<DataDb>,
  dialect: DialectName,
  workspaceId: string,
  id: string,
): Promise<CustomerTable | undefined> {
  if (dialect === 'sqlite') return findCustomer(db, workspaceId, id);
  return db
    .selectFrom('customer')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

const insertCustomerRow = prepared((db: Kysely<DataDb>, row: CustomerTable) =>
  db.insertInto('customer').values(row),
);

export async function insertCustomer(db: Kysely<DataDb>, row: CustomerTable): Promise<void> {
  await insertCustomerRow(db, row);
}

export async function touchCustomer(
  db: Kysely<DataDb>,
  workspaceId: string,
  id: string,
  at: string,
): Promise<void> {
  await db
    .updateTable('customer')
    .set({ updated_at: at })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .execute();
}

export async function pageCustomers(
  db: Kysely<DataDb>,
  workspaceId: string,
  afterId: string | undefined,
  limit: number,
): Promise<CustomerTable[]> {
  let query = db.selectFrom('customer').selectAll().where('workspace_id', '=', workspaceId);
  if (afterId !== undefined) query = query.where('id', '>', afterId);
  return query.orderBy('id').limit(limit).execute();
}

export async function listFields(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerIds: readonly string[],
  filter: { categories?: readonly string[]; fields?: readonly string[] },
): Promise<CustomerFieldTable[]> {
  if (customerIds.length === 0) return [];
  if (filter.categories !== undefined) {
    if (filter.categories.length === 0) return [];
    return selectFieldsByCategory(db, workspaceId, customerIds, filter.categories);
  }
  if (filter.fields !== undefined) {
    if (filter.fields.length === 0) return [];
    return selectFieldsByName(db, workspaceId, customerIds, filter.fields);
  }
  return selectAllFields(db, workspaceId, customerIds);
}

const selectAllFields = prepared(
  (db: Kysely<DataDb>, workspaceId: string, customerIds: readonly string[]) =>
    db
      .selectFrom('customer_field')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', 'in', customerIds),
);

const selectFieldsByCategory = prepared(
  (
    db: Kysely<DataDb>,
    workspaceId: string,
    customerIds: readonly string[],
    categories: readonly string[],
  ) =>
    db
      .selectFrom('customer_field')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', 'in', customerIds)
      .where('category', 'in', categories),
);

const selectFieldsByName = prepared(
  (
    db: Kysely<DataDb>,
    workspaceId: string,
    customerIds: readonly string[],
    fields: readonly string[],
  ) =>
    db
      .selectFrom('customer_field')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', 'in', customerIds)
      .where('field', 'in', fields),
);

/** For a new customer: one statement for all its fields. */
export async function insertFields(
  db: Kysely<DataDb>,
  rows: readonly CustomerFieldTable[],
): Promise<void> {
  if (rows.length === 0) return;
  await insertFieldRows(db, rows);
}

export async function insertDigests(
  db: Kysely<DataDb>,
  rows: readonly BlindIndexTable[],
): Promise<void> {
  if (rows.length === 0) return;
  await insertDigestRows(db, rows);
}

export async function upsertFields(
  db: Kysely<DataDb>,
  rows: readonly CustomerFieldTable[],
): Promise<void> {
  for (const row of rows) {
    await db
      .insertInto('customer_field')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['workspace_id', 'customer_id', 'field']).doUpdateSet({
          category: row.category,
          data_key_id: row.data_key_id,
          ciphertext: row.ciphertext,
          updated_at: row.updated_at,
        }),
      )
      .execute();
  }
}

export async function deleteFields(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  fields: readonly string[],
): Promise<void> {
  if (fields.length === 0) return;
  await db
    .deleteFrom('customer_field')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .where('field', 'in', [...fields])
    .execute();
}

export async function findByDigest(
  db: Kysely<DataDb>,
  workspaceId: string,
  field: string,
  digest: string,
  limit: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom('blind_index')
    .select('customer_id')
    .where('workspace_id', '=', workspaceId)
    .where('field', '=', field)
    .where('digest', '=', digest)
    .orderBy('customer_id')
    .limit(limit)
    .execute();
  return rows.map((r) => r.customer_id);
}

export async function replaceDigest(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  field: string,
  digest: string | null,
): Promise<void> {
  await db
    .deleteFrom('blind_index')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .where('field', '=', field)
    .execute();
  if (digest !== null) {
    await db
      .insertInto('blind_index')
      .values({ workspace_id: workspaceId, customer_id: customerId, field, digest })
      .execute();
  }
}

/** Deletes the fields of some categories and the index entries of those fields. */
export async function deleteCategoryRows(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  categories: readonly string[],
  indexedFields: readonly string[],
): Promise<void> {
  if (categories.length === 0) return;
  if (indexedFields.length > 0) {
    await db
      .deleteFrom('blind_index')
      .where('workspace_id', '=', workspaceId)
      .where('customer_id', '=', customerId)
      .where('field', 'in', [...indexedFields])
      .execute();
  }
  await db
    .deleteFrom('customer_field')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .where('category', 'in', [...categories])
    .execute();
}

/** Deletes everything the vault holds for a customer: fields, index entries, the row itself. */
export async function deleteCustomerRows(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await db
    .deleteFrom('blind_index')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
  await db
    .deleteFrom('customer_field')
    .where('workspace_id', '=', workspaceId)
    .where('customer_id', '=', customerId)
    .execute();
  await db
    .deleteFrom('customer')
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', customerId)
    .execute();
}

const insertFieldRows = prepared((db: Kysely<DataDb>, rows: readonly CustomerFieldTable[]) =>
  db.insertInto('customer_field').values([...rows]),
);

const insertDigestRows = prepared((db: Kysely<DataDb>, rows: readonly BlindIndexTable[]) =>
  db.insertInto('blind_index').values([...rows]),
);
