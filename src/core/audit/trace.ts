import type { SqliteDatabase } from '../state/database.js';
import type { AuditEvent } from './events.js';
import type { AuditOutcome } from './receipts.js';
import type { ReceiptCheck, ReceiptSigners } from './verify.js';

/**
 * The timeline of one call across nodes (`audit trace`): the events recorded under one
 * correlation ID, on this node and (federated) on its peers, grouped into hops. A hop is one
 * attempt of one node calling another: the caller's outbound event and the serving node's inbound
 * event of the same attempt. Pure: the CLI draws it.
 */

export interface TraceEvent {
  /** The node whose audit trail holds the event. */
  origin: string;
  seq: number;
  eventId: string;
  direction: 'outbound' | 'inbound';
  time: string;
  /**
   * When the event's span started, in µs after the trace's first start. An outbound event is
   * stamped when the attempt started; an inbound one when its answer was signed, its span
   * starting its duration earlier. Clocks of different nodes may disagree by their skew.
   */
  startUs: number;
  durationUs: number;
  outcome: AuditOutcome;
  statusCode: number | null;
  errorCode: string | null;
  receipt: ReceiptCheck;
}

export interface TraceHop {
  /** 1-based, in order of start. */
  index: number;
  /** The hop whose serving node made this call (a call made while serving another), or null. */
  parent: number | null;
  depth: number;
  sourceNode: string;
  targetNode: string;
  principal: string;
  resource: string;
  capability: string;
  /** As the caller recorded it when it did; else as the serving node did. */
  outcome: AuditOutcome;
  statusCode: number | null;
  errorCode: string | null;
  startUs: number;
  durationUs: number;
  /** The hop's receipt: invalid if any of its events' receipt is, else verified if one is. */
  receipt: ReceiptCheck;
  /** The outbound event first, then the inbound one (either may be missing). */
  events: TraceEvent[];
}

export interface Trace {
  correlationId: string;
  startedAt: string;
  /** From the first start to the last end, in µs. */
  spanUs: number;
  nodes: string[];
  hops: TraceHop[];
}

export type OriginEvent = AuditEvent & { origin?: string };

/**
 * Builds the trace of one correlation ID from its events (any order, any node's). Events are
 * checked against signers; an event of another node without a known signer is "unknown-signer".
 */
