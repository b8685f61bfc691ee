import { NotFoundError, TrustError, UsageError } from '../errors.js';
import { summarizeCertificate } from '../identity/certificate.js';
import { parseSpiffeId, assertTrustDomain } from '../identity/spiffe.js';
import type { SqliteDatabase, StateStore } from '../state/database.js';
import {
  deleteAnchor,
  findAnchor,
  findRevocationList,
  insertAnchor,
  listAnchors,
  listPeers,
  upsertRevocationList,
  type StoredRevocationList,
  type TrustAnchor,
} from '../state/trust-repository.js';
import { x509 } from '../identity/x509.js';
import { readInputFile } from '../identity/files.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { anchorCertificateFromBytes, pemBlocks } from '../identity/pem.js';
import { CLIENT_AUTH, SERVER_AUTH } from './authenticate.js';
import { validateChain } from './validator.js';

export interface AddAnchorResult {
  anchor: TrustAnchor;
  /** False when the same anchor was already present for the same domain. */
  added: boolean;
}

/**
 * Imports a CA certificate as a trust anchor bound to exactly one trust domain: the one given,
 * or the one its SPIFFE ID names. The same CA can never be bound to two domains.
 */
export function addAnchor(
  store: StateStore,
  der: Buffer,
  trustDomain: string | undefined,
  now: Date,
): AddAnchorResult {
  const anchor = prepareAnchor(der, trustDomain, now);
  return store.write((db) => recordAnchor(db, anchor));
}

/** Checks that a certificate can be an anchor of one trust domain, and describes it. */
export function prepareAnchor(
  der: Buffer,
  trustDomain: string | undefined,
  now: Date,
): TrustAnchor {
  const summary = summarizeCertificate(der);
  if (!summary.isCa) {
    throw new TrustError('NOT_A_CA', `${summary.subject} is not a CA certificate`, {
      hint: "an anchor is the CA that issued the peer organization's node certificates (ca.pem)",
    });
  }
  if (summary.keyUsage !== null && !summary.keyUsage.includes('keyCertSign')) {
    throw new TrustError(
      'NOT_A_CA',
      `${summary.subject} may not sign certificates (no keyCertSign)`,
      {
        hint: 'give the issuing CA certificate',
      },
    );
  }
  if (now > new Date(summary.notAfter)) {
    throw new TrustError('CERT_EXPIRED', `${summary.subject} expired at ${summary.notAfter}`, {
      hint: 'ask the peer organization for its current CA certificate',
    });
  }
  const named = summary.subjectAltNames.uri
    .map((uri) => parseSpiffeId(uri))
    .find((id): id is { trustDomain: string; path: string } => !('error' in id) && id.path === '');
  const domain = trustDomain ?? named?.trustDomain;
  if (domain === undefined) {
    throw new UsageError('MISSING_TRUST_DOMAIN', `${summary.subject} names no trust domain`, {
      hint: 'pass --trust-domain <domain> to say which organization this CA vouches for',
    });
  }
  assertTrustDomain(domain);
  if (named && named.trustDomain !== domain) {
    throw new UsageError(
      'TRUST_DOMAIN_MISMATCH',
      `this CA names trust domain ${named.trustDomain}, not ${domain}`,
      {
        hint: 'omit --trust-domain, or give the CA of that domain',
      },
    );
  }
  return {
    fingerprint: summary.fingerprint,
    trustDomain: domain,
    subject: summary.subject,
    certificateDer: der,
    notAfter: summary.notAfter,
    addedAt: now.toISOString(),
  };
}

/**
 * Records a prepared anchor inside a write transaction. The same CA can never be bound to two
 * domains; adding it again to its own domain changes nothing.
 */
export function recordAnchor(db: SqliteDatabase, anchor: TrustAnchor): AddAnchorResult {
  const existing = findAnchor(db, anchor.fingerprint);
  if (existing) {
    if (existing.trustDomain !== anchor.trustDomain) {
      throw new UsageError(
        'ANCHOR_BOUND',
        `this CA is already the anchor of ${existing.trustDomain}`,
        {
          hint: 'an anchor belongs to one trust domain; remove it first to rebind it',
        },
      );
    }
    return { anchor: existing, added: false };
  }
  insertAnchor(db, anchor);
  return { anchor, added: true };
}

export interface RemovedAnchor {
  trustDomain: string;
  /**
   * Trusted or pending peers of that trust domain when it has no anchor left: none of them can be
   * authenticated any more, so calls to and from them are refused until an anchor is added again.
   */
  peersWithoutAnchor: string[];
}

export function removeAnchor(store: StateStore, fingerprint: string): RemovedAnchor {
  const removed = store.write((db) => {
    const anchor = findAnchor(db, fingerprint);
    if (!anchor || !deleteAnchor(db, fingerprint)) return undefined;
    const left = listAnchors(db, anchor.trustDomain).length;
    const peersWithoutAnchor =
      left > 0
        ? []
        : listPeers(db)
            .filter(
              (peer) =>
                peer.trustDomain === anchor.trustDomain &&
                (peer.trustLevel === 'trusted' || peer.trustLevel === 'pending'),
            )
            .map((peer) => peer.nodeId);
    return { trustDomain: anchor.trustDomain, peersWithoutAnchor };
  });
  if (!removed) {
    throw new NotFoundError('NO_SUCH_ANCHOR', `no trust anchor with fingerprint ${fingerprint}`, {
      hint: 'list them with `sark-fed trust anchor list`',
    });
  }
  return removed;
}

