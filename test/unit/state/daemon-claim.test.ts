import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { linkSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimDaemon,
  daemonGone,
  daemonStatus,
  livenessOf,
  recordListening,
  releaseDaemon,
  runningDaemonEndpoint,
  whileClaimed,
  type DaemonClaim,
} from '../../../src/core/state/daemon-claim.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { getSetting, setSetting } from '../../../src/core/state/trust-repository.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * The claim `serve` makes on its state file, on real files and real processes: a live daemon
 * (here, a child process standing for one) is told from one that is gone, from a PID this very
 * process reuses, and from one that cannot be checked from here; the file is told by its inode.
 */

const BOOT_ID = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const PID_NAMESPACE = readlinkSync('/proc/self/ns/pid');

function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
}

let dir: string;
let child: ChildProcess;

beforeAll(() => {
  dir = tempDir('sark-fed-claim-');
  // A process that stands for a running daemon: alive for the length of the file's tests.
  child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
});
afterAll(() => {
  child.kill('SIGKILL');
});

function freshStore(name: string): StateStore {
  return openState(join(dir, `${name}.db`), { create: true });
}

/** A claim as another process would have written it, this file's identity copied from a real one. */
function forge(store: StateStore, fields: Partial<DaemonClaim>): DaemonClaim {
  const { claim } = claimDaemon(store, new Date('2030-01-01T00:00:00Z'));
  releaseDaemon(store, claim);
  const forged: DaemonClaim = {
    ...claim,
    pid: child.pid as number,
    processStart: startOf(child.pid as number),
    since: '2029-12-31T00:00:00.000Z',
    ...fields,
  };
  store.write((db) => setSetting(db, 'daemon', JSON.stringify(forged)));
  return forged;
}

