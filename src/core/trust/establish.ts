import { randomBytes, type KeyObject } from 'node:crypto';
import { newCorrelationId } from '../protocol/ids.js';
import { TrustError, UsageError } from '../errors.js';
import { summarizeCertificate, type CertificateSummary } from '../identity/certificate.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { toPem } from '../identity/pem.js';
import { CHALLENGE_NONCE_BYTES, PATHS } from '../protocol/constants.js';
import { ChallengeResponse, InfoResponse, TrustResponse } from '../protocol/schemas.js';
import type { StateStore } from '../state/database.js';
import { findPeer, savePeer, type Peer } from '../state/trust-repository.js';
import { authenticateChain, isChainFailure } from './authenticate.js';
import { PeerClient, peerError, type PeerResponse } from './peer-client.js';
import type { ClaimedIdentity } from './peer-identity.js';
import {
  verifyTrustStatement,
  signTrustStatement,
  type TrustStatement,
} from './trust-statement.js';
import type { z } from 'zod';
import { trustMaterial } from './trust-material.js';

/** What the operator is shown, and confirms, on first contact with a peer. */
export interface FirstContact {
  endpoint: string;
  peer: ClaimedIdentity;
  certificate: CertificateSummary;
  /** Set when this node trusted the peer before under another certificate. */
  previousFingerprint: string | null;
  /** Set when this node had revoked the peer: establishing again restores trust. */
  wasRevoked: boolean;
}

export interface EstablishOptions {
  store: StateStore;
  identity: NodeIdentity;
  privateKey: KeyObject;
  endpoint: string;
  /** The node ID the operator named, when they named a node rather than an endpoint. */
  expectedNodeId?: string | undefined;
  /** The fingerprint given with --fingerprint (canonical form). */
  expectedFingerprint?: string | undefined;
  /** Asked when no fingerprint was given; resolves false to abandon without recording anything. */
  confirm: (contact: FirstContact) => Promise<boolean>;
  timeoutMs: number;
  now: () => Date;
}

export interface EstablishResult {
  peer: Peer;
  /** How the remote node recorded this node: trusted at once, or pending its operator's approval. */
  remoteStatus: 'trusted' | 'pending';
  correlationId: string;
}

/**
 * The initiator's half of the mutual challenge-response of DESIGN §3. Nothing is written to the
 * state file unless every step succeeded.
 */
