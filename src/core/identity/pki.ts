import { X509Certificate as NodeX509Certificate, randomBytes, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { summarizeCertificate, type CertificateSummary } from './certificate.js';
import { readInputFile } from './files.js';
import { generateKeyPair, importSigningKey, readPrivateKeyFile, type KeyType } from './keys.js';
import { certificatesFromBytes, toPem } from './pem.js';
import { REVOCATION_REASONS } from './revocation-reasons.js';
import type { RevocationEntry } from './revocations.js';
import {
  assertNodeId,
  assertTrustDomain,
  nodeSpiffeId,
  parseSpiffeId,
  trustDomainSpiffeId,
} from './spiffe.js';
import { x509 } from './x509.js';

/** File names inside a CA folder (`pki ca create --out`) and a node folder (`pki issue --out`). */
export const CA_FILES = { certificate: 'ca.pem', key: 'ca.key' } as const;
export const NODE_FILES = { certificate: 'cert.pem', key: 'key.pem', ca: 'ca.pem' } as const;

export const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_NODE_DAYS = 365;
export const DEFAULT_CRL_DAYS = 30;
/** Certificates start a little in the past so that peers with a slow clock accept them at once. */
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface IssuedMaterial {
  certificatePem: string;
  privateKeyPem: string;
  summary: CertificateSummary;
}

export interface CertificateAuthority {
  certificateDer: Buffer;
  certificatePem: string;
  privateKey: KeyObject;
  summary: CertificateSummary;
  /** The trust domain named by the CA's SPIFFE ID, when it has one. */
  trustDomain: string | undefined;
}

export interface CreateCaOptions {
  trustDomain?: string | undefined;
  days: number;
  keyType: KeyType;
  now: Date;
}

export async function createCertificateAuthority(
  options: CreateCaOptions,
): Promise<IssuedMaterial> {
  assertDays(options.days);
  if (options.trustDomain !== undefined) assertTrustDomain(options.trustDomain);
  const { keys, privateKeyPem } = await generateKeyPair(options.keyType);
  const name = options.trustDomain
    ? `CN=sark-fed development CA, O=${options.trustDomain}`
    : 'CN=sark-fed development CA';
  const extensions: x509.Extension[] = [
    // A development CA signs node certificates directly: no intermediates below it.
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.trustDomain) {
    // X509-SVID signing certificates may carry the trust domain's SPIFFE ID.
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: trustDomainSpiffeId(options.trustDomain) },
      ]),
    );
  }
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter: new Date(options.now.getTime() + options.days * DAY_MS),
    keys,
    signingAlgorithm: signingAlgorithmFor(options.keyType),
    extensions,
  });
  return {
    certificatePem: toPem('CERTIFICATE', new Uint8Array(certificate.rawData)),
    privateKeyPem,
    summary: summarizeCertificate(new Uint8Array(certificate.rawData)),
  };
}

/** Loads `ca.pem` and `ca.key` from a CA folder made by `pki ca create`. */
export function loadCertificateAuthority(folder: string): CertificateAuthority {
  const certificatePath = join(folder, CA_FILES.certificate);
  const [certificateDer] = certificatesFromBytes(
    readInputFile(certificatePath, 'CA certificate'),
    certificatePath,
  );
  const privateKey = readPrivateKeyFile(join(folder, CA_FILES.key), '--ca');
  const der = certificateDer as Buffer;
  const summary = summarizeCertificate(der);
  if (!summary.isCa || !(summary.keyUsage ?? ['keyCertSign']).includes('keyCertSign')) {
    throw new UsageError('NOT_A_CA', `${certificatePath} is not a CA certificate`, {
      hint: 'give the folder written by `sark-fed pki ca create`',
    });
  }
  const publicFromKey = new NodeX509Certificate(der).checkPrivateKey(privateKey);
  if (!publicFromKey) {
    throw new UsageError('KEY_MISMATCH', `the key in ${folder} does not match its CA certificate`, {
      hint: `keep ${CA_FILES.certificate} and ${CA_FILES.key} of the same CA together`,
    });
  }
  const spiffeUri = summary.subjectAltNames.uri.find((uri) => uri.startsWith('spiffe://'));
  const parsed = spiffeUri ? parseSpiffeId(spiffeUri) : undefined;
  return {
    certificateDer: der,
    certificatePem: toPem('CERTIFICATE', der),
    privateKey,
    summary,
    trustDomain: parsed && !('error' in parsed) ? parsed.trustDomain : undefined,
  };
}

export interface IssueNodeOptions {
  ca: CertificateAuthority;
  nodeId: string;
  trustDomain?: string | undefined;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  /** Validity in days; without it, a year, cut short where the CA itself expires sooner. */
  days?: number | undefined;
  keyType: KeyType;
  now: Date;
}

