import { createHash } from 'node:crypto';
import { newEventId } from '../protocol/ids.js';
import { canonicalJson } from '../protocol/canonical-json.js';
import type { SqliteDatabase, StateStore } from '../state/database.js';
import { statement } from '../state/statements.js';
import type { Receipt } from './receipts.js';
import {
  eventFromRow,
  snakeCaseFields,
  type AuditEvent,
  type AuditEventInput,
  type AuditRow,
} from './rows.js';

// The shapes live in rows.ts (reading the trail needs no crypto); re-exported for the writers.
export { eventFromRow, snakeCaseFields };
export type { AuditEvent, AuditEventInput, AuditRow };

/** The hash the first event chains to. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * What is hashed: every field of the event but its position and its own hashes, as canonical
 * JSON: the text of canonicalJson(snakeCaseFields(event)).
 *
 * Written out field by field because the daemon hashes one event a call: with the keys listed in
 * code-unit order, JSON.stringify writes the canonical text itself, in about a third of the time
 * of the general canonicalJson walk (test/unit/audit/canonical-event.test.ts holds the two
 * equal). A receipt with any field but the known ones takes the general walk, so that whatever
 * it carries is hashed.
 */
export function canonicalEvent(event: AuditEventInput & { eventId: string }): string {
  const receipt = event.receipt;
  if (receipt !== null && !isPlainReceipt(receipt)) return canonicalJson(snakeCaseFields(event));
  return JSON.stringify({
    capability: event.capability,
    correlation_id: event.correlationId,
    direction: event.direction,
    duration_us: canonicalInteger(event.durationUs),
    error_code: event.errorCode,
    event_id: event.eventId,
    outcome: event.outcome,
    principal: event.principal,
    receipt: receipt === null ? null : sortedReceipt(receipt),
    request_sha256: event.requestSha256,
    request_size: canonicalInteger(event.requestSize),
    resource: event.resource,
    result_sha256: event.resultSha256,
    result_size: canonicalInteger(event.resultSize),
    source_node: event.sourceNode,
    status_code: canonicalInteger(event.statusCode),
    target_node: event.targetNode,
    time: event.time,
  });
}

const RECEIPT_FIELDS = [
  'capability',
  'correlation_id',
  'outcome',
  'principal',
  'request_sha256',
  'resource',
  'result_sha256',
  'signature',
  'source',
  'target',
  'timestamp',
] as const;

/** Exactly the receipt's own fields, each a string or null: nothing canonicalJson would write differently. */
function isPlainReceipt(receipt: Receipt): boolean {
  const record = receipt as unknown as Record<string, unknown>;
  if (Object.keys(record).length !== RECEIPT_FIELDS.length) return false;
  for (const field of RECEIPT_FIELDS) {
    const value = record[field];
    if (typeof value !== 'string' && value !== null) return false;
  }
  return true;
}

function sortedReceipt(receipt: Receipt): Receipt {
  return {
    capability: receipt.capability,
    correlation_id: receipt.correlation_id,
    outcome: receipt.outcome,
    principal: receipt.principal,
    request_sha256: receipt.request_sha256,
    resource: receipt.resource,
    result_sha256: receipt.result_sha256,
    signature: receipt.signature,
    source: receipt.source,
    target: receipt.target,
    timestamp: receipt.timestamp,
  };
}

/** canonicalJson's rule for numbers: safe integers only. */
function canonicalInteger<T extends number | null>(value: T): T {
  if (value !== null && !Number.isSafeInteger(value)) {
    throw new TypeError(`cannot canonicalise number ${value}`);
  }
  return value;
}

/** hash = sha256(prev_hash || canonical_event), hex (DESIGN §7). */
export function chainHash(prevHash: string, event: AuditEventInput & { eventId: string }): string {
  return createHash('sha256').update(prevHash).update(canonicalEvent(event)).digest('hex');
}

/**
 * Appends events in order, each chained to the last. Call inside StateStore.write (BEGIN
 * IMMEDIATE), so that two processes appending at once cannot fork the chain.
 */
