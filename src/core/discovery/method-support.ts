/** Small helpers shared by the discovery methods that read the network (DNS-SD, Consul). */

/**
 * The error a method throws when the scan's signal ended it (deadline, `--expect` met, Ctrl-C):
 * named AbortError, which the scanner counts as a method that finished, not one that failed.
 */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  const error = new Error('the scan ended');
  error.name = 'AbortError';
  return error;
}

/**
 * Text from the network made safe to show: what a DNS name, TXT string or Consul entry carries may
 * hold terminal escapes, so anything outside printable ASCII becomes '?', and it is kept short.
 */
export function printable(text: string, max = 300): string {
  const cleaned = text.replace(/[^\x20-\x7e]/g, '?');
  return cleaned.length > max ? `${cleaned.slice(0, max)}…` : cleaned;
}
