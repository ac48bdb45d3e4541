import { z } from 'zod';
import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { dataCategories, lawfulBases } from './purposes.catalogue.js';
import { loadPurposes } from './purposes.service.js';

const purposeDto = z.object({
  key: z.string(),
  lawfulBasis: z.enum(lawfulBases),
  categories: z.array(z.enum(dataCategories)),
  retentionDays: z.number().int(),
  noticeVersion: z.string(),
  name: z.object({ en: z.string(), es: z.string() }),
  description: z.object({ en: z.string(), es: z.string() }),
  status: z.enum(['active', 'retired']),
});

export function purposeRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/purposes',
      permission: 'purposes:read',
      summary: 'List the purposes of the workspace, with the categories each needs',
      tags: ['purposes'],
      errors: [401, 403],
      schema: { response: { 200: z.object({ items: z.array(purposeDto) }) } },
      handler: async (req) => {
        const purposes = await loadPurposes(ctx.data.reader, req.actor.workspaceId);
        return {
          status: 200,
          body: {
            items: [...purposes.values()].map((p) => ({
              key: p.key,
              lawfulBasis: p.lawfulBasis,
              categories: [...p.categories],
              retentionDays: p.retentionDays,
              noticeVersion: p.noticeVersion,
              name: p.name,
              description: p.description,
              status: p.status,
            })),
          },
        };
      },
    }),
  ];
}
