import type { KeyObject } from 'node:crypto';
import { newCorrelationId } from '../protocol/ids.js';
import { TrustError } from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { PATHS } from '../protocol/constants.js';
import { RevokeResponse } from '../protocol/schemas.js';
import type { StateStore } from '../state/database.js';
import { findPeer, savePeer, type Peer } from '../state/trust-repository.js';
import { authenticateChain, isChainFailure } from './authenticate.js';
import { expectOk } from './establish.js';
import { trustMaterial } from './trust-material.js';
import { PeerClient } from './peer-client.js';

/** Marks a peer revoked: from the next request on, the daemon refuses it and the CLI won't call it. */
export function revokePeer(
  store: StateStore,
  nodeId: string,
  reason: string | null,
  now: Date,
): Peer {
  return store.write((db) => {
    const peer = findPeer(db, nodeId) as Peer;
    // Revoking again keeps the first revocation's time, and its reason unless a new one is given.
    const again = peer.trustLevel === 'revoked';
    const revoked: Peer = {
      ...peer,
      trustLevel: 'revoked',
      revokedAt: again && peer.revokedAt ? peer.revokedAt : now.toISOString(),
      revokeReason: reason ?? (again ? peer.revokeReason : null),
      updatedAt: now.toISOString(),
    };
    savePeer(db, revoked);
    return revoked;
  });
}

export interface NotifyOptions {
  store: StateStore;
  identity: NodeIdentity;
  privateKey: KeyObject;
  peer: Peer;
  reason: string | undefined;
  timeoutMs: number;
  now: () => Date;
}

/** Best effort: tells the revoked peer, after checking it is the very node that was pinned. */
export async function notifyRevocation(options: NotifyOptions): Promise<void> {
  const { peer } = options;
  const material = trustMaterial(options.store);
  const client = new PeerClient(
    peer.endpoint as string,
    options.identity,
    options.privateKey,
    (chain) => {
      const result = authenticateChain(chain, material, options.now());
      // Say which check failed: "not the pinned node" for an anchor gone or a CRL sent the
      // operator looking for an impostor.
      if (isChainFailure(result)) {
        throw new TrustError(
          result.code,
          `the certificate of ${peer.endpoint} is refused: ${result.reason}`,
          { hint: 'the notice was not sent' },
        );
      }
      if (result.fingerprint !== peer.pinnedFingerprint) {
        throw new TrustError('PIN_MISMATCH', `${peer.endpoint} is not the pinned ${peer.nodeId}`, {
          hint: 'the notice was not sent',
        });
      }
    },
    options.timeoutMs,
  );
  try {
    const body = options.reason === undefined ? {} : { reason: options.reason };
    const response = await client.send({
      method: 'POST',
      path: PATHS.revoke,
      correlationId: newCorrelationId(),
      body,
    });
    expectOk(response, RevokeResponse, peer.nodeId);
  } finally {
    client.close();
  }
}
