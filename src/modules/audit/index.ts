/**
 * The audit chain. Every access decision and change is appended here in the same transaction
 * as the work it records, so a committed change always has its entry, and an entry that cannot
 * be written fails the work (fail closed).
 */
export {
  appendAudit,
  countActionPerMonth,
  countAuditEntries,
  recordAudit,
  verifyAuditChain,
  type AuditEvent,
  type AuditOutcome,
  type VerifyResult,
} from './audit.service.js';
export { canonicalEntry, entryHash, GENESIS_HASH } from './audit.chain.js';
