import type { ErrorKind } from '../core/errors.js';

/** The exit codes of CLI.md, in one place: only the CLI entry point turns errors into them. */
export const EXIT_CODES = [
  { code: 0, kind: undefined, meaning: 'success (an empty result is success)' },
  {
    code: 1,
    kind: 'failed',
    meaning: 'operation failed (remote error, invocation returned an error, internal error)',
  },
  {
    code: 2,
    kind: 'usage',
    meaning:
      'usage error: unknown option, bad argument, missing required flag in non-interactive mode',
  },
  {
    code: 3,
    kind: 'trust',
    meaning: 'trust failure: untrusted or revoked peer, fingerprint mismatch, invalid certificate',
  },
  {
    code: 4,
    kind: 'not-found',
    meaning: 'not found: no such node, resource, capability or correlation ID',
  },
  {
    code: 5,
    kind: 'unavailable',
    meaning: 'unavailable: unreachable, timed out, circuit open, no healthy route',
  },
  {
    code: 6,
    kind: 'refused',
    meaning: 'refused by the peer: denied by its policy or rate limited',
  },
  { code: 130, kind: 'interrupted', meaning: 'interrupted (Ctrl-C, prompt cancelled)' },
] as const satisfies ReadonlyArray<{ code: number; kind: ErrorKind | undefined; meaning: string }>;

export function exitCodeFor(kind: ErrorKind): number {
  return EXIT_CODES.find((entry) => entry.kind === kind)?.code ?? 1;
}
