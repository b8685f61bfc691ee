/**
 * X.509 certification path validation for sark-fed (DESIGN §3), held to the x509-limbo suite.
 *
 * Synchronous and self-contained: a strict DER reader, node:crypto for signatures. Two profiles:
 * - `webpki` (default): RFC 5280 path validation with the CA/B Forum's stricter rules where the
 *   two differ (no CA certificate as leaf, no anyExtendedKeyUsage, weak keys refused, SANs
 *   required of TLS servers, no common-name fallback).
 * - `x509-svid`: the same chain rules plus the SPIFFE X509-SVID leaf rules of DESIGN §2; the
 *   result carries the SPIFFE ID.
 */
import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { checkLeaf, checkValidity, type Profile } from './checks.js';
import { parseCrl, type ParsedCrl } from './crl.js';
import { DEFAULT_MAX_CHAIN_DEPTH, PathBuilder } from './path-builder.js';
import type { KeyUsageBit } from './oids.js';
import { problem, type Problem, type ValidationCode } from './problem.js';
import { OperationError } from '../errors.js';
import { parseSpiffeId } from '../identity/spiffe.js';

export type { ValidationCode } from './problem.js';
export type { Profile } from './checks.js';
export type KeyUsageName = keyof typeof KeyUsageBit;

export interface ChainValidationInput {
  /** The peer's end-entity certificate (DER). */
  leaf: Uint8Array;
  /** Untrusted certificates the peer sent: any order, may contain junk, duplicates or cycles. */
  intermediates: readonly Uint8Array[];
  /** Trust anchors (DER). Each is checked as a CA certificate when a path uses it. */
  anchors: readonly Uint8Array[];
  /**
   * DER CRLs. Every certificate issued by a CA that has a CRL here is checked against it; such a
   * CRL must be valid (signed by the CA, current, well-formed) or the chain is refused.
   */
  crls?: readonly Uint8Array[];
  time: Date;
  /** OIDs the leaf's extendedKeyUsage must list (anyExtendedKeyUsage never suffices). */
  requiredExtendedKeyUsages: readonly string[];
  /** Key usages the leaf's keyUsage extension must assert when it has one. */
  requiredKeyUsages?: readonly KeyUsageName[];
  /** Host name or IP address to match against the leaf's SANs (no common-name fallback). */
  peerName?: { kind: 'dns' | 'ip'; value: string };
  /** Maximum number of intermediates, not counting self-issued ones (limbo's max_chain_depth). */
  maxChainDepth?: number;
  profile?: Profile;
  /**
   * x509-svid only: the trust domain the anchors belong to. The SPIFFE ID of the leaf must name
   * it (DESIGN §3: a CA of one trust domain never vouches for another).
   */
  trustDomain?: string;
}

export type ChainValidationResult =
  | { valid: true; chain: Uint8Array[]; spiffeId?: string }
  | { valid: false; code: ValidationCode; reason: string };

export function validateChain(input: ChainValidationInput): ChainValidationResult {
  const profile = input.profile ?? 'webpki';
  const time = Math.floor(input.time.getTime() / 1000) * 1000;
  if (!Number.isFinite(time)) {
    throw new OperationError('BAD_VALIDATION_TIME', 'certificate validation needs a valid time');
  }

  let leaf: ParsedCertificate;
  try {
    leaf = parseCertificate(input.leaf);
  } catch (error) {
    return refuse(
      problem('MALFORMED', `the peer certificate cannot be parsed (${messageOf(error)})`),
    );
  }
  const leafValidity = checkValidity(leaf, time, 'the peer certificate');
  if (leafValidity) return refuse(leafValidity);
  const leafResult = checkLeaf(leaf, {
    profile,
    requiredEkus: input.requiredExtendedKeyUsages,
    requiredKeyUsages: input.requiredKeyUsages ?? [],
    peerName: input.peerName,
  });
  if ('code' in leafResult) return refuse(leafResult);

  let spiffeId: string | undefined;
  if (profile === 'x509-svid') {
    const uri = leafResult.spiffeUri as string;
    const parsed = parseSpiffeId(uri);
    if ('error' in parsed)
      return refuse(problem('BAD_SPIFFE_ID', `invalid SPIFFE ID "${uri}": ${parsed.error}`));
    if (parsed.path === '')
      return refuse(
        problem('BAD_SPIFFE_ID', `SPIFFE ID "${uri}" names a trust domain, not a workload`),
      );
    if (input.trustDomain !== undefined && parsed.trustDomain !== input.trustDomain) {
      return refuse(
        problem(
          'WRONG_TRUST_DOMAIN',
          `SPIFFE ID "${uri}" belongs to trust domain ${parsed.trustDomain}, not ${input.trustDomain}`,
        ),
      );
    }
    spiffeId = uri;
  }

  const parsedCrls: ParsedCrl[] = [];
  for (const [index, der] of (input.crls ?? []).entries()) {
    try {
      parsedCrls.push(parseCrl(der));
    } catch (error) {
      return refuse(problem('BAD_CRL', `CRL #${index + 1} cannot be parsed (${messageOf(error)})`));
    }
  }

  const builder = new PathBuilder({
    anchors: parseAll(input.anchors),
    intermediates: parseAll(input.intermediates),
    crls: parsedCrls,
    time,
    profile,
    requiredEkus: input.requiredExtendedKeyUsages,
    maxChainDepth: input.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH,
  });
  const path = builder.build(leaf);
  if ('code' in path) return refuse(path);
  const chain = path.map((certificate) => certificate.der);
  return spiffeId === undefined ? { valid: true, chain } : { valid: true, chain, spiffeId };
}

/** Parses each certificate once; those that cannot be parsed are left out (they chain nowhere). */
function parseAll(list: readonly Uint8Array[]): ParsedCertificate[] {
  const parsed: ParsedCertificate[] = [];
  const seen = new Set<string>();
  for (const der of list) {
    try {
      const certificate = parseCertificate(der);
      if (seen.has(certificate.id)) continue;
      seen.add(certificate.id);
      parsed.push(certificate);
    } catch {
      // Junk among the untrusted certificates is ignored, like any other useless one.
    }
  }
  return parsed;
}

function refuse(reason: Problem): ChainValidationResult {
  return { valid: false, code: reason.code, reason: reason.reason };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
