import { UsageError } from '../errors.js';

/** Resource and capability IDs as the wire protocol allows them (protocol/schemas.ts). */
export const RESOURCE_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** A correlation ID as DESIGN §5 has it on the wire: a UUID, any version, in either case. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function assertResourceId(value: string, what: 'resource' | 'capability'): void {
  if (!RESOURCE_ID_PATTERN.test(value)) {
    throw new UsageError('BAD_IDENTIFIER', `invalid ${what} ID "${value}"`, {
      hint: 'IDs are 1 to 128 letters, digits, dots, dashes or underscores',
    });
  }
}

/** A correlation ID given on the command line: a UUID, as every node generates them. */
export function normalizeCorrelationId(value: string): string {
  if (!UUID_PATTERN.test(value.trim())) {
    throw new UsageError('BAD_CORRELATION_ID', `invalid correlation ID "${value}"`, {
      hint: 'give a UUID, e.g. from `uuidgen`, or leave it out to have one generated',
    });
  }
  return value.trim().toLowerCase();
}
