import type { KeyObject } from 'node:crypto';

/**
 * The digest node:crypto's sign/verify need for a node key: none for Ed25519 (it hashes
 * internally), SHA-384 for ECDSA P-384, SHA-256 otherwise (P-256, the default key type).
 */
export function signatureDigest(key: KeyObject): string | null {
  if (key.asymmetricKeyType === 'ed25519') return null;
  if (key.asymmetricKeyDetails?.namedCurve === 'secp384r1') return 'sha384';
  return 'sha256';
}
