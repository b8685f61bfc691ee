import { readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { OperationError } from '../errors.js';
import type { SqliteDatabase, StateStore } from './database.js';
import { getSetting, setSetting } from './trust-repository.js';

/**
 * One daemon per state file. A second `serve` on the same file would replace the first one's
 * local catalog (what `route` offers of this node) with its own, clear it when it stops, and
 * run its own audit writer beside the first: it is refused while the first one runs.
 *
 * Why a row in the state file rather than a lock file: Node has no advisory file lock (flock)
 * without a native addon, and the state file is the one thing both daemons share. The claim is
 * made in one BEGIN IMMEDIATE transaction, so two daemons starting together cannot both win.
 * A daemon that crashed leaves its row behind; it is stale once its process is gone. Whether it
 * is gone is only decided where it can be: on the same boot of the same machine (the kernel's
 * boot ID) and in the same PID namespace (a container sees other PIDs), by the PID and the
 * process's start time (a PID reused, e.g. PID 1 of a restarted container, is not the old
 * daemon). Where it cannot be told, the claim is "unknown": `serve` takes the file over with a
 * warning rather than refuse to start for ever, and `route` keeps offering the node. The file is
 * told by device and inode (the same file through a bind mount or a hard link is the same; a
 * copy, a backup say, is another file whose claim is not its own).
 */

const SETTING = 'daemon';

export interface DaemonClaim {
  pid: number;
  host: string;
  /** The state file's real path, for messages (the file is told by device and inode). */
  path: string | null;
  device: number | null;
  inode: number | null;
  /** Clock ticks since boot at which the process started (/proc/<pid>/stat field 22), or null. */
  processStart: string | null;
  /** /proc/sys/kernel/random/boot_id: the same machine, booted once. */
  bootId: string | null;
  /** /proc/self/ns/pid: PIDs mean the same process only within one PID namespace. */
  pidNamespace: string | null;
  since: string;
  /**
   * Where the daemon answers on this machine (https://127.0.0.1:38313), once bound: what this
   * node's own commands call when `init` recorded no endpoint (`serve --listen 127.0.0.1:0`).
   */
  listening?: string | null;
}

/** What can be told of the daemon a claim names, from here. */
export type Liveness = 'running' | 'gone' | 'unknown';

/** Claims this process made and has not given up: the same PID in a claim may be another's. */
const heldHere = new Set<string>();
const keyOf = (claim: DaemonClaim) => `${claim.pid}/${claim.since}`;

export interface ClaimResult {
  claim: DaemonClaim;
  /** A claim whose daemon could not be told running or gone, taken over (to be logged). */
  tookOver: DaemonClaim | null;
}

export function claimDaemon(store: StateStore, now: Date): ClaimResult {
  const claim: DaemonClaim = {
    pid: process.pid,
    host: hostname(),
    ...fileIdentity(store.path),
    processStart: processStartOf(process.pid),
    bootId: readText('/proc/sys/kernel/random/boot_id'),
    pidNamespace: pidNamespaceOf('self'),
    since: now.toISOString(),
  };
  const tookOver = store.write((db) => {
    const holder = parseClaim(getSetting(db, SETTING));
    const liveness = holder && sameFile(holder, claim) ? livenessOf(holder) : 'gone';
    if (holder && liveness === 'running') {
      throw new OperationError(
        'STATE_IN_USE',
        `another sark-fed serve (pid ${holder.pid}, since ${holder.since}) serves ${store.path}`,
        {
          hint: `stop it first (kill -TERM ${holder.pid}), or give this daemon its own --state`,
        },
      );
    }
    setSetting(db, SETTING, JSON.stringify(claim));
    return liveness === 'unknown' ? (holder as DaemonClaim) : null;
  });
  heldHere.add(keyOf(claim));
  return { claim, tookOver };
}

/**
 * Whether the daemon that last claimed this state file is known to be gone without giving it up
 * (killed, crashed): its claim is still there, and its process is not. Its catalog of what this
 * node serves is then still in the file, and `route` must not offer this node for it. No claim
 * (no daemon since, or one of a build that made none), the claim of a copied file, or one that
 * cannot be checked from here: not known gone.
 */
export function daemonGone(db: SqliteDatabase, statePath: string): boolean {
  const holder = parseClaim(getSetting(db, SETTING));
  return (
    holder !== undefined &&
    sameFile(holder, fileIdentity(statePath)) &&
    livenessOf(holder) === 'gone'
  );
}

/** What `status` tells of this state file's daemon (docs/json-output.md#status). */
export interface DaemonStatus {
  /**
   * `running`; `stopped` (none claims the file, or the one that did was killed or crashed, or
   * the claim is a copied file's); `unknown` (claimed from another machine or PID namespace).
   */
  state: 'running' | 'stopped' | 'unknown';
  /** The daemon's process and since when it serves, or its last one's when it was killed. */
  pid: number | null;
  host: string | null;
  since: string | null;
  /** A daemon that stopped without giving the file up (killed, crashed). */
  unclean: boolean;
  /** Where a running daemon answers on this machine, once bound; null otherwise. */
  listening: string | null;
}

export function daemonStatus(db: SqliteDatabase, statePath: string): DaemonStatus {
  const holder = parseClaim(getSetting(db, SETTING));
  if (holder === undefined || !sameFile(holder, fileIdentity(statePath))) {
    return {
      state: 'stopped',
      pid: null,
      host: null,
      since: null,
      unclean: false,
      listening: null,
    };
  }
  const liveness = livenessOf(holder);
  return {
    state: liveness === 'gone' ? 'stopped' : liveness,
    pid: holder.pid,
    host: holder.host,
    since: holder.since,
    unclean: liveness === 'gone',
    listening: liveness === 'running' ? (holder.listening ?? null) : null,
  };
}

/** Records where the daemon answers, once bound, in its claim if it still holds it. */
export function recordListening(store: StateStore, claim: DaemonClaim, endpoint: string): void {
  whileClaimed(store, claim, (db, holder) => {
    setSetting(db, SETTING, JSON.stringify({ ...holder, listening: endpoint }));
  });
}

/**
 * Runs `write` in one transaction if this daemon still holds the state file: a daemon whose
 * claim another took over must not overwrite what that one publishes (its local catalog).
 */
export function whileClaimed(
  store: StateStore,
  claim: DaemonClaim,
  write: (db: SqliteDatabase, holder: DaemonClaim) => void,
): void {
  store.write((db) => {
    const holder = parseClaim(getSetting(db, SETTING));
    if (holder && holder.pid === claim.pid && holder.since === claim.since) write(db, holder);
  });
}

/**
 * Where this state file's daemon answers, if one runs here and has said: what this node's own
 * commands call when `init` recorded no endpoint. Null otherwise (none, gone, or another
 * machine's, whose loopback address is not this one's).
 */
export function runningDaemonEndpoint(db: SqliteDatabase, statePath: string): string | null {
  const holder = parseClaim(getSetting(db, SETTING));
  if (!holder?.listening || !sameFile(holder, fileIdentity(statePath))) return null;
  return livenessOf(holder) === 'running' ? holder.listening : null;
}

/**
 * Gives the state file up, if this daemon still holds it, and runs `alsoIfHeld` in the same
 * transaction (clearing what it serves): a daemon whose claim another took over leaves that
 * one's catalog alone.
 */
export function releaseDaemon(
  store: StateStore,
  claim: DaemonClaim,
  alsoIfHeld: (db: SqliteDatabase) => void = () => {},
): void {
  heldHere.delete(keyOf(claim));
  store.write((db) => {
    const holder = parseClaim(getSetting(db, SETTING));
    if (holder && holder.pid === claim.pid && holder.since === claim.since) {
      db.prepare('DELETE FROM settings WHERE key = ?').run(SETTING);
      alsoIfHeld(db);
    }
  });
}

function parseClaim(text: string | undefined): DaemonClaim | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<DaemonClaim>;
    // PID 0 and negative PIDs name process groups for kill(2): never a daemon's own.
    if (!Number.isInteger(value.pid) || (value.pid as number) < 1) return undefined;
    if (typeof value.host !== 'string') return undefined;
    const text_ = (field: unknown) => (typeof field === 'string' ? field : null);
    const number_ = (field: unknown) => (typeof field === 'number' ? field : null);
    return {
      pid: value.pid as number,
      host: value.host,
      path: text_(value.path),
      device: number_(value.device),
      inode: number_(value.inode),
      processStart: text_(value.processStart),
      bootId: text_(value.bootId),
      pidNamespace: text_(value.pidNamespace),
      since: text_(value.since) ?? '?',
      listening: text_(value.listening),
    };
  } catch {
    // Not ours to interpret: a row nobody can read claims nothing.
    return undefined;
  }
}

