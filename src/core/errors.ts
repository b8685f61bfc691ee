/**
 * Typed errors of the engine. Each carries a kind (which becomes the exit code in cli/main.ts and
 * only there), a stable machine-readable code, a one-line message and, where the operator can do
 * something about it, a hint.
 */
export type ErrorKind =
  'failed' | 'usage' | 'trust' | 'not-found' | 'unavailable' | 'refused' | 'interrupted';

export interface SarkErrorOptions {
  hint?: string | undefined;
  cause?: unknown;
}

export class SarkError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, code: string, message: string, options: SarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SarkError';
    this.kind = kind;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Operation failed: internal error, remote error, I/O error. */
export class OperationError extends SarkError {
  constructor(code: string, message: string, options?: SarkErrorOptions) {
    super('failed', code, message, options);
  }
}

/** The caller's words are off: bad argument, missing flag, conflicting options. */
export class UsageError extends SarkError {
  constructor(code: string, message: string, options?: SarkErrorOptions) {
    super('usage', code, message, options);
  }
}

/** Untrusted or revoked peer, fingerprint mismatch, certificate that fails validation. */
export class TrustError extends SarkError {
  constructor(code: string, message: string, options?: SarkErrorOptions) {
    super('trust', code, message, options);
  }
}

export class NotFoundError extends SarkError {
  constructor(code: string, message: string, options?: SarkErrorOptions) {
    super('not-found', code, message, options);
  }
}

export class UnavailableError extends SarkError {
  constructor(code: string, message: string, options?: SarkErrorOptions) {
    super('unavailable', code, message, options);
  }
}

export class RefusedError extends SarkError {
  constructor(code: string, message: string, options?: SarkErrorOptions) {
    super('refused', code, message, options);
  }
}

export class InterruptedError extends SarkError {
  constructor(message = 'interrupted', options?: SarkErrorOptions) {
    super('interrupted', 'INTERRUPTED', message, options);
  }
}

export function isSarkError(error: unknown): error is SarkError {
  return error instanceof SarkError;
}

/** The message of any thrown value, for wrapping foreign errors into typed ones. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The errno code of a file-system error (ENOENT, EACCES…), or its message when it has none. */
export function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | null)?.code ?? messageOf(error);
}
