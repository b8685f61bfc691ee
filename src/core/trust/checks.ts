/**
 * Per-certificate rules: what every certificate on a path must satisfy, what an issuing CA must
 * satisfy, and what the end-entity certificate must satisfy. Path-dependent rules (path length,
 * name constraints, revocation) live in path-builder.ts.
 */
import type { GeneralName, ParsedCertificate } from './certificate.js';
import { bytesEqual } from './der.js';
import { compileNameConstraints } from './name-constraints.js';
import { dnsNameMatches, formatIp, isValidDnsName, parseIp, parseMailbox } from './names.js';
import { KeyUsageBit, OID } from './oids.js';
import { problem, type Problem } from './problem.js';
import { checkPublicKey } from './signatures.js';

export type Profile = 'webpki' | 'x509-svid';

/** Extensions the validator processes, and so accepts when marked critical. */
const PROCESSED = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
]);

/** Extensions that RFC 5280 or the CA/B Forum require to be non-critical. */
const MUST_BE_NONCRITICAL: Readonly<Record<string, string>> = {
  [OID.authorityKeyIdentifier]: 'authorityKeyIdentifier',
  [OID.subjectKeyIdentifier]: 'subjectKeyIdentifier',
  [OID.authorityInfoAccess]: 'authorityInfoAccess',
  [OID.subjectInfoAccess]: 'subjectInfoAccess',
  [OID.ctPrecertificateScts]: 'signedCertificateTimestampList',
};

/** Whether `time` (whole seconds) lies within the certificate's inclusive validity period. */
export function checkValidity(
  certificate: ParsedCertificate,
  time: number,
  label: string,
): Problem | undefined {
  if (time < certificate.notBefore) {
    return problem(
      'CERT_NOT_YET_VALID',
      `${label} is not valid before ${new Date(certificate.notBefore).toISOString()}`,
    );
  }
  if (time > certificate.notAfter) {
    return problem(
      'CERT_EXPIRED',
      `${label} expired at ${new Date(certificate.notAfter).toISOString()}`,
    );
  }
  return undefined;
}

/**
 * Rules for every certificate on a path, whatever its position. Trust anchors are exempt from
 * the rules about how their own issuer made them (serial number, authority key identifier
 * presence): the operator vouches for them, and long-lived roots predate those rules.
 */
export function checkCommon(
  certificate: ParsedCertificate,
  label: string,
  { anchor, profile }: { anchor: boolean; profile: Profile },
): Problem | undefined {
  const defect = certificate.defects[0];
  if (defect) return problem(defect.code, `${label}: ${defect.reason}`);
  if (certificate.version !== 3) {
    return problem(
      'BAD_VERSION',
      `${label} is an X.509 v${certificate.version} certificate (v3 required)`,
    );
  }
  if (!anchor) {
    const serialProblem = checkSerial(certificate.serial, label);
    if (serialProblem) return serialProblem;
  }
  if (certificate.issuer.rdns.length === 0)
    return problem('BAD_NAME', `${label} has an empty issuer name`);

  for (const extension of certificate.extensions.values()) {
    const mustBeNoncritical = MUST_BE_NONCRITICAL[extension.oid];
    if (mustBeNoncritical && extension.critical) {
      return problem(
        'BAD_EXTENSION',
        `${label}: the ${mustBeNoncritical} extension is marked critical`,
      );
    }
    if (extension.oid === OID.policyConstraints && !extension.critical) {
      return problem(
        'BAD_EXTENSION',
        `${label}: the policyConstraints extension is not marked critical`,
      );
    }
    if (extension.critical && !PROCESSED.has(extension.oid)) {
      return problem(
        'UNKNOWN_CRITICAL_EXTENSION',
        `${label} has a critical extension ${extension.oid} that is not supported`,
      );
    }
  }

  const aki = certificate.authorityKeyId;
  if (aki) {
    if (!aki.keyId)
      return problem('BAD_AKI', `${label}: the authority key identifier has no keyIdentifier`);
    // CA/B Forum 7.1.2: keyIdentifier only. X509-SVID issuers (enterprise CAs) may add the rest.
    if (profile === 'webpki' && (aki.hasIssuer || aki.hasSerial)) {
      return problem(
        'BAD_AKI',
        `${label}: the authority key identifier names an issuer and serial number`,
      );
    }
  } else if (!certificate.selfIssued && !anchor) {
    return problem('MISSING_AKI', `${label} has no authority key identifier`);
  }

  const subjectEmpty = certificate.subject.rdns.length === 0;
  const san = certificate.extensions.get(OID.subjectAltName);
  if (subjectEmpty && (!san || !san.critical)) {
    return problem('BAD_SAN', `${label} has an empty subject and no critical subjectAltName`);
  }
  const sanProblem = checkSanSyntax(certificate.subjectAltNames ?? [], label);
  if (sanProblem) return sanProblem;

  const keyProblem = checkPublicKey(certificate.spki);
  if (keyProblem) return problem(keyProblem.code, `${label}: ${keyProblem.reason}`);
  return undefined;
}

