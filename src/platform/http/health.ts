import { sql } from 'kysely';
import { z } from 'zod';
import type { AppContext } from '../context.js';
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
        await sql`select 1`.execute(ctx.data.reader);
        await sql`select 1`.execute(ctx.keys.reader);
        return { status: 200, body: { status: 'ok' as const, dialect: ctx.data.dialect } };
      },
    }),
  ];
}
