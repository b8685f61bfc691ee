// @peculiar/x509 relies on reflect-metadata being loaded before it, and on a WebCrypto provider.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