/** RFC 5280 §4.1.2.2: a positive integer of at most 20 octets. */
function checkSerial(serial: Uint8Array, label: string): Problem | undefined {
  if (((serial[0] as number) & 0x80) !== 0)
    return problem('BAD_SERIAL', `${label} has a negative serial number`);
  if (serial.length === 1 && serial[0] === 0)
    return problem('BAD_SERIAL', `${label} has a zero serial number`);
  const magnitude = serial[0] === 0 ? serial.length - 1 : serial.length;
  if (magnitude > 20)
    return problem('BAD_SERIAL', `${label} has a serial number longer than 20 octets`);
  return undefined;
}

function checkSanSyntax(names: readonly GeneralName[], label: string): Problem | undefined {
  for (const name of names) {
    switch (name.type) {
      case 'dns':
        if (!isValidDnsName(name.value, true))
          return problem('BAD_SAN', `${label} has a malformed DNS name "${name.value}"`);
        break;
      case 'ip':
        if (name.bytes.length !== 4 && name.bytes.length !== 16) {
          return problem(
            'BAD_SAN',
            `${label} has a malformed IP address (${name.bytes.length} octets)`,
          );
        }
        break;
      case 'email':
        if (!parseMailbox(name.value))
          return problem('BAD_SAN', `${label} has a malformed email address "${name.value}"`);
        break;
      default:
        break;
    }
  }
  return undefined;
}

export interface CaCheckOptions {
  anchor: boolean;
  profile: Profile;
  requiredEkus: readonly string[];
  /** Whether the certificate verifies with its own key (asked only for self-issued anchors). */
  selfSigned: () => boolean;
}

/** Rules for a certificate used to issue another one (trust anchors included). */
export function checkIssuer(
  certificate: ParsedCertificate,
  label: string,
  options: CaCheckOptions,
): Problem | undefined {
  const common = checkCommon(certificate, label, options);
  if (common) return common;
  const bc = certificate.basicConstraints;
  const bcExtension = certificate.extensions.get(OID.basicConstraints);
  if (!bc || !bc.ca)
    return problem('NOT_A_CA', `${label} is not a CA (basicConstraints cA is not set)`);
  if (!bcExtension?.critical)
    return problem('BAD_BASIC_CONSTRAINTS', `${label}: basicConstraints is not marked critical`);
  if (certificate.keyUsage && !certificate.keyUsage.has(KeyUsageBit.keyCertSign)) {
    return problem(
      'BAD_KEY_USAGE',
      `${label} may not sign certificates (keyUsage lacks keyCertSign)`,
    );
  }
  if (certificate.subject.rdns.length === 0)
    return problem('BAD_NAME', `${label} has an empty subject`);
  if (!certificate.subjectKeyId)
    return problem('MISSING_SKI', `${label} has no subject key identifier`);
  if (certificate.nameConstraints) {
    const compiled = compileNameConstraints(certificate.nameConstraints);
    if ('code' in compiled) return problem(compiled.code, `${label}: ${compiled.reason}`);
  }
  const eku = certificate.extKeyUsage;
  if (options.anchor && certificate.selfIssued) {
    const aki = certificate.authorityKeyId?.keyId;
    if (
      aki &&
      !(certificate.subjectKeyId && bytesEqual(aki, certificate.subjectKeyId)) &&
      options.selfSigned()
    ) {
      return problem(
        'BAD_AKI',
        `${label}: the authority key identifier of a self-signed root differs from its subject key identifier`,
      );
    }
    if (eku && options.profile === 'webpki') {
      return problem('BAD_EKU', `${label} is a root CA with an extendedKeyUsage extension`);
    }
  }
  if (eku && !eku.includes(OID.anyExtendedKeyUsage)) {
    const missing = options.requiredEkus.filter((oid) => !eku.includes(oid));
    if (missing.length > 0) {
      return problem(
        'BAD_EKU',
        `${label} restricts its extended key usage and does not allow ${missing.map(ekuName).join(', ')}`,
      );
    }
  }
  return undefined;
}

