import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import {
  certificateFingerprint,
  normalizeFingerprint,
  shortFingerprint,
} from '../../src/core/identity/fingerprint.js';

const CANONICAL = '825c280379347919cbaed9289f7fa37de27bf679f24547d1e55922fc64d171c2';
const COLONS = CANONICAL.toUpperCase().match(/../g)?.join(':') ?? '';

describe('normalizeFingerprint', () => {
  it.each([
    ['canonical', CANONICAL],
    ['upper case', CANONICAL.toUpperCase()],
    ['colon-separated upper case (openssl)', COLONS],
    ['colon-separated lower case', COLONS.toLowerCase()],
    ['sha256: prefix', `sha256:${CANONICAL}`],
    ['SHA256: prefix with colons', `SHA256:${COLONS}`],
    ['surrounding white space', `  ${CANONICAL}\n`],
  ])('accepts %s', (_label, input) => {
    expect(normalizeFingerprint(input)).toBe(CANONICAL);
  });

  it.each([
    ['empty', ''],
    ['too short', CANONICAL.slice(0, 63)],
    ['too long', `${CANONICAL}00`],
    ['non-hex', `${CANONICAL.slice(0, 63)}g`],
    ['another prefix', `sha1:${CANONICAL}`],
    ['inner spaces', CANONICAL.replace(/(.{8})/g, '$1 ')],
    ['a SHA-1 fingerprint', 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01'],
  ])('refuses %s with a UsageError', (_label, input) => {
    let caught: unknown;
    try {
      normalizeFingerprint(input);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect(caught).toMatchObject({ kind: 'usage', code: 'BAD_FINGERPRINT' });
    expect((caught as UsageError).hint).toMatch(/64 hex digits/);
  });
});

describe('certificateFingerprint', () => {
  it('is lowercase hex SHA-256 over the bytes, without separators', () => {
    const der = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]);
    const fingerprint = certificateFingerprint(der);
    expect(fingerprint).toBe(createHash('sha256').update(der).digest('hex'));
    expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(shortFingerprint(fingerprint)).toBe(fingerprint.slice(0, 16));
  });
});