/** Issues a node certificate with the X509-SVID leaf profile of DESIGN §2. */
export async function issueNodeCertificate(options: IssueNodeOptions): Promise<IssuedMaterial> {
  if (options.days !== undefined) assertDays(options.days);
  assertNodeId(options.nodeId);
  const trustDomain = resolveIssuingTrustDomain(options.ca, options.trustDomain);
  for (const ip of options.ipAddresses) {
    if (isIP(ip) === 0) {
      throw new UsageError('BAD_IP', `invalid IP address "${ip}"`, {
        hint: 'give --ip 127.0.0.1 or --ip ::1',
      });
    }
  }
  for (const dns of options.dnsNames) {
    if (!/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(dns)) {
      throw new UsageError('BAD_DNS_NAME', `invalid DNS name "${dns}"`, {
        hint: 'give --dns node-a.example.org',
      });
    }
  }
  const caNotAfter = new Date(options.ca.summary.notAfter);
  const notAfter =
    options.days === undefined
      ? new Date(Math.min(options.now.getTime() + DEFAULT_NODE_DAYS * DAY_MS, caNotAfter.getTime()))
      : new Date(options.now.getTime() + options.days * DAY_MS);
  if (notAfter > caNotAfter) {
    throw new UsageError(
      'BEYOND_CA_VALIDITY',
      `the certificate would outlive its CA (${options.ca.summary.notAfter})`,
      {
        hint: 'give fewer --days, or renew the CA first',
      },
    );
  }
  const signer = await importSigningKey(options.ca.privateKey);
  const { keys, privateKeyPem } = await generateKeyPair(options.keyType);
  const caCertificate = new x509.X509Certificate(options.ca.certificateDer);
  const names: x509.JsonGeneralNames = [
    { type: 'url', value: nodeSpiffeId(trustDomain, options.nodeId) },
    // Each name once, whatever the command line repeated (DNS names are case-insensitive).
    ...unique(options.dnsNames.map((value) => value.toLowerCase())).map((value) => ({
      type: 'dns' as const,
      value,
    })),
    ...unique(options.ipAddresses).map((value) => ({ type: 'ip' as const, value })),
  ];
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${options.nodeId}, O=${trustDomain}`,
    issuer: caCertificate.subject,
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      authorityKeyIdentifierFor(options.ca),
    ],
  });
  const der = new Uint8Array(certificate.rawData);
  return {
    certificatePem: toPem('CERTIFICATE', der),
    privateKeyPem,
    summary: summarizeCertificate(der),
  };
}

export interface CreateCrlOptions {
  ca: CertificateAuthority;
  /** Every certificate the CA has revoked (its revocation record), each with its own date. */
  revoked: readonly RevocationEntry[];
  days: number;
  now: Date;
}

export async function createRevocationList(options: CreateCrlOptions): Promise<string> {
  assertDays(options.days);
  const entries: x509.X509CrlEntryParams[] = options.revoked.map((entry) => ({
    serialNumber: entry.serialNumber,
    revocationDate: new Date(entry.revokedAt),
    ...(entry.reason === null ? {} : { reason: REVOCATION_REASONS[entry.reason] }),
  }));
  const signer = await importSigningKey(options.ca.privateKey);
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(options.ca.certificateDer).subject,
    thisUpdate: options.now,
    nextUpdate: new Date(options.now.getTime() + options.days * DAY_MS),
    entries,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      authorityKeyIdentifierFor(options.ca),
      // CRL numbers must increase (RFC 5280 §5.2.3); milliseconds since the epoch do so without
      // state, also for two CRLs written within a second (a script revoking one after another).
      // (Earlier versions wrote seconds: milliseconds are larger, so numbers go on increasing.)
      new x509.Extension('2.5.29.20', false, derInteger(options.now.getTime())),
    ],
  });
  return toPem('X509 CRL', new Uint8Array(crl.rawData));
}

function resolveIssuingTrustDomain(
  ca: CertificateAuthority,
  requested: string | undefined,
): string {
  if (requested !== undefined) {
    assertTrustDomain(requested);
    if (ca.trustDomain !== undefined && ca.trustDomain !== requested) {
      throw new UsageError(
        'TRUST_DOMAIN_MISMATCH',
        `this CA belongs to trust domain ${ca.trustDomain}, not ${requested}`,
        {
          hint: "a CA only vouches for its own trust domain; use that CA's folder, or omit --trust-domain",
        },
      );
    }
    return requested;
  }
  if (ca.trustDomain === undefined) {
    throw new UsageError('MISSING_TRUST_DOMAIN', 'this CA names no trust domain', {
      hint: 'pass --trust-domain <domain>',
    });
  }
  return ca.trustDomain;
}

function authorityKeyIdentifierFor(ca: CertificateAuthority): x509.AuthorityKeyIdentifierExtension {
  if (!ca.summary.subjectKeyId) {
    throw new UsageError('CA_WITHOUT_SKI', 'the CA certificate has no subject key identifier', {
      hint: 'create the CA with `sark-fed pki ca create`',
    });
  }
  return new x509.AuthorityKeyIdentifierExtension(ca.summary.subjectKeyId);
}

function signingAlgorithmFor(keyType: KeyType): Algorithm | EcdsaParams {
  return keyType === 'ed25519'
    ? { name: 'Ed25519' }
    : ({ name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams);
}

/** 128 random bits, kept positive and without a leading zero byte, as RFC 5280 §4.1.2.2 asks. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function derInteger(value: number): ArrayBuffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, 'hex');
  const encoded = Buffer.concat([Buffer.from([0x02, body.length]), body]);
  return encoded.buffer.slice(encoded.byteOffset, encoded.byteOffset + encoded.length);
}

function assertDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new UsageError('BAD_DAYS', `invalid validity period "${days}" days`, {
      hint: 'give --days as a whole number from 1 to 36500',
    });
  }
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
