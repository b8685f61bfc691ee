/**
 * Runs x509-limbo test cases (../shared/limbo) through validateChain and compares the outcomes
 * with the suite's expectations. Used by `npm run limbo` (scripts/limbo.mjs) and by the unit
 * tests; it only computes, the callers print.
 */
import { pemBlocks } from '../identity/pem.js';
import { EKU_NAMES } from './oids.js';
import { validateChain, type ChainValidationResult, type KeyUsageName } from './validator.js';

export interface LimboPeerName {
  kind: 'DNS' | 'IP' | 'RFC822';
  value: string;
}

export interface LimboCase {
  id: string;
  description?: string;
  features?: readonly string[];
  conflicts_with?: readonly string[];
  validation_kind: 'SERVER' | 'CLIENT';
  trusted_certs: readonly string[];
  untrusted_intermediates: readonly string[];
  peer_certificate: string;
  validation_time?: string | null;
  signature_algorithms?: readonly string[];
  key_usage?: readonly string[];
  extended_key_usage?: readonly string[];
  expected_result: 'SUCCESS' | 'FAILURE';
  expected_peer_name?: LimboPeerName | null;
  expected_peer_names?: readonly LimboPeerName[];
  max_chain_depth?: number | null;
  crls?: readonly string[];
}

export type LimboOutcome =
  'agree' | 'accepted-expected-failure' | 'rejected-expected-success' | 'skipped';

export interface LimboCaseResult {
  id: string;
  expected: 'SUCCESS' | 'FAILURE';
  outcome: LimboOutcome;
  /** The validator's refusal (code: reason), or the reason the case was skipped. */
  detail: string;
  /** For skips: the group the reason belongs to. */
  skipGroup?: string;
  durationMs: number;
}

export interface LimboSummary {
  total: number;
  agree: number;
  acceptedExpectedFailure: number;
  rejectedExpectedSuccess: number;
  skipped: number;
  results: LimboCaseResult[];
}

/**
 * Optional behaviours (limbo "features") the validator does not implement. Every other feature
 * of the suite is implemented: has-crl, denial-of-service, max-chain-depth, name-constraint-dn,
 * pedantic-webpki-subscriber-key, pedantic-serial-number, pedantic-webpki-eku
 * and has-policy-constraints (a policyConstraints extension is never accepted: a non-critical one
 * is malformed, a critical one is not processed and so refuses the certificate).
 */
export const UNSUPPORTED_FEATURES: Readonly<Record<string, string>> = {
  'pedantic-public-suffix-wildcard':
    'wildcards over public suffixes need the Public Suffix List, which is not bundled ("*.com"-style single-label wildcards are refused)',
  'rfc5280-incompatible-with-webpki':
    'the validator follows the CA/B Forum where it departs from RFC 5280',
  'pedantic-rfc5280':
    'trust anchors are exempt from the authority-key-identifier rule (cve::cve-2024-0567 trusts a cross-signed root without one)',
  'has-cert-policies': 'certificate policy processing is not implemented',
  'no-cert-policies': 'certificate policy processing is not implemented',
};

/**
 * Cases that conflict with each other (limbo's `conflicts_with`) cannot both agree. For each such
 * pair, the case named here is the one whose expectation the validator follows; its counterpart
 * is skipped.
 */
export const FOLLOWED_IN_CONFLICTS: Readonly<Record<string, string>> = {
  'webpki::ca-as-leaf': 'a CA certificate is never accepted as the peer certificate',
  'rfc5280::eku::ee-without-eku':
    'a leaf without extendedKeyUsage is valid for any purpose (RFC 5280)',
  'webpki::nc::permitted-dns-match-noncritical':
    'non-critical name constraints are honoured (CA/B Forum)',
};

