import { X509Certificate } from 'node:crypto';
import { UsageError } from '../errors.js';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

export interface PemBlock {
  label: string;
  der: Buffer;
}

/** Every PEM block in a text, in order. Text outside blocks (openssl's comments) is ignored. */
export function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(PEM_BLOCK)) {
    const body = (match[2] ?? '').replace(/\s+/g, '');
    blocks.push({ label: match[1] ?? '', der: Buffer.from(body, 'base64') });
  }
  return blocks;
}

export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * The certificates in a file's bytes: one or more PEM CERTIFICATE blocks, or a single DER
 * certificate (which starts with an ASN.1 SEQUENCE tag).
 */
export function certificatesFromBytes(bytes: Buffer, source: string): Buffer[] {
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const certificates = pemBlocks(text)
      .filter((block) => block.label === 'CERTIFICATE' || block.label === 'TRUSTED CERTIFICATE')
      .map((block) => block.der);
    certificates.forEach((der, index) => {
      if (!parses(der)) {
        throw new UsageError(
          'BAD_CERTIFICATE',
          `certificate ${index + 1} of ${source} is damaged: it cannot be parsed`,
          { hint: 'check that the file was copied whole, or export the certificate again' },
        );
      }
    });
    if (certificates.length > 0) return certificates;
  } else if (bytes.length > 0 && bytes[0] === 0x30 && parses(bytes)) {
    // Any DER structure starts with 0x30 (a key, a CSR, a CRL): only a certificate is taken.
    return [bytes];
  }
  throw new UsageError('NO_CERTIFICATE', `${source} holds no certificate`, {
    hint: 'give a PEM file with a CERTIFICATE block, or a DER certificate',
  });
}

/**
 * The one CA certificate of an anchor file (`trust anchor add`, `init --ca`). A bundle is refused
 * rather than read for its first certificate: each anchor is bound to one trust domain, and the
 * others would be dropped without a word.
 */
export function anchorCertificateFromBytes(bytes: Buffer, source: string): Buffer {
  const certificates = certificatesFromBytes(bytes, source);
  if (certificates.length > 1) {
    throw new UsageError(
      'ANCHOR_BUNDLE',
      `${source} holds ${certificates.length} certificates; an anchor is one CA certificate`,
      { hint: 'put each CA in a file of its own and add each, with its --trust-domain' },
    );
  }
  return certificates[0] as Buffer;
}

function parses(der: Buffer): boolean {
  try {
    new X509Certificate(der);
    return true;
  } catch {
    return false;
  }
}

export function certificatesToPem(certificates: readonly Uint8Array[]): string {
  return certificates.map((der) => toPem('CERTIFICATE', der)).join('');
}
