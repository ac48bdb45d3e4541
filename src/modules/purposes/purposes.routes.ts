import { z } from 'zod';
import type { Actor, AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import { dataCategories, lawfulBases, noticeLanguages } from './purposes.catalogue.js';
import {
  changePurpose,
  createPurpose,
  getNotice,
  listNotices,
  loadPurposes,
  retirePurpose,
  type Notice,
  type Purpose,
} from './purposes.service.js';

const key = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9_]*$/);
const texts = (max: number) =>
  z.strictObject({ en: z.string().trim().min(1).max(max), es: z.string().trim().min(1).max(max) });
const categories = z.array(z.enum(dataCategories)).min(1).max(dataCategories.length);
const retentionDays = z.number().int().min(1).max(36_500);

const purposeDto = z.object({
  key: z.string(),
  lawfulBasis: z.enum(lawfulBases),
  categories: z.array(z.enum(dataCategories)),
  retentionDays: z.number().int(),
  noticeVersion: z.string(),
  noticeVersions: z.array(z.string()),
  name: z.object({ en: z.string(), es: z.string() }),
  description: z.object({ en: z.string(), es: z.string() }),
  status: z.enum(['active', 'retired']),
});

const noticeDto = z.object({
  purpose: z.string(),
  version: z.string(),
  language: z.enum(noticeLanguages),
  lawfulBasis: z.enum(lawfulBases),
  categories: z.array(z.enum(dataCategories)),
  retentionDays: z.number().int(),
  name: z.string(),
  description: z.string(),
  contentHash: z.string(),
  createdAt: z.string(),
});

const keyParams = z.strictObject({ key });

function toDto(p: Purpose): z.input<typeof purposeDto> {
  return {
    key: p.key,
    lawfulBasis: p.lawfulBasis,
    categories: [...p.categories],
    retentionDays: p.retentionDays,
    noticeVersion: p.noticeVersion,
    noticeVersions: [...p.notices.keys()].sort((a, b) => Number(a) - Number(b)),
    name: p.name,
    description: p.description,
    status: p.status,
  };
}

function noticeToDto(n: Notice): z.input<typeof noticeDto> {
  return { ...n, categories: [...n.categories] };
}

export interface PurposeRouteHooks {
  /** Ends every agreement under a purpose just retired; answers how many it ended. */
  readonly afterRetire: (actor: Actor, key: string) => Promise<number>;
}

export function purposeRoutes(ctx: AppContext, hooks: PurposeRouteHooks): RouteDefinition[] {
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
        const purposes = await ctx.data.read(req.actor.workspaceId, (db) =>
          loadPurposes(db, req.actor.workspaceId),
        );
        return { status: 200, body: { items: [...purposes.values()].map(toDto) } };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/purposes',
      permission: 'purposes:manage',
      summary: 'Create a purpose; its first notice version is 1',
      tags: ['purposes'],
      errors: [400, 401, 403, 409, 413, 415],
      schema: {
        body: z.strictObject({
          key,
          lawfulBasis: z.enum(lawfulBases),
          categories,
          retentionDays,
          name: texts(100),
          description: texts(2000),
        }),
        response: { 201: purposeDto },
      },
      handler: async (req) => ({
        status: 201,
        body: toDto(await createPurpose(ctx, req.actor, req.body)),
      }),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/api/v1/purposes/:key',
      permission: 'purposes:manage',
      summary:
        'Change categories (add only), retention or texts: publishes a new notice version. The lawful basis cannot change.',
      tags: ['purposes'],
      errors: [400, 401, 403, 409, 413, 415],
      schema: {
        params: keyParams,
        body: z.strictObject({
          categories: categories.optional(),
          retentionDays: retentionDays.optional(),
          name: texts(100).optional(),
          description: texts(2000).optional(),
        }),
        response: { 200: purposeDto },
      },
      handler: async (req) => ({
        status: 200,
        body: toDto(await changePurpose(ctx, req.actor, req.params.key, req.body)),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/purposes/:key/retire',
      permission: 'purposes:manage',
      summary:
        'Retire a purpose: every agreement under it ends, and data no other purpose covers is shredded',
      tags: ['purposes'],
      errors: [400, 401, 403],
      schema: {
        params: keyParams,
        response: { 200: z.object({ purpose: purposeDto, agreementsEnded: z.number().int() }) },
      },
      handler: async (req) => {
        const purpose = await retirePurpose(ctx, req.actor, req.params.key);
        const agreementsEnded = await hooks.afterRetire(req.actor, req.params.key);
        return { status: 200, body: { purpose: toDto(purpose), agreementsEnded } };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/purposes/:key/notices',
      permission: 'purposes:read',
      summary: 'Every notice version of a purpose, in each language, with its content hash',
      tags: ['purposes'],
      errors: [400, 401, 403],
      schema: { params: keyParams, response: { 200: z.object({ items: z.array(noticeDto) }) } },
      handler: async (req) => ({
        status: 200,
        body: {
          items: (await listNotices(ctx, req.actor.workspaceId, req.params.key)).map(noticeToDto),
        },
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/purposes/:key/notices/:version',
      permission: 'purposes:read',
      summary: 'The customer-facing text of one notice version',
      tags: ['purposes'],
      errors: [400, 401, 403],
      schema: {
        params: z.strictObject({ key, version: z.string().regex(/^[0-9]{1,6}$/) }),
        querystring: z.strictObject({ language: z.enum(noticeLanguages).default('en') }),
        response: { 200: noticeDto },
      },
      handler: async (req) => ({
        status: 200,
        body: noticeToDto(
          await getNotice(
            ctx,
            req.actor.workspaceId,
            req.params.key,
            req.params.version,
            req.query.language,
          ),
        ),
      }),
    }),
  ];
}
