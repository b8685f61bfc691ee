/** Wire-protocol constants shared by the daemon and the CLI's peer client (DESIGN §5). */
export const API_PREFIX = '/api/v2/federation';
export const API_VERSION = 'v2';

export const PATHS = {
  info: `${API_PREFIX}/info`,
  health: `${API_PREFIX}/health`,
  challenge: `${API_PREFIX}/trust/challenge`,
  trust: `${API_PREFIX}/trust`,
  revoke: `${API_PREFIX}/trust/revoke`,
  resources: `${API_PREFIX}/resources`,
  invoke: `${API_PREFIX}/invoke`,
  auditQuery: `${API_PREFIX}/audit/query`,
} as const;

export const CORRELATION_HEADER = 'x-sark-correlation-id';

/** RFC 5705 exporter label binding a trust statement to the TLS session that carries it. */
export const TLS_BINDING_LABEL = 'EXPORTER-sark-fed-trust-binding';
export const TLS_BINDING_LENGTH = 32;
/** Both ends pass the same (empty) context, which RFC 5705 distinguishes from none at all. */
export const NO_CONTEXT = Buffer.alloc(0);

export const CHALLENGE_NONCE_BYTES = 32;
export const CHALLENGE_TTL_MS = 60_000;

/** Bodies above this are refused before any parsing (trust and control endpoints). */
export const CONTROL_BODY_LIMIT = 16 * 1024;

/**
 * TLS 1.2 suites allowed: ECDHE key exchange with AEAD ciphers only. TLS 1.3 suites are all
 * AEAD with ephemeral key exchange, so Node's defaults for 1.3 stay.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
export const TLS13_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];
export const TLS_CIPHERS = [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':');
export const TLS_MIN_VERSION = 'TLSv1.2';
