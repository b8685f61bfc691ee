import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH,
  PROJECT_ROOT,
  cleanEnv,
  expectRefusal,
  expectSuccess,
  fileDigest,
  listDir,
  runCli,
  tempDir,
  type RunOptions,
} from '../helpers/cli.js';
import { skipNetns } from '../helpers/netns.js';
import { createCa, issueNode, type NodeFixture } from '../helpers/pki.js';

/**
 * The state file under adverse conditions (docs/state.md, "What is refused"): a file the user may
 * not write or reach, a full disk, a path given in an unexpected form. Each refusal is one error
 * line with a hint and the documented exit code, and leaves the file as it was.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const asRoot = process.getuid?.() === 0;
/** Root ignores permission bits: the CLI runs as nobody where they must bite. */
const NOBODY = 65534;

let root: string;
let nodeA: NodeFixture;
/** node-a's certificate and key owned by whoever runs the tests (nodeA's go to nobody as root). */
let nodeAOwn: NodeFixture;
let nodeB: NodeFixture;
/** node-a's state file, with node-b trusted at an endpoint no daemon serves. */
let baseState: string;

function initArgs(node: NodeFixture): string[] {
  return [
    'init',
    '--node-id',
    'node-a',
    '--trust-domain',
    TD_A,
    '--cert',
    node.certPath,
    '--key',
    node.keyPath,
  ];
}

beforeAll(async () => {
  root = tempDir('sark-fed-state-file-');
  const [caA, caB] = await Promise.all([
    createCa(join(root, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(root, 'ca-b'), ['--trust-domain', TD_B]),
  ]);
  [nodeA, nodeB] = await Promise.all([
    issueNode(caA.dir, 'node-a', join(root, 'node-a'), ['--ip', '127.0.0.1']),
    issueNode(caB.dir, 'node-b', join(root, 'node-b'), ['--ip', '127.0.0.1']),
  ]);
  const ownDir = join(root, 'node-a-own');
  cpSync(nodeA.dir, ownDir, { recursive: true });
  nodeAOwn = {
    ...nodeA,
    dir: ownDir,
    certPath: join(ownDir, 'cert.pem'),
    keyPath: join(ownDir, 'key.pem'),
  };
  if (asRoot) {
    // The key must stay readable by the CLI when it runs as nobody.
    for (const name of listDir(nodeA.dir)) chownSync(join(nodeA.dir, name), NOBODY, NOBODY);
    chownSync(nodeA.dir, NOBODY, NOBODY);
  }
  baseState = join(root, 'base', 'state.db');
  expectSuccess(await runCli(['--state', baseState, ...initArgs(nodeA)]));
  expectSuccess(await runCli(['--state', baseState, 'trust', 'anchor', 'add', caB.certPath]));
  const db = new Database(baseState);
  const now = new Date().toISOString();
  db.prepare(
    `INSERT INTO peers (node_id, trust_domain, spiffe_id, endpoint, trust_level, pinned_fingerprint,
       certificate_pem, trust_expires_at, established_at, created_at, updated_at)
     VALUES ('node-b', ?, ?, 'https://127.0.0.1:9', 'trusted', ?, ?, NULL, ?, ?, ?)`,
  ).run(
    TD_B,
    `spiffe://${TD_B}/sark/node/node-b`,
    'ab'.repeat(32),
    readFileSync(nodeB.certPath, 'utf8'),
    now,
    now,
    now,
  );
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}, 60_000);

let copies = 0;
/** A copy of the base state file in a 0700 folder of its own, owned by who runs the CLI. */
function stateCopy(): string {
  const dir = join(root, `state-${++copies}`);
  mkdirSync(dir, { mode: 0o700 });
  const path = join(dir, 'state.db');
  copyFileSync(baseState, path);
  chmodSync(path, 0o600);
  if (asRoot) {
    chownSync(dir, NOBODY, NOBODY);
    chownSync(path, NOBODY, NOBODY);
  }
  return path;
}

/** Runs as nobody when the tests run as root (permission bits do not bind root). */
function asUser(): RunOptions {
  return asRoot ? { uid: NOBODY, gid: NOBODY } : {};
}

/** A TCP server that counts the connections it is offered and drops each one at once. */
async function countingServer(): Promise<{ endpoint: string; connections: () => number }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return {
    endpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
  };
}

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(
    servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
});

