import { UsageError } from '../errors.js';
import type { SqliteDatabase } from '../state/database.js';
import { eventFromRow, snakeCaseFields, type AuditEvent, type AuditRow } from './rows.js';
import type { AuditOutcome, Receipt } from './receipts.js';

/**
 * Filters of `audit query` (DESIGN §7). Every field is optional; those given are ANDed. Each is
 * answered from an index of audit_events (migrations 4 and 6), except `capability` without
 * `resource` and `outcome` 'success', which narrow what another filter (or the time index) found.
 */
export interface AuditFilter {
  correlationId?: string;
  principal?: string;
  resource?: string;
  capability?: string;
  /** events where this node is the source or the target */
  node?: string;
  outcome?: AuditOutcome;
  /** ISO 8601 UTC instants, inclusive since, exclusive until */
  since?: string;
  until?: string;
  /** default none here; the CLI applies its own default */
  limit?: number;
  /** only events in which this node took part (source_node or target_node); used by peers answering a federated query */
  participant?: string;
}

/** Events matching the filter, newest first (time, then chain position). */
export function queryEvents(db: SqliteDatabase, filter: AuditFilter): AuditEvent[] {
  const { sql, params } = selectSql(filter);
  return (db.prepare(sql).all(...params) as AuditRow[]).map(eventFromRow);
}

/** How many events match the filter (its limit ignored). */
/**
 * How many events match. With `upTo`, counting stops there (a million matches would otherwise be
 * read to be counted): the answer is then at most `upTo`.
 */
export function countEvents(db: SqliteDatabase, filter: AuditFilter, upTo?: number): number {
  if (upTo !== undefined) {
    const limited = selectSql({ ...filter, limit: upTo });
    return db
      .prepare(`SELECT count(*) FROM (${limited.sql})`)
      .pluck()
      .get(...limited.params) as number;
  }
  const { sql, params } = countSql(filter);
  return db
    .prepare(sql)
    .pluck()
    .get(...params) as number;
}

export interface Sql {
  sql: string;
  params: Array<string | number>;
}

const NEWEST_FIRST = ' ORDER BY time DESC, seq DESC';

/**
 * The statement queryEvents runs. A node filter (`node`, `participant`) is "source or target":
 * as one OR, SQLite gathers every event of that node from two indexes and sorts them all before
 * the limit applies, seconds for a node with a million events (a peer answering a busy caller).
 * Unless a more selective index applies (correlation ID, principal, resource), it is run as two
 * branches instead: the events the node sent, and those it received from another node, each read
 * newest first from its own index (source_node, time) or (target_node, time) and cut at the
 * limit, then merged, so that no more than twice the limit is ever read.
 */
export function selectSql(filter: AuditFilter): Sql {
  const limit = filter.limit === undefined ? undefined : checkLimit(filter.limit);
  const limited = limit === undefined ? '' : ' LIMIT ?';
  const split = splitByNode(filter);
  if (!split) {
    const { where, params } = buildWhere(filter);
    if (limit !== undefined) params.push(limit);
    return { sql: `SELECT * FROM audit_events${where}${NEWEST_FIRST}${limited}`, params };
  }
  const { terms, params } = whereTerms(split.rest);
  const and = terms.map((term) => ` AND ${term}`).join('');
  const inner = limit === undefined ? '' : `${NEWEST_FIRST}${limited}`;
  const sent = `SELECT * FROM audit_events WHERE source_node = ?${and}${inner}`;
  const received = `SELECT * FROM audit_events WHERE target_node = ? AND source_node <> ?${and}${inner}`;
  const cut = limit === undefined ? [] : [limit];
  return {
    sql: `SELECT * FROM (${sent}) UNION ALL SELECT * FROM (${received})${NEWEST_FIRST}${limited}`,
    params: [split.node, ...params, ...cut, split.node, split.node, ...params, ...cut, ...cut],
  };
}

/** The statement countEvents runs: the same two branches as selectSql, counted and added. */
export function countSql(filter: AuditFilter): Sql {
  const split = splitByNode(filter);
  if (!split) {
    const { where, params } = buildWhere(filter);
    return { sql: `SELECT count(*) FROM audit_events${where}`, params };
  }
  const { terms, params } = whereTerms(split.rest);
  const and = terms.map((term) => ` AND ${term}`).join('');
  return {
    sql:
      `SELECT (SELECT count(*) FROM audit_events WHERE source_node = ?${and}) + ` +
      `(SELECT count(*) FROM audit_events WHERE target_node = ? AND source_node <> ?${and})`,
    params: [split.node, ...params, split.node, split.node, ...params],
  };
}

/** The node a query is split on, and the rest of its filter; undefined when not worth it. */
function splitByNode(filter: AuditFilter): { node: string; rest: AuditFilter } | undefined {
  if (
    filter.correlationId !== undefined ||
    filter.principal !== undefined ||
    filter.resource !== undefined
  ) {
    return undefined;
  }
  if (filter.participant !== undefined) {
    return { node: filter.participant, rest: { ...filter, participant: undefined } };
  }
  if (filter.node !== undefined) {
    return { node: filter.node, rest: { ...filter, node: undefined } };
  }
  return undefined;
}

