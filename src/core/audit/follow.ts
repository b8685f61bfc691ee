import { setTimeout as sleep } from 'node:timers/promises';
import type { SqliteDatabase, StateStore } from '../state/database.js';
import { buildWhere, queryEvents, type AuditFilter } from './query.js';
import { eventFromRow, type AuditEvent, type AuditRow } from './rows.js';

/**
 * Following the trail (`audit query --follow`): the newest matching events, then each one
 * appended after them, as `tail -f` follows a log. New events are found by their chain position
 * (seq, the primary key), so each comes once, in the order the trail holds them, whatever its
 * time says.
 */

/** How often the state file is looked at for commits of other processes (the daemon's). */
export const FOLLOW_POLL_MS = 250;

/** Events read in one go when many were appended at once. */
const BATCH = 500;

export interface FollowStart {
  /** The newest `limit` events matching, oldest first. */
  events: AuditEvent[];
  /** The chain position after which new events are looked for. */
  lastSeq: number;
}

/** What is shown first, read in one snapshot with the position to follow from. */
export function followStart(store: StateStore, filter: AuditFilter, limit: number): FollowStart {
  return store.read((db) =>
    db.transaction(() => ({
      events: queryEvents(db, { ...filter, limit }).reverse(),
      lastSeq: lastSeq(db),
    }))(),
  );
}

export interface FollowOptions {
  store: StateStore;
  filter: AuditFilter;
  /** From followStart. */
  afterSeq: number;
  /** Following ends when it aborts. */
  signal: AbortSignal;
  /** Events appended since the last call, in chain order; called only with some. */
  onEvents(events: AuditEvent[]): void;
  pollMs?: number;
}

/**
 * Hands over every matching event appended after `afterSeq` until the signal aborts. Between
 * looks it asks SQLite whether another connection committed (PRAGMA data_version, no read of the
 * trail), so an idle trail costs next to nothing.
 */
export async function followTrail(options: FollowOptions): Promise<void> {
  const { store, filter, signal } = options;
  const dataVersion = store.db.prepare('PRAGMA data_version').pluck();
  const { where, params } = buildWhere({ ...filter, limit: undefined });
  const newer = store.db.prepare(
    `SELECT * FROM audit_events${where === '' ? ' WHERE' : `${where} AND`} seq > ? AND seq <= ? ORDER BY seq LIMIT ${BATCH}`,
  );
  const newest = store.db.prepare('SELECT coalesce(max(seq), 0) FROM audit_events').pluck();
  // The end of the chain and the rows up to it, in one snapshot: an event appended between the
  // two reads would otherwise be stepped over.
  const readUpTo = store.db.transaction((from: number) => {
    const ceiling = newest.get() as number;
    return { ceiling, rows: newer.all(...params, from, ceiling) as AuditRow[] };
  });
  let after = options.afterSeq;
  let seen: unknown;
  while (!signal.aborted) {
    const version = store.read(() => dataVersion.get());
    if (version !== seen) {
      seen = version;
      for (;;) {
        const { ceiling, rows } = store.read(() => readUpTo(after));
        if (rows.length > 0) options.onEvents(rows.map(eventFromRow));
        if (rows.length < BATCH) {
          // Events that did not match move the position on too: they are not read again.
          after = ceiling;
          break;
        }
        after = (rows.at(-1) as AuditRow).seq;
      }
    }
    try {
      await sleep(options.pollMs ?? FOLLOW_POLL_MS, undefined, { signal });
    } catch {
      return; // aborted
    }
  }
}

function lastSeq(db: SqliteDatabase): number {
  return db.prepare('SELECT coalesce(max(seq), 0) FROM audit_events').pluck().get() as number;
}
