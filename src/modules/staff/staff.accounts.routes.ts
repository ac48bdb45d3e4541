import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { DomainError } from '../../platform/errors.js';
import {
  defineRoute,
  type RouteDefinition,
  type StaffSessionRef,
} from '../../platform/http/route.js';
import { getWorkspaceByName } from '../workspaces/index.js';
import {
  acceptInvitation,
  changePassword,
  changeStaff,
  enrollTotp,
  inviteStaff,
  listStaff,
  login,
  logout,
  passSecondFactor,
  SESSION_ABSOLUTE_HOURS,
} from './staff.accounts.js';
import { clearedSessionCookie, cookieSecure, sessionCookie } from './staff.cookies.js';
import { roles } from './staff.permissions.js';

const password = z.string().min(1).max(1024);
const email = z
  .string()
  .trim()
  .min(3)
  .max(254)
  .regex(/^[^\s@]+@[^\s@]+$/);
const memberDto = z.object({
  id: z.string(),
  email: z.string(),
  displayName: z.string(),
  role: z.enum(roles),
  status: z.enum(['invited', 'active', 'disabled']),
  mfaEnrolled: z.boolean(),
  createdAt: z.string(),
});
const ok = z.object({ ok: z.literal(true) });

function sessionOf(req: { raw: { staffSession?: StaffSessionRef } }): StaffSessionRef {
  const session = req.raw.staffSession;
  if (session === undefined) {
    throw new DomainError('unauthenticated', 'This needs a staff session (sign in).');
  }
  return session;
}

