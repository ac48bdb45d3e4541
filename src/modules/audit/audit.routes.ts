import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { listAuditEntries, verifyWorkspaceChain } from './audit.service.js';

const entryDto = z.object({
  seq: z.number().int(),
  at: z.string(),
  actorType: z.string(),
  actorId: z.string(),
  actorRole: z.string().nullable(),
  action: z.string(),
  customerId: z.string().nullable(),
  purpose: z.string().nullable(),
  fields: z.array(z.string()).readonly(),
  outcome: z.string(),
  reason: z.string().nullable(),
  requestId: z.string().nullable(),
  hash: z.string(),
});

const verifyDto = z.union([
  z.object({ ok: z.literal(true), entries: z.number().int() }),
  z.object({
    ok: z.literal(false),
    entries: z.number().int(),
    firstBadSeq: z.number().int(),
    problem: z.string(),
  }),
]);

export function auditRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/audit',
      permission: 'audit:read',
      summary: "A page of the workspace's audit chain (ids and outcomes only); the read is audited",
      tags: ['audit'],
      errors: [400, 401, 403, 503],
      schema: {
        querystring: z.strictObject({
          afterSeq: z.coerce.number().int().min(0).default(0),
          limit: z.coerce.number().int().min(1).max(500).default(100),
          customerId: z.uuid().optional(),
        }),
        response: {
          200: z.object({ items: z.array(entryDto), nextAfterSeq: z.number().int().nullable() }),
        },
      },
      handler: async (req) => ({
        status: 200,
        body: await listAuditEntries(ctx, req.actor, {
          afterSeq: req.query.afterSeq,
          limit: req.query.limit,
          ...(req.query.customerId === undefined ? {} : { customerId: req.query.customerId }),
        }),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/audit/verify',
      permission: 'audit:read',
      summary: "Verifies the workspace's chain: hashes, links and signed checkpoints",
      tags: ['audit'],
      errors: [401, 403],
      schema: { response: { 200: verifyDto } },
      handler: async (req) => {
        const result = await verifyWorkspaceChain(ctx.data, req.actor.workspaceId, (ws) =>
          ctx.signer.publicKey(ws),
        );
        return {
          status: 200,
          body: result.ok
            ? { ok: true as const, entries: result.entries }
            : {
                ok: false as const,
                entries: result.entries,
                firstBadSeq: result.firstBadSeq,
                problem: result.problem,
              },
        };
      },
    }),
  ];
}
