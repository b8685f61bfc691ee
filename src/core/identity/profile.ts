import type { CertificateSummary } from './certificate.js';
import { nodeIdOf, parseSpiffeId } from './spiffe.js';

/**
 * How a node certificate departs from the X509-SVID leaf profile of DESIGN §2; empty when it
 * follows it. Each entry is a short phrase an operator can act on.
 */
export function leafProfileViolations(summary: CertificateSummary): string[] {
  const violations: string[] = [];
  if (summary.isCa) violations.push('it is a CA certificate (basicConstraints cA=true)');
  if (summary.keyUsage === null) {
    violations.push('it has no key usage extension');
  } else {
    if (!summary.keyUsageCritical) violations.push('its key usage extension is not critical');
    if (!summary.keyUsage.includes('digitalSignature')) {
      violations.push('its key usage lacks digitalSignature');
    }
    for (const forbidden of ['keyCertSign', 'cRLSign']) {
      if (summary.keyUsage.includes(forbidden))
        violations.push(`its key usage allows ${forbidden}`);
    }
  }
  const eku = summary.extendedKeyUsage;
  for (const needed of ['serverAuth', 'clientAuth']) {
    if (eku === null || !eku.includes(needed)) {
      violations.push(`its extended key usage lacks ${needed}`);
    }
  }
  const uris = summary.subjectAltNames.uri;
  if (uris.length !== 1) {
    violations.push(`it has ${uris.length} URI SANs where exactly one SPIFFE ID is required`);
  } else {
    const parsed = parseSpiffeId(uris[0] as string);
    if ('error' in parsed)
      violations.push(`its URI SAN is not a valid SPIFFE ID (${parsed.error})`);
    else if (nodeIdOf(parsed) === undefined) {
      violations.push(
        'its SPIFFE ID is not of the form spiffe://<trust-domain>/sark/node/<node-id>',
      );
    }
  }
  return violations;
}
