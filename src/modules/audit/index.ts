/**
 * The audit chain. Every access decision and change is appended here in the same transaction
 * as the work it records, so a committed change always has its entry, and an entry that cannot
 * be written fails the work (fail closed).
 */
export {
  appendAudit,
  countActionPerMonth,
  countAuditEntries,
  customerAuditEntries,
  listAuditEntries,
  recordAudit,
  verifyAuditChain,
  verifyWorkspaceChain,
  type AuditEntryView,
  type AuditEvent,
  type AuditOutcome,
  type VerifyResult,
} from './audit.service.js';
export { canonicalEntry, entryHash, GENESIS_HASH } from './audit.chain.js';
/** The auditor's API: pages of the chain (ids and outcomes only) and a per-workspace verify. */
export { auditRoutes } from './audit.routes.js';
