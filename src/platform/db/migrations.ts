import { sql, type Kysely, type Migration } from 'kysely';

import type { DialectName } from './database.js';

/**
 * The data store's tables that hold a workspace's rows, by the column naming the workspace.
 * `login_throttle` is not here: it counts failures per client address across workspaces and
 * holds no workspace data. A test checks that every table with a `workspace_id` column is
 * covered.
 */
const WORKSPACE_TABLES: readonly (readonly [table: string, column?: string])[] = [
  ['workspace', 'id'],
  ['api_token'],
  ['purpose'],
  ['purpose_notice'],
  ['customer'],
  ['consent_event'],
  ['customer_field'],
  ['blind_index'],
  ['audit_entry'],
  ['audit_head'],
  ['audit_checkpoint'],
  ['erasure'],
  ['category_erasure'],
  ['staff_account'],
  ['staff_invitation'],
  ['staff_session'],
  ['staff_recovery_code'],
  ['task'],
  ['break_glass'],
];

/** The workspace tables of migration 0008 (the customer portal and data-subject requests). */
const PORTAL_TABLES: readonly string[] = [
  'portal_code',
  'portal_session',
  'contact_verification',
  'change_request',
  'subject_request',
];

/**
 * Workspace isolation as defence in depth (PostgreSQL): a row is visible and writable only
 * when the transaction's `custodia.workspace` setting names its workspace, or is `*` (the
 * system paths that cross workspaces). FORCE applies the policy to the tables' owner too, which
 * is the role Custodia runs as; a query that sets nothing sees nothing.
 */
async function enableRowSecurity(
  db: Kysely<unknown>,
  tables: readonly (string | readonly [table: string, column?: string])[],
): Promise<void> {
  for (const entry of tables) {
    const [table, column = 'workspace_id'] = typeof entry === 'string' ? [entry] : entry;
    const t = sql.table(table);
    const c = sql.ref(column);
    await sql`alter table ${t} enable row level security`.execute(db);
    await sql`alter table ${t} force row level security`.execute(db);
    await sql`create policy workspace_isolation on ${t}
      using (${c} = current_setting('custodia.workspace', true)
        or current_setting('custodia.workspace', true) = '*')`.execute(db);
  }
}

/** Binary column type: SQLite calls it blob, PostgreSQL bytea. */
function binaryType(dialect: DialectName): 'blob' | 'bytea' {
  return dialect === 'sqlite' ? 'blob' : 'bytea';
}

/**
 * The data store's schema, one set for both dialects. Every key starts with workspace_id so
 * that a distributed PostgreSQL can shard by workspace; no sequences (ids are UUIDv7).
 */
