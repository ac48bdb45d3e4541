import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { DomainError } from '../../platform/errors.js';
import {
  defineRoute,
  type PortalSessionRef,
  type RouteDefinition,
} from '../../platform/http/route.js';
import { postalAddressSchema, requestOrigin, type TaskGrants } from '../customers/index.js';
import { cookieSecure } from '../staff/index.js';
import { findWorkspaceByName } from '../workspaces/index.js';
import { endSession, SESSION_ABSOLUTE_MINUTES } from './portal.access.js';
import { clearedPortalCookie, portalCookie } from './portal.cookies.js';
import { changeRequestDto, exportDto, meDto } from './portal.schemas.js';
import {
  accessLog,
  createChangeRequest,
  decideChangeRequest,
  exportCsv,
  exportMe,
  grantConsent,
  listChangeRequests,
  listConsents,
  listOwnChangeRequests,
  readMe,
  startContactChange,
  startLogin,
  startReverify,
  updateMe,
  verifyContactChange,
  verifyLogin,
  verifyReverify,
  withdrawConsent,
  withdrawFromProgramme,
  type PortalDeps,
} from './portal.service.js';

const language = z.enum(['en', 'es']).default('en');
const email = z.string().trim().min(3).max(254);
const code = z.string().regex(/^\d{6}$/);
const workspace = z.string().min(1).max(100).default('default');
const name = z.string().trim().min(1).max(100);
const anyObject = z.record(z.string(), z.unknown());

const changeView = changeRequestDto;

function sessionOf(raw: { portalSession?: PortalSessionRef }): PortalSessionRef {
  if (raw.portalSession === undefined) throw new DomainError('unauthenticated', 'Sign in first.');
  return raw.portalSession;
}

/** An unknown workspace answers like an unknown address: nothing is revealed. */
async function workspaceOf(ctx: AppContext, name: string): Promise<string | undefined> {
  return findWorkspaceByName(ctx, name);
}

