import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../platform/errors.js';
import {
  maskField,
  normaliseBirthDate,
  normaliseEmail,
  normalisePhone,
} from './customers.fields.js';

const STAR = '•';

/** The DomainError thrown by fn; checks it names the path and does not echo the input. */
function invalidInput(fn: () => unknown, path: string, input: string): DomainError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${JSON.stringify(input)} to be refused`).toBeInstanceOf(DomainError);
  const error = caught as DomainError;
  expect(error.code).toBe('invalid_input');
  expect(error.details?.fields).toEqual([path]);
  if (input.trim() !== '') {
    expect(error.message).not.toContain(input.trim());
    expect(JSON.stringify(error.details)).not.toContain(input.trim());
  }
  return error;
}

describe('normaliseEmail', () => {
  it.each([
    ['lucia@example.org', 'lucia@example.org'],
    [' Lucia@Example.ORG ', 'lucia@example.org'],
    ['a.b+tag@sub.example.co.uk', 'a.b+tag@sub.example.co.uk'],
    ["o'brien@example.ie", "o'brien@example.ie"],
    ['x_y-z@my-host.example', 'x_y-z@my-host.example'],
    ['user@xn--bcher-kva.example', 'user@xn--bcher-kva.example'],
    ['user@example.xn--p1ai', 'user@example.xn--p1ai'],
    [`${'a'.repeat(64)}@example.com`, `${'a'.repeat(64)}@example.com`],
  ])('accepts %j as %j', (input, expected) => {
    expect(normaliseEmail(input)).toBe(expected);
    // Normalising is idempotent: storage and the blind index see one form.
    expect(normaliseEmail(expected)).toBe(expected);
  });

  it.each([
    '',
    '   ',
    'plain-canary',
    '@example.com',
    'canary@',
    'canary@localhost',
    'canary..dots@example.com',
    'canary@example..com',
    'canary@-example.com',
    'canary@example-.com',
    'canary@example.c',
    'canary@example.123',
    'can ary@example.com',
    'canary@exa mple.com',
    'lucía-canary@example.com',
    'canary@bücher.example',
    'canary@@example.com',
    'a@b@example.com',
    'canary@example.com.',
    'canary<script>@example.com',
    `${'a'.repeat(65)}@example.com`,
    `canary@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`,
    `canary@${'a'.repeat(64)}.com`,
  ])('refuses %j', (input) => {
    invalidInput(() => normaliseEmail(input), 'contact.email', input);
  });

  it('names the path it is given', () => {
    invalidInput(() => normaliseEmail('nope-canary', 'work.email'), 'work.email', 'nope-canary');
  });
});

describe('normalisePhone', () => {
  it.each([
    ['612 345 678', 'ES', '+34612345678'],
    ['612-345-678', 'ES', '+34612345678'],
    ['612345678', 'ES', '+34612345678'],
    ['+34 612 345 678', 'ES', '+34612345678'],
    [' +34612345678 ', 'ES', '+34612345678'],
    ['+44 20 7946 0958', 'ES', '+442079460958'],
    ['0044 20 7946 0958', 'ES', '+442079460958'],
    ['+49 30 12345678', 'ES', '+493012345678'],
    ['+33 1 23 45 67 89', 'ES', '+33123456789'],
    ['+1 650 253 0000', 'ES', '+16502530000'],
    ['(650) 253-0000', 'US', '+16502530000'],
    ['020 7946 0958', 'GB', '+442079460958'],
  ])('reads %j in region %s as %s', (input, region, expected) => {
    expect(normalisePhone(input, region)).toBe(expected);
    expect(normalisePhone(expected, region)).toBe(expected);
  });

  it.each([
    ['', 'ES'],
    ['garbage-canary', 'ES'],
    ['12', 'ES'],
    ['1234', 'ES'],
    ['+34 612 345 678 999', 'ES'],
    ['+99 612345678', 'ES'],
    ['612345678', 'ZZ'],
    ['+34', 'ES'],
    ['phone: none', 'ES'],
  ])('refuses %j in region %s', (input, region) => {
    invalidInput(() => normalisePhone(input, region), 'contact.phone', input);
  });

  it('refuses a number wrapped in other text rather than guessing which part is meant', () => {
    for (const input of ['call 612 345 678 now', '612345678;drop table', 'tel 612345678 or 699']) {
      invalidInput(() => normalisePhone(input, 'ES'), 'contact.phone', input);
    }
  });

  it('names the path it is given', () => {
    invalidInput(() => normalisePhone('x', 'ES', 'work.phone'), 'work.phone', 'x');
  });
});

describe('normaliseBirthDate', () => {
  const today = new Date('2026-01-15T09:00:00.000Z');

  it.each([
    '2000-02-29',
    '2024-02-29',
    '1996-02-29',
    '1999-12-31',
    '2026-01-15',
    '2026-01-01',
    '1877-01-01',
    '1876-01-16',
  ])('accepts %s', (input) => {
    expect(normaliseBirthDate(input, today)).toBe(input);
  });

  it.each([
    ['1900-02-29', 'not a leap year (century)'],
    ['2023-02-29', 'not a leap year'],
    ['2100-02-29', 'not a leap year, and future'],
    ['2000-02-30', 'no such day'],
    ['2000-04-31', 'no such day'],
    ['2000-13-01', 'no such month'],
    ['2000-00-10', 'month zero'],
    ['2000-01-00', 'day zero'],
    ['2000-01-32', 'no such day'],
    ['0099-01-01', 'two-digit year trap'],
    ['2026-01-16', 'tomorrow'],
    ['2030-06-01', 'future'],
    ['1875-06-01', 'more than 150 years ago'],
    ['1800-01-01', 'more than 150 years ago'],
    ['20000101', 'no separators'],
    ['2000-1-1', 'no padding'],
    [' 2000-01-01', 'surrounding space'],
    ['2000-01-01T00:00:00Z', 'a timestamp'],
    ['01/02/2000', 'another format'],
    ['abcd-ef-gh', 'not digits'],
    ['', 'empty'],
  ])('refuses %s (%s)', (input) => {
    invalidInput(() => normaliseBirthDate(input, today), 'identity.birthDate', input);
  });

  it('refuses a date more than 150 years before today, to the day', () => {
    // 2026-01-15 minus 150 years is 1876-01-15: a day earlier is beyond the limit.
    invalidInput(() => normaliseBirthDate('1876-01-14', today), 'identity.birthDate', '1876-01-14');
    invalidInput(() => normaliseBirthDate('1876-01-01', today), 'identity.birthDate', '1876-01-01');
  });

  it('accepts Feb 29 only in leap years (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1877, max: 2025 }), (year) => {
        const isLeap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
        const input = `${year}-02-29`;
        if (isLeap) expect(normaliseBirthDate(input, today)).toBe(input);
        else invalidInput(() => normaliseBirthDate(input, today), 'identity.birthDate', input);
      }),
    );
  });

  it('names the path it is given', () => {
    invalidInput(() => normaliseBirthDate('x', today, 'p.d'), 'p.d', 'x');
  });
});

describe('maskField', () => {
  function firstChar(s: string): string {
    const cp = s.codePointAt(0);
    return cp === undefined ? '' : String.fromCodePoint(cp);
  }

  it.each([
    ['givenName', 'Lucía', `L${STAR.repeat(3)}`],
    ['familyName', 'Martín', `M${STAR.repeat(3)}`],
    ['givenName', 'Ñandú', `Ñ${STAR.repeat(3)}`],
    ['givenName', '😀bc', `😀${STAR.repeat(3)}`],
    ['givenName', '', STAR.repeat(3)],
    ['email', 'lucia@example.org', `l${STAR.repeat(3)}@${STAR.repeat(3)}.org`],
    ['email', 'a.b@mail.example.co.uk', `a${STAR.repeat(3)}@${STAR.repeat(3)}.uk`],
    ['phone', '+34612345678', `${STAR.repeat(10)}78`],
  ] as const)('masks %s %j as %j', (field, value, expected) => {
    expect(maskField(field, value)).toBe(expected);
  });

  it('shows nothing of birth date, address, interests or channels', () => {
    expect(maskField('birthDate', '1990-05-17')).toBeUndefined();
    expect(maskField('postalAddress', { line1: 'Calle Mayor 1' })).toBeUndefined();
    expect(maskField('interests', ['wine'])).toBeUndefined();
    expect(maskField('channels', ['email'])).toBeUndefined();
  });

  it('never shows more than the first character of a name (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('givenName' as const, 'familyName' as const),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
        (field, name) => {
          const mask = maskField(field, name)!;
          expect(mask).toBe(`${firstChar(name)}${STAR.repeat(3)}`);
          // Apart from the stars, at most one code point is shown.
          const shown = mask.replaceAll(STAR, '');
          expect(shown).toBe(firstChar(shown));
        },
      ),
    );
  });

  it('never shows an email’s local part beyond its first character, nor its domain name', () => {
    const label = fc.stringMatching(/^[a-z][a-z0-9]{1,10}$/);
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{1,20}$/),
        fc.array(label, { minLength: 1, maxLength: 3 }),
        fc.stringMatching(/^[a-z]{2,6}$/),
        (local, labels, tld) => {
          fc.pre(!local.includes('..') && !local.endsWith('.'));
          const email = normaliseEmail(`${local}@${labels.join('.')}.${tld}`);
          const mask = maskField('email', email)!;
          expect(mask).toBe(`${local[0]!}${STAR.repeat(3)}@${STAR.repeat(3)}.${tld}`);
          const beforeTld = mask.slice(0, mask.length - tld.length);
          for (const l of labels) expect(beforeTld).not.toContain(l);
          expect(beforeTld).not.toContain(local.slice(0, 2));
        },
      ),
    );
  });

  it('does not reveal an email’s parts when the stored value has no dot in its domain', () => {
    const mask = maskField('email', 'first.last@localhost')!;
    expect(mask).not.toContain('last');
    expect(mask).not.toContain('localhost');
    expect(mask.startsWith(`f${STAR.repeat(3)}@${STAR.repeat(3)}.`)).toBe(true);
  });

  it('shows at most the last two digits of a phone number', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^\+[1-9][0-9]{7,13}$/), (phone) => {
        const mask = maskField('phone', phone)!;
        expect(mask.endsWith(phone.slice(-2))).toBe(true);
        expect(mask.replace(/\d{2}$/, '')).not.toMatch(/[0-9+]/);
      }),
    );
  });
});