export function buildTrace(
  correlationId: string,
  events: readonly OriginEvent[],
  signers: Pick<ReceiptSigners, 'check'>,
): Trace {
  const spans = events.map((event) => {
    const stamped = Date.parse(event.time) * 1000;
    return {
      event,
      absoluteUs: event.direction === 'outbound' ? stamped : stamped - event.durationUs,
    };
  });
  const first = Math.min(...spans.map((span) => span.absoluteUs));
  const traced: Array<{ event: OriginEvent; traced: TraceEvent }> = spans
    .map(({ event, absoluteUs }) => ({
      event,
      traced: {
        origin:
          event.origin ?? (event.direction === 'outbound' ? event.sourceNode : event.targetNode),
        seq: event.seq,
        eventId: event.eventId,
        direction: event.direction,
        time: event.time,
        startUs: Math.round(absoluteUs - first),
        durationUs: event.durationUs,
        outcome: event.outcome,
        statusCode: event.statusCode,
        errorCode: event.errorCode,
        receipt: signers.check(event),
      },
    }))
    .sort(
      (a, b) =>
        a.traced.startUs - b.traced.startUs ||
        a.traced.origin.localeCompare(b.traced.origin) ||
        a.traced.seq - b.traced.seq,
    );

  interface Building {
    outbound?: { event: OriginEvent; traced: TraceEvent };
    inbound?: { event: OriginEvent; traced: TraceEvent };
  }
  const hops: Building[] = [];
  for (const item of traced) {
    if (item.event.direction === 'outbound') hops.push({ outbound: item });
  }
  for (const item of traced) {
    if (item.event.direction !== 'inbound') continue;
    const signature = item.event.receipt?.signature;
    const match =
      // The same receipt on both sides is the same attempt, certainly.
      (signature === undefined
        ? undefined
        : hops.find(
            (hop) => !hop.inbound && hop.outbound?.event.receipt?.signature === signature,
          )) ??
      // An attempt whose answer the caller never got (timeout, lost connection) has no receipt
      // on the calling side: the earliest such attempt between the same two nodes.
      hops.find(
        (hop) =>
          !hop.inbound &&
          hop.outbound !== undefined &&
          hop.outbound.event.receipt === null &&
          hop.outbound.event.sourceNode === item.event.sourceNode &&
          hop.outbound.event.targetNode === item.event.targetNode,
      );
    if (match) match.inbound = item;
    else hops.push({ inbound: item });
  }

  const built = hops
    .map((hop) => hopOf(hop.outbound, hop.inbound))
    .sort((a, b) => a.startUs - b.startUs || a.sourceNode.localeCompare(b.sourceNode));
  built.forEach((hop, index) => {
    hop.index = index + 1;
  });
  // A call made by a node while it served another: the latest hop into that node that was
  // still running when this one started.
  for (const hop of built) {
    const parent = built
      .filter(
        (candidate) =>
          candidate !== hop &&
          candidate.index < hop.index &&
          candidate.targetNode === hop.sourceNode &&
          candidate.startUs <= hop.startUs &&
          hop.startUs <= candidate.startUs + candidate.durationUs,
      )
      .pop();
    if (parent) {
      hop.parent = parent.index;
      hop.depth = parent.depth + 1;
    }
  }

  const end = Math.max(...traced.map((item) => item.traced.startUs + item.traced.durationUs), 0);
  const nodes = new Set<string>();
  for (const hop of built) nodes.add(hop.sourceNode).add(hop.targetNode);
  return {
    correlationId,
    startedAt: new Date(Math.floor(first / 1000)).toISOString(),
    spanUs: end,
    nodes: [...nodes].sort(),
    hops: built,
  };
}

function hopOf(
  outbound: { event: OriginEvent; traced: TraceEvent } | undefined,
  inbound: { event: OriginEvent; traced: TraceEvent } | undefined,
): TraceHop {
  const lead = (outbound ?? inbound) as { event: OriginEvent; traced: TraceEvent };
  const events = [outbound?.traced, inbound?.traced].filter(
    (event): event is TraceEvent => event !== undefined,
  );
  return {
    index: 0,
    parent: null,
    depth: 0,
    sourceNode: lead.event.sourceNode,
    targetNode: lead.event.targetNode,
    principal: lead.event.principal,
    resource: lead.event.resource,
    capability: lead.event.capability,
    outcome: lead.event.outcome,
    statusCode: lead.event.statusCode ?? inbound?.event.statusCode ?? null,
    errorCode: lead.event.errorCode ?? inbound?.event.errorCode ?? null,
    startUs: Math.min(...events.map((event) => event.startUs)),
    durationUs:
      Math.max(...events.map((event) => event.startUs + event.durationUs)) -
      Math.min(...events.map((event) => event.startUs)),
    receipt: hopReceipt(events),
    events,
  };
}

function hopReceipt(events: readonly TraceEvent[]): ReceiptCheck {
  const checks = events.map((event) => event.receipt);
  return (
    checks.find((check) => check.status === 'invalid') ??
    checks.find((check) => check.status === 'verified') ??
    checks.find((check) => check.status === 'unknown-signer') ??
    ({ status: 'none', signer: null, reason: null } as const)
  );
}

/**
 * The shortest prefix a trace takes for a correlation ID. Shorter ones start too many IDs to be
 * worth listing: UUIDv7 IDs begin with the time, so every ID of the same weeks shares its first
 * four characters, let alone three.
 */
export const MIN_CORRELATION_PREFIX = 4;

/** Correlation IDs an ambiguous prefix lists, the first in order. */
export const CANDIDATES_SHOWN = 10;

/**
 * Correlation IDs an ambiguous prefix counts, at most: four characters of a UUIDv7 can start every
 * call of a busy node's last weeks, and counting a million of them is not worth the wait.
 */
