/** Roles and what each may do. Routes declare a permission; nothing is allowed by default. */
export const roles = ['admin', 'privacy_officer', 'agent', 'marketer', 'auditor'] as const;
export type Role = (typeof roles)[number];

export const permissions = [
  'customers:create',
  'customers:read',
  'customers:update',
  'customers:list',
  'customers:erase',
  'purposes:read',
  'purposes:manage',
  'consents:read',
  'consents:record',
  'consents:stats',
  'tokens:manage',
  'staff:manage',
  'tasks:manage',
  'break_glass:use',
  'break_glass:review',
  /** The audit chain: ids, names and outcomes, never personal values. */
  'audit:read',
  /** Data-subject requests received by letter, phone or email: record them. */
  'requests:record',
  /** ...and work them: the list with deadlines, extensions, closing. */
  'requests:manage',
  /** Customers' change requests: see and decide them. */
  'changes:decide',
  /** One's own session: finishing MFA, logging out, changing one's password. */
  'session:self',
  /** A customer's own portal session; no staff role holds it. */
  'portal:self',
] as const;
export type Permission = (typeof permissions)[number];

/**
 * `admin` manages configuration, purposes and credentials but reads no personal data; `agent`
 * works with customers and records their consent instructions; `privacy_officer` also erases;
 * `marketer` sees masked lists and aggregates; `auditor` reads the audit log (and the purposes its entries name), nothing else.
 * Consent statistics hold no personal data.
 */
export const rolePermissions: Readonly<Record<Role, readonly Permission[]>> = {
  admin: [
    'purposes:read',
    'purposes:manage',
    'consents:stats',
    'tokens:manage',
    'staff:manage',
    'session:self',
  ],
  privacy_officer: [
    'customers:create',
    'customers:read',
    'customers:update',
    'customers:list',
    'customers:erase',
    'purposes:read',
    'consents:read',
    'consents:record',
    'consents:stats',
    'tasks:manage',
    'break_glass:use',
    'break_glass:review',
    'audit:read',
    'requests:record',
    'requests:manage',
    'changes:decide',
    'staff:manage',
    'session:self',
  ],
  agent: [
    'customers:create',
    'customers:read',
    'customers:update',
    'customers:list',
    'purposes:read',
    'consents:read',
    'consents:record',
    'tasks:manage',
    'break_glass:use',
    'requests:record',
    'changes:decide',
    'session:self',
  ],
  marketer: ['customers:list', 'purposes:read', 'consents:stats', 'session:self'],
  auditor: ['audit:read', 'purposes:read', 'session:self'],
};

/**
 * Who may make someone a member of a role (by invitation, a role change or reinstating a disabled
 * member). Access to personal data is granted by a privacy officer, never by an admin, who reads
 * none: otherwise an admin could invite themselves under another address as an agent. The
 * operator's CLI acts as the system and may grant any role.
 */
export const grantableRoles: Readonly<Record<Role, readonly Role[]>> = {
  admin: ['admin', 'marketer', 'auditor'],
  privacy_officer: ['privacy_officer', 'agent'],
  agent: [],
  marketer: [],
  auditor: [],
};

export function mayGrantRole(granterRole: string | null, role: Role): boolean {
  return granterRole !== null && isRole(granterRole) && grantableRoles[granterRole].includes(role);
}

export function isRole(value: string): value is Role {
  return (roles as readonly string[]).includes(value);
}

export function roleAllows(role: string, permission: Permission): boolean {
  return isRole(role) && rolePermissions[role].includes(permission);
}