export interface LeafCheckOptions {
  profile: Profile;
  requiredEkus: readonly string[];
  requiredKeyUsages: readonly (keyof typeof KeyUsageBit)[];
  peerName: { kind: 'dns' | 'ip'; value: string } | undefined;
}

/** Rules for the end-entity certificate; returns its SPIFFE ID under the x509-svid profile. */
export function checkLeaf(
  certificate: ParsedCertificate,
  options: LeafCheckOptions,
): Problem | { spiffeUri: string | undefined } {
  const label = 'the peer certificate';
  const common = checkCommon(certificate, label, { anchor: false, profile: options.profile });
  if (common) return common;
  if (certificate.basicConstraints?.ca)
    return problem('CA_AS_LEAF', `${label} is a CA certificate`);
  const ku = certificate.keyUsage;
  if (ku?.has(KeyUsageBit.keyCertSign)) {
    return problem('BAD_KEY_USAGE', `${label} is not a CA but its keyUsage allows keyCertSign`);
  }
  if (certificate.nameConstraints || certificate.extensions.has(OID.nameConstraints)) {
    return problem('BAD_EXTENSION', `${label} is not a CA but carries name constraints`);
  }
  if (ku) {
    const missing = options.requiredKeyUsages.filter((usage) => !ku.has(KeyUsageBit[usage]));
    if (missing.length > 0)
      return problem('BAD_KEY_USAGE', `${label}: keyUsage does not allow ${missing.join(', ')}`);
  }

  const ekuProblem = checkLeafEku(certificate, options, label);
  if (ekuProblem) return ekuProblem;

  const sans = certificate.subjectAltNames ?? [];
  let spiffeUri: string | undefined;
  if (options.profile === 'x509-svid') {
    if (!ku)
      return problem(
        'BAD_KEY_USAGE',
        `${label} has no keyUsage extension (X509-SVID requires one)`,
      );
    if (!certificate.extensions.get(OID.keyUsage)?.critical) {
      return problem('BAD_KEY_USAGE', `${label}: keyUsage is not marked critical (X509-SVID)`);
    }
    if (!ku.has(KeyUsageBit.digitalSignature))
      return problem('BAD_KEY_USAGE', `${label}: keyUsage lacks digitalSignature`);
    if (ku.has(KeyUsageBit.cRLSign))
      return problem('BAD_KEY_USAGE', `${label}: keyUsage allows cRLSign (X509-SVID leaf)`);
    const uris = sans.filter((name): name is { type: 'uri'; value: string } => name.type === 'uri');
    if (uris.length !== 1) {
      return problem(
        'BAD_SPIFFE_ID',
        `${label} has ${uris.length} URI SANs (an X509-SVID has exactly one)`,
      );
    }
    spiffeUri = (uris[0] as { value: string }).value;
  } else if (options.requiredEkus.includes(OID.serverAuth)) {
    // CA/B Forum rules for TLS server certificates.
    if (sans.length === 0)
      return problem('BAD_SAN', `${label} has no subjectAltName (required for a TLS server)`);
    const san = certificate.extensions.get(OID.subjectAltName);
    if (san?.critical && certificate.subject.rdns.length > 0) {
      return problem(
        'BAD_SAN',
        `${label}: subjectAltName is critical although the subject is not empty`,
      );
    }
    const cnProblem = checkCommonNames(certificate, sans, label);
    if (cnProblem) return cnProblem;
  }

  if (options.peerName) {
    const nameProblem = matchPeerName(sans, options.peerName, label);
    if (nameProblem) return nameProblem;
  }
  return { spiffeUri };
}

