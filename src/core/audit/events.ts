import { createHash } from 'node:crypto';
import { newEventId } from '../protocol/ids.js';
import { canonicalJson } from '../protocol/canonical-json.js';
import type { SqliteDatabase, StateStore } from '../state/database.js';
import { statement } from '../state/statements.js';
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

/** What is hashed: every field of the event but its position and its own hashes. */
export function canonicalEvent(event: AuditEventInput & { eventId: string }): string {
  return canonicalJson(snakeCaseFields(event));
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
  const insert = statement(
    db,
    `INSERT INTO audit_events (event_id, correlation_id, time, direction, source_node, target_node,
       principal, resource, capability, outcome, status_code, error_code, duration_us,
       request_sha256, request_size, result_sha256, result_size, receipt, prev_hash, hash)
     VALUES (@eventId, @correlationId, @time, @direction, @sourceNode, @targetNode, @principal,
       @resource, @capability, @outcome, @statusCode, @errorCode, @durationUs, @requestSha256,
       @requestSize, @resultSha256, @resultSize, @receipt, @prevHash, @hash)`,
  );
  const appended: AuditEvent[] = [];
  for (const given of events) {
    // Whole microseconds: what is stored is exactly what is hashed (canonical JSON takes integers).
    const input = { ...given, durationUs: Math.round(given.durationUs) };
    const eventId = newEventId();
    const hash = chainHash(prevHash, { ...input, eventId });
    const info = insert.run({
      ...input,
      eventId,
      receipt: input.receipt === null ? null : JSON.stringify(input.receipt),
      prevHash,
      hash,
    });
    appended.push({ ...input, seq: Number(info.lastInsertRowid), eventId, prevHash, hash });
    prevHash = hash;
  }
  return appended;
}

/** Where the daemon records inbound events: each promise settles once its row is committed. */
export interface AuditSink {
  append(event: AuditEventInput): Promise<unknown>;
  /** Commits whatever is queued and releases the sink. */
  close(): Promise<void>;
}

/**
 * Group commit for the daemon's hot path (DESIGN §7): events queue for a few milliseconds and
 * are committed together in one synchronous=FULL transaction; each caller's promise settles only
 * once its own row is committed, so a response is never sent for an event that could be lost.
 */
export class AuditWriter implements AuditSink {
  private queue: Array<{
    event: AuditEventInput;
    resolve: (event: AuditEvent) => void;
    reject: (error: unknown) => void;
  }> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: StateStore,
    private readonly delayMs = 2,
    private readonly maxBatch = 256,
  ) {}

  append(event: AuditEventInput): Promise<AuditEvent> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.delayMs);
    });
  }

  close(): Promise<void> {
    return this.flush();
  }

  /** Commits whatever is queued; resolves when it is on disk. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.flushing = this.flushing.then(() => this.commitQueued());
    await this.flushing;
  }

  private flushSoon(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private commitQueued(): void {
    const batch = this.queue.splice(0);
    if (batch.length === 0) return;
    try {
      const appended = this.store.write((db) =>
        appendEvents(
          db,
          batch.map((item) => item.event),
        ),
      );
      batch.forEach((item, index) => item.resolve(appended[index] as AuditEvent));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
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
