import { OperationError, messageOf } from '../errors.js';
import type { AuditOutcome, Receipt } from './receipts.js';

/**
 * The shapes of audit events and rows, and the conversions between them: what reading the trail
 * needs (audit query, export, trace). Appending, which hashes and so loads node:crypto, is in
 * events.ts.
 */

/**
 * One side's record of one federated call (DESIGN §7). Both nodes write one, with the same
 * correlation ID. Arguments and results are never stored: only their SHA-256 and size.
 */
export interface AuditEventInput {
  correlationId: string;
  time: string;
  direction: 'outbound' | 'inbound';
  /** Node IDs of the calling and the serving node. */
  sourceNode: string;
  targetNode: string;
  principal: string;
  resource: string;
  capability: string;
  outcome: AuditOutcome;
  statusCode: number | null;
  errorCode: string | null;
  durationUs: number;
  requestSha256: string | null;
  requestSize: number | null;
  resultSha256: string | null;
  resultSize: number | null;
  /** Outbound: the receipt the serving node returned; inbound: the one this node issued. */
  receipt: Receipt | null;
}

export interface AuditEvent extends AuditEventInput {
  seq: number;
  eventId: string;
  prevHash: string;
  hash: string;
}

/**
 * The event's own fields under their column (and wire) names: what canonicalEvent hashes, and
 * the body of an event in an audit/query answer.
 */
export function snakeCaseFields(event: AuditEventInput & { eventId: string }) {
  return {
    event_id: event.eventId,
    correlation_id: event.correlationId,
    time: event.time,
    direction: event.direction,
    source_node: event.sourceNode,
    target_node: event.targetNode,
    principal: event.principal,
    resource: event.resource,
    capability: event.capability,
    outcome: event.outcome,
    status_code: event.statusCode,
    error_code: event.errorCode,
    duration_us: event.durationUs,
    request_sha256: event.requestSha256,
    request_size: event.requestSize,
    result_sha256: event.resultSha256,
    result_size: event.resultSize,
    receipt: event.receipt,
  };
}

/** A row of audit_events as SQLite returns it: snake_case, the receipt as its JSON text. */
export interface AuditRow {
  seq: number;
  event_id: string;
  correlation_id: string;
  time: string;
  direction: 'outbound' | 'inbound';
  source_node: string;
  target_node: string;
  principal: string;
  resource: string;
  capability: string;
  outcome: AuditOutcome;
  status_code: number | null;
  error_code: string | null;
  duration_us: number;
  request_sha256: string | null;
  request_size: number | null;
  result_sha256: string | null;
  result_size: number | null;
  receipt: string | null;
  prev_hash: string;
  hash: string;
}

export function eventFromRow(row: AuditRow): AuditEvent {
  return {
    seq: row.seq,
    eventId: row.event_id,
    correlationId: row.correlation_id,
    time: row.time,
    direction: row.direction,
    sourceNode: row.source_node,
    targetNode: row.target_node,
    principal: row.principal,
    resource: row.resource,
    capability: row.capability,
    outcome: row.outcome,
    statusCode: row.status_code,
    errorCode: row.error_code,
    durationUs: row.duration_us,
    requestSha256: row.request_sha256,
    requestSize: row.request_size,
    resultSha256: row.result_sha256,
    resultSize: row.result_size,
    receipt: receiptOf(row),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/**
 * A stored event that cannot be turned back into an event: only a change made to the state file
 * outside sark-fed does that. Queries and traces stop on it with this error, which names the row
 * and leads to `audit verify`, rather than an internal error.
 */
export class UnreadableEventError extends OperationError {
  constructor(
    row: Pick<AuditRow, 'seq' | 'event_id' | 'correlation_id'>,
    /** What is wrong with it, for `audit verify`'s list of problems. */
    readonly reason: string,
    cause: unknown,
  ) {
    super(
      'AUDIT_EVENT_UNREADABLE',
      `the audit event at seq ${row.seq} (event ${row.event_id}, correlation ID ${row.correlation_id}) cannot be read back: ${reason}`,
      {
        hint: 'the trail was altered outside sark-fed: `sark-fed audit verify` lists every problem; keep a copy of the state file as evidence',
        cause,
      },
    );
  }
}

function receiptOf(row: AuditRow): Receipt | null {
  if (row.receipt === null) return null;
  try {
    return JSON.parse(row.receipt) as Receipt;
  } catch (error) {
    throw new UnreadableEventError(row, `its receipt is not JSON (${messageOf(error)})`, error);
  }
}
