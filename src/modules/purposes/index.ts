/** Purposes and data categories: what each purpose needs, on which lawful basis. */
export {
  dataCategories,
  defaultPurposes,
  lawfulBases,
  type DataCategory,
  type LawfulBasis,
} from './purposes.catalogue.js';
export {
  cachedPurposes,
  loadPurposes,
  seedDefaultPurposes,
  type Purpose,
} from './purposes.service.js';
export { purposeRoutes } from './purposes.routes.js';
