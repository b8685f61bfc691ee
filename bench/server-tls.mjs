// The daemon's TLS settings for the benchmarks' stand-in servers (bench/bare-server.mjs,
// bench/floor-server.mjs): its certificate, a client certificate requested (not checked: the
// benchmark measures serving, not refusing), TLS 1.2+, ECDHE AEAD suites.
import { readFileSync } from 'node:fs';

export function serverTlsOptions(certPath, keyPath) {
  return {
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    ciphers: [
      'TLS_AES_128_GCM_SHA256',
      'TLS_AES_256_GCM_SHA384',
      'TLS_CHACHA20_POLY1305_SHA256',
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
    ].join(':'),
  };
}
