import { existsSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AuditWriter,
  GENESIS_HASH,
  chainHash,
  eventFromRow,
  type AuditEventInput,
  type AuditRow,
  type Durability,
} from '../../src/core/audit/events.js';
import { openState, type StateStore } from '../../src/core/state/database.js';
import { WalSync } from '../../src/core/state/wal-sync.js';
import { inboundEvent } from '../helpers/audit-events.js';
import { tempDir } from '../helpers/cli.js';

/**
 * The daemon's audit writer on real state files: group commit on the event loop, on a
 * synchronous=NORMAL connection, each append settling only once the log is synced (WalSync).
 */

function event(index: number): AuditEventInput {
  return inboundEvent({
    correlationId: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
    time: new Date(Date.UTC(2026, 10, 26, 3, 0, 0, index)).toISOString(),
    durationUs: 120 + index,
  });
}

const opened: Array<{ close(): void }> = [];
afterEach(() => {
  for (const handle of opened.splice(0)) handle.close();
});

function newStateFile(): string {
  const path = join(tempDir(), 'state.db');
  openState(path, { create: true }).close();
  return path;
}

function auditStore(path: string, busyTimeoutMs?: number): StateStore {
  const store = openState(path, {
    create: false,
    synchronous: 'NORMAL',
    ...(busyTimeoutMs === undefined ? {} : { busyTimeoutMs }),
  });
  opened.push(store);
  return store;
}

function rowsOf(path: string): AuditRow[] {
  const store = openState(path, { create: false });
  try {
    return store.read(
      (db) => db.prepare('SELECT * FROM audit_events ORDER BY seq').all() as AuditRow[],
    );
  } finally {
    store.close();
  }
}

