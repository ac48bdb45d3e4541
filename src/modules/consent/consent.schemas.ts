import { z } from 'zod';
import { consentMethods } from './consent.service.js';

/** A reference to a document or contract: an identifier, never personal data. */
export const referenceString = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/)
  .meta({ description: 'An identifier such as a contract number; never personal data' });

/** One agreement to record: consent, or another lawful basis with its reference and validity. */
export const consentInput = z.strictObject({
  purpose: z.string().min(1).max(64),
  noticeVersion: z.string().min(1).max(32),
  method: z.enum(consentMethods),
  startsAt: z.iso.datetime({ offset: true }).optional(),
  expiresAt: z.iso
    .datetime({ offset: true })
    .optional()
    .meta({ description: 'When the agreement lapses (e.g. 24 months for marketing)' }),
  reference: referenceString.optional(),
  documentRef: referenceString
    .optional()
    .meta({ description: 'The signed form or recording; required for staff_recorded and paper' }),
});

export const withdrawalInput = z.strictObject({
  method: z.enum(consentMethods),
  documentRef: referenceString.optional(),
});

const evidenceDto = z.object({
  staffId: z.string().optional(),
  documentRef: z.string().optional(),
  ipHash: z.string().optional(),
  userAgentHash: z.string().optional(),
});

export const consentStateDto = z.object({
  purpose: z.string(),
  state: z.enum(['active', 'pending', 'withdrawn', 'expired']),
  basis: z.string().nullable(),
  noticeVersion: z.string(),
  grantEventId: z.string(),
  startsAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
});

export const consentEventDto = z.object({
  id: z.string(),
  event: z.enum(['granted', 'withdrawn', 'expired']),
  purpose: z.string(),
  noticeVersion: z.string(),
  basis: z.string().nullable(),
  method: z.string(),
  at: z.string(),
  startsAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
  reference: z.string().nullable(),
  endsEventId: z.string().nullable(),
  evidence: evidenceDto,
});

export const consentStatsDto = z.object({
  purposes: z.array(
    z.object({
      purpose: z.string(),
      active: z.number().int(),
      pending: z.number().int(),
      withdrawn: z.number().int(),
      expired: z.number().int(),
    }),
  ),
  withdrawalsPerMonth: z.array(z.object({ month: z.string(), count: z.number().int() })),
});
