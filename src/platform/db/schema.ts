/** Row types of the data store. Timestamps are ISO-8601 UTC strings on both dialects. */
export interface WorkspaceTable {
  id: string;
  name: string;
  created_at: string;
}

export interface ApiTokenTable {
  workspace_id: string;
  id: string;
  token_hash: string;
  role: string;
  label: string;
  created_at: string;
  revoked_at: string | null;
}

export interface PurposeTable {
  workspace_id: string;
  id: string;
  key: string;
  lawful_basis: string;
  categories: string;
  retention_days: number;
  notice_version: string;
  name_en: string;
  name_es: string;
  description_en: string;
  description_es: string;
  status: string;
  created_at: string;
  retired_at: string | null;
}

export interface PurposeNoticeTable {
  workspace_id: string;
  purpose_key: string;
  version: string;
  language: string;
  lawful_basis: string;
  categories: string;
  retention_days: number;
  name: string;
  description: string;
  content_hash: string;
  created_at: string;
}

export interface ConsentEventTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  purpose_key: string;
  notice_version: string;
  method: string;
  event: string;
  at: string;
  /** The lawful basis recorded (null only on rows written before the ledger had it). */
  basis: string | null;
  starts_at: string | null;
  expires_at: string | null;
  /** For contracts and other bases: the reference (e.g. contract number), never personal data. */
  reference: string | null;
  /** JSON: staff id and document reference, or salted hashes of IP and user agent. */
  evidence: string | null;
  /** On `withdrawn` and `expired`: the grant this event ends. */
  ends_id: string | null;
  actor_type: string | null;
  actor_id: string | null;
}

export interface CategoryErasureTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  purpose_key: string;
  cause: string;
  event_id: string;
  status: string;
  requested_at: string;
  completed_at: string | null;
  categories: string;
  destroyed_key_ids: string;
  actor_type: string;
  actor_id: string;
}

export interface CustomerTable {
  workspace_id: string;
  id: string;
  created_at: string;
  updated_at: string;
}

export interface CustomerFieldTable {
  workspace_id: string;
  customer_id: string;
  field: string;
  category: string;
  data_key_id: string;
  ciphertext: Uint8Array;
  updated_at: string;
}

export interface BlindIndexTable {
  workspace_id: string;
  field: string;
  digest: string;
  customer_id: string;
}

export interface AuditEntryTable {
  workspace_id: string;
  seq: number;
  at: string;
  actor_type: string;
  actor_id: string;
  actor_role: string | null;
  action: string;
  customer_id: string | null;
  purpose: string | null;
  fields: string;
  outcome: string;
  reason: string | null;
  request_id: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  workspace_id: string;
  seq: number;
  hash: string;
}

export interface AuditCheckpointTable {
  workspace_id: string;
  seq: number;
  hash: string;
  at: string;
  public_key: string;
  signature: string;
}

export interface ErasureTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  status: string;
  requested_at: string;
  completed_at: string | null;
  categories: string;
  destroyed_key_ids: string;
  actor_type: string;
  actor_id: string;
}

export interface StaffAccountTable {
  workspace_id: string;
  id: string;
  email_digest: string;
  email_sealed: Uint8Array;
  name_sealed: Uint8Array;
  role: string;
  /** `invited` until the invitation is accepted, then `active`, or `disabled`. */
  status: string;
  password_hash: string | null;
  password_changed_at: string | null;
  totp_sealed: Uint8Array | null;
  totp_enrolled_at: string | null;
  totp_last_step: number | null;
  failed_logins: number;
  locked_until: string | null;
  created_at: string;
  updated_at: string;
}

export interface StaffInvitationTable {
  workspace_id: string;
  id: string;
  staff_id: string;
  token_hash: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface StaffSessionTable {
  workspace_id: string;
  id: string;
  staff_id: string;
  token_hash: string;
  csrf_hash: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  /** When the second factor was passed; null: the session can do nothing but finish MFA. */
  mfa_at: string | null;
  revoked_at: string | null;
}

export interface StaffRecoveryCodeTable {
  workspace_id: string;
  staff_id: string;
  code_hash: string;
  used_at: string | null;
}

export interface LoginThrottleTable {
  source: string;
  window_start: string;
  failures: number;
}

export interface TaskTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  purpose_key: string;
  title_sealed: Uint8Array;
  assignee_id: string;
  created_by: string;
  created_at: string;
  due_at: string;
  /** `open` or `closed`. */
  status: string;
  closed_at: string | null;
}

export interface BreakGlassTable {
  workspace_id: string;
  id: string;
  staff_id: string;
  customer_id: string;
  purpose_key: string;
  justification_sealed: Uint8Array;
  created_at: string;
  expires_at: string;
  /** `pending` until a privacy officer reviews it: `approved` or `flagged`. */
  review_status: string;
  reviewed_by: string | null;
  reviewed_at: string | null;
  note_sealed: Uint8Array | null;
}

export interface PortalCodeTable {
  workspace_id: string;
  id: string;
  /** `login`, `reverify` or `contact_change`. */
  kind: string;
  address_digest: string;
  source_digest: string;
  customer_id: string | null;
  session_id: string | null;
  code_hash: string;
  attempts: number;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  field: string | null;
  value_sealed: Uint8Array | null;
}

export interface PortalSessionTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  token_hash: string;
  csrf_hash: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  reverified_at: string | null;
  language: string;
  ended_at: string | null;
}

export interface ContactVerificationTable {
  workspace_id: string;
  customer_id: string;
  field: string;
  value_digest: string;
  verified_at: string;
}

export interface ChangeRequestTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  fields: string;
  changes_sealed: Uint8Array;
  note_sealed: Uint8Array | null;
  status: string;
  created_at: string;
  decided_at: string | null;
  decided_by: string | null;
  reason_sealed: Uint8Array | null;
}

export interface SubjectRequestTable {
  workspace_id: string;
  id: string;
  customer_id: string | null;
  kind: string;
  channel: string;
  received_on: string;
  due_on: string;
  extended_to: string | null;
  extension_reason_sealed: Uint8Array | null;
  details_sealed: Uint8Array | null;
  status: string;
  recorded_by: string;
  created_at: string;
  closed_at: string | null;
  closed_by: string | null;
  outcome_sealed: Uint8Array | null;
}

export interface DataDb {
  portal_code: PortalCodeTable;
  portal_session: PortalSessionTable;
  contact_verification: ContactVerificationTable;
  change_request: ChangeRequestTable;
  subject_request: SubjectRequestTable;
  break_glass: BreakGlassTable;
  task: TaskTable;
  staff_account: StaffAccountTable;
  staff_invitation: StaffInvitationTable;
  staff_session: StaffSessionTable;
  staff_recovery_code: StaffRecoveryCodeTable;
  login_throttle: LoginThrottleTable;
  workspace: WorkspaceTable;
  api_token: ApiTokenTable;
  purpose: PurposeTable;
  purpose_notice: PurposeNoticeTable;
  category_erasure: CategoryErasureTable;
  consent_event: ConsentEventTable;
  customer: CustomerTable;
  customer_field: CustomerFieldTable;
  blind_index: BlindIndexTable;
  audit_entry: AuditEntryTable;
  audit_head: AuditHeadTable;
  audit_checkpoint: AuditCheckpointTable;
  erasure: ErasureTable;
}

/** Row types of the separate key store. */
export interface DataKeyTable {
  workspace_id: string;
  id: string;
  customer_id: string;
  category: string;
  kek_version: number;
  wrapped: Uint8Array;
  created_at: string;
}

export interface KeyDb {
  data_key: DataKeyTable;
}
