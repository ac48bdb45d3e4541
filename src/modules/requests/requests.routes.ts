import type { AppContext } from '../../platform/context.js';
import { defineRoute, type RouteDefinition } from '../../platform/http/route.js';
import {
  closeRequestBody,
  extendRequestBody,
  listRequestsQuery,
  recordRequestBody,
  requestParams,
  subjectRequestDto,
  subjectRequestPage,
} from './requests.schemas.js';
import {
  closeRequest,
  extendRequest,
  getRequest,
  listRequests,
  recordRequest,
} from './requests.service.js';

export function subjectRequestRoutes(ctx: AppContext): RouteDefinition[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/subject-requests',
      permission: 'requests:record',
      summary:
        'Record a data-subject request received by letter, phone, email or in person; due one calendar month after receipt',
      tags: ['subject-requests'],
      errors: [400, 401, 403, 404, 413, 415, 503],
      personalData: true,
      schema: { body: recordRequestBody, response: { 201: subjectRequestDto } },
      handler: async (req) => ({
        status: 201,
        body: await recordRequest(ctx, req.actor, req.body),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/subject-requests',
      permission: 'requests:manage',
      summary:
        "The privacy officer's list of data-subject requests, soonest effective deadline first; overdue=true for those past it",
      tags: ['subject-requests'],
      errors: [400, 401, 403, 503],
      personalData: true,
      schema: { querystring: listRequestsQuery, response: { 200: subjectRequestPage } },
      handler: async (req) => ({
        status: 200,
        body: await listRequests(ctx, req.actor, {
          status: req.query.status,
          overdue: req.query.overdue === undefined ? undefined : req.query.overdue === 'true',
          limit: req.query.limit,
          cursor: req.query.cursor,
        }),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/subject-requests/:id',
      permission: 'requests:manage',
      summary: 'One data-subject request with its deadlines, extensions and outcome',
      tags: ['subject-requests'],
      errors: [400, 401, 403, 404, 503],
      personalData: true,
      schema: { params: requestParams, response: { 200: subjectRequestDto } },
      handler: async (req) => ({
        status: 200,
        body: await getRequest(ctx, req.actor, req.params.id),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/subject-requests/:id/extend',
      permission: 'requests:manage',
      summary:
        'Extend the deadline by one or two months (two at most in total) on a recorded reason, while open and not past due',
      tags: ['subject-requests'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        params: requestParams,
        body: extendRequestBody,
        response: { 200: subjectRequestDto },
      },
      handler: async (req) => ({
        status: 200,
        body: await extendRequest(ctx, req.actor, req.params.id, req.body),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/subject-requests/:id/close',
      permission: 'requests:manage',
      summary: 'Close an open data-subject request as completed or refused, with an optional note',
      tags: ['subject-requests'],
      errors: [400, 401, 403, 404, 409, 413, 415, 503],
      personalData: true,
      schema: {
        params: requestParams,
        body: closeRequestBody,
        response: { 200: subjectRequestDto },
      },
      handler: async (req) => ({
        status: 200,
        body: await closeRequest(ctx, req.actor, req.params.id, req.body),
      }),
    }),
  ];
}