/** The WHERE clause of a filter and its bound parameters (values are never interpolated). */
export function buildWhere(filter: AuditFilter): { where: string; params: Array<string | number> } {
  const { terms, params } = whereTerms(filter);
  return { where: terms.length === 0 ? '' : ` WHERE ${terms.join(' AND ')}`, params };
}

/** The ANDed terms of a filter (its limit aside) and their bound parameters. */
function whereTerms(filter: AuditFilter): {
  terms: string[];
  params: Array<string | number>;
} {
  const terms: string[] = [];
  const params: Array<string | number> = [];
  const equal = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    terms.push(`${column} = ?`);
    params.push(value);
  };
  equal('correlation_id', filter.correlationId);
  equal('principal', filter.principal);
  equal('resource', filter.resource);
  equal('capability', filter.capability);
  equal('outcome', filter.outcome);
  // Spelled out so that SQLite sees that the partial index audit_unsuccessful (migration 6)
  // holds every row asked for: it does not infer it from outcome = 'denied'.
  if (filter.outcome !== undefined && filter.outcome !== 'success')
    terms.push("outcome <> 'success'");
  // Source or target: SQLite answers it from audit_by_source and audit_by_target together
  // (MULTI-INDEX OR), each searched with the time bounds too.
  for (const node of [filter.node, filter.participant]) {
    if (node === undefined) continue;
    terms.push('(source_node = ? OR target_node = ?)');
    params.push(node, node);
  }
  if (filter.since !== undefined) {
    terms.push('time >= ?');
    params.push(normaliseInstant(filter.since, 'since'));
  }
  if (filter.until !== undefined) {
    terms.push('time < ?');
    params.push(normaliseInstant(filter.until, 'until'));
  }
  return { terms, params };
}

/**
 * Stored times are `Date.toISOString()` strings (UTC, milliseconds, `Z`), compared as text; a
 * bound given in another ISO 8601 spelling (no milliseconds, an offset) is rewritten to that form
 * first, or `...:00Z` would sort after `...:00.000Z` and miss the events of that very instant.
 * A bound finer than a millisecond is rounded up, which keeps both comparisons exact on
 * millisecond times (`>= 0.1234` and `>= 0.124` select the same stored times).
 */
export function normaliseInstant(value: string, name = 'time'): string {
  const match = ISO_INSTANT.exec(value);
  let ms = match ? Date.parse(value) : Number.NaN;
  if (match && !Number.isNaN(ms)) {
    const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const calendar = new Date(Date.UTC(2000, month - 1, day));
    calendar.setUTCFullYear(year);
    // 2030-02-30 would roll over to March: not a day.
    if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) ms = Number.NaN;
    if (/[1-9]/.test(match[4] ?? '')) ms += 1;
  }
  if (Number.isNaN(ms)) {
    throw new UsageError('AUDIT_BAD_TIME', `${name} is not an ISO 8601 instant: ${value}`, {
      hint: 'give a UTC time such as 2030-01-01T00:00:00Z',
    });
  }
  return new Date(ms).toISOString();
}

/**
 * A date, optionally with a time and then a zone (Z or ±hh:mm): what Date.parse reads the same
 * everywhere (a time without a zone would be local time). Group 4: digits beyond milliseconds.
 */
const ISO_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,3}(\d*))?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d))?$/;

function checkLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new UsageError('AUDIT_BAD_LIMIT', `limit must be a whole number ≥ 0, not ${limit}`);
  }
  return limit;
}

/**
 * An audit event as peers exchange it (docs/protocol.md): the stored row, snake_case, with its
 * receipt as a JSON object rather than text.
 */
export type WireAuditEvent = Omit<AuditRow, 'receipt'> & { receipt: Receipt | null };

export function eventToWire(event: AuditEvent): WireAuditEvent {
  return { seq: event.seq, ...snakeCaseFields(event), prev_hash: event.prevHash, hash: event.hash };
}

export function eventFromWire(wire: WireAuditEvent): AuditEvent {
  return {
    seq: wire.seq,
    eventId: wire.event_id,
    correlationId: wire.correlation_id,
    time: wire.time,
    direction: wire.direction,
    sourceNode: wire.source_node,
    targetNode: wire.target_node,
    principal: wire.principal,
    resource: wire.resource,
    capability: wire.capability,
    outcome: wire.outcome,
    statusCode: wire.status_code,
    errorCode: wire.error_code,
    durationUs: wire.duration_us,
    requestSha256: wire.request_sha256,
    requestSize: wire.request_size,
    resultSha256: wire.result_sha256,
    resultSize: wire.result_size,
    receipt: wire.receipt,
    prevHash: wire.prev_hash,
    hash: wire.hash,
  };
}
