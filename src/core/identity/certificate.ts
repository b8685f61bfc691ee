import { certificateFingerprint } from './fingerprint.js';
import { x509 } from './x509.js';

export interface SubjectAltNames {
  dns: string[];
  ip: string[];
  uri: string[];
  email: string[];
}

/** What an operator needs to know about a certificate; also the JSON shape of `pki inspect`. */
export interface CertificateSummary {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  isCa: boolean;
  pathLength: number | null;
  /** null when the certificate has no key usage extension. */
  keyUsage: string[] | null;
  keyUsageCritical: boolean;
  /** null when the certificate has no extended key usage extension. */
  extendedKeyUsage: string[] | null;
  subjectAltNames: SubjectAltNames;
  spiffeId: string | null;
  publicKeyAlgorithm: string;
  signatureAlgorithm: string;
  subjectKeyId: string | null;
  authorityKeyId: string | null;
  fingerprint: string;
}

const KEY_USAGE_NAMES: ReadonlyArray<[number, string]> = [
  [x509.KeyUsageFlags.digitalSignature, 'digitalSignature'],
  [x509.KeyUsageFlags.nonRepudiation, 'nonRepudiation'],
  [x509.KeyUsageFlags.keyEncipherment, 'keyEncipherment'],
  [x509.KeyUsageFlags.dataEncipherment, 'dataEncipherment'],
  [x509.KeyUsageFlags.keyAgreement, 'keyAgreement'],
  [x509.KeyUsageFlags.keyCertSign, 'keyCertSign'],
  [x509.KeyUsageFlags.cRLSign, 'cRLSign'],
  [x509.KeyUsageFlags.encipherOnly, 'encipherOnly'],
  [x509.KeyUsageFlags.decipherOnly, 'decipherOnly'],
];

const EXTENDED_KEY_USAGE_NAMES: Readonly<Record<string, string>> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'ocspSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

export function parseCertificate(der: Uint8Array): x509.X509Certificate {
  return new x509.X509Certificate(der);
}

export function summarizeCertificate(der: Uint8Array): CertificateSummary {
  const certificate = parseCertificate(der);
  const basic = certificate.getExtension(x509.BasicConstraintsExtension);
  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  const extendedKeyUsage = certificate.getExtension(x509.ExtendedKeyUsageExtension);
  const subjectKeyId = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const authorityKeyId = certificate.getExtension(x509.AuthorityKeyIdentifierExtension);
  const subjectAltNames = subjectAltNamesOf(certificate);
  const spiffeIds = subjectAltNames.uri.filter((uri) => uri.startsWith('spiffe://'));

  return {
    subject: certificate.subject,
    issuer: certificate.issuer,
    serialNumber: certificate.serialNumber.toLowerCase(),
    notBefore: certificate.notBefore.toISOString(),
    notAfter: certificate.notAfter.toISOString(),
    isCa: basic?.ca ?? false,
    pathLength: basic?.pathLength ?? null,
    keyUsage: keyUsage
      ? KEY_USAGE_NAMES.filter(([flag]) => (keyUsage.usages & flag) !== 0).map(([, name]) => name)
      : null,
    keyUsageCritical: keyUsage?.critical ?? false,
    extendedKeyUsage: extendedKeyUsage
      ? extendedKeyUsage.usages.map((oid) => EXTENDED_KEY_USAGE_NAMES[String(oid)] ?? String(oid))
      : null,
    subjectAltNames,
    spiffeId: spiffeIds.length === 1 ? (spiffeIds[0] as string) : null,
    publicKeyAlgorithm: describeKeyAlgorithm(certificate.publicKey.algorithm),
    signatureAlgorithm: describeSignatureAlgorithm(certificate.signatureAlgorithm),
    subjectKeyId: subjectKeyId?.keyId ?? null,
    authorityKeyId: authorityKeyId?.keyId ?? null,
    fingerprint: certificateFingerprint(der),
  };
}

function subjectAltNamesOf(certificate: x509.X509Certificate): SubjectAltNames {
  const names: SubjectAltNames = { dns: [], ip: [], uri: [], email: [] };
  const extension = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  for (const item of extension?.names.items ?? []) {
    if (item.type === 'dns') names.dns.push(item.value);
    else if (item.type === 'ip') names.ip.push(item.value);
    else if (item.type === 'url') names.uri.push(item.value);
    else if (item.type === 'email') names.email.push(item.value);
  }
  return names;
}

function describeKeyAlgorithm(algorithm: Algorithm): string {
  const details = algorithm as Algorithm & { namedCurve?: string; modulusLength?: number };
  if (details.namedCurve) return `ECDSA ${details.namedCurve}`;
  if (details.modulusLength) return `RSA ${details.modulusLength}`;
  return details.name;
}

function describeSignatureAlgorithm(algorithm: Algorithm): string {
  const hash = (algorithm as Algorithm & { hash?: Algorithm }).hash;
  return hash ? `${algorithm.name} with ${hash.name}` : algorithm.name;
}