export function staffAccountRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/staff',
      permission: 'staff:manage',
      summary: 'Invite a staff member; the one-time invitation token is in this response only',
      tags: ['staff'],
      errors: [400, 401, 403, 409, 413, 415, 503],
      personalData: true,
      schema: {
        body: z.strictObject({
          email,
          displayName: z.string().trim().min(1).max(100),
          role: z.enum(roles),
        }),
        response: {
          201: z.object({ id: z.string(), invitationToken: z.string(), expiresAt: z.string() }),
        },
      },
      handler: async (req) => ({ status: 201, body: await inviteStaff(ctx, req.actor, req.body) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/staff',
      permission: 'staff:manage',
      summary: 'List staff members (audited)',
      tags: ['staff'],
      errors: [401, 403, 503],
      personalData: true,
      schema: { response: { 200: z.object({ items: z.array(memberDto) }) } },
      handler: async (req) => ({
        status: 200,
        body: { items: await listStaff(ctx, req.actor) },
      }),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/api/v1/staff/:id',
      permission: 'staff:manage',
      summary: "Change a member's role or disable them; their sessions end",
      tags: ['staff'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        params: z.strictObject({ id: z.uuid() }),
        body: z
          .strictObject({
            role: z.enum(roles).optional(),
            status: z.enum(['active', 'disabled']).optional(),
          })
          .refine((b) => b.role !== undefined || b.status !== undefined, 'nothing to change'),
        response: { 200: memberDto },
      },
      handler: async (req) => ({
        status: 200,
        body: await changeStaff(ctx, req.actor, req.params.id, req.body),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/auth/invitations/accept',
      permission: 'public',
      summary:
        'Accept an invitation by choosing a password (12 to 128 characters, not a common one)',
      tags: ['auth'],
      errors: [400, 413, 415],
      schema: {
        body: z.strictObject({ token: z.string().min(1).max(200), password }),
        response: { 200: z.object({ staffId: z.string() }) },
      },
      handler: async (req) => ({
        status: 200,
        body: await acceptInvitation(ctx, req.body, req.requestId),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/auth/login',
      permission: 'public',
      summary:
        'Sign in with email and password; sets the session cookie. The session can only pass the second factor until it does.',
      tags: ['auth'],
      errors: [400, 401, 413, 415],
      personalData: true,
      schema: {
        body: z.strictObject({
          workspace: z.string().min(1).max(100).default('default'),
          email,
          password,
        }),
        response: {
          200: z.object({
            csrfToken: z.string(),
            expiresAt: z.string(),
            secondFactor: z.enum(['enroll', 'verify']),
          }),
        },
      },
      handler: async (req) => {
        let workspaceId: string;
        try {
          workspaceId = await getWorkspaceByName(ctx, req.body.workspace);
        } catch {
          throw new DomainError('login_failed', 'Email or password is wrong.');
        }
        const session = await login(
          ctx,
          { workspaceId, email: req.body.email, password: req.body.password },
          { ip: req.raw.ip, requestId: req.requestId },
        );
        return {
          status: 200,
          cookies: [
            sessionCookie(session.token, cookieSecure(req.raw), SESSION_ABSOLUTE_HOURS * 3600),
          ],
          body: {
            csrfToken: session.csrfToken,
            expiresAt: session.expiresAt,
            secondFactor: session.mfaEnrolled ? ('verify' as const) : ('enroll' as const),
          },
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/auth/mfa/enroll',
      permission: 'session:self',
      summary: 'Start TOTP enrolment: the secret, shown once, and an otpauth:// URI for a QR code',
      tags: ['auth'],
      errors: [401, 403, 409, 503],
      personalData: true,
      schema: { response: { 200: z.object({ secret: z.string(), otpauthUri: z.string() }) } },
      handler: async (req) => ({
        status: 200,
        body: await enrollTotp(ctx, sessionOf(req), req.requestId),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/auth/mfa/verify',
      permission: 'session:self',
      summary:
        'Pass the second factor with a TOTP code or a recovery code. The first code after enrolment answers ten one-time recovery codes, shown once.',
      tags: ['auth'],
      errors: [400, 401, 403, 413, 415, 429, 503],
      personalData: true,
      schema: {
        body: z.union([
          z.strictObject({ code: z.string().min(1).max(16) }),
          z.strictObject({ recoveryCode: z.string().min(1).max(64) }),
        ]),
        response: { 200: z.object({ recoveryCodes: z.array(z.string()).nullable() }) },
      },
      handler: async (req) => ({
        status: 200,
        body: await passSecondFactor(ctx, sessionOf(req), req.body, req.requestId),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/auth/session',
      permission: 'session:self',
      summary: 'Who this session is: staff id, role, workspace, whether the second factor passed',
      tags: ['auth'],
      errors: [401, 403],
      schema: {
        response: {
          200: z.object({
            staffId: z.string(),
            role: z.string(),
            workspaceId: z.string(),
            secondFactorPassed: z.boolean(),
          }),
        },
      },
      handler: (req) => {
        const s = sessionOf(req);
        return Promise.resolve({
          status: 200,
          body: {
            staffId: s.staffId,
            role: s.role,
            workspaceId: s.workspaceId,
            secondFactorPassed: s.mfa,
          },
        });
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/auth/logout',
      permission: 'session:self',
      summary: 'End this session',
      tags: ['auth'],
      errors: [401, 403, 503],
      schema: { response: { 200: ok } },
      handler: async (req) => {
        await logout(ctx, sessionOf(req), req.requestId);
        return {
          status: 200,
          cookies: [clearedSessionCookie(cookieSecure(req.raw))],
          body: { ok: true as const },
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/auth/password',
      permission: 'session:self',
      summary: 'Change your password; every session of the account ends, this one included',
      tags: ['auth'],
      errors: [400, 401, 403, 413, 415, 503],
      schema: {
        body: z.strictObject({ currentPassword: password, newPassword: password }),
        response: { 200: ok },
      },
      handler: async (req) => {
        const session = sessionOf(req);
        // Only a session that passed the second factor changes the password: a password alone
        // must not be enough to lock the owner out.
        if (!session.mfa) throw new DomainError('mfa_required', 'Pass the second factor first.');
        await changePassword(ctx, session, req.body, req.requestId);
        return {
          status: 200,
          cookies: [clearedSessionCookie(cookieSecure(req.raw))],
          body: { ok: true as const },
        };
      },
    }),
  ];
}
