import { sql } from 'kysely';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { EVERY_WORKSPACE } from '../db/row-scope.js';
import { defineRoute, type RouteDefinition } from './route.js';

export function healthRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/health',
      permission: 'public',
      summary: 'Liveness and store reachability; no data',
      tags: ['health'],
      errors: [503],
      schema: {
        response: {
          200: z.object({ status: z.literal('ok'), dialect: z.enum(['sqlite', 'postgres']) }),
        },
      },
      handler: async () => {
        await ctx.data.read(EVERY_WORKSPACE, (db) => sql`select 1`.execute(db));
        await ctx.keys.read(EVERY_WORKSPACE, (db) => sql`select 1`.execute(db));
        return { status: 200, body: { status: 'ok' as const, dialect: ctx.data.dialect } };
      },
    }),
  ];
}
