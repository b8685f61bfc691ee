import type { SqliteDatabase, StateStore } from '../state/database.js';

/**
 * A circuit breaker per peer, kept in the state file so that every CLI process and the daemon
 * share it (DESIGN §6): closed → open after `failureThreshold` consecutive failures; open for
 * `openMs`; then half-open, where exactly one trial call is let through across all processes;
 * the trial's success closes the circuit, its failure opens it again.
 *
 * Why not cockatiel: its CircuitBreakerPolicy keeps its state in process memory and decides
 * half-open admission there. Its state can be exported and seeded, but not claimed atomically
 * against other processes, which is the whole point here: the half-open trial is claimed inside
 * one BEGIN IMMEDIATE transaction, so two processes can never both flip open → half_open.
 */
export type CircuitState = 'closed' | 'open' | 'half_open';

export interface BreakerConfig {
  /** Consecutive failures that open a closed circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses calls before one trial is let through. */
  openMs: number;
  /**
   * How long a claimed trial holds the half-open circuit. A trial call is bounded by this (see
   * trialDeadline), so a second trial can only be claimed after the first one has ended, or after
   * its process died without recording an outcome.
   */
  trialLeaseMs: number;
}

export const DEFAULT_BREAKER: BreakerConfig = {
  failureThreshold: 5,
  openMs: 30_000,
  trialLeaseMs: 60_000,
};

export interface CircuitRecord {
  nodeId: string;
  state: CircuitState;
  consecutiveFailures: number;
  openedAt: string | null;
  trialStartedAt: string | null;
  lastFailure: string | null;
  updatedAt: string;
}

/** What a caller may do now. A trial token must be passed back with the trial's outcome. */
export type Admission =
  | { admitted: true; trial: string | null }
  | { admitted: false; state: 'open' | 'half_open'; retryAt: string };

