import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  webcrypto,
  type KeyObject,
} from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { TrustError, UsageError, errnoOf, isSarkError, messageOf } from '../errors.js';
import type { NodeIdentity } from './node-identity.js';
import { pemBlocks } from './pem.js';

export type KeyType = 'ec' | 'ed25519';
export const KEY_TYPES: readonly KeyType[] = ['ec', 'ed25519'];

export interface GeneratedKeyPair {
  keys: CryptoKeyPair;
  privateKeyPem: string;
}

const GENERATION_ALGORITHMS: Record<KeyType, EcKeyGenParams | Algorithm> = {
  ec: { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams,
  ed25519: { name: 'Ed25519' },
};

export async function generateKeyPair(type: KeyType): Promise<GeneratedKeyPair> {
  const keys = (await webcrypto.subtle.generateKey(GENERATION_ALGORITHMS[type], true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const privateKeyPem = createPrivateKey({
    key: Buffer.from(pkcs8),
    format: 'der',
    type: 'pkcs8',
  }).export({ format: 'pem', type: 'pkcs8' }) as string;
  return { keys, privateKeyPem };
}

/**
 * Reads a private key file, refusing one that group or others may read, as ssh does: a key that
 * leaked to other local users no longer proves who this node is.
 */
/**
 * Reads a private key file, refusing one others may read. What the file holds is checked before
 * its mode, so that a certificate or an encrypted key given by mistake is named as such rather
 * than met with a chmod hint. `where` names the option that gave the path, for the hints.
 */
export function readPrivateKeyFile(path: string, where = '--key'): KeyObject {
  let bytes: Buffer;
  let mode: number;
  try {
    mode = statSync(path).mode;
    bytes = readFileSync(path);
  } catch (error) {
    throw new UsageError('KEY_UNREADABLE', `cannot read key file ${path} (${errnoOf(error)})`, {
      cause: error,
      hint: `check the path given with ${where}`,
    });
  }
  const text = bytes.toString('latin1');
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw new UsageError('KEY_ENCRYPTED', `${path} is an encrypted private key`, {
      hint: `sark-fed reads keys without a passphrase: openssl pkey -in ${path} -out <new file>, then chmod 600 it`,
    });
  }
  if (
    !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text) &&
    text.includes('-----BEGIN CERTIFICATE-----')
  ) {
    throw new UsageError('KEY_INVALID', `${path} holds a certificate, not a private key`, {
      hint: `give ${where} the key file (key.pem beside the certificate)`,
    });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(bytes);
  } catch (error) {
    throw new UsageError('KEY_INVALID', `${path} is not a private key (${messageOf(error)})`, {
      cause: error,
      hint: 'give an unencrypted PEM (PKCS#8, SEC1 or PKCS#1) private key',
    });
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    throw new UsageError(
      'KEY_PERMISSIONS',
      `key file ${path} is accessible by group or others (mode ${octal})`,
      { hint: `run: chmod 600 ${path}` },
    );
  }
  return key;
}

/** True when the private key is the one whose public half the certificate carries. */
export function keyMatchesCertificate(privateKey: KeyObject, certificateDer: Uint8Array): boolean {
  const fromKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const fromCertificate = new X509Certificate(certificateDer).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  return fromKey.equals(fromCertificate);
}

/** The WebCrypto signing key and algorithm for a key loaded with node:crypto. */
export async function importSigningKey(
  privateKey: KeyObject,
): Promise<{ key: CryptoKey; algorithm: Algorithm | EcdsaParams }> {
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  if (privateKey.asymmetricKeyType === 'ed25519') {
    const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, [
      'sign',
    ]);
    return { key, algorithm: { name: 'Ed25519' } };
  }
  if (privateKey.asymmetricKeyType === 'ec') {
    const curve = privateKey.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'secp384r1' ? 'P-384' : curve === 'prime256v1' ? 'P-256' : curve;
    if (namedCurve !== 'P-256' && namedCurve !== 'P-384') {
      throw new UsageError('KEY_UNSUPPORTED', `unsupported EC curve ${curve ?? 'unknown'}`, {
        hint: 'use a P-256 or P-384 key',
      });
    }
    const key = await webcrypto.subtle.importKey(
      'pkcs8',
      pkcs8,
      { name: 'ECDSA', namedCurve } as EcKeyImportParams,
      false,
      ['sign'],
    );
    const hash = namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256';
    return { key, algorithm: { name: 'ECDSA', hash } as EcdsaParams };
  }
  throw new UsageError(
    'KEY_UNSUPPORTED',
    `unsupported key type ${privateKey.asymmetricKeyType ?? 'unknown'}`,
    { hint: 'sark-fed signs with ECDSA (P-256, P-384) or Ed25519 keys' },
  );
}

/**
 * This node's private key, read again from the path `init` recorded and checked against the
 * certificate it recorded: the files can change after `init` (a certificate issued again into the
 * same folder, say). Without the check, a key that no longer matches fails later inside TLS, and
 * the failure looks like the peer's (a broken connection counted against its circuit breaker).
 */
export function loadNodeKey(identity: Pick<NodeIdentity, 'keyPath' | 'certChainPem'>): KeyObject {
  let key: KeyObject;
  try {
    key = readPrivateKeyFile(identity.keyPath);
  } catch (error) {
    // Its hint names --key, which the commands that load the recorded key do not take.
    if (isSarkError(error) && error.code === 'KEY_UNREADABLE') {
      throw new UsageError(error.code, error.message, {
        cause: error,
        hint: 'the key `sark-fed init` recorded is gone: restore it, or run `sark-fed init` again with --cert and --key',
      });
    }
    throw error;
  }
  const leaf = pemBlocks(identity.certChainPem)[0]?.der;
  if (leaf && !keyMatchesCertificate(key, leaf)) {
    throw new TrustError(
      'KEY_MISMATCH',
      `${identity.keyPath} is no longer the key of this node's certificate`,
      {
        hint: 'the key file changed since `sark-fed init` (a certificate issued again?): run `sark-fed init` again with the new --cert and --key',
      },
    );
  }
  return key;
}
