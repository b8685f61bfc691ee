import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, importSigningKey } from '../../src/core/identity/keys.js';
import { pemBlocks, toPem } from '../../src/core/identity/pem.js';
import { x509 } from '../../src/core/identity/x509.js';

/**
 * Certificates that `sark-fed pki` refuses to make: expired, not yet valid, wrong extended key
 * usage, CA certificates posing as node certificates, odd SPIFFE IDs, signatures by the wrong
 * key. Made in-process with @peculiar/x509 from a CA folder that `sark-fed pki ca create` wrote.
 */

export const EKU = {
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
  codeSigning: x509.ExtendedKeyUsage.codeSigning,
} as const;

export interface TestCa {
  certificateDer: Buffer;
  certificatePem: string;
  keyPem: string;
  privateKey: KeyObject;
  subject: string;
  subjectKeyId: string;
}

/** A CA folder (`ca.pem`, `ca.key`) as `sark-fed pki ca create` writes it. */
export function loadCa(dir: string): TestCa {
  const certificatePem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
  const certificateDer = (pemBlocks(certificatePem)[0] as { der: Buffer }).der;
  const certificate = new x509.X509Certificate(certificateDer);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new Error(`${dir}/ca.pem has no subject key identifier`);
  return {
    certificateDer,
    certificatePem,
    keyPem,
    privateKey: createPrivateKey(keyPem),
    subject: certificate.subject,
    subjectKeyId: ski.keyId,
  };
}

export interface LeafSpec {
  issuer: TestCa;
  /** URI SANs; a node certificate carries exactly one SPIFFE ID. */
  uris: string[];
  subject?: string;
  /** Defaults: valid from an hour ago for thirty days. */
  notBefore?: Date;
  notAfter?: Date;
  /** Extended key usages (OIDs); default serverAuth + clientAuth. */
  ekus?: string[];
  /** A CA certificate (basicConstraints CA:TRUE, keyCertSign) rather than an end entity. */
  ca?: boolean;
  /** Sign with this key instead of the issuer's, keeping the issuer's name and key identifier. */
  signingKey?: KeyObject;
}

export interface IssuedLeaf {
  certPem: string;
  keyPem: string;
  der: Buffer;
  privateKey: KeyObject;
}

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** Issues a certificate with the node profile of DESIGN §2, except where spec departs from it. */
export async function issueLeaf(spec: LeafSpec): Promise<IssuedLeaf> {
  const now = Date.now();
  const { keys, privateKeyPem } = await generateKeyPair('ec');
  const signer = await importSigningKey(spec.signingKey ?? spec.issuer.privateKey);
  const keyUsage = spec.ca
    ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature
    : x509.KeyUsageFlags.digitalSignature;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(spec.ca === true, undefined, true),
    new x509.KeyUsagesExtension(keyUsage, true),
    new x509.ExtendedKeyUsageExtension(spec.ekus ?? [EKU.serverAuth, EKU.clientAuth]),
    new x509.SubjectAlternativeNameExtension(
      spec.uris.map((value) => ({ type: 'url' as const, value })),
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    new x509.AuthorityKeyIdentifierExtension(spec.issuer.subjectKeyId),
  ];
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: spec.subject ?? 'CN=test node',
    issuer: spec.issuer.subject,
    notBefore: spec.notBefore ?? new Date(now - HOUR_MS),
    notAfter: spec.notAfter ?? new Date(now + 30 * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions,
  });
  const der = Buffer.from(certificate.rawData);
  return {
    certPem: toPem('CERTIFICATE', der),
    keyPem: privateKeyPem,
    der,
    privateKey: createPrivateKey(privateKeyPem),
  };
}

/** A CA certificate made by issueLeaf({ ca: true }), ready to issue below it. */
export function asCa(leaf: IssuedLeaf): TestCa {
  const certificate = new x509.X509Certificate(leaf.der);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new Error('the certificate has no subject key identifier');
  return {
    certificateDer: leaf.der,
    certificatePem: leaf.certPem,
    keyPem: leaf.keyPem,
    privateKey: leaf.privateKey,
    subject: certificate.subject,
    subjectKeyId: ski.keyId,
  };
}

/** Writes cert.pem and key.pem (0600) into dir, as `sark-fed pki issue` would. */
export function writeLeaf(
  dir: string,
  leaf: { certPem: string; keyPem: string },
): { certPath: string; keyPath: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  writeFileSync(certPath, leaf.certPem);
  writeFileSync(keyPath, leaf.keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  return { certPath, keyPath };
}

export const hoursFromNow = (hours: number): Date => new Date(Date.now() + hours * HOUR_MS);

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}
