/**
 * The consent ledger: append-only events from which each customer's active purposes are
 * derived. A personal field may be stored only while an active purpose needs its category.
 */
export {
  activePurposesOf,
  consentMethods,
  deleteConsentsOf,
  recordGrants,
  type ConsentGrant,
  type ConsentMethod,
} from './consent.service.js';
