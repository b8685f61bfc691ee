/** Small helpers shared by the discovery methods that read the network (DNS-SD, Consul). */

/**
 * The error a method throws when the scan's signal ended it (deadline, `--expect` met, Ctrl-C):
 * named AbortError, which the scanner counts as a method that finished, not one that failed.
 */
/**
 * The abort reason of a scan that ran out of time, as opposed to one ended early (`--expect`
 * met, Ctrl-C): a method still waiting on a server at the deadline may say so as a failure.
 */
export function deadlineReason(): Error {
  const error = new Error('the scan reached its deadline');
  error.name = 'AbortError';
  (error as Error & { deadline: true }).deadline = true;
  return error;
}

export function endedByDeadline(signal: AbortSignal): boolean {
  const reason: unknown = signal.reason;
  return (
    signal.aborted &&
    reason instanceof Error &&
    (reason as Error & { deadline?: boolean }).deadline === true
  );
}

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
