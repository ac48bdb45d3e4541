import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z, type ZodType } from 'zod';
import type { Actor } from '../context.js';
import type { Permission } from '../../modules/staff/index.js';

export const errorDto = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      requestId: z.string(),
      fields: z.array(z.string()).optional(),
    }),
  })
  .meta({ description: 'An error with a stable code; never echoes input values.' });

export interface RouteSchemas {
  readonly body?: ZodType;
  readonly params?: ZodType;
  readonly querystring?: ZodType;
  readonly response: Readonly<Record<number, ZodType>>;
}

type Out<T> = T extends ZodType ? z.output<T> : undefined;

export interface RouteRequest<S extends RouteSchemas> {
  readonly body: Out<S['body']>;
  readonly params: Out<S['params']>;
  readonly query: Out<S['querystring']>;
  readonly actor: Actor;
  readonly requestId: string;
  readonly raw: FastifyRequest;
}

/** The status must be one the route declares; the serializer checks the body against its schema. */
type ResponseOf<S extends RouteSchemas> = {
  status: number;
  /** Set-Cookie values to send (sessions). */
  cookies?: readonly string[];
  /** Send the body as is with this content type (a CSV export) instead of as JSON. */
  contentType?: string;
  body: {
    [K in keyof S['response']]: S['response'][K] extends ZodType
      ? z.input<S['response'][K]>
      : never;
  }[keyof S['response']];
};

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 503;

export interface RouteSpec<S extends RouteSchemas> {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  readonly url: string;
  /** What the caller's role must allow; `public` only for routes that expose nothing. */
  readonly permission: Permission | 'public';
  readonly summary: string;
  readonly tags: readonly string[];
  /** Error statuses this route can answer with, besides 500 and 429 (documented for all). */
  readonly errors: readonly ErrorStatus[];
  /** Responses carry personal data: sent with Cache-Control: no-store. */
  readonly personalData?: boolean;
  readonly schema: S;
  readonly handler: (req: RouteRequest<S>) => Promise<NoInfer<ResponseOf<S>>>;
}

/** The staff session behind a request, as the authentication hook found it. */
export interface StaffSessionRef {
  readonly sessionId: string;
  readonly staffId: string;
  readonly workspaceId: string;
  readonly role: string;
  readonly mfa: boolean;
  readonly csrfHash: string;
}

/** The customer portal session behind a request (permission `portal:self`). */
export interface PortalSessionRef {
  readonly sessionId: string;
  readonly customerId: string;
  readonly workspaceId: string;
  readonly csrfHash: string;
  readonly reverifiedAt: string | null;
  readonly language: 'en' | 'es';
}

export interface RouteDefinition {
  readonly method: string;
  readonly url: string;
  readonly permission: Permission | 'public';
  register(app: FastifyInstance): void;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: Permission | 'public';
  }
  interface FastifyRequest {
    actor?: Actor;
    /** Set when a staff session cookie authenticated the request. */
    staffSession?: StaffSessionRef;
    /** Set when a customer portal cookie authenticated the request. */
    portalSession?: PortalSessionRef;
  }
}

/** A route: schema-validated input, a declared permission, documented errors. */
export function defineRoute<const S extends RouteSchemas>(spec: RouteSpec<S>): RouteDefinition {
  return {
    method: spec.method,
    url: spec.url,
    permission: spec.permission,
    register(app) {
      const response: Record<number, ZodType> = { ...spec.schema.response };
      for (const status of [...spec.errors, 429, 500]) response[status] = errorDto;
      app.withTypeProvider<ZodTypeProvider>().route({
        method: spec.method,
        url: spec.url,
        config: { permission: spec.permission },
        schema: {
          summary: spec.summary,
          tags: [...spec.tags],
          ...(spec.permission === 'public' ? {} : { security: [{ bearerAuth: [] }] }),
          ...(spec.schema.body === undefined ? {} : { body: spec.schema.body }),
          ...(spec.schema.params === undefined ? {} : { params: spec.schema.params }),
          ...(spec.schema.querystring === undefined
            ? {}
            : { querystring: spec.schema.querystring }),
          response,
        },
        handler: async (request: FastifyRequest, reply: FastifyReply) => {
          const actor = request.actor ?? {
            type: 'system',
            id: 'anonymous',
            role: null,
            workspaceId: '',
            requestId: request.id,
          };
          const result = await spec.handler({
            body: request.body as Out<S['body']>,
            params: request.params as Out<S['params']>,
            query: request.query as Out<S['querystring']>,
            actor,
            requestId: request.id,
            raw: request,
          });
          if (!(result.status in spec.schema.response)) {
            throw new Error(`route ${spec.method} ${spec.url} answered an undeclared status`);
          }
          if (spec.personalData === true) reply.header('cache-control', 'no-store');
          if (result.cookies !== undefined && result.cookies.length > 0) {
            reply.header('set-cookie', [...result.cookies]);
          }
          if (result.contentType !== undefined) {
            reply.type(result.contentType).serializer((payload: unknown) => String(payload));
          }
          return reply.code(result.status).send(result.body);
        },
      });
    },
  };
}
