/**
 * Certificate revocation lists (RFC 5280 §5, checked per §6.3 for complete CRLs only).
 *
 * A CRL applies to the certificates of the CA whose subject equals the CRL's issuer (and whose
 * subject key identifier equals the CRL's authority key identifier, when both are present). Such
 * a CRL must be signed by that CA, be current at the validation time, carry a non-critical CRL
 * number, and carry no critical extension the validator does not process (delta CRLs, issuing
 * distribution points and indirect CRLs are not supported and fail closed).
 */
import {
  DerCursor,
  DerError,
  Tag,
  bytesEqual,
  children,
  expectTag,
  integerBytes,
  parseDer,
  readBitString,
  readBoolean,
  readOid,
  readSmallInteger,
  readTime,
  sequenceOf,
  toHex,
  type DerElement,
} from './der.js';
import {
  parseAlgorithm,
  parseName,
  type AlgorithmIdentifier,
  type DistinguishedName,
  type Extension,
} from './certificate.js';
import { OID } from './oids.js';

export interface ParsedCrl {
  der: Uint8Array;
  id: string;
  tbs: Uint8Array;
  version: number;
  signatureAlgorithm: AlgorithmIdentifier;
  innerAlgorithmMatches: boolean;
  signature: Uint8Array;
  issuer: DistinguishedName;
  thisUpdate: number;
  nextUpdate: number | undefined;
  /** Hex of the serial numbers' content octets → entry extensions are processed at parse time. */
  revokedSerials: Set<string>;
  extensions: Map<string, Extension>;
  authorityKeyId: Uint8Array | undefined;
  /** A defect found while parsing extensions; refuses the CRL when it applies to a chain. */
  defect: string | undefined;
}

export function parseCrl(der: Uint8Array): ParsedCrl {
  const outer = new DerCursor(sequenceOf(parseDer(der), 'CertificateList'), 'CertificateList');
  const tbsElement = outer.next(Tag.sequence, 'tbsCertList');
  const signatureAlgorithm = parseAlgorithm(
    outer.next(Tag.sequence, 'signatureAlgorithm'),
    'signatureAlgorithm',
  );
  const signatureBits = readBitString(outer.next(Tag.bitString, 'signatureValue'));
  outer.end();

  const tbs = new DerCursor(children(tbsElement), 'tbsCertList');
  let version = 1;
  const versionElement = tbs.optional(Tag.integer);
  if (versionElement) {
    version = readSmallInteger(versionElement) + 1;
    if (version !== 2) throw new DerError('CRL version must be v2 when present');
  }
  const innerAlgorithm = parseAlgorithm(tbs.next(Tag.sequence, 'signature'), 'signature');
  const issuer = parseName(tbs.next(Tag.sequence, 'issuer'), 'issuer');
  const thisUpdate = readTime(tbs.any('thisUpdate'));
  const next = tbs.peek();
  let nextUpdate: number | undefined;
  if (next && (next.tag === Tag.utcTime || next.tag === Tag.generalizedTime)) {
    nextUpdate = readTime(tbs.any('nextUpdate'));
  }
  let defect: string | undefined;
  const revokedSerials = new Set<string>();
  const revoked = tbs.optional(Tag.sequence);
  if (revoked) {
    for (const entry of children(revoked)) {
      const fields = new DerCursor(sequenceOf(entry, 'revokedCertificate'), 'revokedCertificate');
      const serial = integerBytes(fields.next(Tag.integer, 'userCertificate'));
      readTime(fields.any('revocationDate'));
      const entryExtensions = fields.optional(Tag.sequence);
      fields.end();
      if (entryExtensions) {
        if (version !== 2) throw new DerError('entry extensions in a v1 CRL');
        // @peculiar/x509 (our own `pki crl`) writes an empty list here, which is tolerated.
        for (const extension of readExtensionList(entryExtensions, true).values()) {
          // certificateIssuer (indirect CRLs) changes whose certificates the entries name.
          if (extension.critical || extension.oid === OID.certificateIssuer) {
            defect ??= `unsupported CRL entry extension ${extension.oid}`;
          }
        }
      }
      revokedSerials.add(toHex(serial));
    }
  }
  const extensionsElement = tbs.optional(0xa0);
  tbs.end();
  let extensions = new Map<string, Extension>();
  let authorityKeyId: Uint8Array | undefined;
  if (extensionsElement) {
    if (version !== 2) throw new DerError('extensions in a v1 CRL');
    const inner = children(extensionsElement);
    if (inner.length !== 1) throw new DerError('crlExtensions: expected one SEQUENCE');
    extensions = readExtensionList(inner[0] as DerElement);
    for (const extension of extensions.values()) {
      switch (extension.oid) {
        case OID.crlNumber:
          if (extension.critical) defect ??= 'the CRL number extension is marked critical';
          try {
            const number = integerBytes(parseDer(extension.value));
            if (((number[0] as number) & 0x80) !== 0 || number.length > 20)
              defect ??= 'invalid CRL number';
          } catch {
            defect ??= 'malformed CRL number';
          }
          break;
        case OID.authorityKeyIdentifier:
          if (extension.critical) defect ??= 'the CRL authority key identifier is marked critical';
          try {
            const fields = sequenceOf(parseDer(extension.value), 'authorityKeyIdentifier');
            const keyId = fields.find((field) => field.tag === 0x80);
            authorityKeyId = keyId?.bytes;
          } catch {
            defect ??= 'malformed CRL authority key identifier';
          }
          break;
        default:
          if (extension.critical) defect ??= `unsupported critical CRL extension ${extension.oid}`;
          else if (extension.oid === OID.deltaCrlIndicator)
            defect ??= 'delta CRLs are not supported';
      }
    }
  }
  if (!extensions.has(OID.crlNumber)) defect ??= 'the CRL has no CRL number extension';
  if (signatureBits.unusedBits !== 0) throw new DerError('signature with unused bits');
  return {
    der,
    id: toHex(der),
    tbs: tbsElement.der,
    version,
    signatureAlgorithm,
    innerAlgorithmMatches: bytesEqual(innerAlgorithm.der, signatureAlgorithm.der),
    signature: signatureBits.bytes,
    issuer,
    thisUpdate,
    nextUpdate,
    revokedSerials,
    extensions,
    authorityKeyId,
    defect,
  };
}

function readExtensionList(element: DerElement, allowEmpty = false): Map<string, Extension> {
  const extensions = new Map<string, Extension>();
  const list = sequenceOf(element, 'extensions');
  if (list.length === 0 && !allowEmpty) throw new DerError('empty extension list');
  for (const item of list) {
    const fields = new DerCursor(sequenceOf(item, 'extension'), 'extension');
    const oid = readOid(fields.next(Tag.oid, 'extnID'));
    const criticalElement = fields.optional(Tag.boolean);
    const critical = criticalElement ? readBoolean(criticalElement) : false;
    const value = expectTag(fields.any('extnValue'), Tag.octetString, 'extnValue').bytes;
    fields.end();
    if (extensions.has(oid)) throw new DerError(`duplicate extension ${oid}`);
    extensions.set(oid, { oid, critical, value });
  }
  return extensions;
}