describe.concurrent('a state file the user may not write', () => {
  function readOnlyCopy(endpoint?: string): string {
    const path = stateCopy();
    if (endpoint !== undefined) {
      const db = new Database(path);
      db.prepare("UPDATE peers SET endpoint = ? WHERE node_id = 'node-b'").run(endpoint);
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
    }
    chmodSync(path, 0o400);
    return path;
  }

  it('invoke refuses before calling the node: it could not record the call (exit 1)', async () => {
    const peer = await countingServer();
    const statePath = readOnlyCopy(peer.endpoint);
    const before = fileDigest(statePath);
    const result = await runCli(
      ['--state', statePath, 'invoke', 'echo', 'echo', '--node', 'node-b', '--quiet'],
      asUser(),
    );
    expectRefusal(result, 1, {
      message: `state file ${statePath} cannot be written`,
      hint: /permissions/,
    });
    expect(peer.connections()).toBe(0);
    expect(fileDigest(statePath)).toBe(before);
  });

  it('trust establish refuses before contacting the node: it could not record the trust (exit 1)', async () => {
    const peer = await countingServer();
    const statePath = readOnlyCopy();
    const before = fileDigest(statePath);
    const result = await runCli(
      ['--state', statePath, 'trust', 'establish', peer.endpoint, '--yes'],
      asUser(),
    );
    expectRefusal(result, 1, {
      message: `state file ${statePath} cannot be written`,
      hint: /permissions/,
    });
    expect(peer.connections()).toBe(0);
    expect(fileDigest(statePath)).toBe(before);
  });

  it('of an older schema: says it must be upgraded and cannot be, for a read too (exit 1)', async () => {
    const statePath = stateCopy();
    // Schema 7 as sark-fed left it: migration 8 rebuilt node_sightings; a 7 is told by its number.
    const db = new Database(statePath);
    db.pragma('user_version = 7');
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    chmodSync(statePath, 0o400);
    const before = fileDigest(statePath);
    const result = await runCli(['--state', statePath, 'audit', 'query'], asUser());
    expectRefusal(result, 1, {
      message: `state file ${statePath} has schema version 7 and must be upgraded to 8, but it cannot be written`,
      hint: /may write the file and its folder/,
    });
    expect(fileDigest(statePath)).toBe(before);
  });
});

describe.concurrent('a state file the user may not reach', () => {
  it('in a folder the user may not search: cannot open, not "cannot create" (exit 1)', async () => {
    const statePath = stateCopy();
    chmodSync(dirname(statePath), 0o600);
    try {
      const result = await runCli(['--state', statePath, 'status'], asUser());
      expectRefusal(result, 1, {
        message: `cannot open state file ${statePath} (EACCES)`,
        hint: /every folder on its path/,
      });
    } finally {
      chmodSync(dirname(statePath), 0o700);
    }
    expect(listDir(dirname(statePath))).toEqual(['state.db']);
  });

  it('that the user may not read: cannot open, not "cannot be written" (exit 1)', async () => {
    const statePath = stateCopy();
    chmodSync(statePath, 0o000);
    const before = fileDigest(statePath);
    const result = await runCli(['--state', statePath, 'status'], asUser());
    expectRefusal(result, 1, {
      message: `cannot open state file ${statePath} (EACCES)`,
      hint: /permissions of the file/,
    });
    expect(fileDigest(statePath)).toBe(before);
    expect(listDir(dirname(statePath))).toEqual(['state.db']);
  });
});