export function portalRoutes(ctx: AppContext, deps: PortalDeps): RouteDefinition[] {
  const tags = ['portal'];
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/login',
      permission: 'public',
      summary:
        'Ask for a sign-in code by email. The answer is the same whether or not the address is a customer’s.',
      tags,
      errors: [400, 413, 415],
      schema: {
        body: z.strictObject({ workspace, email, language }),
        response: { 202: z.object({ status: z.literal('sent'), expiresInSeconds: z.number() }) },
      },
      handler: async (req) => {
        const ws = await workspaceOf(ctx, req.body.workspace);
        if (ws !== undefined) {
          await startLogin(
            ctx,
            deps,
            { workspaceId: ws, email: req.body.email, language: req.body.language },
            { ip: req.raw.ip, requestId: req.requestId },
          );
        }
        return { status: 202, body: { status: 'sent' as const, expiresInSeconds: 600 } };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/login/verify',
      permission: 'public',
      summary: 'Enter the code: opens a portal session (cookie) and answers its CSRF token',
      tags,
      errors: [400, 401, 413, 415, 503],
      schema: {
        body: z.strictObject({ workspace, email, code, language }),
        response: { 200: z.object({ csrfToken: z.string(), expiresAt: z.string() }) },
      },
      handler: async (req) => {
        const ws = await workspaceOf(ctx, req.body.workspace);
        if (ws === undefined) {
          throw new DomainError('code_expired', 'This code is no longer valid; ask for a new one.');
        }
        const session = await verifyLogin(
          ctx,
          {
            workspaceId: ws,
            email: req.body.email,
            code: req.body.code,
            language: req.body.language,
          },
          { requestId: req.requestId },
        );
        return {
          status: 200,
          cookies: [
            portalCookie(session.token, cookieSecure(req.raw), SESSION_ABSOLUTE_MINUTES * 60),
          ],
          body: { csrfToken: session.csrfToken, expiresAt: session.expiresAt },
        };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/portal/keys',
      permission: 'public',
      summary: 'The public key that erasure receipts of a workspace are signed with (Ed25519)',
      tags,
      errors: [400, 404],
      schema: {
        querystring: z.strictObject({ workspace }),
        response: {
          200: z.object({
            workspaceId: z.string(),
            algorithm: z.literal('Ed25519'),
            publicKey: z.string().meta({ description: 'The raw 32-byte key, base64' }),
            receiptPrefix: z.string(),
          }),
        },
      },
      handler: async (req) => {
        const ws = await workspaceOf(ctx, req.query.workspace);
        if (ws === undefined) throw new DomainError('not_found', 'No such workspace.');
        return {
          status: 200,
          body: {
            workspaceId: ws,
            algorithm: 'Ed25519' as const,
            publicKey: ctx.signer.publicKey(ws),
            receiptPrefix: 'custodia-erasure-receipt-v1\n',
          },
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/logout',
      permission: 'portal:self',
      summary: 'End the portal session',
      tags,
      errors: [401, 403, 503],
      schema: { response: { 204: z.null() } },
      handler: async (req) => {
        await endSession(ctx, req.actor, sessionOf(req.raw));
        return { status: 204, cookies: [clearedPortalCookie(cookieSecure(req.raw))], body: null };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/reverify',
      permission: 'portal:self',
      summary:
        'Send a fresh code to the customer’s email (needed before erasure and an email change)',
      tags,
      errors: [401, 403, 409, 503],
      schema: { response: { 202: z.object({ status: z.literal('sent') }) } },
      handler: async (req) => {
        await startReverify(ctx, deps, req.actor, sessionOf(req.raw), { ip: req.raw.ip });
        return { status: 202, body: { status: 'sent' as const } };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/reverify/verify',
      permission: 'portal:self',
      summary: 'Enter the fresh code: erasure and an email change are allowed for 10 minutes',
      tags,
      errors: [400, 401, 403, 503],
      schema: {
        body: z.strictObject({ code }),
        response: { 200: z.object({ validUntil: z.string() }) },
      },
      handler: async (req) => ({
        status: 200,
        body: await verifyReverify(ctx, req.actor, sessionOf(req.raw), req.body.code),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/portal/me',
      permission: 'portal:self',
      summary:
        'Everything held about the customer, decrypted, and per category the purposes, lawful basis, retention, sources and recipients',
      tags,
      errors: [401, 403, 404, 503],
      personalData: true,
      schema: { response: { 200: meDto } },
      handler: async (req) => ({
        status: 200,
        body: await readMe(ctx, req.actor, sessionOf(req.raw)),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/portal/me/export',
      permission: 'portal:self',
      summary:
        'The same content to take away: JSON (format custodia.portal-export, version 1) or CSV (one row per field)',
      tags,
      errors: [400, 401, 403, 404, 503],
      personalData: true,
      schema: {
        querystring: z.strictObject({ format: z.enum(['json', 'csv']).default('json') }),
        response: {
          200: z.union([exportDto, z.string().describe('text/csv with format=csv')]),
        },
      },
      handler: async (req) => {
        const data = await exportMe(ctx, req.actor, sessionOf(req.raw));
        if (req.query.format === 'csv') {
          return { status: 200, contentType: 'text/csv; charset=utf-8', body: exportCsv(data) };
        }
        return { status: 200, body: data };
      },
    }),
    defineRoute({
      method: 'PATCH',
      url: '/api/v1/portal/me',
      permission: 'portal:self',
      summary:
        'Change names and preferences directly (null removes). Email and phone change with a code; other fields by a change request',
      tags,
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      schema: {
        body: z.strictObject({
          identity: z
            .strictObject({
              givenName: name.nullable().optional(),
              familyName: name.nullable().optional(),
            })
            .optional(),
          preferences: z
            .strictObject({
              interests: z.array(z.string().trim().min(1).max(50)).max(20).nullable().optional(),
              channels: z
                .array(z.enum(['email', 'sms', 'phone', 'post']))
                .max(4)
                .nullable()
                .optional(),
            })
            .optional(),
        }),
        response: { 200: z.object({ updatedAt: z.string() }) },
      },
      handler: async (req) => ({
        status: 200,
        body: await updateMe(ctx, deps, req.actor, req.body),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/me/contact',
      permission: 'portal:self',
      summary:
        'Change the email or phone: a code goes to the new value (an email change needs a fresh code first)',
      tags,
      errors: [400, 401, 403, 413, 415, 503],
      schema: {
        body: z.strictObject({
          field: z.enum(['email', 'phone']),
          value: z.string().trim().min(3).max(254),
        }),
        response: { 202: z.object({ status: z.literal('sent') }) },
      },
      handler: async (req) => {
        await startContactChange(ctx, deps, req.actor, sessionOf(req.raw), req.body, {
          ip: req.raw.ip,
        });
        return { status: 202, body: { status: 'sent' as const } };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/me/contact/verify',
      permission: 'portal:self',
      summary:
        'Enter the code sent to the new value: the change is made and the contact point verified',
      tags,
      errors: [400, 401, 403, 409, 503],
      schema: {
        body: z.strictObject({ code }),
        response: { 200: z.object({ field: z.enum(['email', 'phone']), verifiedAt: z.string() }) },
      },
      handler: async (req) => ({
        status: 200,
        body: await verifyContactChange(ctx, deps, req.actor, sessionOf(req.raw), req.body.code),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/me/change-requests',
      permission: 'portal:self',
      summary: 'Ask for a change staff must check (birth date, postal address)',
      tags,
      errors: [400, 401, 403, 413, 415, 503],
      personalData: true,
      schema: {
        body: z.strictObject({
          changes: z.strictObject({
            birthDate: z.iso.date().optional(),
            postalAddress: postalAddressSchema.optional(),
          }),
          note: z.string().trim().min(1).max(1000).optional(),
        }),
        response: {
          201: z.object({
            id: z.string(),
            status: z.literal('pending'),
            fields: z.array(z.string()),
            createdAt: z.string(),
          }),
        },
      },
      handler: async (req) => ({
        status: 201,
        body: await createChangeRequest(ctx, req.actor, req.body),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/portal/me/change-requests',
      permission: 'portal:self',
      summary: 'The customer’s change requests and their status',
      tags,
      errors: [401, 403],
      personalData: true,
      schema: { response: { 200: z.object({ items: z.array(changeView) }) } },
      handler: async (req) => ({
        status: 200,
        body: { items: await listOwnChangeRequests(ctx, req.actor) },
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/portal/consents',
      permission: 'portal:self',
      summary: 'Each purpose with its notice in the customer’s language, and their state',
      tags,
      errors: [400, 401, 403],
      schema: {
        querystring: z.strictObject({ language: z.enum(['en', 'es']).optional() }),
        response: { 200: z.object({ items: z.array(anyObject) }) },
      },
      handler: async (req) => ({
        status: 200,
        body: {
          items: await listConsents(
            ctx,
            req.actor,
            req.query.language ?? sessionOf(req.raw).language,
          ),
        },
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/consents/:purpose',
      permission: 'portal:self',
      summary: 'Give consent to a purpose under its current notice',
      tags,
      errors: [400, 401, 403, 409, 503],
      schema: {
        params: z.strictObject({ purpose: z.string().min(1).max(64) }),
        response: {
          200: z.object({ purpose: z.string(), eventId: z.string(), created: z.boolean() }),
        },
      },
      handler: async (req) => ({
        status: 200,
        body: await grantConsent(ctx, req.actor, req.params.purpose, requestOrigin(req.raw)),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/consents/:purpose/withdraw',
      permission: 'portal:self',
      summary: 'Withdraw consent: what no other purpose covers is destroyed now, and listed',
      tags,
      errors: [400, 401, 403, 409, 503],
      schema: {
        params: z.strictObject({ purpose: z.string().min(1).max(64) }),
        response: { 200: anyObject },
      },
      handler: async (req) => ({
        status: 200,
        body: {
          ...(await withdrawConsent(ctx, req.actor, req.params.purpose, requestOrigin(req.raw))),
        },
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/portal/access-log',
      permission: 'portal:self',
      summary:
        'Every access by staff or integrations to the customer’s data: when, who (role, name), purpose, task, categories, break-glass',
      tags,
      errors: [401, 403, 503],
      schema: { response: { 200: z.object({ items: z.array(anyObject) }) } },
      handler: async (req) => ({
        status: 200,
        body: { items: await accessLog(ctx, req.actor) },
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/portal/withdraw',
      permission: 'portal:self',
      summary:
        'Leave the programme: after a fresh code, erase everything and answer a receipt signed with the workspace’s Ed25519 key',
      tags,
      errors: [401, 403, 503],
      schema: {
        response: {
          200: z.object({
            receipt: anyObject,
            signature: z.string(),
            algorithm: z.literal('Ed25519'),
            publicKey: z.string(),
          }),
        },
      },
      handler: async (req) => ({
        status: 200,
        cookies: [clearedPortalCookie(cookieSecure(req.raw))],
        body: await withdrawFromProgramme(ctx, deps, req.actor, sessionOf(req.raw)),
      }),
    }),
  ];
}

/** Staff side of customers' change requests. */
export function changeRequestRoutes(
  ctx: AppContext,
  deps: PortalDeps,
  grants: TaskGrants,
): RouteDefinition[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/change-requests',
      permission: 'changes:decide',
      summary: 'Customers’ change requests by status (field names only, never values)',
      tags: ['change-requests'],
      errors: [400, 401, 403],
      schema: {
        querystring: z.strictObject({
          status: z.enum(['pending', 'approved', 'rejected']).default('pending'),
        }),
        response: { 200: z.object({ items: z.array(changeView) }) },
      },
      handler: async (req) => ({
        status: 200,
        body: { items: await listChangeRequests(ctx, grants, req.actor, req.query.status) },
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/change-requests/:id/decide',
      permission: 'changes:decide',
      summary:
        'Approve (the change is written) or reject, with a reason: a privacy officer, or an agent under a task for the customer',
      tags: ['change-requests'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        params: z.strictObject({ id: z.uuid() }),
        body: z.strictObject({
          decision: z.enum(['approve', 'reject']),
          reason: z.string().trim().min(3).max(1000),
          taskId: z.uuid().optional(),
          purpose: z.string().min(1).max(64).optional(),
        }),
        response: { 200: changeView },
      },
      handler: async (req) => ({
        status: 200,
        body: await decideChangeRequest(ctx, deps, grants, req.actor, req.params.id, req.body),
      }),
    }),
  ];
}
