import { X509Certificate, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../protocol/canonical-json.js';
import { signatureDigest } from '../identity/signing.js';

/**
 * What each side of `trust establish` signs (DESIGN §3): the other side's fresh nonce, both
 * SPIFFE IDs, its role, and the TLS exporter value of the connection that carries it. A
 * signature therefore proves key possession for this session only: replayed on another
 * connection, or relayed by a third party holding its own TLS session, the binding differs.
 */
export interface TrustStatement {
  purpose: 'sark-fed/trust-establish/v1';
  role: 'initiator' | 'responder';
  nonce: string;
  initiator: string;
  responder: string;
  tls_binding: string;
}

export function signTrustStatement(key: KeyObject, statement: TrustStatement): string {
  return sign(signatureDigest(key), Buffer.from(canonicalJson(statement)), key).toString(
    'base64url',
  );
}

export function verifyTrustStatement(
  certificateDer: Uint8Array,
  statement: TrustStatement,
  signature: string,
): boolean {
  const publicKey = new X509Certificate(certificateDer).publicKey;
  return verify(
    signatureDigest(publicKey),
    Buffer.from(canonicalJson(statement)),
    publicKey,
    Buffer.from(signature, 'base64url'),
  );
}