describe.concurrent('where the state file is', () => {
  it('refuses an empty --state (exit 2) rather than fall back to the default file', async () => {
    const home = tempDir('sark-fed-home-');
    for (const args of [['--state', ''], ['--state=']]) {
      const result = await runCli([...args, ...initArgs(nodeA)], { env: { HOME: home } });
      expectRefusal(result, 2, { message: '--state is empty', hint: /name the state file/ });
    }
    expect(listDir(home)).toEqual([]);
  });

  it('an empty SARK_FED_STATE is unset: the default file', async () => {
    const home = tempDir('sark-fed-home-');
    const result = await runCli(['status'], { env: { HOME: home, SARK_FED_STATE: '' } });
    expectRefusal(result, 4, {
      message: `no state file at ${join(home, '.local', 'state', 'sark-fed', 'state.db')}`,
    });
  });

  it.each([
    ['--state=~/…', (path: string) => ({ args: [`--state=~/${path}`], env: {} })],
    ['SARK_FED_STATE=~/…', (path: string) => ({ args: [], env: { SARK_FED_STATE: `~/${path}` } })],
    [
      'SARK_FED_HOME=~/…',
      (path: string) => ({ args: [], env: { SARK_FED_HOME: `~/${dirname(path)}` } }),
    ],
  ])('reads a leading ~ in %s as the home folder, not a folder named ~', async (_name, given) => {
    const home = tempDir('sark-fed-home-');
    const cwd = tempDir('sark-fed-cwd-');
    const { args, env } = given('fed/state.db');
    const result = await runCli([...args, ...initArgs(nodeA), '--json'], {
      cwd,
      env: { HOME: home, ...env },
    });
    expectSuccess(result);
    const statePath = join(home, 'fed', 'state.db');
    expect((JSON.parse(result.stdout) as { statePath: string }).statePath).toBe(statePath);
    expect(existsSync(statePath)).toBe(true);
    expect(listDir(cwd)).toEqual([]);
  });
});

// ---- a full disk ------------------------------------------------------------------------------

/**
 * A full disk is a small tmpfs in a private mount namespace (`unshare -rm`: no privilege needed
 * where user namespaces are allowed). The tests fail rather than skip when that does not work,
 * unless SARK_FED_SKIP_NETNS=1 (the switch of every namespace test).
 */
