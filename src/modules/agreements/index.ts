/**
 * Agreements over time: recording grants, withdrawals and expiries in the consent ledger, and
 * destroying at once the data that an ended agreement leaves without a purpose.
 */
export {
  grantAgreements,
  sweepAgreements,
  withdrawAgreement,
  type AgreementEnd,
} from './agreements.service.js';
export { agreementRoutes } from './agreements.routes.js';
export { startExpirySweep, type PeriodicJob } from './agreements.schedule.js';
