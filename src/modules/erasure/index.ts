/**
 * Erasure by crypto-shredding, with a ledger: intent first (with the rows), then keys destroyed,
 * entry completed. Whole customers, or the categories no purpose covers any more. Every step is
 * idempotent, so an interrupted erasure resumes at start-up.
 */
export {
  beginErasureIn,
  eraseCustomer,
  finishErasure,
  resumePendingErasures,
  type ErasureRecord,
} from './erasure.service.js';
export {
  beginCategoryErasureIn,
  finishCategoryErasure,
  resumePendingCategoryErasures,
  shreddedKeyIds,
  type CategoryErasureRecord,
} from './erasure.categories.js';
export { erasureRoutes } from './erasure.routes.js';
