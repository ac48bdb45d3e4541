/**
 * The consent ledger: append-only events (granted, withdrawn, expired) for every lawful basis,
 * from which each customer's agreements are derived. A personal field may be stored only while
 * an active agreement's notice version needs its category.
 */
export {
  activeAgreementsOf,
  agreementsOf,
  categoriesOf,
  checkGrant,
  consentHistory,
  consentMethods,
  consentStats,
  coveredCategories,
  deleteConsentsOf,
  endRow,
  grantRows,
  insertConsentEvents,
  isAgreementActive,
  listEndableGrants,
  needsDocument,
  type Agreement,
  type ConsentGrant,
  type ConsentMethod,
  type ConsentHistoryEvent,
  type ConsentState,
  type ConsentStats,
  type RequestOrigin,
} from './consent.service.js';
export {
  consentEventDto,
  consentInput,
  consentStateDto,
  consentStatsDto,
  withdrawalInput,
} from './consent.schemas.js';