describe('the daemon claim on a state file', () => {
  it('refuses a second claim while the claiming process runs, and not once it gave the file up', () => {
    const store = freshStore('live');
    try {
      forge(store, {});
      expect(() => claimDaemon(store, new Date())).toThrow(/another sark-fed serve \(pid \d+/);
      expect(store.read((db) => daemonGone(db, store.path))).toBe(false);
      // This process's own claim is running too, until released.
      store.write((db) => db.prepare("DELETE FROM settings WHERE key = 'daemon'").run());
      const { claim } = claimDaemon(store, new Date());
      expect(() => claimDaemon(store, new Date())).toThrow(/STATE_IN_USE|another sark-fed serve/);
      releaseDaemon(store, claim);
      expect(store.read((db) => getSetting(db, 'daemon'))).toBeUndefined();
      releaseDaemon(store, claimDaemon(store, new Date()).claim);
    } finally {
      store.close();
    }
  });

  it('takes a claim of this very PID that this process did not make for a daemon gone (a restarted container)', () => {
    const store = freshStore('same-pid');
    try {
      const forged = forge(store, { pid: process.pid, processStart: startOf(process.pid) });
      expect(livenessOf(forged)).toBe('gone');
      expect(store.read((db) => daemonGone(db, store.path))).toBe(true);
      const { claim, tookOver } = claimDaemon(store, new Date());
      expect(tookOver).toBeNull();
      releaseDaemon(store, claim);
    } finally {
      store.close();
    }
  });

  it('takes a claim of a process that ended, or of a PID now another process, for gone', () => {
    const store = freshStore('gone');
    try {
      const recycled = forge(store, { processStart: '1' });
      expect(livenessOf(recycled)).toBe('gone');
      const ended = forge(store, { pid: 2 ** 22 + 12_345 });
      expect(livenessOf(ended)).toBe('gone');
      const earlierBoot = forge(store, { bootId: '00000000-0000-0000-0000-000000000000' });
      expect(livenessOf(earlierBoot)).toBe('gone');
      expect(store.read((db) => daemonGone(db, store.path))).toBe(true);
    } finally {
      store.close();
    }
  });

  it('cannot tell a daemon of another PID namespace or machine: takes the file over, says so, and route keeps the node', () => {
    const store = freshStore('unknown');
    try {
      for (const fields of [
        { pidNamespace: 'pid:[1]' },
        { host: `not-${hostname()}`, bootId: '11111111-1111-1111-1111-111111111111' },
        { host: `not-${hostname()}`, bootId: null },
      ]) {
        const forged = forge(store, fields);
        expect(livenessOf(forged), JSON.stringify(fields)).toBe('unknown');
        expect(store.read((db) => daemonGone(db, store.path))).toBe(false);
        const { claim, tookOver } = claimDaemon(store, new Date());
        expect(tookOver).toMatchObject({ pid: forged.pid, since: forged.since });
        releaseDaemon(store, claim);
      }
      expect(BOOT_ID).toMatch(/\S/);
      expect(PID_NAMESPACE).toMatch(/^pid:\[/);
    } finally {
      store.close();
    }
  });

  it('ignores a claim whose PID names a process group (0, -1), as no claim', () => {
    const store = freshStore('groups');
    try {
      for (const pid of [0, -1]) {
        forge(store, { pid });
        expect(store.read((db) => daemonGone(db, store.path))).toBe(false);
        releaseDaemon(store, claimDaemon(store, new Date()).claim);
      }
    } finally {
      store.close();
    }
  });

  it('takes a killed daemon its parent has not reaped yet (a zombie) for gone', async () => {
    // `sleep 0.1` ends as the child of a process that never waits for it: a zombie for 20 s.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 20'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const pid = await new Promise<number>((resolve) =>
        parent.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
      );
      const stateOf = () => {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      };
      for (let tries = 0; stateOf() !== 'Z' && tries < 100; tries += 1) {
        spawnSync('sleep', ['0.05']);
      }
      expect(stateOf()).toBe('Z');
      const store = freshStore('zombie');
      try {
        const forged = forge(store, { pid, processStart: startOf(pid) });
        expect(livenessOf(forged)).toBe('gone');
        expect(store.read((db) => daemonStatus(db, store.path))).toEqual({
          state: 'stopped',
          pid,
          host: hostname(),
          since: forged.since,
          unclean: true,
          listening: null,
        });
      } finally {
        store.close();
      }
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('reports what status shows: running, stopped (cleanly, or killed), or unknown', () => {
    const store = freshStore('status');
    try {
      const status = () => store.read((db) => daemonStatus(db, store.path));
      expect(status()).toEqual({
        state: 'stopped',
        pid: null,
        host: null,
        since: null,
        unclean: false,
        listening: null,
      });
      const live = forge(store, {});
      expect(status()).toEqual({
        state: 'running',
        pid: live.pid,
        host: hostname(),
        since: live.since,
        unclean: false,
        listening: null,
      });
      // Once bound, the daemon says where it answers: status shows it, and this node's own
      // commands call it there when init recorded no endpoint.
      recordListening(store, live, 'https://127.0.0.1:38313');
      expect(status()).toMatchObject({ state: 'running', listening: 'https://127.0.0.1:38313' });
      expect(store.read((db) => runningDaemonEndpoint(db, store.path))).toBe(
        'https://127.0.0.1:38313',
      );
      // Another daemon's claim is not overwritten by a stale one's address.
      recordListening(store, { ...live, since: 'another start' }, 'https://127.0.0.1:1');
      expect(status()).toMatchObject({ listening: 'https://127.0.0.1:38313' });
      // Nor does a stale daemon write what it serves (a reload) over the holder's.
      const wrote: string[] = [];
      whileClaimed(store, { ...live, since: 'another start' }, () => wrote.push('stale'));
      whileClaimed(store, live, (_db, holder) => wrote.push(holder.since));
      expect(wrote).toEqual([live.since]);
      // forge() claims the file first, which a live claim refuses: remove it.
      store.write((db) => db.prepare("DELETE FROM settings WHERE key = 'daemon'").run());
      forge(store, { pid: 2 ** 22 + 12_345, listening: 'https://127.0.0.1:38313' });
      expect(status()).toMatchObject({
        state: 'stopped',
        pid: 2 ** 22 + 12_345,
        unclean: true,
        listening: null,
      });
      // A killed daemon's address is not called.
      expect(store.read((db) => runningDaemonEndpoint(db, store.path))).toBeNull();
      forge(store, { pidNamespace: 'pid:[1]' });
      expect(status()).toMatchObject({ state: 'unknown', pid: live.pid, unclean: false });
    } finally {
      store.close();
    }
  });

  it('tells the file by its inode: the same file by another name is held, a copy is not', () => {
    const store = freshStore('linked');
    const linked = join(dir, 'linked-again.db');
    const copied = join(dir, 'linked-copy.db');
    try {
      forge(store, {});
      linkSync(store.path, linked);
      // A copy as a backup makes it: the claim comes with it.
      store.db.prepare('VACUUM INTO ?').run(copied);
    } finally {
      store.close();
    }
    const viaLink = openState(linked, { create: false });
    try {
      expect(() => claimDaemon(viaLink, new Date())).toThrow(/another sark-fed serve/);
    } finally {
      viaLink.close();
    }
    const copy = openState(copied, { create: false });
    try {
      expect(copy.read((db) => daemonGone(db, copy.path))).toBe(false);
      expect(copy.read((db) => daemonStatus(db, copy.path))).toMatchObject({
        state: 'stopped',
        pid: null,
      });
      releaseDaemon(copy, claimDaemon(copy, new Date()).claim);
    } finally {
      copy.close();
    }
  });
});
