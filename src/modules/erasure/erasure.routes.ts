import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { customerParams, erasureDto } from '../customers/index.js';
import { eraseCustomer } from './erasure.service.js';

export function erasureRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'DELETE',
      url: '/api/v1/customers/:id',
      permission: 'customers:erase',
      summary:
        'Erase a customer: destroy their data keys, delete their rows, return the ledger entry',
      tags: ['customers', 'erasure'],
      errors: [400, 401, 403, 404, 503],
      schema: { params: customerParams, response: { 200: erasureDto } },
      handler: async (req) => ({
        status: 200,
        body: await eraseCustomer(ctx, req.actor, req.params.id),
      }),
    }),
  ];
}
