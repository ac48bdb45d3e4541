import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import { DomainError } from '../../platform/errors.js';
import type { DataCategory } from '../purposes/index.js';

/** Every personal field the vault stores, and its data category. */
export const fieldCategory = {
  givenName: 'identity',
  familyName: 'identity',
  birthDate: 'identity',
  email: 'contact',
  phone: 'contact',
  postalAddress: 'contact',
  interests: 'preferences',
  channels: 'preferences',
} as const satisfies Record<string, DataCategory>;

export type FieldName = keyof typeof fieldCategory;
export const fieldNames = Object.keys(fieldCategory) as FieldName[];

/** Fields with a blind index for exact-match search. */
export const indexedFields = ['email', 'phone'] as const satisfies readonly FieldName[];
export type IndexedField = (typeof indexedFields)[number];

export function isFieldName(value: string): value is FieldName {
  return value in fieldCategory;
}

/** `contact.email` style path of a field, as callers send it. */
export function fieldPath(field: FieldName): string {
  return `${fieldCategory[field]}.${field}`;
}

function invalid(path: string): DomainError {
  return new DomainError('invalid_input', 'A field is not valid.', { fields: [path] });
}

const EMAIL =
  /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** Trimmed and lower-cased; the same form feeds storage and the blind index. */
export function normaliseEmail(value: string, path = 'contact.email'): string {
  const v = value.trim().toLowerCase();
  const at = v.lastIndexOf('@');
  if (v.length > 254 || at < 1 || at > 64 || !EMAIL.test(v) || v.includes('..'))
    throw invalid(path);
  const tld = v.slice(v.lastIndexOf('.') + 1);
  if (!/^[a-z]{2,63}$|^xn--[a-z0-9-]+$/.test(tld)) throw invalid(path);
  return v;
}

/** E.164; numbers without a country prefix are read in the configured default region. */
export function normalisePhone(
  value: string,
  defaultRegion: string,
  path = 'contact.phone',
): string {
  // The whole value must be the number: no number picked out of surrounding text.
  const parsed = parsePhoneNumberFromString(value.trim(), {
    defaultCountry: defaultRegion as CountryCode,
    extract: false,
  });
  if (parsed === undefined || !parsed.isValid()) throw invalid(path);
  return parsed.number;
}

/** A real calendar date, not in the future, within 150 years. */
export function normaliseBirthDate(
  value: string,
  today: Date,
  path = 'identity.birthDate',
): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (m === null) throw invalid(path);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) {
    throw invalid(path);
  }
  const oldest = Date.UTC(today.getUTCFullYear() - 150, today.getUTCMonth(), today.getUTCDate());
  if (date.getTime() > today.getTime() || date.getTime() < oldest) throw invalid(path);
  return value;
}

export function blindIndexValue(field: IndexedField, value: unknown): string {
  return String(value);
}

const STAR = '•';

/** Masked forms for lists: enough to tell customers apart, not enough to identify them. */
export function maskField(field: FieldName, value: unknown): string | undefined {
  switch (field) {
    case 'givenName':
    case 'familyName': {
      const s = String(value);
      const first = s.codePointAt(0);
      return `${first === undefined ? '' : String.fromCodePoint(first)}${STAR.repeat(3)}`;
    }
    case 'email': {
      const s = String(value);
      const at = s.lastIndexOf('@');
      const domain = at > 0 ? s.slice(at + 1) : '';
      const dot = domain.lastIndexOf('.');
      const tld = dot >= 0 ? domain.slice(dot + 1) : '';
      return `${s[0] ?? ''}${STAR.repeat(3)}@${STAR.repeat(3)}.${tld}`;
    }
    case 'phone': {
      const s = String(value);
      return `${STAR.repeat(Math.max(s.length - 2, 3))}${s.slice(-2)}`;
    }
    case 'birthDate':
    case 'postalAddress':
    case 'interests':
    case 'channels':
      return undefined;
  }
}
