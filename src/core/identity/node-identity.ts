import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { TrustError, UsageError } from '../errors.js';
import { summarizeCertificate, type CertificateSummary } from './certificate.js';
import { readInputFile } from './files.js';
import { keyMatchesCertificate, readPrivateKeyFile } from './keys.js';
import { certificatesFromBytes, certificatesToPem } from './pem.js';
import { leafProfileViolations } from './profile.js';
import { assertNodeId, assertTrustDomain, nodeSpiffeId } from './spiffe.js';

/** The local node's identity as the state file records it. */
export interface NodeIdentity {
  nodeId: string;
  trustDomain: string;
  spiffeId: string;
  /** The leaf first, then any intermediates, as PEM. */
  certChainPem: string;
  /** Absolute path of the private key file; the key itself never enters the state file. */
  keyPath: string;
  endpoint: string | null;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
}

export interface IdentityInput {
  nodeId: string;
  trustDomain: string;
  certPath: string;
  keyPath: string;
  chainPath?: string | undefined;
  endpoint?: string | undefined;
  now: Date;
}

/**
 * Checks everything `init` promises before anything is written: the names are well formed, the
 * certificate follows the node profile and names this node, it is valid now, its chain links up,
 * and the key is private and belongs to it.
 */
export function prepareIdentity(input: IdentityInput): {
  identity: NodeIdentity;
  leaf: CertificateSummary;
} {
  assertNodeId(input.nodeId);
  assertTrustDomain(input.trustDomain);
  const endpoint = input.endpoint === undefined ? null : normalizeEndpoint(input.endpoint);

  const certificates = certificatesFromBytes(
    readInputFile(input.certPath, 'certificate'),
    input.certPath,
  );
  // Where each certificate came from, for the errors: "certificate 2 of chain.pem", not of the
  // --cert file it was appended to.
  const origins = certificates.map(
    (_der, index) => `certificate ${index + 1} of ${input.certPath}`,
  );
  if (input.chainPath !== undefined) {
    const chain = certificatesFromBytes(readInputFile(input.chainPath, 'chain'), input.chainPath);
    certificates.push(...chain);
    origins.push(...chain.map((_der, index) => `certificate ${index + 1} of ${input.chainPath}`));
  }
  const leafDer = certificates[0] as Buffer;
  const leaf = summarizeCertificate(leafDer);

  const violations = leafProfileViolations(leaf);
  if (violations.length > 0) {
    throw new TrustError(
      'CERT_PROFILE',
      `${input.certPath} is not a node certificate: ${violations.join('; ')}`,
      {
        hint: 'issue one with `sark-fed pki issue`, or from a CA that follows the X509-SVID profile',
      },
    );
  }
  const expected = nodeSpiffeId(input.trustDomain, input.nodeId);
  if (leaf.spiffeId !== expected) {
    throw new TrustError(
      'SPIFFE_MISMATCH',
      `${input.certPath} names ${leaf.spiffeId}, not ${expected}`,
      {
        hint: 'pass the --node-id and --trust-domain the certificate was issued for',
      },
    );
  }
  if (input.now < new Date(leaf.notBefore)) {
    throw new TrustError(
      'CERT_NOT_YET_VALID',
      `${input.certPath} is not valid before ${leaf.notBefore}`,
      {
        hint: "check this machine's clock, or wait until the certificate becomes valid",
      },
    );
  }
  if (input.now > new Date(leaf.notAfter)) {
    throw new TrustError('CERT_EXPIRED', `${input.certPath} expired at ${leaf.notAfter}`, {
      hint: 'issue a new certificate with `sark-fed pki issue`',
    });
  }
  assertChainLinks(certificates, origins);

  const privateKey = readPrivateKeyFile(input.keyPath);
  if (!keyMatchesCertificate(privateKey, leafDer)) {
    throw new TrustError('KEY_MISMATCH', `${input.keyPath} is not the key of ${input.certPath}`, {
      hint: 'give the key that was issued together with the certificate',
    });
  }

  return {
    identity: {
      nodeId: input.nodeId,
      trustDomain: input.trustDomain,
      spiffeId: expected,
      certChainPem: certificatesToPem(certificates),
      keyPath: resolve(input.keyPath),
      endpoint,
      fingerprint: leaf.fingerprint,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    },
    leaf,
  };
}

/** Each certificate must be signed by the next one: a chain given out of order is refused here. */
function assertChainLinks(certificates: readonly Buffer[], origins: readonly string[]): void {
  for (let index = 0; index + 1 < certificates.length; index++) {
    const child = new X509Certificate(certificates[index] as Buffer);
    const parent = new X509Certificate(certificates[index + 1] as Buffer);
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new TrustError(
        'CHAIN_BROKEN',
        `${origins[index] as string} is not signed by ${origins[index + 1] as string}`,
        {
          hint: 'give the chain leaf first, each certificate followed by its issuer',
        },
      );
    }
  }
}

/** An endpoint peers use to reach this node: https://host:port, with nothing after the port. */
export function normalizeEndpoint(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError('BAD_ENDPOINT', `invalid endpoint "${value}"`, {
      hint: 'give it as https://host:port',
    });
  }
  if (
    url.protocol !== 'https:' ||
    url.username ||
    url.password ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search ||
    url.hash
  ) {
    throw new UsageError('BAD_ENDPOINT', `invalid endpoint "${value}"`, {
      hint: 'give it as https://host:port, with no path, query or credentials',
    });
  }
  // Port 0 asks the system for any free port when listening; no peer can call it.
  if (url.port === '0') {
    throw new UsageError('BAD_ENDPOINT', `invalid endpoint "${value}": port 0 cannot be called`, {
      hint: 'give the port the node listens on, e.g. https://host:8443',
    });
  }
  return url.origin;
}
