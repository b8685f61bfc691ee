/**
 * Public key policy and signature verification with node:crypto (synchronous).
 *
 * Keys: RSA of at least 2048 bits and a multiple of 8, ECDSA on named P-256/P-384/P-521, Ed25519
 * and Ed448. Refused: DSA, other curves (P-192…), explicit curve parameters, RSA-PSS-only keys.
 * Signatures: RSA PKCS#1 v1.5 and PSS with SHA-256/384/512, ECDSA with SHA-256/384/512, EdDSA.
 * SHA-1 and MD5 are refused.
 */
import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { AlgorithmIdentifier } from './certificate.js';
import {
  DerCursor,
  DerError,
  Tag,
  children,
  integerBytes,
  parseDer,
  readOid,
  readSmallInteger,
  sequenceOf,
  type DerElement,
} from './der.js';
import { OID } from './oids.js';
import { problem, type Problem } from './problem.js';

const CURVES: Readonly<Record<string, string>> = {
  [OID.p256]: 'P-256',
  [OID.p384]: 'P-384',
  [OID.p521]: 'P-521',
};

export interface PublicKeyInfo {
  der: Uint8Array;
  algorithm: AlgorithmIdentifier;
  key: Uint8Array;
}

/** Refusal of a public key the policy does not accept, or undefined when it is acceptable. */
export function checkPublicKey(spki: PublicKeyInfo): Problem | undefined {
  const { oid, parameters } = spki.algorithm;
  try {
    switch (oid) {
      case OID.rsaEncryption: {
        if (!parameters || parameters.tag !== Tag.null || parameters.bytes.length !== 0) {
          return problem('MALFORMED', 'RSA key without NULL parameters');
        }
        const items = new DerCursor(sequenceOf(parseDer(spki.key), 'RSAPublicKey'), 'RSAPublicKey');
        const modulus = integerBytes(items.next(Tag.integer, 'modulus'));
        integerBytes(items.next(Tag.integer, 'publicExponent'));
        items.end();
        if (((modulus[0] as number) & 0x80) !== 0)
          return problem('MALFORMED', 'negative RSA modulus');
        const magnitude = modulus[0] === 0 ? modulus.subarray(1) : modulus;
        const bits = magnitude.length * 8 - Math.clz32(magnitude[0] as number) + 24;
        if (bits < 2048)
          return problem('WEAK_KEY', `RSA key of ${bits} bits (at least 2048 required)`);
        if (bits % 8 !== 0)
          return problem('WEAK_KEY', `RSA key of ${bits} bits (not a multiple of 8)`);
        return undefined;
      }
      case OID.ecPublicKey: {
        if (!parameters || parameters.tag !== Tag.oid) {
          return problem(
            'WEAK_KEY',
            'EC key with explicit curve parameters (a named curve is required)',
          );
        }
        const curve = readOid(parameters);
        if (!CURVES[curve]) return problem('WEAK_KEY', `EC key on unsupported curve ${curve}`);
        return undefined;
      }
      case OID.ed25519:
      case OID.ed448:
        if (parameters) return problem('MALFORMED', 'EdDSA key with parameters');
        return undefined;
      case OID.dsa:
        return problem('WEAK_KEY', 'DSA keys are not accepted');
      default:
        return problem('UNSUPPORTED_ALGORITHM', `unsupported public key algorithm ${oid}`);
    }
  } catch (error) {
    return problem(
      'MALFORMED',
      `malformed public key (${error instanceof Error ? error.message : error})`,
    );
  }
}

/** How many imported public keys are kept between validations (anchors and CAs recur). */
const KEY_CACHE_SIZE = 256;
const sharedKeys = new Map<string, KeyObject | Problem>();

/**
 * Node KeyObjects by SPKI. Importing a key (RSA above all) costs more than verifying with it, and
 * the daemon sees the same CA keys on every connection, so imports are shared by all validations
 * (a bounded map, oldest entry evicted first).
 */
export function publicKeyOf(spki: PublicKeyInfo): KeyObject | Problem {
  const id = Buffer.from(spki.der.buffer, spki.der.byteOffset, spki.der.length).toString('base64');
  let key = sharedKeys.get(id);
  if (!key) {
    try {
      key = createPublicKey({ key: Buffer.from(spki.der), format: 'der', type: 'spki' });
    } catch (error) {
      key = problem(
        'MALFORMED',
        `unusable public key (${error instanceof Error ? error.message : error})`,
      );
    }
    if (sharedKeys.size >= KEY_CACHE_SIZE) {
      sharedKeys.delete(sharedKeys.keys().next().value as string);
    }
    sharedKeys.set(id, key);
  }
  return key;
}

const HASH_OF_OID: Readonly<Record<string, string>> = {
  [OID.sha256]: 'sha256',
  [OID.sha384]: 'sha384',
  [OID.sha512]: 'sha512',
};

interface SignatureScheme {
  family: 'rsa' | 'ec' | 'eddsa';
  hash: string | null;
  pss?: { saltLength: number };
}

