import { z } from 'zod';
import { consentInput } from '../consent/index.js';

const name = z.string().trim().min(1).max(100);
const channel = z.enum(['email', 'sms', 'phone', 'post']);

export const postalAddressSchema = z.strictObject({
  lines: z.array(z.string().trim().min(1).max(100)).min(1).max(4),
  locality: z.string().trim().min(1).max(100),
  region: z.string().trim().min(1).max(100).optional(),
  postalCode: z.string().trim().min(1).max(20),
  country: z
    .string()
    .regex(/^[A-Z]{2}$/)
    .meta({ description: 'ISO 3166-1 alpha-2' }),
});

const fieldSchemas = {
  givenName: name,
  familyName: name,
  birthDate: z.string().max(10).meta({ description: 'YYYY-MM-DD', format: 'date' }),
  email: z.string().max(254).meta({ format: 'email' }),
  phone: z.string().max(32).meta({ description: 'Any common notation; stored as E.164' }),
  postalAddress: postalAddressSchema,
  interests: z.array(z.string().trim().min(1).max(50)).max(20),
  channels: z.array(channel).max(4),
};

export const identityInput = z.strictObject({
  givenName: fieldSchemas.givenName.optional(),
  familyName: fieldSchemas.familyName.optional(),
  birthDate: fieldSchemas.birthDate.optional(),
});
export const contactInput = z.strictObject({
  email: fieldSchemas.email.optional(),
  phone: fieldSchemas.phone.optional(),
  postalAddress: fieldSchemas.postalAddress.optional(),
});
export const preferencesInput = z.strictObject({
  interests: fieldSchemas.interests.optional(),
  channels: fieldSchemas.channels.optional(),
});

export const createCustomerBody = z.strictObject({
  consents: z.array(consentInput).min(1).max(20),
  identity: identityInput.optional(),
  contact: contactInput.optional(),
  preferences: preferencesInput.optional(),
});
export type CreateCustomerInput = z.output<typeof createCustomerBody>;

/** A field set to null is removed; an absent field is left as it is. */
export const updateCustomerBody = z.strictObject({
  identity: z
    .strictObject({
      givenName: fieldSchemas.givenName.nullable().optional(),
      familyName: fieldSchemas.familyName.nullable().optional(),
      birthDate: fieldSchemas.birthDate.nullable().optional(),
    })
    .optional(),
  contact: z
    .strictObject({
      email: fieldSchemas.email.nullable().optional(),
      phone: fieldSchemas.phone.nullable().optional(),
      postalAddress: fieldSchemas.postalAddress.nullable().optional(),
    })
    .optional(),
  preferences: z
    .strictObject({
      interests: fieldSchemas.interests.nullable().optional(),
      channels: fieldSchemas.channels.nullable().optional(),
    })
    .optional(),
});
export type UpdateCustomerInput = z.output<typeof updateCustomerBody>;

export const purposeKey = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9_]+$/);

export const customerParams = z.strictObject({ id: z.uuid() });
const taskId = z
  .uuid()
  .optional()
  .meta({ description: 'Staff: the open task that grants this read' });
const breakGlassId = z
  .uuid()
  .optional()
  .meta({ description: 'Staff, without a task: a live break-glass grant of theirs' });
export const readQuery = z.strictObject({ purpose: purposeKey, taskId, breakGlassId });

export const searchBody = z.union([
  z.strictObject({ email: fieldSchemas.email, purpose: purposeKey, taskId }),
  z.strictObject({ phone: fieldSchemas.phone, purpose: purposeKey, taskId }),
]);
export type SearchInput = z.output<typeof searchBody>;

export const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(25),
  cursor: z.uuid().optional(),
});

const identityOut = z.object({
  givenName: z.string().optional(),
  familyName: z.string().optional(),
  birthDate: z.string().optional(),
});
const contactOut = z.object({
  email: z.string().optional(),
  phone: z.string().optional(),
  postalAddress: postalAddressSchema.optional(),
});
const preferencesOut = z.object({
  interests: z.array(z.string()).optional(),
  channels: z.array(channel).optional(),
});

/** A customer's fields by category, as they are held (the portal's `data`). */
export const customerDataDto = z.object({
  identity: identityOut.optional(),
  contact: contactOut.optional(),
  preferences: preferencesOut.optional(),
});

const maskedValues = z.object({
  givenName: z.string().optional(),
  familyName: z.string().optional(),
  email: z.string().optional(),
  phone: z.string().optional(),
});

export const customerDto = z.object({
  id: z.string(),
  purpose: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /**
   * `granted`: the purpose's fields in plaintext. `masked`: a staff reader without a grant (an
   * open task assigned to them, or break-glass) sees the masked values a list shows.
   */
  access: z.enum(['granted', 'masked']).optional(),
  identity: identityOut.optional(),
  contact: contactOut.optional(),
  preferences: preferencesOut.optional(),
  masked: maskedValues.optional(),
});
export type CustomerDto = z.input<typeof customerDto>;

export const maskedCustomerDto = z.object({
  id: z.string(),
  createdAt: z.string(),
  masked: maskedValues,
});
export type MaskedCustomerDto = z.input<typeof maskedCustomerDto>;

export const erasureDto = z.object({
  id: z.string(),
  customerId: z.string(),
  status: z.enum(['pending', 'completed']),
  requestedAt: z.string(),
  completedAt: z.string().nullable(),
  categories: z.array(z.string()),
  destroyedKeyIds: z.array(z.string()),
});
