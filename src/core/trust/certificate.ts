/**
 * Parses a DER certificate once into what path validation needs. The TBS skeleton must parse
 * (else `parseCertificate` throws); defects found while decoding extensions are recorded instead
 * of thrown, so that a broken certificate that no path uses never causes a refusal.
 */
import {
  DerCursor,
  DerError,
  Tag,
  TagClass,
  bytesEqual,
  children,
  decodeString,
  expectTag,
  integerBytes,
  parseDer,
  readBitString,
  readBoolean,
  readIa5,
  readNamedBits,
  readOid,
  readSmallInteger,
  readTime,
  sequenceOf,
  toHex,
  type DerElement,
} from './der.js';
import { OID } from './oids.js';
import { problem, type Problem } from './problem.js';

export interface AlgorithmIdentifier {
  oid: string;
  parameters: DerElement | undefined;
  der: Uint8Array;
}

export interface NameAttribute {
  oid: string;
  value: DerElement;
  /** The decoded text when the value is a string type. */
  text: string | undefined;
}

export interface DistinguishedName {
  der: Uint8Array;
  rdns: NameAttribute[][];
  /** Normalized form for comparisons (case-folded, whitespace-collapsed strings). */
  key: string;
}

export type GeneralName =
  | { type: 'dns'; value: string }
  | { type: 'email'; value: string }
  | { type: 'uri'; value: string }
  | { type: 'ip'; bytes: Uint8Array }
  | { type: 'dn'; name: DistinguishedName }
  | { type: 'other'; form: string };

export interface GeneralSubtree {
  base: GeneralName;
}

export interface NameConstraints {
  permitted: GeneralSubtree[] | undefined;
  excluded: GeneralSubtree[] | undefined;
}

export interface Extension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

export interface ParsedCertificate {
  der: Uint8Array;
  /** SHA-less identity within one validation: the hex of the DER. */
  id: string;
  tbs: Uint8Array;
  version: number;
  serial: Uint8Array;
  signatureAlgorithm: AlgorithmIdentifier;
  signature: Uint8Array;
  issuer: DistinguishedName;
  subject: DistinguishedName;
  notBefore: number;
  notAfter: number;
  spki: { der: Uint8Array; algorithm: AlgorithmIdentifier; key: Uint8Array };
  extensions: Map<string, Extension>;
  selfIssued: boolean;
  basicConstraints: { ca: boolean; pathLen: number | undefined } | undefined;
  keyUsage: Set<number> | undefined;
  extKeyUsage: string[] | undefined;
  subjectAltNames: GeneralName[] | undefined;
  nameConstraints: NameConstraints | undefined;
  authorityKeyId:
    { keyId: Uint8Array | undefined; hasIssuer: boolean; hasSerial: boolean } | undefined;
  subjectKeyId: Uint8Array | undefined;
  /** Defects that refuse this certificate wherever a path uses it. */
  defects: Problem[];
}

export function parseAlgorithm(element: DerElement | undefined, what: string): AlgorithmIdentifier {
  const items = new DerCursor(sequenceOf(element, what), what);
  const oid = readOid(items.next(Tag.oid, 'algorithm'));
  const parameters = items.peek() ? items.any('parameters') : undefined;
  items.end();
  return { oid, parameters, der: (element as DerElement).der };
}

export function parseName(element: DerElement | undefined, what: string): DistinguishedName {
  const rdns: NameAttribute[][] = [];
  for (const rdn of sequenceOf(element, what)) {
    const attributes = children(expectTag(rdn, Tag.set, `${what} RDN`));
    if (attributes.length === 0) throw new DerError(`${what}: empty RDN`);
    rdns.push(
      attributes.map((attribute) => {
        const items = new DerCursor(sequenceOf(attribute, `${what} attribute`), what);
        const oid = readOid(items.next(Tag.oid, 'attribute type'));
        const value = items.any('attribute value');
        items.end();
        return { oid, value, text: decodeString(value) };
      }),
    );
  }
  return { der: (element as DerElement).der, rdns, key: nameKey(rdns) };
}

