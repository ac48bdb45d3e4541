/**
 * Erasure by crypto-shredding, with a ledger: intent first, then keys destroyed, rows deleted,
 * entry completed. Every step is idempotent, so an interrupted erasure resumes at start-up.
 */
export { eraseCustomer, resumePendingErasures, type ErasureRecord } from './erasure.service.js';
export { erasureRoutes } from './erasure.routes.js';
