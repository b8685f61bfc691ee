/**
 * What the command tree needs to know of a CA's revocations, apart from the code that keeps
 * them (revocations.ts): the CLI builds its help from this without loading zod or node:crypto.
 */

/** The file in a CA folder that lists every certificate the CA revoked (revocations.ts). */
export const REVOCATION_RECORD_FILE = 'revoked.json';

/** RFC 5280 §5.3.1 reason codes a node certificate can be revoked for, as the CLI names them. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  'key-compromise': 1,
  'affiliation-changed': 3,
  superseded: 4,
  'cessation-of-operation': 5,
  'privilege-withdrawn': 9,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;
