import type { Peer } from '../state/trust-repository.js';
import type { ClaimedIdentity } from './peer-identity.js';

export type AuthorizationFailure = {
  code:
    | 'NOT_TRUSTED'
    | 'PENDING_APPROVAL'
    | 'REVOKED'
    | 'TRUST_EXPIRED'
    | 'PIN_MISMATCH'
    | 'IDENTITY_MISMATCH';
  reason: string;
};

/**
 * Whether a peer that presented a valid chain may use trusted-only endpoints (or be called by
 * this node): it must be trusted, not revoked, within its trust period, and present exactly the
 * leaf that was pinned when trust was established.
 */
export function authorizePeer(
  peer: Peer | undefined,
  presented: ClaimedIdentity,
  now: Date,
): AuthorizationFailure | undefined {
  if (!peer || peer.trustLevel === 'untrusted') {
    return { code: 'NOT_TRUSTED', reason: `${presented.spiffeId} is not trusted by this node` };
  }
  if (peer.spiffeId !== presented.spiffeId) {
    return {
      code: 'IDENTITY_MISMATCH',
      reason: `node ${peer.nodeId} is known as ${peer.spiffeId}, not ${presented.spiffeId}`,
    };
  }
  if (peer.trustLevel === 'revoked') {
    return { code: 'REVOKED', reason: `trust in ${peer.nodeId} was revoked` };
  }
  if (peer.trustLevel === 'pending') {
    return { code: 'PENDING_APPROVAL', reason: `trust in ${peer.nodeId} awaits approval` };
  }
  if (peer.trustExpiresAt !== null && now > new Date(peer.trustExpiresAt)) {
    return {
      code: 'TRUST_EXPIRED',
      reason: `trust in ${peer.nodeId} expired at ${peer.trustExpiresAt}`,
    };
  }
  if (peer.pinnedFingerprint !== presented.fingerprint) {
    return {
      code: 'PIN_MISMATCH',
      reason: `${peer.nodeId} presented a certificate other than the pinned one`,
    };
  }
  return undefined;
}
