import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { breakGlass, listBreakGlass, reviewBreakGlass } from './tasks.break-glass.js';
import { closeTask, createTask, listTasks, reassignTask } from './tasks.service.js';

const taskDto = z.object({
  id: z.string(),
  customerId: z.string(),
  purpose: z.string(),
  title: z.string(),
  assigneeId: z.string(),
  createdBy: z.string(),
  createdAt: z.string(),
  dueAt: z.string(),
  status: z.enum(['open', 'closed']),
  closedAt: z.string().nullable(),
});
const taskParams = z.strictObject({ id: z.uuid() });
const breakGlassDto = z.object({
  id: z.string(),
  staffId: z.string(),
  customerId: z.string(),
  purpose: z.string(),
  justification: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  reviewStatus: z.enum(['pending', 'approved', 'flagged']),
  reviewedBy: z.string().nullable(),
  reviewedAt: z.string().nullable(),
  note: z.string().nullable(),
});

export function taskRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/tasks',
      permission: 'tasks:manage',
      summary:
        "Open a task for one customer and one purpose the customer agreed to; it is the assignee's grant to read that purpose's fields",
      tags: ['tasks'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        body: z.strictObject({
          customerId: z.uuid(),
          purpose: z
            .string()
            .min(1)
            .max(64)
            .regex(/^[a-z0-9_]+$/),
          title: z.string().trim().min(1).max(200),
          assigneeId: z.uuid(),
          dueAt: z.iso.datetime({ offset: true }),
        }),
        response: { 201: taskDto },
      },
      handler: async (req) => ({ status: 201, body: await createTask(ctx, req.actor, req.body) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/tasks',
      permission: 'tasks:manage',
      summary: "The actor's tasks (a privacy officer sees every task of the workspace)",
      tags: ['tasks'],
      errors: [401, 403, 503],
      personalData: true,
      schema: { response: { 200: z.object({ items: z.array(taskDto) }) } },
      handler: async (req) => ({ status: 200, body: { items: await listTasks(ctx, req.actor) } }),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/api/v1/tasks/:id',
      permission: 'tasks:manage',
      summary: 'Reassign an open task (its assignee, its creator or a privacy officer)',
      tags: ['tasks'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        params: taskParams,
        body: z.strictObject({ assigneeId: z.uuid() }),
        response: { 200: taskDto },
      },
      handler: async (req) => ({
        status: 200,
        body: await reassignTask(ctx, req.actor, req.params.id, req.body.assigneeId),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/tasks/:id/close',
      permission: 'tasks:manage',
      summary: 'Close a task: the grant it gave ends',
      tags: ['tasks'],
      errors: [400, 401, 403, 404, 409, 503],
      personalData: true,
      schema: { params: taskParams, response: { 200: taskDto } },
      handler: async (req) => ({
        status: 200,
        body: await closeTask(ctx, req.actor, req.params.id),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/break-glass',
      permission: 'break_glass:use',
      summary:
        'Emergency access without a task: one customer, one purpose, 30 minutes, on a written justification; reviewed by a privacy officer',
      tags: ['tasks'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        body: z.strictObject({
          customerId: z.uuid(),
          purpose: z
            .string()
            .min(1)
            .max(64)
            .regex(/^[a-z0-9_]+$/),
          justification: z.string().trim().min(20).max(1000),
        }),
        response: { 201: breakGlassDto },
      },
      handler: async (req) => ({ status: 201, body: await breakGlass(ctx, req.actor, req.body) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/break-glass',
      permission: 'break_glass:review',
      summary: "The privacy officer's review queue (pending by default)",
      tags: ['tasks'],
      errors: [400, 401, 403, 503],
      personalData: true,
      schema: {
        querystring: z.strictObject({
          status: z.enum(['pending', 'approved', 'flagged']).default('pending'),
        }),
        response: { 200: z.object({ items: z.array(breakGlassDto) }) },
      },
      handler: async (req) => ({
        status: 200,
        body: { items: await listBreakGlass(ctx, req.actor, req.query.status) },
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/break-glass/:id/review',
      permission: 'break_glass:review',
      summary: "Approve a break-glass access, or flag it with a note (once; not one's own)",
      tags: ['tasks'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        params: taskParams,
        body: z.strictObject({
          decision: z.enum(['approve', 'flag']),
          note: z.string().trim().min(1).max(1000).optional(),
        }),
        response: { 200: breakGlassDto },
      },
      handler: async (req) => ({
        status: 200,
        body: await reviewBreakGlass(ctx, req.actor, req.params.id, req.body),
      }),
    }),
  ];
}