export function dataMigrations(dialect: DialectName): Record<string, Migration> {
  return {
    '0001_foundation': {
      async up(db: Kysely<unknown>) {
        const binary = binaryType(dialect);
        await db.schema
          .createTable('workspace')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('api_token')
          .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspace.id'))
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('label', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('revoked_at', 'text')
          .addPrimaryKeyConstraint('api_token_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createTable('purpose')
          .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspace.id'))
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('lawful_basis', 'text', (c) => c.notNull())
          .addColumn('categories', 'text', (c) => c.notNull())
          .addColumn('retention_days', 'integer', (c) => c.notNull())
          .addColumn('notice_version', 'text', (c) => c.notNull())
          .addColumn('name_en', 'text', (c) => c.notNull())
          .addColumn('name_es', 'text', (c) => c.notNull())
          .addColumn('description_en', 'text', (c) => c.notNull())
          .addColumn('description_es', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('purpose_pk', ['workspace_id', 'id'])
          .addUniqueConstraint('purpose_key_uq', ['workspace_id', 'key'])
          .execute();
        await db.schema
          .createTable('customer')
          .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspace.id'))
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
          .columns(['workspace_id', 'customer_id', 'id'])
          .execute();
        await db.schema
          .createTable('customer_field')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('field', 'text', (c) => c.notNull())
          .addColumn('category', 'text', (c) => c.notNull())
          .addColumn('data_key_id', 'text', (c) => c.notNull())
          .addColumn('ciphertext', binary, (c) => c.notNull())
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
          .createTable('blind_index')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('field', 'text', (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('blind_index_pk', [
            'workspace_id',
            'field',
            'digest',
            'customer_id',
          ])
          .addForeignKeyConstraint(
            'blind_index_customer_fk',
            ['workspace_id', 'customer_id'],
            'customer',
            ['workspace_id', 'id'],
            (c) => c.onDelete('cascade'),
          )
          .execute();
        await db.schema
          .createIndex('blind_index_customer_idx')
          .on('blind_index')
          .columns(['workspace_id', 'customer_id', 'field'])
          .execute();
        await db.schema
          .createTable('audit_entry')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('actor_type', 'text', (c) => c.notNull())
          .addColumn('actor_id', 'text', (c) => c.notNull())
          .addColumn('actor_role', 'text')
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text')
          .addColumn('purpose', 'text')
          .addColumn('fields', 'text', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('request_id', 'text')
          .addColumn('prev_hash', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('audit_entry_pk', ['workspace_id', 'seq'])
          .execute();
        await db.schema
          .createTable('audit_head')
          .addColumn('workspace_id', 'text', (c) => c.primaryKey())
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('audit_checkpoint')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('signature', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('audit_checkpoint_pk', ['workspace_id', 'seq'])
          .execute();
        await db.schema
          .createTable('erasure')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('requested_at', 'text', (c) => c.notNull())
          .addColumn('completed_at', 'text')
          .addColumn('categories', 'text', (c) => c.notNull())
          .addColumn('destroyed_key_ids', 'text', (c) => c.notNull())
          .addColumn('actor_type', 'text', (c) => c.notNull())
          .addColumn('actor_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('erasure_pk', ['workspace_id', 'id'])
          .addUniqueConstraint('erasure_customer_uq', ['workspace_id', 'customer_id'])
          .execute();
      },
    },
    '0002_consent_ledger': {
      async up(db: Kysely<unknown>) {
        // Notice texts per purpose, version and language. Rows are only ever added, so the
        // text a customer agreed to stays retrievable while any consent refers to it.
        await db.schema
          .createTable('purpose_notice')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('purpose_key', 'text', (c) => c.notNull())
          .addColumn('version', 'text', (c) => c.notNull())
          .addColumn('language', 'text', (c) => c.notNull())
          .addColumn('lawful_basis', 'text', (c) => c.notNull())
          .addColumn('categories', 'text', (c) => c.notNull())
          .addColumn('retention_days', 'integer', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('content_hash', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('purpose_notice_pk', [
            'workspace_id',
            'purpose_key',
            'version',
            'language',
          ])
          .execute();
        await db.schema.alterTable('purpose').addColumn('retired_at', 'text').execute();
        // The ledger's events gain the basis they record, its validity, its evidence, and the
        // grant a withdrawal or expiry ends. SQLite takes one column per ALTER TABLE.
        for (const column of [
          'basis',
          'starts_at',
          'expires_at',
          'reference',
          'evidence',
          'ends_id',
          'actor_type',
          'actor_id',
        ]) {
          await db.schema.alterTable('consent_event').addColumn(column, 'text').execute();
        }
        // Grants recorded before the ledger knew bases took their purpose's basis.
        await sql`update consent_event set basis = (select p.lawful_basis from purpose p
          where p.workspace_id = consent_event.workspace_id and p.key = consent_event.purpose_key)
          where basis is null`.execute(db);
        // At most one event ends a grant: two workers expiring the same consent cannot both
        // succeed. NULLs (grants) are distinct on both dialects.
        await db.schema
          .createIndex('consent_event_ends_uq')
          .on('consent_event')
          .columns(['workspace_id', 'ends_id'])
          .unique()
          .execute();
        await db.schema
          .createIndex('consent_event_expiry_idx')
          .on('consent_event')
          .columns(['expires_at'])
          .execute();
        // The erasure ledger's entries for categories shredded while the customer stays.
        await db.schema
          .createTable('category_erasure')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('purpose_key', 'text', (c) => c.notNull())
          .addColumn('cause', 'text', (c) => c.notNull())
          .addColumn('event_id', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('requested_at', 'text', (c) => c.notNull())
          .addColumn('completed_at', 'text')
          .addColumn('categories', 'text', (c) => c.notNull())
          .addColumn('destroyed_key_ids', 'text', (c) => c.notNull())
          .addColumn('actor_type', 'text', (c) => c.notNull())
          .addColumn('actor_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('category_erasure_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('category_erasure_customer_idx')
          .on('category_erasure')
          .columns(['workspace_id', 'customer_id'])
          .execute();
        await db.schema
          .createIndex('category_erasure_status_idx')
          .on('category_erasure')
          .columns(['status'])
          .execute();
      },
    },
    '0003_staff_accounts': {
      async up(db: Kysely<unknown>) {
        const binary = binaryType(dialect);
        // Staff are data subjects too: email and name are sealed (key per staff member in the
        // key store), found by a blind index of the email.
        await db.schema
          .createTable('staff_account')
          .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspace.id'))
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('email_digest', 'text', (c) => c.notNull())
          .addColumn('email_sealed', binary, (c) => c.notNull())
          .addColumn('name_sealed', binary, (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('password_hash', 'text')
          .addColumn('password_changed_at', 'text')
          .addColumn('totp_sealed', binary)
          .addColumn('totp_enrolled_at', 'text')
          .addColumn('totp_last_step', 'bigint')
          .addColumn('failed_logins', 'integer', (c) => c.notNull())
          .addColumn('locked_until', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('staff_account_pk', ['workspace_id', 'id'])
          .addUniqueConstraint('staff_account_email_uq', ['workspace_id', 'email_digest'])
          .execute();
        await db.schema
          .createTable('staff_invitation')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('staff_id', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .addPrimaryKeyConstraint('staff_invitation_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createTable('staff_session')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('staff_id', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('csrf_hash', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('last_seen_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('mfa_at', 'text')
          .addColumn('revoked_at', 'text')
          .addPrimaryKeyConstraint('staff_session_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('staff_session_staff_idx')
          .on('staff_session')
          .columns(['workspace_id', 'staff_id'])
          .execute();
        await db.schema
          .createTable('staff_recovery_code')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('staff_id', 'text', (c) => c.notNull())
          .addColumn('code_hash', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .addPrimaryKeyConstraint('staff_recovery_code_pk', [
            'workspace_id',
            'staff_id',
            'code_hash',
          ])
          .execute();
        // Failed logins per client address (a keyed hash of it), in fixed windows.
        await db.schema
          .createTable('login_throttle')
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('window_start', 'text', (c) => c.notNull())
          .addColumn('failures', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('login_throttle_pk', ['source', 'window_start'])
          .execute();
      },
    },
    '0004_tasks': {
      async up(db: Kysely<unknown>) {
        const binary = binaryType(dialect);
        // A task is the grant: an open task assigned to a staff member lets them read the
        // customer's fields of the task's purpose until it closes or falls due.
        await db.schema
          .createTable('task')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('purpose_key', 'text', (c) => c.notNull())
          .addColumn('title_sealed', binary, (c) => c.notNull())
          .addColumn('assignee_id', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('due_at', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('closed_at', 'text')
          .addPrimaryKeyConstraint('task_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('task_assignee_idx')
          .on('task')
          .columns(['workspace_id', 'assignee_id', 'status'])
          .execute();
        await db.schema
          .createIndex('task_customer_idx')
          .on('task')
          .columns(['workspace_id', 'customer_id'])
          .execute();
      },
    },
    '0005_break_glass': {
      async up(db: Kysely<unknown>) {
        const binary = binaryType(dialect);
        // Emergency access without a task: justified, short-lived, reviewed afterwards.
        await db.schema
          .createTable('break_glass')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('staff_id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('purpose_key', 'text', (c) => c.notNull())
          .addColumn('justification_sealed', binary, (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('review_status', 'text', (c) => c.notNull())
          .addColumn('reviewed_by', 'text')
          .addColumn('reviewed_at', 'text')
          .addColumn('note_sealed', binary)
          .addPrimaryKeyConstraint('break_glass_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('break_glass_review_idx')
          .on('break_glass')
          .columns(['workspace_id', 'review_status'])
          .execute();
      },
    },
    '0006_row_level_security': {
      async up(db: Kysely<unknown>) {
        // PostgreSQL only: SQLite has no row-level security.
        if (dialect === 'postgres') await enableRowSecurity(db, WORKSPACE_TABLES);
      },
    },
    '0007_audit_by_customer': {
      async up(db: Kysely<unknown>) {
        // The audit API's per-customer pages and the customer's own access log.
        await db.schema
          .createIndex('audit_entry_customer_idx')
          .on('audit_entry')
          .columns(['workspace_id', 'customer_id', 'seq'])
          .execute();
      },
    },
    '0008_portal_and_requests': {
      async up(db: Kysely<unknown>) {
        const binary = binaryType(dialect);
        // One-time codes a customer proves control of an address with: stored as a keyed hash,
        // found by the blind index of the address, never the address itself.
        await db.schema
          .createTable('portal_code')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          /** `login`, `reverify` or `contact_change`. */
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('address_digest', 'text', (c) => c.notNull())
          /** Keyed hash of the client address that asked, for the per-source limit. */
          .addColumn('source_digest', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text')
          .addColumn('session_id', 'text')
          .addColumn('code_hash', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          /** For a contact change: the field, and the new value sealed under the customer's key. */
          .addColumn('field', 'text')
          .addColumn('value_sealed', binary)
          .addPrimaryKeyConstraint('portal_code_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('portal_code_address_idx')
          .on('portal_code')
          .columns(['workspace_id', 'address_digest', 'created_at'])
          .execute();
        await db.schema
          .createIndex('portal_code_source_idx')
          .on('portal_code')
          .columns(['workspace_id', 'source_digest', 'created_at'])
          .execute();
        await db.schema
          .createTable('portal_session')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull())
          .addColumn('csrf_hash', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('last_seen_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          /** When the customer last proved control of their address again (erasure, email). */
          .addColumn('reverified_at', 'text')
          /** `en` or `es`: the language notices are shown in. */
          .addColumn('language', 'text', (c) => c.notNull())
          .addColumn('ended_at', 'text')
          .addPrimaryKeyConstraint('portal_session_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('portal_session_token_idx')
          .on('portal_session')
          .columns(['token_hash'])
          .unique()
          .execute();
        await db.schema
          .createIndex('portal_session_customer_idx')
          .on('portal_session')
          .columns(['workspace_id', 'customer_id'])
          .execute();
        // A contact point is verified while its current value's blind index is the one verified.
        await db.schema
          .createTable('contact_verification')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('field', 'text', (c) => c.notNull())
          .addColumn('value_digest', 'text', (c) => c.notNull())
          .addColumn('verified_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('contact_verification_pk', [
            'workspace_id',
            'customer_id',
            'field',
          ])
          .execute();
        // A change a customer asked for that staff must check (approve or reject with a reason).
        await db.schema
          .createTable('change_request')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          /** JSON array of the field names asked for (names only, never values). */
          .addColumn('fields', 'text', (c) => c.notNull())
          /** The requested values, sealed under the customer's `requests` key. */
          .addColumn('changes_sealed', binary, (c) => c.notNull())
          .addColumn('note_sealed', binary)
          /** `pending`, `approved` or `rejected`. */
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('decided_at', 'text')
          .addColumn('decided_by', 'text')
          .addColumn('reason_sealed', binary)
          .addPrimaryKeyConstraint('change_request_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('change_request_status_idx')
          .on('change_request')
          .columns(['workspace_id', 'status', 'created_at'])
          .execute();
        await db.schema
          .createIndex('change_request_customer_idx')
          .on('change_request')
          .columns(['workspace_id', 'customer_id'])
          .execute();
        // Data-subject requests received by letter, phone or email, with their legal deadline.
        await db.schema
          .createTable('subject_request')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text')
          /** `access`, `rectification`, `erasure` or `objection`. */
          .addColumn('kind', 'text', (c) => c.notNull())
          /** `letter`, `phone`, `email` or `in_person`. */
          .addColumn('channel', 'text', (c) => c.notNull())
          /** Calendar dates (YYYY-MM-DD). */
          .addColumn('received_on', 'text', (c) => c.notNull())
          .addColumn('due_on', 'text', (c) => c.notNull())
          .addColumn('extended_to', 'text')
          .addColumn('extension_reason_sealed', binary)
          .addColumn('details_sealed', binary)
          /** `open`, `completed` or `refused`. */
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('recorded_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('closed_at', 'text')
          .addColumn('closed_by', 'text')
          .addColumn('outcome_sealed', binary)
          .addPrimaryKeyConstraint('subject_request_pk', ['workspace_id', 'id'])
          .execute();
        await db.schema
          .createIndex('subject_request_status_idx')
          .on('subject_request')
          .columns(['workspace_id', 'status', 'due_on'])
          .execute();
        if (dialect === 'postgres') await enableRowSecurity(db, PORTAL_TABLES);
      },
    },
  };
}

/** The key store's schema: wrapped data keys only, apart from the data they protect. */
export function keyMigrations(dialect: DialectName): Record<string, Migration> {
  return {
    '0001_data_key': {
      async up(db: Kysely<unknown>) {
        const binary = binaryType(dialect);
        await db.schema
          .createTable('data_key')
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('customer_id', 'text', (c) => c.notNull())
          .addColumn('category', 'text', (c) => c.notNull())
          .addColumn('kek_version', 'integer', (c) => c.notNull())
          .addColumn('wrapped', binary, (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('data_key_pk', ['workspace_id', 'id'])
          .addUniqueConstraint('data_key_customer_category_uq', [
            'workspace_id',
            'customer_id',
            'category',
          ])
          .execute();
        await db.schema
          .createIndex('data_key_kek_idx')
          .on('data_key')
          .column('kek_version')
          .execute();
      },
    },
    '0002_row_level_security': {
      async up(db: Kysely<unknown>) {
        // PostgreSQL only: SQLite has no row-level security.
        if (dialect === 'postgres') await enableRowSecurity(db, ['data_key']);
      },
    },
  };
}
