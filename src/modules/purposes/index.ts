/**
 * Purposes and their notices: what each purpose needs, on which lawful basis, and the versioned
 * text a customer agreed to. Notices are only ever added, so every agreement can be proven.
 */
export {
  dataCategories,
  defaultPurposes,
  lawfulBases,
  noticeLanguages,
  specialCategories,
  type DataCategory,
  type LawfulBasis,
  type NoticeLanguage,
} from './purposes.catalogue.js';
export {
  cachedPurposes,
  getPurpose,
  loadPurposes,
  noticeContentHash,
  requireStillActive,
  seedDefaultPurposes,
  type NoticeTerms,
  type Purpose,
} from './purposes.service.js';
export { purposeRoutes, type PurposeRouteHooks } from './purposes.routes.js';