function checkLeafEku(
  certificate: ParsedCertificate,
  options: LeafCheckOptions,
  label: string,
): Problem | undefined {
  const eku = certificate.extKeyUsage;
  if (!eku) {
    if (options.profile === 'x509-svid')
      return problem(
        'BAD_EKU',
        `${label} has no extendedKeyUsage extension (X509-SVID requires one)`,
      );
    return undefined;
  }
  if (options.profile === 'webpki') {
    if (certificate.extensions.get(OID.extKeyUsage)?.critical) {
      return problem('BAD_EKU', `${label}: extendedKeyUsage is marked critical`);
    }
    if (eku.includes(OID.anyExtendedKeyUsage))
      return problem('BAD_EKU', `${label} allows anyExtendedKeyUsage`);
  }
  // anyExtendedKeyUsage never stands in for a required purpose.
  const missing = options.requiredEkus.filter((oid) => !eku.includes(oid));
  if (missing.length > 0)
    return problem('BAD_EKU', `${label} is not valid for ${missing.map(ekuName).join(' and ')}`);
  return undefined;
}

/** CA/B BR 7.1.4.3: each commonName is a character-for-character copy of a SAN. */
function checkCommonNames(
  certificate: ParsedCertificate,
  sans: readonly GeneralName[],
  label: string,
): Problem | undefined {
  for (const rdn of certificate.subject.rdns) {
    for (const attribute of rdn) {
      if (attribute.oid !== OID.commonName) continue;
      const cn = attribute.text;
      const found =
        cn !== undefined &&
        sans.some(
          (name) =>
            (name.type === 'dns' && name.value === cn) ||
            (name.type === 'ip' &&
              (name.bytes.length === 4 || name.bytes.length === 16) &&
              formatIp(name.bytes) === cn),
        );
      if (!found)
        return problem(
          'BAD_NAME',
          `${label}: its common name "${cn ?? '?'}" is not one of its subjectAltNames`,
        );
    }
  }
  return undefined;
}

function matchPeerName(
  sans: readonly GeneralName[],
  peer: { kind: 'dns' | 'ip'; value: string },
  label: string,
): Problem | undefined {
  if (peer.kind === 'ip') {
    const wanted = parseIp(peer.value);
    if (!wanted) return problem('NAME_MISMATCH', `"${peer.value}" is not an IP address`);
    const ok = sans.some(
      (name) =>
        name.type === 'ip' &&
        name.bytes.length === wanted.length &&
        name.bytes.every((b, i) => b === wanted[i]),
    );
    return ok
      ? undefined
      : problem('NAME_MISMATCH', `${label} is not valid for IP address ${peer.value}`);
  }
  const reference = peer.value.toLowerCase().replace(/\.$/, '');
  if (!isValidDnsName(reference))
    return problem('NAME_MISMATCH', `"${peer.value}" is not a valid host name`);
  const ok = sans.some((name) => name.type === 'dns' && dnsNameMatches(name.value, reference));
  return ok
    ? undefined
    : problem('NAME_MISMATCH', `${label} is not valid for host name ${peer.value}`);
}

const EKU_LABELS: Readonly<Record<string, string>> = {
  [OID.serverAuth]: 'serverAuth',
  [OID.clientAuth]: 'clientAuth',
  [OID.codeSigning]: 'codeSigning',
  [OID.emailProtection]: 'emailProtection',
  [OID.timeStamping]: 'timeStamping',
  [OID.ocspSigning]: 'OCSPSigning',
};

export function ekuName(oid: string): string {
  return EKU_LABELS[oid] ?? oid;
}
