import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import {
  createCustomerBody,
  customerDto,
  customerParams,
  listQuery,
  maskedCustomerDto,
  readQuery,
  searchBody,
  updateCustomerBody,
} from './customers.schemas.js';
import { requestOrigin } from './customers.origin.js';
import {
  createCustomer,
  listCustomers,
  readCustomer,
  searchCustomers,
  updateCustomer,
  type TaskGrants,
  type WriteGuard,
} from './customers.service.js';

export function customerRoutes(
  ctx: AppContext,
  guard: WriteGuard,
  grants: TaskGrants,
): RouteDefinition[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/customers',
      permission: 'customers:create',
      summary:
        'Create a customer with their consents; fields no consented purpose needs are refused',
      tags: ['customers'],
      errors: [400, 401, 403, 409, 413, 415, 503],
      schema: { body: createCustomerBody, response: { 201: z.object({ id: z.string() }) } },
      handler: async (req) => ({
        status: 201,
        body: await createCustomer(ctx, req.actor, req.body, requestOrigin(req.raw)),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/customers',
      permission: 'customers:list',
      summary: 'List customers, masked values only',
      tags: ['customers'],
      errors: [400, 401, 403, 503],
      personalData: true,
      schema: {
        querystring: listQuery,
        response: {
          200: z.object({ items: z.array(maskedCustomerDto), nextCursor: z.string().nullable() }),
        },
      },
      handler: async (req) => ({
        status: 200,
        body: await listCustomers(ctx, req.actor, {
          limit: req.query.limit,
          cursor: req.query.cursor,
        }),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/customers/:id',
      permission: 'customers:read',
      summary:
        "Read the fields of one purpose's categories, if the customer agreed to that purpose",
      tags: ['customers'],
      errors: [400, 401, 403, 404, 503],
      personalData: true,
      schema: { params: customerParams, querystring: readQuery, response: { 200: customerDto } },
      handler: async (req) => ({
        status: 200,
        body: await readCustomer(ctx, req.actor, req.params.id, req.query.purpose, {
          taskId: req.query.taskId,
          breakGlassId: req.query.breakGlassId,
          grants,
        }),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/customers/search',
      permission: 'customers:read',
      summary: 'Find customers by exact email or phone (blind index), for a purpose',
      tags: ['customers'],
      errors: [400, 401, 403, 413, 415, 503],
      personalData: true,
      schema: { body: searchBody, response: { 200: z.object({ items: z.array(customerDto) }) } },
      handler: async (req) => ({
        status: 200,
        body: {
          items: await searchCustomers(ctx, req.actor, req.body, {
            taskId: req.body.taskId,
            grants,
          }),
        },
      }),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/api/v1/customers/:id',
      permission: 'customers:update',
      summary: 'Change or remove fields (null removes); writes need a consented purpose',
      tags: ['customers'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      schema: {
        params: customerParams,
        body: updateCustomerBody,
        response: { 200: z.object({ id: z.string(), updatedAt: z.string() }) },
      },
      handler: async (req) => ({
        status: 200,
        body: await updateCustomer(ctx, req.actor, req.params.id, req.body, guard),
      }),
    }),
  ];
}