export class CircuitBreakers {
  constructor(
    private readonly store: StateStore,
    private readonly config: BreakerConfig = DEFAULT_BREAKER,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Whether a call to nodeId may go ahead. A closed circuit costs one indexed read; only an
   * open or half-open one takes the write lock, so that the read and the claim are one step.
   */
  admit(nodeId: string): Admission {
    const seen = this.store.read((db) => findCircuit(db, nodeId));
    if (!seen || seen.state === 'closed') return { admitted: true, trial: null };
    return this.store.write((db) => {
      const row = findCircuit(db, nodeId);
      if (!row || row.state === 'closed') return { admitted: true, trial: null };
      const now = this.now();
      if (row.state === 'open') {
        const due = Date.parse(row.openedAt ?? row.updatedAt) + this.config.openMs;
        if (now.getTime() < due) {
          return { admitted: false, state: 'open', retryAt: new Date(due).toISOString() };
        }
        return { admitted: true, trial: claimTrial(db, nodeId, now) };
      }
      const leaseEnd =
        row.trialStartedAt === null ? 0 : Date.parse(row.trialStartedAt) + this.config.trialLeaseMs;
      if (now.getTime() >= leaseEnd) {
        // The trial's process ended without reporting an outcome (it was killed).
        return { admitted: true, trial: claimTrial(db, nodeId, now) };
      }
      return { admitted: false, state: 'half_open', retryAt: new Date(leaseEnd).toISOString() };
    });
  }

  /** The longest a trial call may take: its claim must not lapse while it is in flight. */
  trialDeadline(): number {
    return this.config.trialLeaseMs;
  }

  /** The peer answered (any HTTP answer below 500). */
  recordSuccess(nodeId: string, trial: string | null): void {
    const seen = this.store.read((db) => findCircuit(db, nodeId));
    if (!seen) return;
    if (trial === null && (seen.state !== 'closed' || seen.consecutiveFailures === 0)) return;
    this.store.write((db) => {
      const row = findCircuit(db, nodeId);
      if (!row) return;
      const stamp = this.now().toISOString();
      if (trial !== null) {
        // Only the trial that holds the claim decides; a stale one (its lease taken over) does not.
        if (row.state === 'half_open' && row.trialStartedAt === trial) close(db, nodeId, stamp);
        return;
      }
      if (row.state === 'closed' && row.consecutiveFailures > 0) close(db, nodeId, stamp);
    });
  }

  /** A connect error, TLS failure, timeout or 5xx answer. Returns the state it left behind. */
  recordFailure(nodeId: string, reason: string, trial: string | null): CircuitState {
    return this.store.write((db) => {
      const row = findCircuit(db, nodeId);
      const stamp = this.now().toISOString();
      const failures = (row?.consecutiveFailures ?? 0) + 1;
      if (trial !== null) {
        if (row?.state !== 'half_open' || row.trialStartedAt !== trial)
          return row?.state ?? 'closed';
        saveCircuit(db, {
          nodeId,
          state: 'open',
          consecutiveFailures: failures,
          openedAt: stamp,
          trialStartedAt: null,
          lastFailure: reason,
          updatedAt: stamp,
        });
        return 'open';
      }
      // A call admitted while closed that fails after the circuit opened changes nothing more.
      if (row && row.state !== 'closed') return row.state;
      const opens = failures >= this.config.failureThreshold;
      saveCircuit(db, {
        nodeId,
        state: opens ? 'open' : 'closed',
        consecutiveFailures: failures,
        openedAt: opens ? stamp : null,
        trialStartedAt: null,
        lastFailure: reason,
        updatedAt: stamp,
      });
      return opens ? 'open' : 'closed';
    });
  }

  /** When an open circuit lets its trial through; null when it is not open. */
  retryAt(record: CircuitRecord): string | null {
    if (record.state === 'open') {
      return new Date(
        Date.parse(record.openedAt ?? record.updatedAt) + this.config.openMs,
      ).toISOString();
    }
    if (record.state === 'half_open' && record.trialStartedAt !== null) {
      return new Date(Date.parse(record.trialStartedAt) + this.config.trialLeaseMs).toISOString();
    }
    return null;
  }

  /**
   * Whether a call would be refused right now, without claiming anything: open and not yet due,
   * or half-open with a live trial. Route listing uses this.
   */
  refuses(record: CircuitRecord | undefined): boolean {
    if (!record || record.state === 'closed') return false;
    const retryAt = this.retryAt(record);
    return retryAt !== null && this.now().getTime() < Date.parse(retryAt);
  }
}

/**
 * Why a circuit refuses calls, for people. An open one waits until its retry time; a half-open
 * one has a trial call in flight, whose outcome decides: its retry time is only when the claim
 * of a trial whose process died lapses (a minute away), not when calls go through again.
 */
export function circuitRefusal(state: 'open' | 'half_open', retryAt: string | null): string {
  if (state === 'open') return `open until ${retryAt ?? '-'}`;
  return 'half-open: a trial call is in flight, and its outcome closes or re-opens it';
}

function claimTrial(db: SqliteDatabase, nodeId: string, now: Date): string {
  const stamp = now.toISOString();
  db.prepare(
    `UPDATE circuit_breakers SET state = 'half_open', trial_started_at = ?, updated_at = ?
     WHERE node_id = ?`,
  ).run(stamp, stamp, nodeId);
  return stamp;
}

function close(db: SqliteDatabase, nodeId: string, stamp: string): void {
  db.prepare(
    `UPDATE circuit_breakers SET state = 'closed', consecutive_failures = 0, opened_at = NULL,
       trial_started_at = NULL, updated_at = ? WHERE node_id = ?`,
  ).run(stamp, nodeId);
}

// ---- repository --------------------------------------------------------------------------------

interface CircuitRow {
  node_id: string;
  state: CircuitState;
  consecutive_failures: number;
  opened_at: string | null;
  trial_started_at: string | null;
  last_failure: string | null;
  updated_at: string;
}

function fromRow(row: CircuitRow): CircuitRecord {
  return {
    nodeId: row.node_id,
    state: row.state,
    consecutiveFailures: row.consecutive_failures,
    openedAt: row.opened_at,
    trialStartedAt: row.trial_started_at,
    lastFailure: row.last_failure,
    updatedAt: row.updated_at,
  };
}

export function findCircuit(db: SqliteDatabase, nodeId: string): CircuitRecord | undefined {
  const row = db.prepare('SELECT * FROM circuit_breakers WHERE node_id = ?').get(nodeId) as
    CircuitRow | undefined;
  return row ? fromRow(row) : undefined;
}

export function listCircuits(db: SqliteDatabase): CircuitRecord[] {
  return (db.prepare('SELECT * FROM circuit_breakers ORDER BY node_id').all() as CircuitRow[]).map(
    fromRow,
  );
}

export function saveCircuit(db: SqliteDatabase, record: CircuitRecord): void {
  db.prepare(
    `INSERT INTO circuit_breakers (node_id, state, consecutive_failures, opened_at,
       trial_started_at, last_failure, updated_at)
     VALUES (@nodeId, @state, @consecutiveFailures, @openedAt, @trialStartedAt, @lastFailure,
       @updatedAt)
     ON CONFLICT (node_id) DO UPDATE SET state = excluded.state,
       consecutive_failures = excluded.consecutive_failures, opened_at = excluded.opened_at,
       trial_started_at = excluded.trial_started_at, last_failure = excluded.last_failure,
       updated_at = excluded.updated_at`,
  ).run(record);
}

/** Forgets a circuit (it reads as closed again). False when there was none. */
export function deleteCircuit(db: SqliteDatabase, nodeId: string): boolean {
  return db.prepare('DELETE FROM circuit_breakers WHERE node_id = ?').run(nodeId).changes > 0;
}
