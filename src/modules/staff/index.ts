/**
 * Credentials and roles. API tokens are stored as SHA-256 hashes of 256 random bits, shown
 * once at creation; every route declares a permission and roles grant nothing by default.
 */
export {
  authenticateToken,
  createApiToken,
  hasActiveToken,
  listApiTokens,
  revokeApiToken,
  type ApiTokenInfo,
  type TokenPrincipal,
} from './staff.service.js';
export { isRole, roleAllows, roles, type Permission, type Role } from './staff.permissions.js';
export { staffRoutes } from './staff.routes.js';
export {
  acceptInvitation,
  authenticateSession,
  changePassword,
  changeStaff,
  checkPassword,
  inviteStaff,
  listStaff,
  staffDisplayNames,
  login,
  logout,
  passSecondFactor,
  enrollTotp,
  findActiveStaffRole,
  type SessionPrincipal,
  type StaffMember,
} from './staff.accounts.js';
export { cookieSecure, readSessionCookie } from './staff.cookies.js';
export { staffAccountRoutes } from './staff.accounts.routes.js';
