import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runLimbo, runLimboCase, type LimboCase } from '../../../src/core/trust/limbo-harness.js';
import { validateChain } from '../../../src/core/trust/validator.js';
import { pemBlocks } from '../../../src/core/identity/pem.js';

const LIMBO = new URL('../../fixtures/limbo/limbo-subset.json', import.meta.url);
const cases = (JSON.parse(readFileSync(LIMBO, 'utf8')) as { testcases: LimboCase[] }).testcases;
const byId = new Map(cases.map((testCase) => [testCase.id, testCase]));

/** The agreement reached when this test was written; a regression below it fails. */
const MIN_AGREE = 192;
const MAX_SKIPPED = 7;

function der(pem: string): Uint8Array {
  return new Uint8Array((pemBlocks(pem)[0] as { der: Buffer }).der);
}

function limboCase(id: string): LimboCase {
  const testCase = byId.get(id);
  if (!testCase) throw new Error(`no limbo case ${id}`);
  return testCase;
}

describe('x509-limbo', () => {
  const summary = runLimbo(cases);

  it('runs every case', () => {
    expect(summary.total).toBe(207);
    expect(
      summary.agree +
        summary.skipped +
        summary.acceptedExpectedFailure +
        summary.rejectedExpectedSuccess,
    ).toBe(207);
  });

  it('accepts no chain the suite expects to fail', () => {
    const accepted = summary.results
      .filter((r) => r.outcome === 'accepted-expected-failure')
      .map((r) => r.id);
    expect(accepted).toEqual([]);
  });

  it(`agrees on at least ${MIN_AGREE} cases and skips at most ${MAX_SKIPPED}`, () => {
    expect(summary.agree).toBeGreaterThanOrEqual(MIN_AGREE);
    expect(summary.skipped).toBeLessThanOrEqual(MAX_SKIPPED);
  });

  it('skips only for declared features or declared conflicts', () => {
    for (const result of summary.results.filter((r) => r.outcome === 'skipped')) {
      expect(result.skipGroup).toMatch(/^(feature |conflicting case)/);
    }
  });

  // How long they take is for `npm run limbo` (it names the slowest case) to show, not for a
  // test to judge. What keeps them short is that each is cut off by a cheap check or a budget,
  // not by doing the work a hostile input asks for: a test can pin which one.
  it('fails the pathological cases fast: each is cut off by a cheap check or a budget', () => {
    const pathological = summary.results.filter((r) => r.id.startsWith('pathological::'));
    expect(
      Object.fromEntries(pathological.map((r) => [r.id.replace('pathological::', ''), r.detail])),
    ).toEqual({
      // Two trusted roots and an expired cross-signing intermediate: the path around it is found.
      'multiple-chains-expired-intermediate': 'accepted',
      // Issuer cycles: detected, not followed.
      'intermediate-cycle-distinct-cas': expect.stringMatching(/^UNKNOWN_ISSUER: .* form a loop$/),
      'intermediate-cycle-distinct-cas-max-depth': expect.stringMatching(
        /^UNKNOWN_ISSUER: .* form a loop$/,
      ),
      'intermediate-cycle-same-logical-ca': expect.stringMatching(
        /^UNKNOWN_ISSUER: .* form a loop$/,
      ),
      // Thousands of names against thousands of constraints: the comparison budget runs out.
      'nc-dos-1': expect.stringMatching(/^BUDGET_EXCEEDED: too many name constraint comparisons/),
      'nc-dos-2': expect.stringMatching(/^BUDGET_EXCEEDED: too many name constraint comparisons/),
      // Its names are in the subject only: refused for having no SAN before any comparison.
      'nc-dos-3': expect.stringMatching(/^BAD_SAN: /),
      // 100 look-alike CAs without the key identifiers the web PKI profile requires: each is
      // refused as an issuer before its signature is checked, so no path grows past the leaf.
      'pathological-chain-distinct-subject-distinct-key': expect.stringMatching(/^MISSING_AKI: /),
      'pathological-chain-same-subject-distinct-key': expect.stringMatching(/^MISSING_SKI: /),
      'pathological-chain-distinct-subject-same-key': expect.stringMatching(/^MISSING_AKI: /),
      'pathological-chain-same-subject-same-key': expect.stringMatching(/^MISSING_SKI: /),
    });
    for (const result of pathological) expect(result.outcome, result.id).toBe('agree');
  });

  it('refuses the CN/SAN mismatches of the CA/B Forum cases for the CN reason', () => {
    const result = runLimboCase(limboCase('webpki::cn::not-in-san'));
    expect(result).toMatchObject({ valid: false, code: 'BAD_NAME' });
  });

  // The leaves of the directoryName cases carry a common name outside their SANs, which the
  // TLS-server rules refuse first; validating without a server purpose reaches the constraints.
  it.each([
    ['rfc5280::nc::permitted-dn-mismatch', 'NAME_CONSTRAINT'],
    ['rfc5280::nc::excluded-dn-match', 'NAME_CONSTRAINT'],
    ['rfc5280::nc::permitted-dn-match-subject-san-mismatch', 'NAME_CONSTRAINT'],
    ['rfc5280::nc::excluded-dn-match-sub-mismatch', 'NAME_CONSTRAINT'],
    ['rfc5280::nc::permitted-dn-match', undefined],
    ['cve::cve-2025-61727', 'NAME_CONSTRAINT'],
    ['cve::cve-2025-61727-nc-permits-variant', 'NAME_CONSTRAINT'],
    ['webpki::nc::nc-permits-dns-san-pattern', undefined],
    ['rfc5280::nc::permitted-ipv4-match', undefined],
    ['rfc5280::nc::excluded-ipv4-match', 'NAME_CONSTRAINT'],
    ['rfc5280::nc::restrictive-permits-in-intermediates-narrows', 'NAME_CONSTRAINT'],
  ])('applies name constraints in %s', (id, code) => {
    const testCase = limboCase(id);
    const result = validateChain({
      leaf: der(testCase.peer_certificate),
      intermediates: testCase.untrusted_intermediates.map(der),
      anchors: testCase.trusted_certs.map(der),
      time: testCase.validation_time ? new Date(testCase.validation_time) : new Date(),
      requiredExtendedKeyUsages: [],
    });
    if (code === undefined) expect(result).toMatchObject({ valid: true });
    else expect(result).toMatchObject({ valid: false, code });
  });
});