function normalizeText(text: string): string {
  return text.trim().replace(/\s+/g, ' ').toLowerCase();
}

export function attributeKey(attribute: NameAttribute): string {
  const value =
    attribute.text !== undefined
      ? `s:${normalizeText(attribute.text)}`
      : `x:${toHex(attribute.value.der)}`;
  return `${attribute.oid}=${JSON.stringify(value)}`;
}

export function rdnKey(rdn: NameAttribute[]): string {
  return rdn.map(attributeKey).sort().join('+');
}

function nameKey(rdns: NameAttribute[][]): string {
  return rdns.map(rdnKey).join(',');
}

/** GeneralName (RFC 5280 §4.2.1.6); syntax of the values is checked by the validator. */
export function parseGeneralName(element: DerElement): GeneralName {
  if (element.tagClass !== TagClass.context) throw new DerError('GeneralName: bad tag class');
  switch (element.tagNumber) {
    case 0:
      if (!element.constructed) throw new DerError('otherName must be constructed');
      return { type: 'other', form: 'otherName' };
    case 1:
      if (element.constructed) throw new DerError('rfc822Name must be primitive');
      return { type: 'email', value: readIa5(element.bytes) };
    case 2:
      if (element.constructed) throw new DerError('dNSName must be primitive');
      return { type: 'dns', value: readIa5(element.bytes) };
    case 3:
      return { type: 'other', form: 'x400Address' };
    case 4: {
      const inner = children(element);
      if (inner.length !== 1) throw new DerError('directoryName: expected one Name');
      return { type: 'dn', name: parseName(inner[0], 'directoryName') };
    }
    case 5:
      return { type: 'other', form: 'ediPartyName' };
    case 6:
      if (element.constructed) throw new DerError('URI must be primitive');
      return { type: 'uri', value: readIa5(element.bytes) };
    case 7:
      if (element.constructed) throw new DerError('iPAddress must be primitive');
      return { type: 'ip', bytes: element.bytes };
    case 8:
      return { type: 'other', form: 'registeredID' };
    default:
      throw new DerError(`GeneralName: unknown tag [${element.tagNumber}]`);
  }
}

export function parseGeneralNames(value: Uint8Array, what: string): GeneralName[] {
  const items = sequenceOf(parseDer(value), what);
  if (items.length === 0) throw new DerError(`${what}: empty`);
  return items.map(parseGeneralName);
}