/** A Durability whose syncs the test settles by hand, counting them. */
function heldDurability() {
  const pending: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  const durability: Durability & { calls: number } = {
    calls: 0,
    sync() {
      durability.calls++;
      return new Promise((resolve, reject) => pending.push({ resolve, reject }));
    },
  };
  return { durability, pending };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function settledState(promise: Promise<unknown>): { settled: boolean } {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

describe('AuditWriter', () => {
  it('commits every event of many concurrent appends in one chain, in order, each settling once synced', async () => {
    const path = newStateFile();
    const wal = new WalSync(path);
    opened.push(wal);
    const writer = new AuditWriter(auditStore(path), wal);
    const appends: Array<Promise<unknown>> = [];
    // Appends spread over several turns of the event loop, as requests complete in a daemon.
    for (let round = 0; round < 20; round++) {
      for (let index = 0; index < 25; index++)
        appends.push(writer.append(event(round * 25 + index)));
      await turn();
    }
    expect(await Promise.all(appends)).toHaveLength(500);
    await writer.close();

    const rows = rowsOf(path);
    expect(rows).toHaveLength(500);
    let previous = GENESIS_HASH;
    for (const row of rows.map(eventFromRow)) {
      expect(row.prevHash).toBe(previous);
      expect(row.hash).toBe(chainHash(row.prevHash, row));
      previous = row.hash;
    }
    expect(rows.map((row) => row.duration_us)).toEqual(
      Array.from({ length: 500 }, (_, index) => 120 + index),
    );
  });

  it('settles an append only after the sync that follows its commit', async () => {
    const path = newStateFile();
    const { durability, pending } = heldDurability();
    const writer = new AuditWriter(auditStore(path), durability);
    const append = writer.append(event(1));
    const state = settledState(append);
    await turn();
    // Committed (another connection sees the row) but not yet durable: not settled.
    expect(rowsOf(path)).toHaveLength(1);
    expect(durability.calls).toBe(1);
    await turn();
    expect(state.settled).toBe(false);
    pending.shift()?.resolve();
    await expect(append).resolves.toMatchObject({ seq: 1, durationUs: 121 });
  });

  it('commits what was appended during a sync together after it, under one more sync', async () => {
    const path = newStateFile();
    const { durability, pending } = heldDurability();
    const writer = new AuditWriter(auditStore(path), durability);
    const first = writer.append(event(1));
    await turn();
    expect(durability.calls).toBe(1);
    // Three turns of appends while the first sync is in flight: nothing is committed yet.
    const later: Array<Promise<unknown>> = [];
    for (let round = 0; round < 3; round++) {
      later.push(writer.append(event(10 + round)), writer.append(event(20 + round)));
      await turn();
    }
    expect(rowsOf(path)).toHaveLength(1);
    pending.shift()?.resolve();
    await first;
    await turn();
    expect(rowsOf(path)).toHaveLength(7);
    expect(durability.calls).toBe(2);
    pending.shift()?.resolve();
    await expect(Promise.all(later)).resolves.toHaveLength(6);
  });

  it('after a failed sync, refuses the rows it waited for and every later append', async () => {
    const path = newStateFile();
    const { durability, pending } = heldDurability();
    const writer = new AuditWriter(auditStore(path), durability);
    const first = writer.append(event(1));
    await turn();
    const during = writer.append(event(2));
    pending.shift()?.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(first).rejects.toThrow(
      'the audit trail could not be synced to disk (EIO: i/o error, fdatasync)',
    );
    await expect(during).rejects.toThrow(/could not be synced/);
    await expect(writer.append(event(3))).rejects.toThrow(/could not be synced/);
    await writer.close();
    expect(durability.calls).toBe(1);
  });

  it('refuses the batch a commit could not be made for, and goes on with the next', async () => {
    const path = newStateFile();
    const wal = new WalSync(path);
    opened.push(wal);
    const writer = new AuditWriter(auditStore(path, 50), wal);
    // Another process holds the write lock past the writer's busy timeout.
    const other = new Database(path);
    opened.push(other);
    other.exec('BEGIN IMMEDIATE');
    await expect(writer.append(event(1))).rejects.toThrow(/locked by another process/);
    other.exec('ROLLBACK');
    await expect(writer.append(event(2))).resolves.toMatchObject({ durationUs: 122 });
    expect(rowsOf(path).map((row) => row.duration_us)).toEqual([122]);
  });

  it('on close, commits and syncs what was queued, refuses later appends, and closes twice', async () => {
    const path = newStateFile();
    const wal = new WalSync(path);
    opened.push(wal);
    const writer = new AuditWriter(auditStore(path), wal);
    const queued = Array.from({ length: 10 }, (_, index) => writer.append(event(index)));
    await writer.close();
    await expect(Promise.all(queued)).resolves.toHaveLength(10);
    await writer.close();
    await expect(writer.append(event(11))).rejects.toThrow(/closing/);
    expect(rowsOf(path)).toHaveLength(10);
  });
});

describe('WalSync', () => {
  const deletedLogDescriptors = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).endsWith('state.db-wal (deleted)');
      } catch {
        return false;
      }
    });

  it('finds the log beside the real file when the state path is a symlink, as SQLite does', async () => {
    const real = newStateFile();
    const link = join(tempDir(), 'linked.db');
    symlinkSync(real, link);
    const wal = new WalSync(link);
    opened.push(wal);
    const writer = new AuditWriter(auditStore(link), wal);
    await expect(writer.append(event(1))).resolves.toMatchObject({ seq: 1 });
    await writer.close();
    expect(existsSync(`${real}-wal`)).toBe(true);
    expect(existsSync(`${link}-wal`)).toBe(false);
  });

  it('syncs the log, refuses when there is none, and follows a log SQLite made anew', async () => {
    const path = newStateFile();
    const wal = new WalSync(path);
    opened.push(wal);
    let store = openState(path, { create: false, synchronous: 'NORMAL' });
    store.write((db) => db.prepare("INSERT INTO settings (key, value) VALUES ('a', '1')").run());
    await expect(wal.sync()).resolves.toBeUndefined();
    // The last connection's close checkpoints and deletes the log.
    store.close();
    await expect(wal.sync()).rejects.toMatchObject({ code: 'ENOENT' });
    store = openState(path, { create: false, synchronous: 'NORMAL' });
    opened.push(store);
    store.write((db) => db.prepare("INSERT INTO settings (key, value) VALUES ('b', '2')").run());
    await expect(wal.sync()).resolves.toBeUndefined();
    // It syncs the new log, not the deleted one it had open.
    expect(deletedLogDescriptors()).toEqual([]);
  });
});
