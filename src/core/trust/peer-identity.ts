import { X509Certificate } from 'node:crypto';
import { certificateFingerprint } from '../identity/fingerprint.js';
import { nodeIdOf, parseSpiffeId } from '../identity/spiffe.js';

/** Who a presented leaf certificate claims to be, read before its chain is validated. */
export interface ClaimedIdentity {
  nodeId: string;
  trustDomain: string;
  spiffeId: string;
  fingerprint: string;
  notAfter: Date;
}

/**
 * Reads the SPIFFE ID (the only URI SAN) of a leaf with node:crypto, which is cheap enough to do
 * on every connection; the chain validator later checks the same certificate in full.
 */
export function claimedIdentity(leafDer: Uint8Array): ClaimedIdentity | { error: string } {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(leafDer);
  } catch {
    return { error: 'the certificate cannot be parsed' };
  }
  const uris = (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((name) => name.startsWith('URI:'))
    .map((name) => name.slice(4));
  if (uris.length !== 1) return { error: `it carries ${uris.length} URI SANs, not one SPIFFE ID` };
  const parsed = parseSpiffeId(uris[0] as string);
  if ('error' in parsed) return { error: `its SPIFFE ID is invalid (${parsed.error})` };
  const nodeId = nodeIdOf(parsed);
  if (nodeId === undefined) return { error: 'its SPIFFE ID does not name a sark node' };
  return {
    nodeId,
    trustDomain: parsed.trustDomain,
    spiffeId: uris[0] as string,
    fingerprint: certificateFingerprint(leafDer),
    notAfter: new Date(certificate.validTo),
  };
}
