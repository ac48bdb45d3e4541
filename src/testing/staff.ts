import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { totpCode } from '../platform/crypto/index.js';
import type { Role } from '../modules/staff/index.js';
import { authHeader, type TestClock, type TestRuntime } from './harness.js';

/** How long one TOTP code is shown: moving the clock this far shows the next one. */
export const TOTP_STEP_MS = 30_000;

/** A staff member's cookie session: the cookie to send, and the CSRF token writes carry. */
export interface StaffSession {
  /** `custodia_session=…`, ready for a `cookie` header. */
  readonly cookie: string;
  readonly csrf: string;
}

/** A member who accepted the invitation: active, with a password, not signed in. */
export interface InvitedStaffMember {
  readonly id: string;
  readonly email: string;
  readonly password: string;
}

/** A member signed in and past the second factor. */
export interface StaffMember extends InvitedStaffMember {
  /** The TOTP secret the member enrolled, for codes later in the test. */
  readonly secret: string;
  readonly session: StaffSession;
}

/** A password login's answer: the session, and which second-factor step it still needs. */
export interface StaffLogin extends StaffSession {
  readonly secondFactor: 'enroll' | 'verify';
}

export interface InviteOptions {
  readonly role: Role;
  /**
   * An API token whose role may grant `role` (`grantableRoles`): a privacy officer's for agents
   * and privacy officers, an admin's for admins, marketers and auditors.
   */
  readonly granterToken: string;
  /** Unique per call unless given. */
  readonly email?: string;
  readonly displayName?: string;
  /** Unique per call unless given. */
  readonly password?: string;
}

export interface LoginOptions {
  readonly email: string;
  readonly password: string;
  /** Sent in the login body when given; the server's default workspace otherwise. */
  readonly workspace?: string;
  /** The client's address for every request the fixture sends (light-my-request's default otherwise). */
  readonly remoteAddress?: string;
}

export interface StaffMemberOptions extends InviteOptions {
  /** The runtime's clock: the first code is computed at its time. */
  readonly clock: TestClock;
  /** Sent in the login body when given. */
  readonly workspace?: string;
  readonly remoteAddress?: string;
  /** Moves the clock one TOTP step on after accepting, before logging in. */
  readonly stepBeforeLogin?: boolean;
}

export type StaffMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

let seq = 0;
function unique(prefix: string): string {
  seq += 1;
  return `${prefix}${seq}x${Math.random().toString(36).slice(2, 10)}`;
}

function withAddress(remoteAddress: string | undefined): { remoteAddress?: string } {
  return remoteAddress === undefined ? {} : { remoteAddress };
}

/** A request as a cookie session; writes carry its CSRF token. */
export function asStaffSession(
  rt: TestRuntime,
  session: StaffSession,
  method: StaffMethod,
  url: string,
  payload?: object,
  remoteAddress?: string,
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { cookie: session.cookie };
  if (method !== 'GET') headers['x-csrf-token'] = session.csrf;
  return rt.app.inject({
    method,
    url,
    headers,
    ...withAddress(remoteAddress),
    ...(payload === undefined ? {} : { payload }),
  });
}

/** Invites a member (`POST /api/v1/staff`) and accepts the invitation with a password. */
export async function inviteStaffMember(
  rt: TestRuntime,
  options: InviteOptions & { readonly remoteAddress?: string },
): Promise<InvitedStaffMember> {
  const email = options.email ?? `${unique('staff.')}@example.net`;
  const password = options.password ?? `correct horse battery ${unique('')}`;
  const invited = await rt.app.inject({
    method: 'POST',
    url: '/api/v1/staff',
    headers: authHeader(options.granterToken),
    ...withAddress(options.remoteAddress),
    payload: { email, displayName: options.displayName ?? 'Test Member', role: options.role },
  });
  expect(invited.statusCode, invited.body).toBe(201);
  const { id, invitationToken } = invited.json<{ id: string; invitationToken: string }>();
  const accepted = await rt.app.inject({
    method: 'POST',
    url: '/api/v1/auth/invitations/accept',
    ...withAddress(options.remoteAddress),
    payload: { token: invitationToken, password },
  });
  expect(accepted.statusCode, accepted.body).toBe(200);
  return { id, email, password };
}

/** Logs in with a password: the session cookie and CSRF token, before the second factor. */
export async function logInStaff(rt: TestRuntime, options: LoginOptions): Promise<StaffLogin> {
  const { email, password, workspace } = options;
  const res = await rt.app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    ...withAddress(options.remoteAddress),
    payload: workspace === undefined ? { email, password } : { workspace, email, password },
  });
  expect(res.statusCode, res.body).toBe(200);
  const header = res.headers['set-cookie'];
  const cookie = (Array.isArray(header) ? header : [header ?? ''])
    .map((c) => c.split(';')[0] ?? '')
    .find((c) => c.startsWith('custodia_session='));
  if (cookie === undefined) throw new Error('no session cookie');
  const body = res.json<{ csrfToken: string; secondFactor: 'enroll' | 'verify' }>();
  return { cookie, csrf: body.csrfToken, secondFactor: body.secondFactor };
}

/**
 * Invites, accepts, logs in, enrols TOTP and passes the first code: a member with a full
 * session.
 */
export async function newStaffMember(
  rt: TestRuntime,
  options: StaffMemberOptions,
): Promise<StaffMember> {
  const { clock, remoteAddress } = options;
  const { id, email, password } = await inviteStaffMember(rt, options);
  if (options.stepBeforeLogin === true) clock.advance(TOTP_STEP_MS);
  const login = await logInStaff(rt, {
    email,
    password,
    ...(options.workspace === undefined ? {} : { workspace: options.workspace }),
    ...withAddress(remoteAddress),
  });
  const session: StaffSession = { cookie: login.cookie, csrf: login.csrf };
  const enrol = await asStaffSession(
    rt,
    session,
    'POST',
    '/api/v1/auth/mfa/enroll',
    undefined,
    remoteAddress,
  );
  expect(enrol.statusCode, enrol.body).toBe(200);
  const { secret } = enrol.json<{ secret: string }>();
  const verify = await asStaffSession(
    rt,
    session,
    'POST',
    '/api/v1/auth/mfa/verify',
    { code: totpCode(secret, clock.now()) },
    remoteAddress,
  );
  expect(verify.statusCode, verify.body).toBe(200);
  return { id, email, password, secret, session };
}