export function skipReason(testCase: LimboCase): { group: string; reason: string } | undefined {
  for (const feature of testCase.features ?? []) {
    const reason = UNSUPPORTED_FEATURES[feature];
    if (reason) return { group: `feature ${feature}`, reason: `feature ${feature}: ${reason}` };
  }
  for (const other of testCase.conflicts_with ?? []) {
    const why = FOLLOWED_IN_CONFLICTS[other];
    if (why)
      return {
        group: 'conflicting case',
        reason: `conflicts with ${other}, which the validator follows (${why})`,
      };
  }
  if ((testCase.signature_algorithms ?? []).length > 0) {
    return {
      group: 'signature_algorithms',
      reason: 'constraining signature algorithms per case is not supported',
    };
  }
  const peer = testCase.expected_peer_name;
  if (testCase.validation_kind === 'SERVER' && peer && peer.kind === 'RFC822') {
    return {
      group: 'peer name kind',
      reason: 'RFC822 peer names are not matched for server validation',
    };
  }
  return undefined;
}

function derOf(pem: string): Uint8Array {
  const block = pemBlocks(pem)[0];
  if (!block) throw new Error('no PEM block');
  return new Uint8Array(block.der);
}

function ekuOid(name: string): string {
  return EKU_NAMES[name] ?? name;
}

/** Runs one case through the validator (without deciding whether it agrees). */
export function runLimboCase(testCase: LimboCase): ChainValidationResult {
  const required = new Set((testCase.extended_key_usage ?? []).map(ekuOid));
  // The validation kind implies the purpose, as in the suite's own harnesses.
  required.add(
    testCase.validation_kind === 'SERVER' ? EKU_NAMES.serverAuth! : EKU_NAMES.clientAuth!,
  );
  const peer = testCase.expected_peer_name;
  const time = testCase.validation_time ? new Date(testCase.validation_time) : new Date();
  return validateChain({
    leaf: derOf(testCase.peer_certificate),
    intermediates: testCase.untrusted_intermediates.map(derOf),
    anchors: testCase.trusted_certs.map(derOf),
    crls: (testCase.crls ?? []).map(derOf),
    time,
    requiredExtendedKeyUsages: [...required],
    requiredKeyUsages: (testCase.key_usage ?? []) as KeyUsageName[],
    // Client validation (server side) names nobody: its expected_peer_names are not matched.
    ...(testCase.validation_kind === 'SERVER' && peer && peer.kind !== 'RFC822'
      ? {
          peerName: {
            kind: peer.kind === 'DNS' ? ('dns' as const) : ('ip' as const),
            value: peer.value,
          },
        }
      : {}),
    ...(testCase.max_chain_depth != null ? { maxChainDepth: testCase.max_chain_depth } : {}),
    profile: 'webpki',
  });
}

export function runLimbo(cases: readonly LimboCase[]): LimboSummary {
  const results: LimboCaseResult[] = [];
  for (const testCase of cases) {
    const skip = skipReason(testCase);
    if (skip) {
      results.push({
        id: testCase.id,
        expected: testCase.expected_result,
        outcome: 'skipped',
        detail: skip.reason,
        skipGroup: skip.group,
        durationMs: 0,
      });
      continue;
    }
    const started = performance.now();
    let result: ChainValidationResult;
    try {
      result = runLimboCase(testCase);
    } catch (error) {
      // A crash is a refusal as far as the suite goes, but it is reported as such.
      result = {
        valid: false,
        code: 'MALFORMED',
        reason: `validator threw: ${error instanceof Error ? error.stack : String(error)}`,
      };
    }
    const durationMs = performance.now() - started;
    const accepted = result.valid;
    const expectedSuccess = testCase.expected_result === 'SUCCESS';
    const outcome: LimboOutcome =
      accepted === expectedSuccess
        ? 'agree'
        : accepted
          ? 'accepted-expected-failure'
          : 'rejected-expected-success';
    results.push({
      id: testCase.id,
      expected: testCase.expected_result,
      outcome,
      detail: result.valid ? 'accepted' : `${result.code}: ${result.reason}`,
      durationMs,
    });
  }
  const count = (outcome: LimboOutcome): number =>
    results.filter((r) => r.outcome === outcome).length;
  return {
    total: results.length,
    agree: count('agree'),
    acceptedExpectedFailure: count('accepted-expected-failure'),
    rejectedExpectedSuccess: count('rejected-expected-success'),
    skipped: count('skipped'),
    results,
  };
}