/** Exported for its tests: what can be told of the daemon a claim names. */
export function livenessOf(holder: DaemonClaim): Liveness {
  const bootId = readText('/proc/sys/kernel/random/boot_id');
  if (holder.bootId !== null && bootId !== null) {
    if (holder.bootId !== bootId) {
      // Another boot of this machine: whatever ran then is gone. Another machine (the file was
      // copied, or is shared): nothing can be told from here.
      return holder.host === hostname() ? 'gone' : 'unknown';
    }
  } else if (holder.host !== hostname()) {
    return 'unknown';
  }
  const namespace = pidNamespaceOf('self');
  if (holder.pidNamespace !== null && namespace !== null && holder.pidNamespace !== namespace) {
    return 'unknown';
  }
  // This PID is this process: the claim is live only if this very process made it (a restarted
  // container's daemon has the PID of the one before it).
  if (holder.pid === process.pid) return heldHere.has(keyOf(holder)) ? 'running' : 'gone';
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return 'gone';
  }
  const fields = procStatFields(holder.pid);
  // A killed daemon its parent has not reaped yet is a zombie: kill(pid, 0) still finds it.
  if (fields?.[0] === 'Z' || fields?.[0] === 'X') return 'gone';
  const start = fields?.[19] ?? null;
  if (holder.processStart !== null && start !== null && start !== holder.processStart)
    return 'gone';
  return 'running';
}

function sameFile(
  a: Pick<DaemonClaim, 'device' | 'inode' | 'path'>,
  b: Pick<DaemonClaim, 'device' | 'inode' | 'path'>,
): boolean {
  if (a.device !== null && a.inode !== null && b.device !== null && b.inode !== null) {
    return a.device === b.device && a.inode === b.inode;
  }
  return a.path !== null && a.path === b.path;
}

function fileIdentity(path: string): Pick<DaemonClaim, 'device' | 'inode' | 'path'> {
  try {
    const stats = statSync(path);
    return { path: realpathSync(path), device: stats.dev, inode: stats.ino };
  } catch {
    return { path: null, device: null, inode: null };
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function pidNamespaceOf(pid: 'self' | number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

function processStartOf(pid: number): string | null {
  return procStatFields(pid)?.[19] ?? null;
}

/** Fields 3 on of /proc/<pid>/stat (state first), or null where there is no /proc. */
function procStatFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}
