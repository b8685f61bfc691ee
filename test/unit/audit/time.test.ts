import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseAuditTime } from '../../../src/cli/commands/audit-options.js';

const NOW = new Date('2030-06-15T12:00:00.000Z');

describe('parseAuditTime (--since, --until)', () => {
  it.each([
    ['15m', '2030-06-15T11:45:00.000Z'],
    ['2h', '2030-06-15T10:00:00.000Z'],
    ['7d', '2030-06-08T12:00:00.000Z'],
    ['2w', '2030-06-01T12:00:00.000Z'],
    ['90s', '2030-06-15T11:58:30.000Z'],
    ['0m', '2030-06-15T12:00:00.000Z'],
  ])('reads the relative time %s as that long before now', (given, expected) => {
    expect(parseAuditTime(given, NOW)).toBe(expected);
  });

  it.each([
    ['2030-01-31', '2030-01-31T00:00:00.000Z'],
    ['2030-01-31T09:30Z', '2030-01-31T09:30:00.000Z'],
    ['2030-01-31T09:30:15Z', '2030-01-31T09:30:15.000Z'],
    ['2030-01-31T09:30:15.250Z', '2030-01-31T09:30:15.250Z'],
    ['2030-01-31t09:30:15z', '2030-01-31T09:30:15.000Z'],
    ['2030-01-31T10:30:00+01:00', '2030-01-31T09:30:00.000Z'],
    ['2030-01-31T04:30:00-0500', '2030-01-31T09:30:00.000Z'],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
  ])('reads the ISO 8601 time %s as the UTC instant %s', (given, expected) => {
    expect(parseAuditTime(given, NOW)).toBe(expected);
  });

  it('rounds a bound finer than a millisecond up, so that >= and < stay exact on stored times', () => {
    expect(parseAuditTime('2030-01-31T09:30:15.2501Z', NOW)).toBe('2030-01-31T09:30:15.251Z');
    expect(parseAuditTime('2030-01-31T09:30:15.250000Z', NOW)).toBe('2030-01-31T09:30:15.250Z');
  });

  it.each([
    'yesterday',
    '15',
    '-2h',
    '2h ago',
    '1y',
    '2030-01-31T09:30:00',
    '2030-1-31',
    '2030-01-31 09:30:00Z',
    '2030-01-31T25:00:00Z',
    '',
  ])('refuses %j with a message that shows both forms', (given) => {
    expect(() => parseAuditTime(given, NOW)).toThrow(InvalidArgumentError);
    expect(() => parseAuditTime(given, NOW)).toThrow(/ISO 8601 .* relative one \(90s, 15m/);
  });

  it.each([
    [
      '2030-01-31T09:30:00',
      '2030-01-31T09:30:00 has no zone: for UTC, as audit tables show times, give 2030-01-31T09:30:00Z',
    ],
    // As audit query's table shows a time: UTC, a space, no zone.
    [
      '2030-01-31 09:30:15.250',
      'has no zone: for UTC, as audit tables show times, give 2030-01-31T09:30:15.250Z',
    ],
    [
      '2030-01-31 09:30:00+01:00',
      'put a T between the date and the time: 2030-01-31T09:30:00+01:00',
    ],
  ])('says what is off in the almost ISO 8601 time %j', (given, why) => {
    expect(() => parseAuditTime(given, NOW)).toThrow(/ISO 8601 .* relative one \(90s, 15m/);
    expect(() => parseAuditTime(given, NOW)).toThrow(why);
  });

  it.each(['2030-02-30', '2029-02-29T00:00:00Z', '2030-04-31'])(
    'refuses the day that does not exist in %s',
    (given) => {
      expect(() => parseAuditTime(given, NOW)).toThrow(/is not a day/);
    },
  );
});
