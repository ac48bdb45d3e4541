import { describe, expect, it } from 'vitest';
import {
  addMonths,
  daysInMonth,
  dueDateFor,
  extendedDueDateFor,
  extensionMonthsOf,
  isCalendarDate,
  utcDateOf,
} from './requests.dates.js';

describe('calendar dates of data-subject requests', () => {
  it('accepts only dates that exist', () => {
    for (const d of ['2026-01-31', '2024-02-29', '2000-02-29', '2026-12-31', '0001-01-01']) {
      expect(isCalendarDate(d), d).toBe(true);
    }
    for (const d of [
      '2026-02-29',
      '1900-02-29',
      '2100-02-29',
      '2026-04-31',
      '2026-13-01',
      '2026-00-10',
      '2026-01-00',
      '0000-01-01',
      '2026-1-05',
      '26-01-05',
      '2026-01-05T00:00:00Z',
      ' 2026-01-05',
      '',
    ]) {
      expect(isCalendarDate(d), d).toBe(false);
    }
  });

  it('knows the length of every month, leap years included', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((m) => daysInMonth(2026, m))).toEqual([
      31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
    ]);
    expect(daysInMonth(2024, 2)).toBe(29);
    expect(daysInMonth(2000, 2)).toBe(29);
    expect(daysInMonth(1900, 2)).toBe(28);
    expect(daysInMonth(2100, 2)).toBe(28);
  });

  it('adds calendar months, ending on the last day of a shorter month', () => {
    expect(addMonths('2026-01-15', 1)).toBe('2026-02-15');
    expect(addMonths('2026-01-31', 1)).toBe('2026-02-28');
    expect(addMonths('2024-01-31', 1)).toBe('2024-02-29');
    expect(addMonths('2026-03-31', 1)).toBe('2026-04-30');
    expect(addMonths('2026-08-31', 1)).toBe('2026-09-30');
    expect(addMonths('2026-02-28', 1)).toBe('2026-03-28');
    expect(addMonths('2024-02-29', 12)).toBe('2025-02-28');
    expect(addMonths('2024-02-29', 48)).toBe('2028-02-29');
    expect(addMonths('2026-12-15', 1)).toBe('2027-01-15');
    expect(addMonths('2026-11-30', 3)).toBe('2027-02-28');
    expect(addMonths('2026-05-20', 0)).toBe('2026-05-20');
  });

  it('subtracts calendar months the same way', () => {
    expect(addMonths('2026-03-31', -1)).toBe('2026-02-28');
    expect(addMonths('2026-01-15', -1)).toBe('2025-12-15');
    expect(addMonths('2025-02-28', -12)).toBe('2024-02-28');
    expect(addMonths('2024-02-29', -12)).toBe('2023-02-28');
  });

  it('refuses what is not a date or not a whole number of months', () => {
    expect(() => addMonths('2026-02-30', 1)).toThrow(RangeError);
    expect(() => addMonths('2026-02-01', 1.5)).toThrow(RangeError);
    expect(() => addMonths('9999-12-01', 1)).toThrow(RangeError);
    expect(() => addMonths('0001-01-01', -1)).toThrow(RangeError);
  });

  it('is due one month after receipt, extended months counted from receipt too', () => {
    expect(dueDateFor('2026-01-31')).toBe('2026-02-28');
    expect(dueDateFor('2024-01-30')).toBe('2024-02-29');
    expect(dueDateFor('2026-12-31')).toBe('2027-01-31');
    // Not from the clamped first deadline: 2026-02-28 + 1 would be 2026-03-28.
    expect(extendedDueDateFor('2026-01-31', 1)).toBe('2026-03-31');
    expect(extendedDueDateFor('2026-01-31', 2)).toBe('2026-04-30');
    expect(extendedDueDateFor('2025-12-31', 2)).toBe('2026-03-31');
  });

  it('reads back how far a request was extended', () => {
    expect(extensionMonthsOf('2026-01-31', null)).toBe(0);
    expect(extensionMonthsOf('2026-01-31', '2026-03-31')).toBe(1);
    expect(extensionMonthsOf('2026-01-31', '2026-04-30')).toBe(2);
    // A deadline no allowed extension gives: counted as the most, so no more is granted.
    expect(extensionMonthsOf('2026-01-31', '2026-03-28')).toBe(2);
  });

  it('takes the UTC date of an instant', () => {
    expect(utcDateOf(new Date(Date.UTC(2026, 0, 31, 23, 59, 59)))).toBe('2026-01-31');
    expect(utcDateOf(new Date('2026-02-01T00:30:00+01:00'))).toBe('2026-01-31');
  });
});
