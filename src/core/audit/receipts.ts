import { X509Certificate, createHash, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../protocol/canonical-json.js';
import { signatureDigest } from '../identity/signing.js';

export type AuditOutcome = 'success' | 'denied' | 'error' | 'timeout';

/**
 * What the serving node signs for every invocation (DESIGN §5), snake_case as on the wire. The
 * hashes are of the exact bytes of the arguments and result JSON; neither is ever stored.
 */
export interface ReceiptClaims {
  correlation_id: string;
  /** SPIFFE IDs of the calling and the serving node. */
  source: string;
  target: string;
  principal: string;
  resource: string;
  capability: string;
  request_sha256: string;
  outcome: AuditOutcome;
  result_sha256: string | null;
  timestamp: string;
}

export interface Receipt extends ReceiptClaims {
  /** base64url signature over canonicalJson(claims) with the serving node's key. */
  signature: string;
}

export function sha256Hex(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function signReceipt(key: KeyObject, claims: ReceiptClaims): Receipt {
  const signature = sign(signatureDigest(key), Buffer.from(canonicalClaims(claims)), key);
  return { ...claims, signature: signature.toString('base64url') };
}

/**
 * canonicalJson(claims), written out field by field: with the keys listed in code-unit order,
 * JSON.stringify writes the canonical text itself, in a fraction of the general walk's time, and
 * the daemon signs one receipt a call. Every field is a string or null, which both write alike
 * (test/unit/audit/canonical-event.test.ts holds the two equal).
 */
export function canonicalClaims(claims: ReceiptClaims): string {
  return JSON.stringify({
    capability: claims.capability,
    correlation_id: claims.correlation_id,
    outcome: claims.outcome,
    principal: claims.principal,
    request_sha256: claims.request_sha256,
    resource: claims.resource,
    result_sha256: claims.result_sha256,
    source: claims.source,
    target: claims.target,
    timestamp: claims.timestamp,
  });
}

/** The claims of a receipt, without its signature: what was signed. */
export function receiptClaims(receipt: Receipt): ReceiptClaims {
  const { signature: _signature, ...claims } = receipt;
  return claims;
}

/**
 * Checks a receipt's signature against the certificate the caller pinned for the serving node.
 * A receipt signed by any other key, or altered in any field, fails.
 */
export function verifyReceipt(receipt: Receipt, signerCertificate: string | Buffer): boolean {
  try {
    const publicKey = new X509Certificate(signerCertificate).publicKey;
    return verify(
      signatureDigest(publicKey),
      Buffer.from(canonicalJson(receiptClaims(receipt))),
      publicKey,
      Buffer.from(receipt.signature, 'base64url'),
    );
  } catch {
    return false;
  }
}
