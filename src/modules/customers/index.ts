/**
 * The customer vault: the only code that encrypts, stores, reads and decrypts personal fields.
 * Each operation audits its decision in the same transaction as its effect and decrypts only
 * after that commit is durable; reads return only the fields of a purpose the customer agreed to.
 */
export {
  countDataKeysByKekVersion,
  contactDigest,
  createCustomer,
  deleteCategoryData,
  deleteCustomerData,
  describeHoldings,
  findCustomersByContact,
  readOwnCustomer,
  destroyDataKeys,
  destroyCustomerKeys,
  heldCategories,
  lockCustomer,
  openSubjectFields,
  sealSubjectFields,
  listCustomers,
  readCustomer,
  rewrapDataKeys,
  searchCustomers,
  updateCustomer,
  type ReadAccess,
  type SubjectCategory,
  type TaskGrants,
  type WriteGuard,
} from './customers.service.js';
export { customerRoutes } from './customers.routes.js';
export { requestOrigin } from './customers.origin.js';
export {
  customerDataDto,
  customerParams,
  erasureDto,
  postalAddressSchema,
} from './customers.schemas.js';
export {
  fieldCategory,
  fieldNames,
  normaliseBirthDate,
  normaliseEmail,
  normalisePhone,
  type FieldName,
  type IndexedField,
} from './customers.fields.js';
