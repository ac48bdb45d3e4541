import { IncomingMessage, type ServerResponse } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import helmet from 'helmet';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { Actor, AppContext } from '../context.js';
import { sha256Hex } from '../crypto/index.js';
import { DomainError, isDomainError, statusOf, type ErrorCode } from '../errors.js';
import { newId } from '../ids.js';
import {
  authenticateSession,
  authenticateToken,
  readSessionCookie,
  roleAllows,
} from '../../modules/staff/index.js';
import { recordAudit } from '../../modules/audit/index.js';
import { authenticatePortalSession, readPortalCookie } from '../../modules/portal/index.js';
import type { RouteDefinition } from './route.js';

export interface AppOptions {
  readonly routes: readonly RouteDefinition[];
}

function errorBody(
  code: ErrorCode,
  message: string,
  requestId: string,
  fields?: readonly string[],
) {
  return {
    error: { code, message, requestId, ...(fields === undefined ? {} : { fields: [...fields] }) },
  };
}

/** Field paths only: a validation message could quote the value, so none is passed on. */
function validationFields(error: FastifyError): string[] {
  const context = error.validationContext ?? 'body';
  const fields = (error.validation ?? []).map((v) => {
    const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
    const params = v.params as { keys?: unknown } | undefined;
    const keys =
      v.keyword === 'unrecognized_keys' && Array.isArray(params?.keys)
        ? params.keys.map(String)
        : [];
    if (keys.length > 0) return keys.map((k) => [context, path, k].filter(Boolean).join('.'));
    return [[context, path].filter(Boolean).join('.')];
  });
  return [...new Set(fields.flat())];
}

/**
 * helmet's headers, computed once: its middleware rebuilds them on every request, which cost
 * more than some whole routes. The API docs UI sets its own CSP on its routes.
 */
function securityHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      Reflect.deleteProperty(headers, name.toLowerCase());
    },
  };
  const middleware = helmet({
    contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], frameAncestors: ["'none'"] } },
  });
  middleware(
    Object.create(IncomingMessage.prototype) as IncomingMessage,
    response as unknown as ServerResponse,
    () => undefined,
  );
  if (Object.keys(headers).length < 5) throw new Error('security headers could not be computed');
  return headers;
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer ([^\s]+)$/.exec(header);
  return match?.[1];
}

