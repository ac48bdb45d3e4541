import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { roles } from './staff.permissions.js';
import { createApiToken, listApiTokens, revokeApiToken } from './staff.service.js';

const tokenInfo = z.object({
  id: z.string(),
  role: z.enum(roles),
  label: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});

export function staffRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/tokens',
      permission: 'tokens:manage',
      summary: 'Create an API token; the token is shown in this response only',
      tags: ['tokens'],
      errors: [400, 401, 403, 413, 415, 503],
      personalData: true,
      schema: {
        body: z.strictObject({ role: z.enum(roles), label: z.string().trim().min(1).max(100) }),
        response: { 201: z.object({ id: z.string(), token: z.string() }) },
      },
      handler: async (req) => ({
        status: 201,
        body: await createApiToken(ctx, req.actor, req.body),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/tokens',
      permission: 'tokens:manage',
      summary: 'List API tokens (never their secrets)',
      tags: ['tokens'],
      errors: [401, 403],
      schema: { response: { 200: z.object({ items: z.array(tokenInfo) }) } },
      handler: async (req) => ({
        status: 200,
        body: { items: await listApiTokens(ctx, req.actor.workspaceId) },
      }),
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/v1/tokens/:id',
      permission: 'tokens:manage',
      summary: 'Revoke an API token',
      tags: ['tokens'],
      errors: [400, 401, 403, 404, 503],
      schema: { params: z.strictObject({ id: z.uuid() }), response: { 204: z.null() } },
      handler: async (req) => {
        await revokeApiToken(ctx, req.actor, req.params.id);
        return { status: 204, body: null };
      },
    }),
  ];
}
