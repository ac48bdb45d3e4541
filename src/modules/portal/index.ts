/**
 * The customer portal: identity proved by one-time codes, then the customer sees, exports and
 * corrects their data, manages consents, reads who accessed it, and can leave (erasure with a
 * signed receipt).
 */
export { portalRoutes, changeRequestRoutes } from './portal.routes.js';
/** The live portal session a cookie token names (the HTTP layer's authentication). */
export { authenticatePortalSession, type PortalPrincipal } from './portal.access.js';
export { readPortalCookie } from './portal.cookies.js';
/** Deletes the portal's rows of a customer inside the erasure's unit of work. */
export { deletePortalRowsOf } from './portal.store.js';
export { purgePortalLeftovers, receiptMessage, type PortalDeps } from './portal.service.js';