export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const outer = new DerCursor(sequenceOf(parseDer(der), 'Certificate'), 'Certificate');
  const tbsElement = outer.next(Tag.sequence, 'tbsCertificate');
  const signatureAlgorithm = parseAlgorithm(
    outer.next(Tag.sequence, 'signatureAlgorithm'),
    'signatureAlgorithm',
  );
  const signatureBits = readBitString(outer.next(Tag.bitString, 'signatureValue'));
  outer.end();
  if (signatureBits.unusedBits !== 0) throw new DerError('signature with unused bits');

  const tbs = new DerCursor(children(tbsElement), 'tbsCertificate');
  let version = 1;
  const versionElement = tbs.optional(0xa0);
  if (versionElement) {
    const inner = children(versionElement);
    if (inner.length !== 1) throw new DerError('version: expected one INTEGER');
    version = readSmallInteger(inner[0] as DerElement) + 1;
    // DER: DEFAULT v1 is never encoded explicitly.
    if (version === 1) throw new DerError('version v1 encoded explicitly');
  }
  const serial = integerBytes(tbs.next(Tag.integer, 'serialNumber'));
  const innerAlgorithm = parseAlgorithm(tbs.next(Tag.sequence, 'signature'), 'signature');
  const issuer = parseName(tbs.next(Tag.sequence, 'issuer'), 'issuer');
  const validity = new DerCursor(
    sequenceOf(tbs.next(Tag.sequence, 'validity'), 'validity'),
    'validity',
  );
  const notBefore = readTime(validity.any('notBefore'));
  const notAfter = readTime(validity.any('notAfter'));
  validity.end();
  const subject = parseName(tbs.next(Tag.sequence, 'subject'), 'subject');
  const spkiElement = tbs.next(Tag.sequence, 'subjectPublicKeyInfo');
  const spkiItems = new DerCursor(children(spkiElement), 'subjectPublicKeyInfo');
  const spkiAlgorithm = parseAlgorithm(spkiItems.next(Tag.sequence, 'algorithm'), 'algorithm');
  const keyBits = readBitString(spkiItems.next(Tag.bitString, 'subjectPublicKey'));
  spkiItems.end();
  if (keyBits.unusedBits !== 0) throw new DerError('public key with unused bits');
  const issuerUid = tbs.optional(0x81);
  const subjectUid = tbs.optional(0x82);
  if ((issuerUid || subjectUid) && version < 2)
    throw new DerError('unique identifiers in a v1 certificate');
  const extensionsElement = tbs.optional(0xa3);
  tbs.end();

  const defects: Problem[] = [];
  const extensions = new Map<string, Extension>();
  if (extensionsElement) {
    if (version !== 3) throw new DerError('extensions in a certificate older than v3');
    const inner = children(extensionsElement);
    if (inner.length !== 1) throw new DerError('extensions: expected one SEQUENCE');
    const list = sequenceOf(inner[0], 'extensions');
    if (list.length === 0) throw new DerError('extensions: empty SEQUENCE');
    for (const item of list) {
      const fields = new DerCursor(sequenceOf(item, 'extension'), 'extension');
      const oid = readOid(fields.next(Tag.oid, 'extnID'));
      const criticalElement = fields.optional(Tag.boolean);
      const critical = criticalElement ? readBoolean(criticalElement) : false;
      const value = fields.next(Tag.octetString, 'extnValue').bytes;
      fields.end();
      if (extensions.has(oid)) {
        defects.push(problem('DUPLICATE_EXTENSION', `extension ${oid} appears more than once`));
        continue;
      }
      extensions.set(oid, { oid, critical, value });
    }
  }

  const certificate: ParsedCertificate = {
    der,
    id: toHex(der),
    tbs: tbsElement.der,
    version,
    serial,
    signatureAlgorithm,
    signature: signatureBits.bytes,
    issuer,
    subject,
    notBefore,
    notAfter,
    spki: { der: spkiElement.der, algorithm: spkiAlgorithm, key: keyBits.bytes },
    extensions,
    selfIssued: issuer.key === subject.key,
    basicConstraints: undefined,
    keyUsage: undefined,
    extKeyUsage: undefined,
    subjectAltNames: undefined,
    nameConstraints: undefined,
    authorityKeyId: undefined,
    subjectKeyId: undefined,
    defects,
  };
  if (!bytesEqual(innerAlgorithm.der, signatureAlgorithm.der)) {
    defects.push(
      problem(
        'MALFORMED',
        'the signature algorithm inside the certificate differs from the outer one',
      ),
    );
  }
  decodeExtensions(certificate);
  return certificate;
}

