import { claimedIdentity, type ClaimedIdentity } from './peer-identity.js';
import { validateChain } from './validator.js';

export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface ChainFailure {
  code: string;
  reason: string;
  /** The SPIFFE ID the refused certificate claims, when it names one (for the daemon's log). */
  spiffeId?: string;
}

export interface TrustMaterial {
  anchorsFor(trustDomain: string): readonly Uint8Array[];
  crls(): readonly Uint8Array[];
}

/**
 * Validates a chain a peer presented (leaf first) against the anchors of the trust domain its
 * own SPIFFE ID names, and never any other domain's: a CA of org A can never vouch for org B.
 */
export function authenticateChain(
  chain: readonly Uint8Array[],
  material: TrustMaterial,
  now: Date,
): ClaimedIdentity | ChainFailure {
  const [leaf, ...intermediates] = chain;
  if (!leaf) return { code: 'NO_CLIENT_CERTIFICATE', reason: 'no certificate was presented' };
  const claimed = claimedIdentity(leaf);
  if ('error' in claimed)
    return {
      code: 'BAD_SPIFFE_ID',
      reason: `the certificate is not a node certificate: ${claimed.error}`,
    };
  const anchors = material.anchorsFor(claimed.trustDomain);
  if (anchors.length === 0) {
    return {
      code: 'UNKNOWN_TRUST_DOMAIN',
      reason: `no trust anchor is configured for ${claimed.trustDomain}`,
      spiffeId: claimed.spiffeId,
    };
  }
  const result = validateChain({
    leaf,
    intermediates,
    anchors,
    crls: material.crls(),
    time: now,
    requiredExtendedKeyUsages: [SERVER_AUTH, CLIENT_AUTH],
    profile: 'x509-svid',
    trustDomain: claimed.trustDomain,
  });
  if (!result.valid)
    return { code: result.code, reason: result.reason, spiffeId: claimed.spiffeId };
  // The identity comes from node:crypto's reading of the SAN; the validator read the same
  // certificate with its own DER parser. Should the two ever disagree, trust neither.
  if (result.spiffeId !== claimed.spiffeId) {
    return {
      code: 'BAD_SPIFFE_ID',
      reason: `the certificate's SPIFFE ID reads as ${String(result.spiffeId)} and as ${claimed.spiffeId}`,
    };
  }
  return claimed;
}

export function isChainFailure(value: ClaimedIdentity | ChainFailure): value is ChainFailure {
  return 'code' in value;
}
