import type { NodeIdentity } from '../identity/node-identity.js';
import type { Peer } from '../state/trust-repository.js';

/** A node this process may call: where it answers, and what it must present when it does. */
export interface CallTarget {
  nodeId: string;
  endpoint: string;
  spiffeId: string;
  pinnedFingerprint: string;
  /** The pinned leaf certificate: receipts must verify against it. */
  certificatePem: string;
  /** This node itself, reached through its own daemon. */
  local: boolean;
}

/** Why a known node cannot be called; null when it can. */
export type TargetProblem =
  | { code: 'NOT_TRUSTED' | 'PENDING_APPROVAL' | 'REVOKED' | 'TRUST_EXPIRED'; reason: string }
  | { code: 'NO_ENDPOINT'; reason: string };

/** A peer this node may call, or why not: only trusted peers, within their trust period. */
export function peerTarget(peer: Peer, now: Date): CallTarget | TargetProblem {
  if (peer.trustLevel === 'revoked') {
    return { code: 'REVOKED', reason: `trust in ${peer.nodeId} was revoked` };
  }
  if (peer.trustLevel === 'pending') {
    return { code: 'PENDING_APPROVAL', reason: `trust in ${peer.nodeId} awaits approval` };
  }
  if (
    peer.trustLevel !== 'trusted' ||
    peer.pinnedFingerprint === null ||
    peer.certificatePem === null
  ) {
    return { code: 'NOT_TRUSTED', reason: `${peer.nodeId} is not trusted by this node` };
  }
  if (peer.trustExpiresAt !== null && now > new Date(peer.trustExpiresAt)) {
    return {
      code: 'TRUST_EXPIRED',
      reason: `trust in ${peer.nodeId} expired at ${peer.trustExpiresAt}`,
    };
  }
  if (peer.endpoint === null) {
    return { code: 'NO_ENDPOINT', reason: `no endpoint is recorded for ${peer.nodeId}` };
  }
  return {
    nodeId: peer.nodeId,
    endpoint: peer.endpoint,
    spiffeId: peer.spiffeId,
    pinnedFingerprint: peer.pinnedFingerprint,
    certificatePem: peer.certificatePem,
    local: false,
  };
}

/**
 * This node, through its own daemon's endpoint, presenting its own certificate: the endpoint
 * `init` recorded, else where its running daemon said it answers (`daemonEndpoint`).
 */
export function localTarget(
  identity: NodeIdentity,
  daemonEndpoint: () => string | null = () => null,
): CallTarget | TargetProblem {
  const endpoint = identity.endpoint ?? daemonEndpoint();
  if (endpoint === null) {
    return {
      code: 'NO_ENDPOINT',
      reason: 'this node has no endpoint recorded (sark-fed init --endpoint)',
    };
  }
  return {
    nodeId: identity.nodeId,
    endpoint,
    spiffeId: identity.spiffeId,
    pinnedFingerprint: identity.fingerprint,
    certificatePem: leafPem(identity.certChainPem),
    local: true,
  };
}

export function isTarget(value: CallTarget | TargetProblem): value is CallTarget {
  return 'endpoint' in value;
}

/** The first certificate of a PEM chain: the leaf, whose key signs this node's receipts. */
function leafPem(chainPem: string): string {
  const marker = '-----END CERTIFICATE-----';
  const end = chainPem.indexOf(marker);
  return end === -1 ? chainPem : `${chainPem.slice(0, end + marker.length)}\n`;
}