/** Decodes the extensions the validator processes; records defects rather than throwing. */
function decodeExtensions(certificate: ParsedCertificate): void {
  const { extensions, defects } = certificate;
  const decode = (oid: string, name: string, decoder: (extension: Extension) => void): void => {
    const extension = extensions.get(oid);
    if (!extension) return;
    try {
      decoder(extension);
    } catch (error) {
      const detail = error instanceof DerError ? error.message : String(error);
      defects.push(problem('BAD_EXTENSION', `malformed ${name} extension (${detail})`));
    }
  };

  decode(OID.basicConstraints, 'basicConstraints', (extension) => {
    const items = new DerCursor(
      sequenceOf(parseDer(extension.value), 'basicConstraints'),
      'basicConstraints',
    );
    const caElement = items.optional(Tag.boolean);
    const ca = caElement ? readBoolean(caElement) : false;
    const pathElement = items.optional(Tag.integer);
    const pathLen = pathElement ? readSmallInteger(pathElement) : undefined;
    items.end();
    certificate.basicConstraints = { ca, pathLen };
  });

  decode(OID.keyUsage, 'keyUsage', (extension) => {
    const bits = readNamedBits(parseDer(extension.value));
    if (bits.size === 0) throw new DerError('no key usage asserted');
    certificate.keyUsage = bits;
  });

  decode(OID.extKeyUsage, 'extKeyUsage', (extension) => {
    const items = sequenceOf(parseDer(extension.value), 'extKeyUsage');
    if (items.length === 0) throw new DerError('no purpose listed');
    certificate.extKeyUsage = items.map(readOid);
  });

  decode(OID.subjectAltName, 'subjectAltName', (extension) => {
    certificate.subjectAltNames = parseGeneralNames(extension.value, 'subjectAltName');
  });

  decode(OID.nameConstraints, 'nameConstraints', (extension) => {
    const items = new DerCursor(
      sequenceOf(parseDer(extension.value), 'nameConstraints'),
      'nameConstraints',
    );
    const permittedElement = items.optional(0xa0);
    const excludedElement = items.optional(0xa1);
    items.end();
    if (!permittedElement && !excludedElement)
      throw new DerError('neither permitted nor excluded subtrees');
    const subtrees = (element: DerElement | undefined): GeneralSubtree[] | undefined => {
      if (!element) return undefined;
      const list = children(element);
      if (list.length === 0) throw new DerError('empty subtree list');
      return list.map((subtree) => {
        const fields = new DerCursor(sequenceOf(subtree, 'GeneralSubtree'), 'GeneralSubtree');
        const base = parseGeneralName(fields.any('base'));
        const minimum = fields.optional(0x80);
        const maximum = fields.optional(0x81);
        fields.end();
        // RFC 5280 §4.2.1.10: minimum MUST be zero (so, in DER, absent) and maximum absent.
        if (minimum || maximum) throw new DerError('subtree with minimum or maximum');
        return { base };
      });
    };
    certificate.nameConstraints = {
      permitted: subtrees(permittedElement),
      excluded: subtrees(excludedElement),
    };
  });

  decode(OID.authorityKeyIdentifier, 'authorityKeyIdentifier', (extension) => {
    const items = new DerCursor(
      sequenceOf(parseDer(extension.value), 'authorityKeyIdentifier'),
      'authorityKeyIdentifier',
    );
    const keyId = items.optional(0x80);
    const issuer = items.optional(0xa1);
    const serial = items.optional(0x82);
    items.end();
    if (issuer) for (const name of children(issuer)) parseGeneralName(name);
    if (serial) integerBytes(serial, 0x82);
    if ((issuer === undefined) !== (serial === undefined)) {
      throw new DerError('authorityCertIssuer and authorityCertSerialNumber must come together');
    }
    certificate.authorityKeyId = {
      keyId: keyId?.bytes,
      hasIssuer: issuer !== undefined,
      hasSerial: serial !== undefined,
    };
  });

  decode(OID.subjectKeyIdentifier, 'subjectKeyIdentifier', (extension) => {
    const element = expectTag(parseDer(extension.value), Tag.octetString, 'subjectKeyIdentifier');
    if (element.bytes.length === 0) throw new DerError('empty key identifier');
    certificate.subjectKeyId = element.bytes;
  });

  decode(OID.authorityInfoAccess, 'authorityInfoAccess', (extension) => {
    const items = sequenceOf(parseDer(extension.value), 'authorityInfoAccess');
    if (items.length === 0) throw new DerError('no access description');
    for (const item of items) {
      const fields = new DerCursor(sequenceOf(item, 'AccessDescription'), 'AccessDescription');
      readOid(fields.next(Tag.oid, 'accessMethod'));
      parseGeneralName(fields.any('accessLocation'));
      fields.end();
    }
  });

  decode(OID.policyConstraints, 'policyConstraints', (extension) => {
    const items = new DerCursor(
      sequenceOf(parseDer(extension.value), 'policyConstraints'),
      'policyConstraints',
    );
    const require = items.optional(0x80);
    const inhibit = items.optional(0x81);
    items.end();
    if (!require && !inhibit) throw new DerError('empty policyConstraints');
  });
}
