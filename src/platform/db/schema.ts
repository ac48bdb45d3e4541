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

export interface DataDb {
  workspace: WorkspaceTable;
  api_token: ApiTokenTable;
  purpose: PurposeTable;
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