export function appendEvents(db: SqliteDatabase, events: readonly AuditEventInput[]): AuditEvent[] {
  const last = statement(db, 'SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1')
    .pluck()
    .get() as string | undefined;
  let prevHash = last ?? GENESIS_HASH;
  // Positional parameters: binding twenty by name looks each one up on an object built for it.
  const insert = statement(
    db,
    `INSERT INTO audit_events (event_id, correlation_id, time, direction, source_node, target_node,
       principal, resource, capability, outcome, status_code, error_code, duration_us,
       request_sha256, request_size, result_sha256, result_size, receipt, prev_hash, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const appended: AuditEvent[] = [];
  for (const given of events) {
    // Whole microseconds: what is stored is exactly what is hashed (canonical JSON takes integers).
    const event: AuditEvent = {
      ...given,
      durationUs: Math.round(given.durationUs),
      seq: 0,
      eventId: newEventId(),
      prevHash,
      hash: '',
    };
    event.hash = chainHash(prevHash, event);
    const info = insert.run(
      event.eventId,
      event.correlationId,
      event.time,
      event.direction,
      event.sourceNode,
      event.targetNode,
      event.principal,
      event.resource,
      event.capability,
      event.outcome,
      event.statusCode,
      event.errorCode,
      event.durationUs,
      event.requestSha256,
      event.requestSize,
      event.resultSha256,
      event.resultSize,
      event.receipt === null ? null : JSON.stringify(event.receipt),
      event.prevHash,
      event.hash,
    );
    event.seq = Number(info.lastInsertRowid);
    appended.push(event);
    prevHash = event.hash;
  }
  return appended;
}

/** Where the daemon records inbound events: each promise settles once its row is committed. */
export interface AuditSink {
  append(event: AuditEventInput): Promise<unknown>;
  /** Commits whatever is queued and releases the sink. */
  close(): Promise<void>;
}

/** What makes committed rows durable: WalSync, for a connection opened with synchronous=NORMAL. */
export interface Durability {
  /** Resolves once everything committed before the call is on stable storage. */
  sync(): Promise<void>;
}

interface PendingAppend {
  event: AuditEventInput;
  appended?: AuditEvent;
  resolve: (event: AuditEvent) => void;
  reject: (error: Error) => void;
}

/**
 * Group commit for the daemon's hot path (DESIGN §7). The events appended in one turn of the
 * event loop are committed together at its end; the log is then synced once on libuv's thread
 * pool (Durability), and each append settles only once its own row is on stable storage, so a
 * response is never sent for an event that could be lost. Events appended while a sync is in
 * flight wait for it and are committed together after it, so the batches grow with the load.
 *
 * Why on the event loop and not on a worker thread, as it was before: on the 2-core machines
 * this is measured on, handing each batch to a second JavaScript thread cost more CPU time than
 * the inserts themselves (serialising, waking the thread, a third busy thread taking turns on two
 * cores; docs/benchmarks.md, invoke). The one wait worth keeping off the loop is the disk's, and
 * the thread pool takes that.
 */
export class AuditWriter implements AuditSink {
  private queued: PendingAppend[] = [];
  private committed: PendingAppend[] = [];
  private commitScheduled = false;
  private syncing: Promise<void> | undefined;
  private failure: Error | undefined;
  private closing = false;

  constructor(
    private readonly store: StateStore,
    private readonly durability: Durability,
  ) {}

  append(event: AuditEventInput): Promise<AuditEvent> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('the audit writer is closing'));
    return new Promise((resolve, reject) => {
      this.queued.push({ event, resolve, reject });
      if (!this.commitScheduled && !this.syncing) {
        this.commitScheduled = true;
        setImmediate(() => this.commitQueued());
      }
    });
  }

  /** Commits and syncs whatever was appended; appends after this are refused. */
  async close(): Promise<void> {
    this.closing = true;
    this.commitQueued();
    while (this.syncing) await this.syncing;
  }

  private commitQueued(): void {
    this.commitScheduled = false;
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0) return;
    if (this.failure) {
      for (const item of batch) item.reject(this.failure);
      return;
    }
    try {
      const appended = this.store.write((db) =>
        appendEvents(
          db,
          batch.map((item) => item.event),
        ),
      );
      batch.forEach((item, index) => (item.appended = appended[index]));
    } catch (error) {
      const reason = error instanceof Error ? error : new Error(String(error));
      for (const item of batch) item.reject(reason);
      return;
    }
    this.committed.push(...batch);
    this.syncCommitted();
  }

  private syncCommitted(): void {
    if (this.syncing || this.committed.length === 0) return;
    const batch = this.committed;
    this.committed = [];
    this.syncing = this.durability
      .sync()
      .then(
        () => {
          for (const item of batch) item.resolve(item.appended as AuditEvent);
        },
        (error: unknown) => {
          // After a failed sync the kernel may have dropped the pages it could not write, and a
          // later sync that succeeds says nothing of them: refuse everything from now on.
          this.failure ??= new Error(
            `the audit trail could not be synced to disk (${error instanceof Error ? error.message : String(error)})`,
          );
          for (const item of [...batch, ...this.committed.splice(0)]) item.reject(this.failure);
        },
      )
      .finally(() => {
        this.syncing = undefined;
        // What queued up during the sync is committed now, and synced by the next one.
        this.commitQueued();
        this.syncCommitted();
      });
  }
}

/** Events of one correlation ID, in chain order (for tests, `audit trace` builds on it). */
export function eventsByCorrelation(db: SqliteDatabase, correlationId: string): AuditEvent[] {
  return (
    db
      .prepare('SELECT * FROM audit_events WHERE correlation_id = ? ORDER BY seq')
      .all(correlationId) as AuditRow[]
  ).map(eventFromRow);
}
