import Database from 'better-sqlite3';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import {
  echoServing,
  makeNode,
  nodeCopy,
  startServe,
  stateRows,
  type TestNode,
} from '../helpers/federation.js';
import { createCa } from '../helpers/pki.js';

/**
 * One `sark-fed serve` per state file: a second one is refused while the first runs (it would
 * replace the first one's local catalog and clear it when it stopped), and a daemon that was
 * killed does not keep the file from being served again.
 */

let dir: string;
let node: TestNode;
/** serve's --resources and --policy: echo, allowed to node-a. */
let serving: string[];

beforeAll(async () => {
  dir = tempDir('sark-fed-serve-lock-');
  const ca = await createCa(join(dir, 'ca'), ['--trust-domain', 'org-a.example']);
  node = await makeNode(dir, ca.dir, 'node-a', 'org-a.example');
  serving = echoServing(dir, ['node-a']);
}, 60_000);

function daemonClaims(): Array<{ key: string; value: string }> {
  return (stateRows(node.state).settings as Array<{ key: string; value: string }>).filter(
    (row) => row.key === 'daemon',
  );
}

const localCatalog = () => stateRows(node.state).local_catalog;

describe('one daemon per state file', () => {
  it('refuses a second serve while the first runs, and leaves the first one serving', async () => {
    const first = await startServe(node, ['--listen', '127.0.0.1:0', ...serving]);
    try {
      const pid = first.process.pid as number;
      expect(daemonClaims()).toEqual([
        { key: 'daemon', value: expect.stringContaining(`"pid":${pid}`) as unknown as string },
      ]);
      const catalogBefore = localCatalog();
      expect(catalogBefore).toHaveLength(1);

      const second = await node.cli(['serve', '--listen', '127.0.0.1:0']);
      expect(second.code, second.stderr).toBe(1);
      const lines = second.stderr.trimEnd().split('\n');
      expect(lines).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: another sark-fed serve \\(pid ${pid}, since \\S+\\) serves .*state\\.db$`,
          ),
        ),
        `hint: stop it first (kill -TERM ${pid}), or give this daemon its own --state`,
      ]);
      const json = await node.cli(['serve', '--listen', '127.0.0.1:0', '--json']);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stderr)).toMatchObject({
        error: { code: 'STATE_IN_USE', exitCode: 1 },
      });

      // Nothing of the first daemon's was touched: its catalog and its claim are as they were.
      expect(localCatalog()).toEqual(catalogBefore);
      expect(daemonClaims()[0]?.value).toContain(`"pid":${pid}`);
      const route = await node.cli(['route', 'echo', '--json']);
      expect(route.code, route.stderr).toBe(0);
      expect(JSON.parse(route.stdout)).toMatchObject({ chosen: 'node-a' });
      // init while it serves: recorded, with a warning that the daemon still answers as before
      // (only when something it uses changed: the same init again says nothing).
      const init = (endpoint: string) =>
        node.cli([
          'init',
          '--node-id',
          node.nodeId,
          '--trust-domain',
          node.trustDomain,
          '--cert',
          node.certPath,
          '--key',
          node.keyPath,
          '--endpoint',
          endpoint,
        ]);
      const moved = await init('https://127.0.0.1:19443');
      expect(moved.code, moved.stderr).toBe(0);
      expect(moved.stderr).toContain(
        `warning: sark-fed serve (pid ${pid}) still answers with the identity it started with: restart it`,
      );
      const back = await init(node.endpoint);
      expect(back.stderr).toContain('warning: sark-fed serve');
      const same = await init(node.endpoint);
      expect(same.code, same.stderr).toBe(0);
      expect(same.stderr).not.toContain('warning');

      // A copy of the file (a backup restored, say) carries that claim, but names another file:
      // it can be served while the first daemon runs.
      const copy = await startServe(nodeCopy(node), ['--listen', '127.0.0.1:0']);
      expect(await copy.stop()).toBe(0);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    // A clean stop gives the file up.
    expect(daemonClaims()).toEqual([]);
  });

  it('serves again after the daemon holding the file was killed; status tells each case', async () => {
    const daemonOf = async () => {
      const status = await node.cli(['status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      return (JSON.parse(status.stdout) as { daemon: Record<string, unknown> }).daemon;
    };
    const statusLine = async () =>
      (await node.cli(['status'])).stdout.split('\n').find((line) => line.startsWith('Daemon'));
    expect(await daemonOf()).toEqual({
      state: 'stopped',
      pid: null,
      host: null,
      since: null,
      unclean: false,
      listening: null,
    });
    expect(await statusLine()).toBe('Daemon\tnot running');

    const killed = await startServe(node, ['--listen', '127.0.0.1:0']);
    const pid = killed.process.pid as number;
    const port = (killed.logs.find((entry) => entry.msg === 'listening') as { port: number }).port;
    expect(await daemonOf()).toMatchObject({
      state: 'running',
      pid,
      unclean: false,
      listening: `https://127.0.0.1:${port}`,
    });
    expect(await statusLine()).toMatch(
      new RegExp(
        `^Daemon\trunning \\(pid ${pid}, since \\S+Z, at https://127\\.0\\.0\\.1:${port}\\)$`,
      ),
    );
    await killed.stop('SIGKILL');
    // The claim of the dead process is still there: it is stale, not an obstacle.
    expect(daemonClaims()).toHaveLength(1);
    expect(await daemonOf()).toMatchObject({ state: 'stopped', pid, unclean: true });
    expect(await statusLine()).toMatch(/^Daemon\tnot running \(pid \d+, .*killed or crashed\)$/);
    const again = await startServe(node, ['--listen', '127.0.0.1:0']);
    try {
      expect(daemonClaims()[0]?.value).toContain(`"pid":${again.process.pid}`);
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });

  it('takes over, with a log warning, a claim it cannot check (a daemon in another PID namespace)', async () => {
    // A claim as a daemon in a container would leave it: a live PID here, but another namespace.
    const killed = await startServe(node, ['--listen', '127.0.0.1:0']);
    await killed.stop('SIGKILL');
    const claim = JSON.parse(daemonClaims()[0]?.value as string) as Record<string, unknown>;
    const foreign = { ...claim, pid: process.pid, pidNamespace: 'pid:[1]' };
    const db = new Database(node.state);
    try {
      db.prepare("UPDATE settings SET value = ? WHERE key = 'daemon'").run(JSON.stringify(foreign));
    } finally {
      db.close();
    }
    const daemon = await startServe(node, ['--listen', '127.0.0.1:0']);
    try {
      expect(
        await daemon.waitForLog(
          (entry) =>
            entry.msg === 'took over the state file from a daemon that could not be checked',
        ),
      ).toMatchObject({
        level: 'warn',
        pid: process.pid,
        hint: expect.stringContaining('PID namespace'),
      });
      expect(daemonClaims()[0]?.value).toContain(`"pid":${daemon.process.pid}`);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
