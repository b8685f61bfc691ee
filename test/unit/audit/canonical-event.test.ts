import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalEvent, chainHash, snakeCaseFields } from '../../../src/core/audit/events.js';
import {
  canonicalClaims,
  receiptClaims,
  signReceipt,
  type Receipt,
  type ReceiptClaims,
} from '../../../src/core/audit/receipts.js';
import { canonicalJson } from '../../../src/core/protocol/canonical-json.js';
import { inboundEvent, receiptFixture } from '../../helpers/audit-events.js';

/**
 * The hot path writes the canonical text of receipts and audit events field by field (one
 * JSON.stringify with the keys in code-unit order); `audit verify` and any outside verifier use
 * the general canonicalJson. These hold the two to the same text, byte for byte.
 */

const receipt: Receipt = receiptFixture({ signature: 'c'.repeat(86) });
const claims: ReceiptClaims = receiptClaims(receipt);

// Strings JSON escapes in every way it can: quotes, backslashes, controls, non-ASCII, an emoji
// (a surrogate pair) and a lone surrogate, which well-formed JSON.stringify writes as \udXXX.
const AWKWARD = ['"quoted"', 'back\\slash', 'line\nbreak\u0001', 'Ünïcödé ✓', '😀', '\ud800x'];

describe('canonicalClaims', () => {
  it('writes what canonicalJson writes, for ordinary and awkward values', () => {
    expect(canonicalClaims(claims)).toBe(canonicalJson(claims));
    for (const text of AWKWARD) {
      const odd = { ...claims, principal: text, resource: text, result_sha256: null };
      expect(canonicalClaims(odd)).toBe(canonicalJson(odd));
    }
  });

  it('is what a signed receipt is verified against', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signed = signReceipt(privateKey, claims);
    const verifies = (candidate: Receipt) =>
      verify(
        'sha256',
        Buffer.from(canonicalJson(receiptClaims(candidate))),
        publicKey,
        Buffer.from(signed.signature, 'base64url'),
      );
    expect(verifies(signed)).toBe(true);
    expect(verifies({ ...signed, outcome: 'error' })).toBe(false);
  });
});

describe('canonicalEvent', () => {
  const withId = (overrides: Parameters<typeof inboundEvent>[0] = {}) => ({
    ...inboundEvent(overrides),
    eventId: '019abcde-1234-7abc-8def-0123456789ac',
  });
  const general = (event: ReturnType<typeof withId>) => canonicalJson(snakeCaseFields(event));

  it('writes what canonicalJson writes of the snake_case fields', () => {
    for (const event of [
      withId(),
      withId({ receipt }),
      withId({
        direction: 'outbound',
        outcome: 'error',
        statusCode: null,
        errorCode: 'BACKEND_TIMEOUT',
        resultSha256: null,
        resultSize: null,
        requestSize: null,
        receipt: { ...receipt, result_sha256: null, outcome: 'timeout' },
      }),
      ...AWKWARD.map((text) =>
        withId({ principal: text, resource: text, receipt: { ...receipt, principal: text } }),
      ),
    ]) {
      expect(canonicalEvent(event)).toBe(general(event));
    }
  });

  it('hashes every field of a receipt that carries more than the known ones', () => {
    const extended = { ...receipt, note: { b: 1, a: [true, null] } } as unknown as Receipt;
    const event = withId({ receipt: extended });
    expect(canonicalEvent(event)).toBe(general(event));
    expect(canonicalEvent(event)).toContain('"note":{"a":[true,null],"b":1}');
    expect(chainHash('0'.repeat(64), event)).not.toBe(
      chainHash('0'.repeat(64), withId({ receipt })),
    );
  });

  it('takes the general walk for a receipt field that is not a string', () => {
    const numeric = { ...receipt, outcome: 7 } as unknown as Receipt;
    const event = withId({ receipt: numeric });
    expect(canonicalEvent(event)).toBe(general(event));
  });

  it('refuses numbers canonical JSON cannot carry, as canonicalJson does', () => {
    for (const overrides of [
      { durationUs: 1.5 },
      { requestSize: Number.NaN },
      { resultSize: 2 ** 60 },
      { statusCode: Infinity },
    ]) {
      const event = withId(overrides);
      expect(() => canonicalEvent(event)).toThrow(/cannot canonicalise number/);
      expect(() => general(event)).toThrow(/cannot canonicalise number/);
    }
  });
});
