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
  'tokens:manage',
] as const;
export type Permission = (typeof permissions)[number];

/**
 * `admin` manages configuration and credentials but reads no personal data; `agent` works
 * with customers; `privacy_officer` also erases; `marketer` sees masked lists; `auditor`
 * reads the audit log (through the CLI for now).
 */
export const rolePermissions: Readonly<Record<Role, readonly Permission[]>> = {
  admin: ['purposes:read', 'tokens:manage'],
  privacy_officer: [
    'customers:create',
    'customers:read',
    'customers:update',
    'customers:list',
    'customers:erase',
    'purposes:read',
  ],
  agent: [
    'customers:create',
    'customers:read',
    'customers:update',
    'customers:list',
    'purposes:read',
  ],
  marketer: ['customers:list', 'purposes:read'],
  auditor: ['purposes:read'],
};

export function isRole(value: string): value is Role {
  return (roles as readonly string[]).includes(value);
}

export function roleAllows(role: string, permission: Permission): boolean {
  return isRole(role) && rolePermissions[role].includes(permission);
}