export async function establishTrust(
  options: EstablishOptions,
): Promise<EstablishResult | undefined> {
  // The peer records the trust as soon as it answers: a state file that could not record this
  // side of it (read-only, locked) is refused first, or the two nodes would disagree.
  options.store.assertWritable();
  const material = trustMaterial(options.store);
  const correlationId = newCorrelationId();
  let approvedFingerprint: string | undefined;
  let serverIdentity: ClaimedIdentity | undefined;
  let serverLeaf: Buffer | undefined;

  const client = new PeerClient(
    options.endpoint,
    options.identity,
    options.privateKey,
    (chain) => {
      const result = authenticateChain(chain, material, options.now());
      if (isChainFailure(result)) {
        throw new TrustError(
          result.code,
          `${options.endpoint} presented a certificate this node does not accept: ${result.reason}`,
          {
            hint:
              result.code === 'UNKNOWN_TRUST_DOMAIN'
                ? "import the peer organization's CA first: sark-fed trust anchor add <ca.pem> --trust-domain <domain>"
                : "check the peer's certificate with `sark-fed pki inspect`",
          },
        );
      }
      if (approvedFingerprint !== undefined && result.fingerprint !== approvedFingerprint) {
        throw new TrustError(
          'CERTIFICATE_CHANGED',
          `${options.endpoint} switched certificates during the exchange`,
          {
            hint: 'run the command again; if it repeats, something sits between the nodes',
          },
        );
      }
      serverIdentity = result;
      serverLeaf = chain[0];
    },
    options.timeoutMs,
  );

  try {
    const info = expectOk(
      await client.send({ method: 'GET', path: PATHS.info, correlationId }),
      InfoResponse,
      options.endpoint,
    );
    const peer = serverIdentity as ClaimedIdentity;
    if (info.node_id !== peer.nodeId || info.fingerprint !== peer.fingerprint) {
      throw new TrustError(
        'INFO_MISMATCH',
        info.node_id !== peer.nodeId
          ? `${options.endpoint} describes itself as ${info.node_id} but its certificate names ${peer.spiffeId}`
          : `${options.endpoint} describes its certificate as ${info.fingerprint}, not the ${peer.fingerprint} it presented`,
        {
          hint: 'the node is misconfigured or impersonated; do not trust it',
        },
      );
    }
    if (options.expectedNodeId !== undefined && peer.nodeId !== options.expectedNodeId) {
      throw new TrustError(
        'WRONG_NODE',
        `${options.endpoint} is ${peer.nodeId}, not ${options.expectedNodeId}`,
        {
          hint: "check the node's recorded endpoint with `sark-fed trust show`",
        },
      );
    }
    if (peer.nodeId === options.identity.nodeId) {
      throw new UsageError('SELF', `${options.endpoint} is this node itself`, {
        hint: 'name another node',
      });
    }
    const existing = options.store.read((db) => findPeer(db, peer.nodeId));
    if (existing && existing.trustDomain !== peer.trustDomain) {
      throw new TrustError(
        'NODE_ID_CONFLICT',
        `node ID ${peer.nodeId} is already known as ${existing.spiffeId}, not ${peer.spiffeId}`,
        {
          hint: 'node IDs are unique across the federation; this looks like impersonation',
        },
      );
    }

    if (options.expectedFingerprint !== undefined) {
      if (options.expectedFingerprint !== peer.fingerprint) {
        throw new TrustError(
          'FINGERPRINT_MISMATCH',
          `${peer.nodeId} presented fingerprint ${peer.fingerprint}, not the expected ${options.expectedFingerprint}`,
          {
            hint: "get the fingerprint from the peer's operator over a channel you trust (`sark-fed status` on that node)",
          },
        );
      }
    } else {
      const known =
        existing?.trustLevel === 'trusted' && existing.pinnedFingerprint === peer.fingerprint;
      if (!known) {
        const confirmed = await options.confirm({
          endpoint: options.endpoint,
          peer,
          certificate: summarizeCertificate(serverLeaf as Buffer),
          previousFingerprint:
            existing?.pinnedFingerprint && existing.pinnedFingerprint !== peer.fingerprint
              ? existing.pinnedFingerprint
              : null,
          wasRevoked: existing?.trustLevel === 'revoked',
        });
        if (!confirmed) return undefined;
      }
    }
    approvedFingerprint = peer.fingerprint;

    const challenge = expectOk(
      await client.send({ method: 'POST', path: PATHS.challenge, correlationId, body: {} }),
      ChallengeResponse,
      peer.nodeId,
    );
    const counterNonce = randomBytes(CHALLENGE_NONCE_BYTES).toString('base64url');
    let statement: TrustStatement | undefined;
    const answer = expectOk(
      await client.send({
        method: 'POST',
        path: PATHS.trust,
        correlationId,
        body: (binding: string) => {
          statement = {
            purpose: 'sark-fed/trust-establish/v1',
            role: 'initiator',
            nonce: challenge.nonce,
            initiator: options.identity.spiffeId,
            responder: peer.spiffeId,
            tls_binding: binding,
          };
          return {
            challenge_id: challenge.challenge_id,
            signature: signTrustStatement(options.privateKey, statement),
            counter_nonce: counterNonce,
            endpoint: options.identity.endpoint,
          };
        },
      }),
      TrustResponse,
      peer.nodeId,
    );
    const responderStatement: TrustStatement = {
      ...(statement as TrustStatement),
      role: 'responder',
      nonce: counterNonce,
    };
    if (
      answer.fingerprint !== peer.fingerprint ||
      !verifyTrustStatement(serverLeaf as Buffer, responderStatement, answer.signature)
    ) {
      throw new TrustError(
        'BAD_SIGNATURE',
        `${peer.nodeId} did not prove possession of its key for this session`,
        {
          hint: 'do not trust this endpoint; something may be relaying the connection',
        },
      );
    }

    const now = options.now().toISOString();
    const record: Peer = {
      nodeId: peer.nodeId,
      trustDomain: peer.trustDomain,
      spiffeId: peer.spiffeId,
      endpoint: options.endpoint,
      trustLevel: 'trusted',
      pinnedFingerprint: peer.fingerprint,
      certificatePem: toPem('CERTIFICATE', serverLeaf as Buffer),
      trustExpiresAt: peer.notAfter.toISOString(),
      establishedAt: now,
      revokedAt: null,
      revokeReason: null,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    options.store.write((db) => savePeer(db, record));
    return { peer: record, remoteStatus: answer.status, correlationId };
  } finally {
    client.close();
  }
}

/** A 2xx answer parsed with its schema, or the typed error the peer's answer stands for. */
export function expectOk<T>(response: PeerResponse, schema: z.ZodType<T>, peerName: string): T {
  if (response.status < 200 || response.status > 299) throw peerError(response, peerName);
  const parsed = schema.safeParse(response.body);
  if (!parsed.success) {
    throw new TrustError(
      'MALFORMED_ANSWER',
      `${peerName} answered with a body that does not follow the protocol`,
      {
        hint: 'check that the peer runs a compatible sark-fed version',
      },
    );
  }
  return parsed.data;
}
