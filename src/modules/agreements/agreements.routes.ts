import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { DomainError } from '../../platform/errors.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { recordAudit } from '../audit/index.js';
import {
  consentEventDto,
  consentHistory,
  consentInput,
  consentStateDto,
  consentStats,
  consentStatsDto,
  withdrawalInput,
} from '../consent/index.js';
import { customerParams, describeHoldings, erasureDto, requestOrigin } from '../customers/index.js';
import { loadPurposes } from '../purposes/index.js';
import { grantAgreements, withdrawAgreement } from './agreements.service.js';

const categoryErasureDto = z.object({
  id: z.string(),
  customerId: z.string(),
  purpose: z.string(),
  cause: z.string(),
  status: z.enum(['pending', 'completed']),
  requestedAt: z.string(),
  completedAt: z.string().nullable(),
  categories: z.array(z.string()),
  destroyedKeyIds: z.array(z.string()),
});

const withdrawalDto = z.object({
  eventId: z.string(),
  event: z.enum(['withdrawn', 'expired']),
  purpose: z.string(),
  at: z.string(),
  shredded: categoryErasureDto
    .nullable()
    .meta({ description: 'The categories destroyed because no remaining purpose covers them' }),
  erasure: erasureDto
    .nullable()
    .meta({ description: 'Set when this was the last purpose: the customer was erased' }),
});

const purposeParams = z.strictObject({
  id: z.uuid(),
  purpose: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9_]+$/),
});

export function agreementRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/customers/:id/consents',
      permission: 'consents:read',
      summary: "A customer's current agreement per purpose, and the full ledger history",
      tags: ['consents'],
      errors: [400, 401, 403, 404, 503],
      personalData: true,
      schema: {
        params: customerParams,
        response: {
          200: z.object({
            customerId: z.string(),
            current: z.array(consentStateDto),
            history: z.array(consentEventDto),
          }),
        },
      },
      handler: async (req) => {
        const id = req.params.id;
        const exists = (await describeHoldings(ctx, req.actor.workspaceId, id)).exists;
        await recordAudit(ctx, req.actor, {
          action: 'consent.read',
          customerId: id,
          outcome: exists ? 'allowed' : 'denied',
          reason: exists ? null : 'not_found',
        });
        if (!exists) throw new DomainError('not_found', 'No such customer.');
        const { current, history } = await ctx.data.read(req.actor.workspaceId, (db) =>
          consentHistory(db, req.actor.workspaceId, id, ctx.clock.now()),
        );
        return { status: 200, body: { customerId: id, current, history } };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/customers/:id/consents',
      permission: 'consents:record',
      summary:
        'Record agreements (consent or another lawful basis); repeating an active one changes nothing',
      tags: ['consents'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      schema: {
        params: customerParams,
        body: z.strictObject({ consents: z.array(consentInput).min(1).max(20) }),
        response: {
          200: z.object({
            granted: z.array(
              z.object({ purpose: z.string(), eventId: z.string(), created: z.boolean() }),
            ),
          }),
        },
      },
      handler: async (req) => ({
        status: 200,
        body: await grantAgreements(
          ctx,
          req.actor,
          req.params.id,
          req.body.consents,
          requestOrigin(req.raw),
        ),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/customers/:id/consents/:purpose/withdraw',
      permission: 'consents:record',
      summary:
        "Record the customer's withdrawal of a purpose; shreds at once what no remaining purpose covers",
      tags: ['consents'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      schema: { params: purposeParams, body: withdrawalInput, response: { 200: withdrawalDto } },
      handler: async (req) => ({
        status: 200,
        body: await withdrawAgreement(
          ctx,
          req.actor,
          req.params.id,
          req.params.purpose,
          req.body,
          requestOrigin(req.raw),
        ),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/consent/stats',
      permission: 'consents:stats',
      summary: 'Counts per purpose and state, and withdrawals per month; no personal data',
      tags: ['consents'],
      errors: [401, 403],
      schema: { response: { 200: consentStatsDto } },
      handler: async (req) => {
        const purposes = await ctx.data.read(req.actor.workspaceId, (db) =>
          loadPurposes(db, req.actor.workspaceId),
        );
        return {
          status: 200,
          body: await ctx.data.read(req.actor.workspaceId, (db) =>
            consentStats(db, req.actor.workspaceId, [...purposes.keys()], ctx.clock.now()),
          ),
        };
      },
    }),
  ];
}