function mountNamespaceProblem(): string | undefined {
  const probe = spawnSync(
    'unshare',
    ['-rm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs "${tempDir()}"`],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (probe.status === 0) return undefined;
  return (
    probe.error?.message ??
    `unshare -rm exited ${probe.status}: ${probe.stderr.trim()} (needs util-linux and user namespaces)`
  );
}

interface Step {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Mounts a 1 MiB tmpfs on a fresh folder, copies the base state file onto it, fills the rest
 * with a file named `fill`, and runs each command against the copy (`$MNT` in them names the
 * mount). Then copies the state file out, removes `fill`, and runs `after` with the space back.
 */
function onFullDisk(
  steps: Record<string, string[]>,
  after: Record<string, string[]> = {},
): { mount: string; out: string; results: Record<string, Step> } {
  const mount = tempDir('sark-fed-full-');
  const out = tempDir('sark-fed-full-out-');
  const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
  const run = (name: string, args: string[]) =>
    `"$NODE" "$CLI" ${args.map((arg) => quote(arg).replaceAll('$MNT', `'"$MNT"'`)).join(' ')} ` +
    `>"$OUT/${name}.out" 2>"$OUT/${name}.err"; echo $? >"$OUT/${name}.code"`;
  const script = [
    'set -u',
    'mount -t tmpfs -o size=1m tmpfs "$MNT" || exit 90',
    'cp "$BASE" "$MNT/state.db"',
    'head -c 2000000 /dev/zero >"$MNT/fill" 2>/dev/null',
    ...Object.entries(steps).map(([name, args]) => run(name, args)),
    'ls -A "$MNT" >"$OUT/listing"',
    'cp "$MNT/state.db" "$OUT/state.db"',
    'rm "$MNT/fill"',
    ...Object.entries(after).map(([name, args]) => run(name, args)),
  ].join('\n');
  const done = spawnSync('unshare', ['-rm', 'sh', '-c', script], {
    encoding: 'utf8',
    timeout: 60_000,
    env: cleanEnv({
      NODE: process.execPath,
      CLI: CLI_PATH,
      MNT: mount,
      OUT: out,
      BASE: baseState,
    }),
  });
  expect(done.status, done.stderr).toBe(0);
  const results: Record<string, Step> = {};
  for (const name of [...Object.keys(steps), ...Object.keys(after)]) {
    results[name] = {
      code: Number(readFileSync(join(out, `${name}.code`), 'utf8')),
      stdout: readFileSync(join(out, `${name}.out`), 'utf8'),
      stderr: readFileSync(join(out, `${name}.err`), 'utf8'),
    };
  }
  return { mount, out, results };
}

const fullDiskProblem = skipNetns ? undefined : mountNamespaceProblem();

describe.skipIf(skipNetns)('on a full disk', () => {
  it('is set up (unshare -rm and a tmpfs)', () => {
    expect(fullDiskProblem).toBeUndefined();
  });

  it.runIf(fullDiskProblem === undefined)(
    'a write fails saying the disk is full, and leaves the state file whole; a new one is not left behind',
    () => {
      const { mount, out, results } = onFullDisk(
        {
          add: [
            '--state',
            '$MNT/state.db',
            'nodes',
            'add',
            'node-x',
            '--endpoint',
            'https://127.0.0.1:1',
          ],
          init: ['--state', '$MNT/new/state.db', ...initArgs(nodeAOwn)],
        },
        { verify: ['--state', '$MNT/state.db', 'audit', 'verify'] },
      );
      const diskFull = (path: string) => ({
        message: new RegExp(
          `^cannot write state file ${path.replaceAll('.', '\\.')}: the disk is full \\(SQLITE_\\w+\\)$`,
        ),
        hint: /^free space on the file system that holds /,
      });
      expectRefusal(results.add as Step, 1, diskFull(join(mount, 'state.db')));
      expectRefusal(results.init as Step, 1, diskFull(join(mount, 'new', 'state.db')));
      // Neither the new file nor the folder made for it is left: nothing half-made. (SQLite may
      // leave the state file's -shm and -wal, which it reads again or recreates.)
      const listing = readFileSync(join(out, 'listing'), 'utf8').split('\n').filter(Boolean);
      expect(listing.filter((name) => !/^state\.db-(shm|wal)$/.test(name))).toEqual([
        'fill',
        'state.db',
      ]);
      expect(fileDigest(join(out, 'state.db'))).toBe(fileDigest(baseState));
      const copy = new Database(join(out, 'state.db'), { readonly: true });
      expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
      copy.close();
      expectSuccess(results.verify as Step);
    },
  );
});

describe('an install whose SQLite addon cannot be loaded', () => {
  it('says so and how to rebuild it, not "cannot create state file" (exit 1), file untouched', async () => {
    // The built CLI beside a better-sqlite3 whose native addon is not one (as after a Node.js
    // upgrade the addon was not rebuilt for, or a build that failed half-way).
    const install = tempDir('sark-fed-broken-install-');
    for (const part of ['bin', 'dist', 'package.json']) {
      cpSync(join(PROJECT_ROOT, part), join(install, part), { recursive: true });
    }
    const addonDir = join(install, 'node_modules', 'better-sqlite3', 'build', 'Release');
    mkdirSync(addonDir, { recursive: true });
    cpSync(
      join(PROJECT_ROOT, 'node_modules', 'better-sqlite3', 'package.json'),
      join(install, 'node_modules', 'better-sqlite3', 'package.json'),
    );
    writeFileSync(join(addonDir, 'better_sqlite3.node'), 'not a shared object\n');
    const statePath = stateCopy();
    const before = fileDigest(statePath);

    const result = spawnSync(
      process.execPath,
      [join(install, 'bin', 'sark-fed.js'), '--state', statePath, 'status'],
      {
        env: cleanEnv(),
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    expectRefusal({ code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr }, 1, {
      message: /^cannot load SQLite \(better-sqlite3's native addon\): .*better_sqlite3\.node/,
      hint: /npm rebuild better-sqlite3/,
    });
    expect(fileDigest(statePath)).toBe(before);
  });
});
