import { FINGERPRINT_PATTERN, isNodeId, isTrustDomain } from './types.js';

/** What a node advertises in its DNS-SD TXT record (DESIGN §4). */
export interface SarkTxt {
  nodeId: string;
  trustDomain: string | null;
  fingerprint: string | null;
  api: string | null;
}

/** RFC 6763 §6.1: a string is at most 255 bytes; §6.2: keep the record small. */
const MAX_STRING_BYTES = 255;
const MAX_RECORD_BYTES = 1300;
/** RFC 6763 §6.4: keys are printable ASCII but '='; over 9 characters (a SHOULD) is ignored. */
const KEY_PATTERN = /^[\x20-\x3c\x3e-\x7e]{1,9}$/;

/** The TXT record of a node, as its strings (`key=value`), `txtvers` first (RFC 6763 §6.7). */
export function sarkTxtStrings(txt: {
  nodeId: string;
  trustDomain: string;
  fingerprint: string;
}): string[] {
  return [
    `txtvers=1`,
    `node=${txt.nodeId}`,
    `td=${txt.trustDomain}`,
    `fp=${txt.fingerprint}`,
    'api=v2',
  ];
}

/**
 * Reads a TXT record's strings into what a node advertises, or says why it is not usable.
 * RFC 6763 §6: keys are case-insensitive, the first occurrence of a key wins, a string without
 * '=' is a boolean attribute. Oversized strings or records, an unknown `txtvers`, or a missing or
 * malformed `node` make the record unusable; a malformed optional key is dropped.
 */
export function parseSarkTxt(
  strings: readonly (Buffer | string)[],
): { txt: SarkTxt; ignored: string[] } | { error: string } {
  let total = 0;
  const values = new Map<string, string | true>();
  for (const entry of strings) {
    const bytes = typeof entry === 'string' ? Buffer.from(entry, 'utf8') : entry;
    total += bytes.length + 1;
    if (bytes.length > MAX_STRING_BYTES) return { error: 'a TXT string exceeds 255 bytes' };
    if (bytes.length === 0) continue;
    const text = bytes.toString('utf8');
    const equals = text.indexOf('=');
    const key = (equals === -1 ? text : text.slice(0, equals)).toLowerCase();
    if (!KEY_PATTERN.test(key)) continue;
    if (values.has(key)) continue;
    values.set(key, equals === -1 ? true : text.slice(equals + 1));
  }
  if (total > MAX_RECORD_BYTES)
    return { error: `the TXT record is ${total} bytes, over ${MAX_RECORD_BYTES}` };
  const version = values.get('txtvers');
  if (version !== undefined && version !== '1')
    return { error: `unsupported txtvers ${String(version)}` };
  const nodeId = values.get('node');
  if (typeof nodeId !== 'string' || !isNodeId(nodeId)) return { error: 'no valid node= key' };
  const trustDomain = values.get('td');
  const fingerprint = values.get('fp');
  const api = values.get('api');
  const txt: SarkTxt = {
    nodeId,
    trustDomain: typeof trustDomain === 'string' && isTrustDomain(trustDomain) ? trustDomain : null,
    fingerprint:
      typeof fingerprint === 'string' && FINGERPRINT_PATTERN.test(fingerprint.toLowerCase())
        ? fingerprint.toLowerCase()
        : null,
    api: typeof api === 'string' ? api : null,
  };
  // The node is kept without them; what was dropped is said, so that a typo in a zone is found.
  const ignored: string[] = [];
  if (trustDomain !== undefined && txt.trustDomain === null) {
    ignored.push(`${shown('td', trustDomain)} is not a trust domain`);
  }
  if (fingerprint !== undefined && txt.fingerprint === null) {
    ignored.push(`${shown('fp', fingerprint)} is not a SHA-256 fingerprint (64 hex digits)`);
  }
  return { txt, ignored };
}

/** key=value as the record gave it (a bare key as itself), cut for a one-line message. */
function shown(key: string, value: string | true): string {
  if (value === true) return key;
  return `${key}=${value.length > 80 ? `${value.slice(0, 80)}…` : value}`;
}