/**
 * Imports a CRL after checking it was signed by one of the trust anchors, and that it is not
 * older than the one already held for that CA (an attacker replaying an old CRL would un-revoke).
 */
export async function importRevocationList(
  store: StateStore,
  der: Buffer,
  now: Date,
): Promise<StoredRevocationList> {
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(der);
  } catch {
    throw new UsageError('NOT_A_CRL', 'the file is not a certificate revocation list', {
      hint: 'give a PEM (X509 CRL) or DER CRL, e.g. from `sark-fed pki crl create`',
    });
  }
  const authorityKeyId = crl.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId ?? '';
  const crlNumberExtension = crl.getExtension('2.5.29.20');
  const crlNumber = crlNumberExtension
    ? integerValue(new Uint8Array(crlNumberExtension.value))
    : null;
  const anchors = store.read((db) => listAnchors(db));
  let issuer: TrustAnchor | undefined;
  for (const anchor of anchors) {
    const anchorKeyId = summarizeCertificate(anchor.certificateDer).subjectKeyId;
    if (authorityKeyId && anchorKeyId && authorityKeyId !== anchorKeyId) continue;
    if (await crl.verify({ publicKey: new x509.X509Certificate(anchor.certificateDer) })) {
      issuer = anchor;
      break;
    }
  }
  if (!issuer) {
    throw new TrustError(
      'CRL_UNKNOWN_ISSUER',
      `the CRL of ${crl.issuer} is not signed by any trust anchor`,
      {
        hint: 'import the issuing CA first with `sark-fed trust anchor add`',
      },
    );
  }
  // The validator refuses every certificate of a CA whose CRL is not current (it fails closed),
  // so a CRL it would refuse must not get in at all: one without nextUpdate (RFC 5280 §5.1.2.5
  // requires it), or one issued in the future.
  if (!crl.nextUpdate) {
    throw new TrustError('CRL_NO_NEXT_UPDATE', `the CRL of ${crl.issuer} has no nextUpdate`, {
      hint: 'ask the issuing organization for a CRL that says when the next one is due',
    });
  }
  if (crl.thisUpdate > now) {
    throw new TrustError(
      'CRL_NOT_YET_VALID',
      `the CRL of ${crl.issuer} is dated ${crl.thisUpdate.toISOString()}, in the future`,
      { hint: "check this machine's clock, or the issuing CA's" },
    );
  }
  if (now > crl.nextUpdate) {
    throw new TrustError(
      'CRL_EXPIRED',
      `the CRL of ${crl.issuer} was due for renewal at ${crl.nextUpdate.toISOString()}`,
      {
        hint: 'ask the issuing organization for a current CRL',
      },
    );
  }
  const list: StoredRevocationList = {
    issuer: crl.issuer,
    authorityKeyId: authorityKeyId || issuer.fingerprint,
    crlNumber,
    thisUpdate: crl.thisUpdate.toISOString(),
    nextUpdate: crl.nextUpdate?.toISOString() ?? null,
    revokedCount: crl.entries.length,
    der,
    importedAt: now.toISOString(),
  };
  store.write((db) => {
    const held = findRevocationList(db, list.issuer, list.authorityKeyId);
    if (held && isOlder(list, held)) {
      throw new TrustError(
        'CRL_OLDER',
        `this CRL of ${list.issuer} is older than the one already imported`,
        {
          hint: 'import the newest CRL; an older one would restore revoked certificates',
        },
      );
    }
    upsertRevocationList(db, list);
  });
  return list;
}

function isOlder(candidate: StoredRevocationList, held: StoredRevocationList): boolean {
  if (candidate.crlNumber !== null && held.crlNumber !== null) {
    return BigInt(candidate.crlNumber) < BigInt(held.crlNumber);
  }
  return new Date(candidate.thisUpdate) < new Date(held.thisUpdate);
}

/** The value of a DER INTEGER (the CRL number extension's content), as a decimal string. */
function integerValue(der: Uint8Array): string | null {
  if (der[0] !== 0x02 || der.length < 3) return null;
  const length = der[1] as number;
  if (length > 20 || der.length !== length + 2) return null;
  return BigInt(`0x${Buffer.from(der.subarray(2)).toString('hex')}`).toString();
}

/**
 * The anchor of this node's own trust domain, given to `init --ca` (FEDERATION_CA_CERT_PATH in
 * the original deployment): checked to be the CA that issued this node's certificate, so that a
 * typo cannot make the node trust a stranger for its own organization.
 */
export function prepareOwnAnchor(identity: NodeIdentity, caPath: string, now: Date): TrustAnchor {
  const caDer = anchorCertificateFromBytes(readInputFile(caPath, 'CA certificate'), caPath);
  const [leaf, ...intermediates] = pemBlocks(identity.certChainPem).map((block) => block.der);
  const result = validateChain({
    leaf: leaf as Uint8Array,
    intermediates,
    anchors: [caDer],
    time: now,
    requiredExtendedKeyUsages: [SERVER_AUTH, CLIENT_AUTH],
    profile: 'x509-svid',
    trustDomain: identity.trustDomain,
  });
  if (!result.valid) {
    throw new TrustError(
      'NOT_OUR_CA',
      `the node certificate does not chain to ${caPath}: ${result.reason}`,
      { hint: 'give the ca.pem of the CA that issued this node certificate' },
    );
  }
  return prepareAnchor(caDer, identity.trustDomain, now);
}