export const CANDIDATES_COUNTED_UP_TO = 10_000;

export type ResolvedCorrelation =
  | { status: 'found'; correlationId: string }
  | { status: 'none' }
  | { status: 'too-short'; minimum: number }
  /** `total`: how many IDs start with the prefix; null when more than the count's cap do. */
  | { status: 'ambiguous'; candidates: string[]; total: number | null };

/**
 * The correlation ID a trace is asked for: the one given when the trail holds it, else the only
 * one it holds that starts with it (terminals show the first 8 digits). A prefix shorter than
 * MIN_CORRELATION_PREFIX is not looked up; one that starts several IDs gives the first
 * CANDIDATES_SHOWN of them and how many there are, for the caller to list.
 */
export function resolveCorrelationId(
  db: SqliteDatabase,
  given: string,
  countUpTo: number = CANDIDATES_COUNTED_UP_TO,
): ResolvedCorrelation {
  const exact = db
    .prepare('SELECT 1 FROM audit_events WHERE correlation_id = ? LIMIT 1')
    .get(given);
  if (exact !== undefined) return { status: 'found', correlationId: given };
  if (given.length < MIN_CORRELATION_PREFIX) {
    return { status: 'too-short', minimum: MIN_CORRELATION_PREFIX };
  }
  // A range on the correlation index, where LIKE (case-insensitive) could not use it.
  const range = `FROM audit_events WHERE correlation_id >= ? AND correlation_id < ?`;
  const bounds = [given, `${given}\u{10ffff}`];
  const candidates = db
    .prepare(`SELECT DISTINCT correlation_id ${range} ORDER BY correlation_id LIMIT ?`)
    .pluck()
    .all(...bounds, CANDIDATES_SHOWN) as string[];
  if (candidates.length === 0) return { status: 'none' };
  if (candidates.length === 1) return { status: 'found', correlationId: candidates[0] as string };
  if (candidates.length < CANDIDATES_SHOWN) {
    return { status: 'ambiguous', candidates, total: candidates.length };
  }
  // The index gives the IDs in order, so DISTINCT stops reading at the cap.
  const counted = db
    .prepare(`SELECT count(*) FROM (SELECT DISTINCT correlation_id ${range} LIMIT ?)`)
    .pluck()
    .get(...bounds, countUpTo + 1) as number;
  return { status: 'ambiguous', candidates, total: counted > countUpTo ? null : counted };
}

/**
 * For each correlation ID, the length of the shortest prefix that starts no other ID of this
 * trail nor of the others given, and at least `minimum`: what a terminal shows, and what
 * `audit trace` resolves to that one ID. UUIDv7 IDs begin with the time, so the IDs of calls
 * made within a minute share their first 8 characters, which alone named none of them.
 * Two lookups on the correlation index an ID (its neighbours in order), wherever it came from.
 */
export function distinctPrefixLengths(
  db: SqliteDatabase,
  ids: readonly string[],
  minimum = 8,
): Map<string, number> {
  const before = db
    .prepare(
      'SELECT correlation_id FROM audit_events WHERE correlation_id < ? ORDER BY correlation_id DESC LIMIT 1',
    )
    .pluck();
  const after = db
    .prepare(
      'SELECT correlation_id FROM audit_events WHERE correlation_id > ? ORDER BY correlation_id LIMIT 1',
    )
    .pluck();
  const given = [...new Set(ids)].sort();
  const lengths = new Map<string, number>();
  given.forEach((id, index) => {
    const neighbours = [
      before.get(id) as string | undefined,
      after.get(id) as string | undefined,
      given[index - 1],
      given[index + 1],
    ];
    let length = minimum;
    for (const other of neighbours) {
      if (other !== undefined) length = Math.max(length, commonPrefix(id, other) + 1);
    }
    lengths.set(id, Math.min(length, id.length));
  });
  return lengths;
}

function commonPrefix(a: string, b: string): number {
  let length = 0;
  while (length < a.length && length < b.length && a[length] === b[length]) length++;
  return length;
}