/** The verification scheme an AlgorithmIdentifier names, or a problem when it is not accepted. */
export function signatureScheme(algorithm: AlgorithmIdentifier): SignatureScheme | Problem {
  const { oid, parameters } = algorithm;
  const noParameters = (): boolean => parameters === undefined;
  const nullOrAbsent = (): boolean =>
    parameters === undefined || (parameters.tag === Tag.null && parameters.bytes.length === 0);
  switch (oid) {
    case OID.sha256WithRsa:
    case OID.sha384WithRsa:
    case OID.sha512WithRsa:
      if (!nullOrAbsent()) return problem('MALFORMED', 'RSA signature algorithm with parameters');
      return {
        family: 'rsa',
        hash:
          oid === OID.sha256WithRsa ? 'sha256' : oid === OID.sha384WithRsa ? 'sha384' : 'sha512',
      };
    case OID.ecdsaWithSha256:
    case OID.ecdsaWithSha384:
    case OID.ecdsaWithSha512:
      if (!noParameters()) return problem('MALFORMED', 'ECDSA signature algorithm with parameters');
      return {
        family: 'ec',
        hash:
          oid === OID.ecdsaWithSha256
            ? 'sha256'
            : oid === OID.ecdsaWithSha384
              ? 'sha384'
              : 'sha512',
      };
    case OID.ed25519:
    case OID.ed448:
      if (!noParameters()) return problem('MALFORMED', 'EdDSA signature algorithm with parameters');
      return { family: 'eddsa', hash: null };
    case OID.rsassaPss:
      return pssScheme(parameters);
    default:
      return problem('UNSUPPORTED_ALGORITHM', `unsupported signature algorithm ${oid}`);
  }
}

/** RSASSA-PSS-params with a SHA-2 hash, MGF1 over the same hash, and trailer field 1. */
function pssScheme(parameters: DerElement | undefined): SignatureScheme | Problem {
  try {
    const fields = new DerCursor(sequenceOf(parameters, 'RSASSA-PSS-params'), 'RSASSA-PSS-params');
    const hashElement = fields.optional(0xa0);
    const mgfElement = fields.optional(0xa1);
    const saltElement = fields.optional(0xa2);
    const trailerElement = fields.optional(0xa3);
    fields.end();
    if (!hashElement || !mgfElement) {
      return problem('UNSUPPORTED_ALGORITHM', 'RSA-PSS with the SHA-1 defaults');
    }
    // Each field is [n] EXPLICIT: its one child is the value.
    const explicit = (element: DerElement, what: string): DerElement => {
      const inner = children(element);
      if (inner.length !== 1) throw new DerError(`${what}: expected one value`);
      return inner[0] as DerElement;
    };
    const hashItems = sequenceOf(explicit(hashElement, 'hashAlgorithm'), 'hashAlgorithm');
    const hash = HASH_OF_OID[readOid(hashItems[0] as DerElement)];
    const mgfItems = sequenceOf(explicit(mgfElement, 'maskGenAlgorithm'), 'maskGenAlgorithm');
    if (readOid(mgfItems[0] as DerElement) !== OID.mgf1) {
      return problem('UNSUPPORTED_ALGORITHM', 'RSA-PSS with a mask generation other than MGF1');
    }
    const mgfHashItems = sequenceOf(mgfItems[1], 'MGF1 hash');
    const mgfHash = HASH_OF_OID[readOid(mgfHashItems[0] as DerElement)];
    if (!hash || hash !== mgfHash) {
      return problem('UNSUPPORTED_ALGORITHM', 'RSA-PSS with an unsupported or mismatched hash');
    }
    const saltLength = saltElement ? readSmallInteger(explicit(saltElement, 'saltLength')) : 20;
    if (trailerElement && readSmallInteger(explicit(trailerElement, 'trailerField')) !== 1) {
      return problem('MALFORMED', 'RSA-PSS with a trailer field other than 1');
    }
    return { family: 'rsa', hash, pss: { saltLength } };
  } catch (error) {
    if (error instanceof DerError)
      return problem('MALFORMED', `malformed RSA-PSS parameters (${error.message})`);
    throw error;
  }
}

function keyFamily(spki: PublicKeyInfo): SignatureScheme['family'] | undefined {
  switch (spki.algorithm.oid) {
    case OID.rsaEncryption:
      return 'rsa';
    case OID.ecPublicKey:
      return 'ec';
    case OID.ed25519:
    case OID.ed448:
      return 'eddsa';
    default:
      return undefined;
  }
}

/** Verifies `signature` over `data` with the issuer's key; a problem explains a refusal. */
export function verifySignature(
  algorithm: AlgorithmIdentifier,
  data: Uint8Array,
  signature: Uint8Array,
  issuerKey: KeyObject,
  issuerSpki: PublicKeyInfo,
): Problem | undefined {
  const scheme = signatureScheme(algorithm);
  if ('code' in scheme) return scheme;
  if (keyFamily(issuerSpki) !== scheme.family) {
    return problem('BAD_SIGNATURE', 'the signature algorithm does not fit the issuer key');
  }
  let ok: boolean;
  try {
    if (scheme.pss) {
      ok = verify(
        scheme.hash,
        data,
        {
          key: issuerKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: scheme.pss.saltLength,
        },
        signature,
      );
    } else if (scheme.family === 'ec') {
      ok = verify(scheme.hash, data, { key: issuerKey, dsaEncoding: 'der' }, signature);
    } else {
      ok = verify(scheme.hash, data, issuerKey, signature);
    }
  } catch {
    ok = false;
  }
  return ok
    ? undefined
    : problem('BAD_SIGNATURE', 'the signature does not verify with the issuer key');
}
