import { z } from 'zod';
import { customerDataDto } from '../customers/index.js';
import { dataCategories } from '../purposes/index.js';

/**
 * What the portal answers about the customer: `GET /portal/me` and the JSON export
 * (`custodia.portal-export`, version 1). The OpenAPI document is generated from these, so the
 * export's schema is published at `/docs/json` (components of `GET /api/v1/portal/me/export`).
 */

const instant = z.string().describe('ISO 8601 UTC timestamp');

const contactPoint = z.object({
  value: z.string(),
  verifiedAt: instant
    .nullable()
    .describe('when the customer proved they control this value with a code; null otherwise'),
});

const heldCategory = z.object({
  category: z.enum(dataCategories),
  fields: z.array(z.string()).describe('the fields of this category that are held'),
  purposes: z
    .array(
      z.object({
        key: z.string(),
        name: z.string().describe("in the session's language"),
        lawfulBasis: z.string(),
        retentionDays: z.number().int(),
        noticeVersion: z.string(),
      }),
    )
    .describe('the purposes whose active agreement holds this category'),
  sources: z
    .array(z.string())
    .describe('where the data came from: provided_by_you, recorded_by_staff, imported, other'),
  recipients: z.array(z.object({ type: z.string(), description: z.string() })),
});

const consentState = z.object({
  purpose: z.string(),
  state: z.enum(['active', 'pending', 'withdrawn', 'expired']),
  basis: z.string().nullable(),
  noticeVersion: z.string(),
  grantEventId: z.string(),
  startsAt: instant.nullable(),
  expiresAt: instant.nullable(),
});

export const meDto = z.object({
  id: z.string(),
  createdAt: instant,
  updatedAt: instant,
  language: z.enum(['es', 'en']),
  data: customerDataDto.describe('every field held, decrypted, by category'),
  contactPoints: z.object({ email: contactPoint.optional(), phone: contactPoint.optional() }),
  categories: z.array(heldCategory),
  consents: z.array(consentState),
});

export const changeRequestDto = z.object({
  id: z.string(),
  customerId: z.string(),
  fields: z.array(z.string()),
  status: z.string().describe('pending, approved or rejected'),
  createdAt: instant,
  decidedAt: instant.nullable(),
  changes: z.record(z.string(), z.unknown()).optional(),
  note: z.string().nullable().optional(),
  reason: z.string().nullable().optional(),
});

export const exportDto = meDto.extend({
  format: z.literal('custodia.portal-export'),
  version: z.literal(1),
  exportedAt: instant,
  changeRequests: z.array(changeRequestDto),
});
