// @peculiar/x509's typings name the WebCrypto types as globals, as a browser's DOM library does.
// Node ships the same types under node:crypto's webcrypto namespace; alias them instead of
// pulling the whole DOM library into a server-side build.
import type { webcrypto } from 'node:crypto';

declare global {
  type Algorithm = webcrypto.Algorithm;
  type Crypto = webcrypto.Crypto;
  type CryptoKey = webcrypto.CryptoKey;
  type CryptoKeyPair = webcrypto.CryptoKeyPair;
  type EcKeyGenParams = webcrypto.EcKeyGenParams;
  type EcKeyImportParams = webcrypto.EcKeyImportParams;
  type EcdsaParams = webcrypto.EcdsaParams;
}
