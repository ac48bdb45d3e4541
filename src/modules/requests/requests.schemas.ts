import { z } from 'zod';
import { isCalendarDate } from './requests.dates.js';
import {
  requestChannels,
  requestKinds,
  requestOutcomes,
  requestStatuses,
} from './requests.service.js';

const calendarDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/)
  .refine(isCalendarDate, { error: 'Not a calendar date.' })
  .meta({ description: 'YYYY-MM-DD', format: 'date' });

/** Free text that may hold personal data: sealed at rest, never logged or audited. */
const text = (min: number) => z.string().trim().min(min).max(2000);

export const requestParams = z.strictObject({ id: z.uuid() });

export const recordRequestBody = z.strictObject({
  customerId: z.uuid().optional(),
  kind: z.enum(requestKinds),
  channel: z.enum(requestChannels),
  receivedOn: calendarDate.meta({
    description: 'YYYY-MM-DD, the day it was received: not in the future, at most a year ago',
    format: 'date',
  }),
  details: text(1).optional(),
});

export const listRequestsQuery = z.strictObject({
  status: z.enum(requestStatuses).optional(),
  overdue: z
    .enum(['true', 'false'])
    .optional()
    .meta({ description: 'true: only open requests past their effective due date' }),
  limit: z.coerce.number().int().min(1).max(100).default(25),
  cursor: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    .optional()
    .meta({ description: 'The nextCursor of the previous page' }),
});

export const extendRequestBody = z.strictObject({
  months: z.union([z.literal(1), z.literal(2)]),
  reason: text(10),
});

export const closeRequestBody = z.strictObject({
  outcome: z.enum(requestOutcomes),
  note: text(1).optional(),
});

export const subjectRequestDto = z.object({
  id: z.string(),
  customerId: z.string().nullable(),
  kind: z.enum(requestKinds),
  channel: z.enum(requestChannels),
  receivedOn: z.string(),
  dueOn: z.string(),
  extendedTo: z.string().nullable(),
  effectiveDueOn: z.string(),
  status: z.enum(requestStatuses),
  isOverdue: z.boolean(),
  details: z.string().nullable(),
  extensions: z.array(
    z.object({
      months: z.number(),
      reason: z.string(),
      extendedAt: z.string(),
      extendedBy: z.string(),
    }),
  ),
  recordedBy: z.string(),
  createdAt: z.string(),
  closedAt: z.string().nullable(),
  closedBy: z.string().nullable(),
  outcomeNote: z.string().nullable(),
});

export const subjectRequestPage = z.object({
  items: z.array(subjectRequestDto),
  nextCursor: z.string().nullable(),
});
