import { readFileSync, realpathSync } from 'node:fs';
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
 * A daemon that crashed leaves its row behind; it is stale once its process is gone, which is
 * checked by PID and, on Linux, by the process's start time too, so that a recycled PID is not
 * taken for the old daemon. A copy of the file (a backup, a test fixture) carries the row of the
 * daemon serving the original: the row names the file's real path, and is not a claim on a
 * file of another path.
 */

const SETTING = 'daemon';

export interface DaemonClaim {
  pid: number;
  host: string;
  /** The state file's real path: a claim found in a copy of the file is not for the copy. */
  path: string | null;
  /** Clock ticks since boot at which the process started (/proc/<pid>/stat field 22), or null. */
  processStart: string | null;
  since: string;
}

export function claimDaemon(store: StateStore, now: Date): DaemonClaim {
  const path = realPath(store.path);
  const claim: DaemonClaim = {
    pid: process.pid,
    host: hostname(),
    path,
    processStart: processStartOf(process.pid),
    since: now.toISOString(),
  };
  store.write((db) => {
    const holder = parseClaim(getSetting(db, SETTING));
    if (holder && holder.path === path && isRunning(holder)) {
      throw new OperationError(
        'STATE_IN_USE',
        `another sark-fed serve (pid ${holder.pid}, since ${holder.since}) serves ${store.path}`,
        {
          hint: `stop it first (kill -TERM ${holder.pid}), or give this daemon its own --state`,
        },
      );
    }
    setSetting(db, SETTING, JSON.stringify(claim));
  });
  return claim;
}

/**
 * Whether the daemon that last claimed this state file is gone without giving it up (killed,
 * crashed): its claim is still there, and its process is not. Its catalog of what this node
 * serves is then still in the file, and `route` must not offer this node for it. No claim (no
 * daemon since, or one of a build that made none) or the claim of a copied file: not known gone.
 */
export function daemonGone(db: SqliteDatabase, statePath: string): boolean {
  const holder = parseClaim(getSetting(db, SETTING));
  return holder !== undefined && holder.path === realPath(statePath) && !isRunning(holder);
}

/** Gives the state file up, if this daemon still holds it. */
export function releaseDaemon(store: StateStore, claim: DaemonClaim): void {
  store.write((db) => {
    const holder = parseClaim(getSetting(db, SETTING));
    if (holder && holder.pid === claim.pid && holder.since === claim.since) {
      db.prepare('DELETE FROM settings WHERE key = ?').run(SETTING);
    }
  });
}

function parseClaim(text: string | undefined): DaemonClaim | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<DaemonClaim>;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string') return undefined;
    return {
      pid: value.pid,
      host: value.host,
      path: typeof value.path === 'string' ? value.path : null,
      processStart: typeof value.processStart === 'string' ? value.processStart : null,
      since: typeof value.since === 'string' ? value.since : '?',
    };
  } catch {
    // Not ours to interpret: a row nobody can read claims nothing.
    return undefined;
  }
}

function isRunning(holder: DaemonClaim): boolean {
  // State files are local (SQLite's WAL needs shared memory): a row written on another machine
  // came with a copy of the file, and its process is not running here.
  if (holder.host !== hostname()) return false;
  if (holder.pid === process.pid) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = processStartOf(holder.pid);
  return holder.processStart === null || start === null || start === holder.processStart;
}

function realPath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

function processStartOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}
