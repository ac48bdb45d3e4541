/**
 * Calendar dates as `YYYY-MM-DD` strings (proleptic Gregorian, no time of day, no time zone),
 * and the month arithmetic of a data-subject request's deadline. Pure: no clock, no `Date`
 * parsing of local time.
 */

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** One month after receipt; up to two more on a recorded reason (GDPR art. 12(3)). */
export const RESPONSE_MONTHS = 1;
export const MAX_EXTENSION_MONTHS = 2;

interface Ymd {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function parse(value: string): Ymd | undefined {
  const m = DATE.exec(value);
  if (m === null) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return undefined;
  }
  return { year, month, day };
}

function format({ year, month, day }: Ymd): string {
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

/** Whether `value` is a `YYYY-MM-DD` date that exists (no 2026-02-29, no 2026-13-01). */
export function isCalendarDate(value: string): boolean {
  return parse(value) !== undefined;
}

function parseOrThrow(value: string): Ymd {
  const ymd = parse(value);
  if (ymd === undefined) throw new RangeError('not a calendar date');
  return ymd;
}

/**
 * The same day `months` months later (or earlier, when negative); when that month is shorter,
 * its last day: 2026-01-31 + 1 = 2026-02-28, 2024-01-31 + 1 = 2024-02-29.
 */
export function addMonths(date: string, months: number): string {
  if (!Number.isInteger(months)) throw new RangeError('months must be an integer');
  const { year, month, day } = parseOrThrow(date);
  const index = year * 12 + (month - 1) + months;
  const y = Math.floor(index / 12);
  const m = (index % 12) + 1;
  if (y < 1 || y > 9999) throw new RangeError('date out of range');
  return format({ year: y, month: m, day: Math.min(day, daysInMonth(y, m)) });
}

/** The UTC calendar date of an instant. */
export function utcDateOf(instant: Date): string {
  return instant.toISOString().slice(0, 10);
}

/** The first deadline: one calendar month after the date of receipt. */
export function dueDateFor(receivedOn: string): string {
  return addMonths(receivedOn, RESPONSE_MONTHS);
}

/** The deadline after extending by `extensionMonths` in total, counted from receipt too. */
export function extendedDueDateFor(receivedOn: string, extensionMonths: number): string {
  return addMonths(receivedOn, RESPONSE_MONTHS + extensionMonths);
}

/**
 * How many months a request has been extended by, read back from its extended deadline. A
 * date that no allowed extension gives counts as the maximum, so it can be extended no more.
 */
export function extensionMonthsOf(receivedOn: string, extendedTo: string | null): number {
  if (extendedTo === null) return 0;
  for (let months = 1; months <= MAX_EXTENSION_MONTHS; months += 1) {
    if (extendedDueDateFor(receivedOn, months) === extendedTo) return months;
  }
  return MAX_EXTENSION_MONTHS;
}

/** Dates in `YYYY-MM-DD` compare as strings; this names the intent. */
export function isBefore(a: string, b: string): boolean {
  return a < b;
}