/** The HTTP app: hardening, authentication, error mapping, OpenAPI, then the modules' routes. */
export async function buildApp(ctx: AppContext, options: AppOptions): Promise<FastifyInstance> {
  // Typed as Fastify's logger so that routes register on a plain FastifyInstance.
  const loggerInstance: FastifyBaseLogger = ctx.logger;
  const app = Fastify({
    loggerInstance,
    bodyLimit: ctx.config.bodyLimitBytes,
    trustProxy: ctx.config.trustProxy,
    genReqId: () => newId(),
    requestIdHeader: false,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: anything else is answered with 415.
  app.removeContentTypeParser('text/plain');

  const headers = securityHeaders();
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.headers(headers);
    done();
  });
  await app.register(rateLimit, {
    max: ctx.config.rateLimitPerMinute,
    timeWindow: 60_000,
    errorResponseBuilder: () =>
      new DomainError('rate_limited', 'Too many requests; try again later.'),
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Custodia API',
        version: '1',
        description:
          'Customer data held in trust: every personal field encrypted, every access audited. Errors are `{ "error": { "code", "message", "requestId" } }` with stable codes.',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    return payload;
  });

  app.addHook('preValidation', async (request) => {
    const permission = request.routeOptions.config.permission;
    if (permission === undefined || permission === 'public') return;
    if (permission === 'portal:self') {
      request.actor = await authenticatePortal(ctx, request);
      return;
    }
    const token = bearerToken(request);
    let actor: Actor | undefined;
    if (token !== undefined) {
      const principal = await authenticateToken(ctx, token);
      if (principal !== undefined) {
        actor = {
          type: 'token',
          id: principal.tokenId,
          role: principal.role,
          workspaceId: principal.workspaceId,
          requestId: request.id,
        };
      }
    } else {
      const cookie = readSessionCookie(request.headers.cookie);
      const session =
        cookie === undefined ? undefined : await authenticateSession(ctx, cookie, request.id);
      if (session !== undefined) {
        actor = {
          type: 'staff',
          id: session.staffId,
          role: session.role,
          workspaceId: session.workspaceId,
          requestId: request.id,
        };
        request.staffSession = session;
        // A cookie rides along with any request the browser makes: writes must also show the
        // session's CSRF token, which only the page that signed in has.
        if (!['GET', 'HEAD', 'OPTIONS'].includes(request.method)) {
          const sent = request.headers['x-csrf-token'];
          if (typeof sent !== 'string' || sha256Hex(sent) !== session.csrfHash) {
            await recordAudit(ctx, actor, {
              action: 'access.denied',
              outcome: 'denied',
              reason: 'csrf',
            });
            throw new DomainError('csrf_failed', 'The CSRF token is missing or wrong.');
          }
        }
        if (!session.mfa && permission !== 'session:self') {
          await recordAudit(ctx, actor, {
            action: 'access.denied',
            outcome: 'denied',
            reason: 'mfa_required',
          });
          throw new DomainError('mfa_required', 'Pass the second factor first.');
        }
      }
    }
    if (actor === undefined) {
      request.log.info('authentication failed');
      throw new DomainError('unauthenticated', 'A valid bearer token or session is required.');
    }
    if (actor.role === null || !roleAllows(actor.role, permission)) {
      await recordAudit(ctx, actor, {
        action: 'access.denied',
        outcome: 'denied',
        reason: `permission:${permission}`,
      });
      throw new DomainError('forbidden', 'This role may not do that.');
    }
    request.actor = actor;
  });

  /** A customer's portal cookie, and its CSRF token on writes; nothing else opens the portal. */
  async function authenticatePortal(context: AppContext, request: FastifyRequest): Promise<Actor> {
    const cookie = readPortalCookie(request.headers.cookie);
    const session =
      cookie === undefined ? undefined : await authenticatePortalSession(context, cookie);
    if (session === undefined) {
      request.log.info('portal authentication failed');
      throw new DomainError('unauthenticated', 'Sign in to the portal with a code first.');
    }
    const actor: Actor = {
      type: 'customer',
      id: session.customerId,
      role: null,
      workspaceId: session.workspaceId,
      requestId: request.id,
    };
    if (!['GET', 'HEAD', 'OPTIONS'].includes(request.method)) {
      const sent = request.headers['x-csrf-token'];
      if (typeof sent !== 'string' || sha256Hex(sent) !== session.csrfHash) {
        await recordAudit(context, actor, {
          action: 'access.denied',
          customerId: session.customerId,
          outcome: 'denied',
          reason: 'csrf',
        });
        throw new DomainError('csrf_failed', 'The CSRF token is missing or wrong.');
      }
    }
    request.portalSession = session;
    return actor;
  }

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody('not_found', 'Not found.', request.id));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isDomainError(error)) {
      if (error.code === 'audit_unavailable' || error.code === 'decryption_failed') {
        request.log.error({ err: error.cause ?? error, code: error.code }, 'request failed closed');
      }
      return reply
        .code(statusOf(error.code))
        .send(errorBody(error.code, error.message, request.id, error.details?.fields));
    }
    if (hasZodFastifySchemaValidationErrors(error) || error.validation !== undefined) {
      const fields = validationFields(error);
      return reply
        .code(400)
        .send(errorBody('invalid_input', 'The request is not valid.', request.id, fields));
    }
    switch (error.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply
          .code(415)
          .send(errorBody('unsupported_media_type', 'Send application/json.', request.id));
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply
          .code(413)
          .send(errorBody('payload_too_large', 'The request body is too large.', request.id));
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return reply
          .code(400)
          .send(errorBody('invalid_input', 'The body is not valid JSON.', request.id));
      default:
        break;
    }
    if (error instanceof SyntaxError) {
      return reply
        .code(400)
        .send(errorBody('invalid_input', 'The body is not valid JSON.', request.id));
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return reply
        .code(400)
        .send(errorBody('invalid_input', 'The request is not valid.', request.id));
    }
    request.log.error({ err: error }, 'unexpected error');
    return reply
      .code(500)
      .send(
        errorBody(
          'internal_error',
          'Something went wrong; the request id identifies it.',
          request.id,
        ),
      );
  });

  for (const route of options.routes) route.register(app);
  return app;
}
