import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';

/** SHA-256 over DER, as lowercase hex without separators (DESIGN §2). */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * Accepts a fingerprint as operators paste it: any case, with or without colons, with or without a
 * `sha256:` prefix. Returns the canonical form.
 */
export function normalizeFingerprint(input: string): string {
  const stripped = input
    .trim()
    .replace(/^sha256:/i, '')
    .replace(/:/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(stripped)) {
    throw new UsageError('BAD_FINGERPRINT', `invalid SHA-256 fingerprint "${input}"`, {
      hint: 'give 64 hex digits, optionally colon-separated or prefixed with sha256:',
    });
  }
  return stripped;
}

/** The first 16 hex digits, for narrow terminal columns. */
export function shortFingerprint(fingerprint: string): string {
  return fingerprint.slice(0, 16);
}
