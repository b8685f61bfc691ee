import { v7 } from 'uuid';

/**
 * Correlation IDs and audit event IDs are UUIDv7 (RFC 9562): time-ordered, with the `uuid`
 * package keeping them increasing within one millisecond. Both are indexed in audit_events
 * (event_id UNIQUE, correlation_id for `audit query --correlation-id`); random (v4) keys land on
 * a random leaf page of each index, so every group commit of the daemon rewrote one page per row
 * per index into the WAL, while increasing keys share the rightmost page (docs/benchmarks.md,
 * invoke). Operators also get IDs that sort in the order the calls were made.
 *
 * IDs given by a caller or a peer are accepted in any UUID version.
 */
export function newCorrelationId(): string {
  return v7();
}

export function newEventId(): string {
  return v7();
}
