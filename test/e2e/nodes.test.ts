import { copyFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRefusal, expectSuccess, runCli, tempDir, type RunResult } from '../helpers/cli.js';
import {
  addAnchor,
  freePort,
  initNode,
  nodeCopy,
  opensslFingerprint,
  startServe,
  stateRows,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { createCa, issueNode, type CaFixture, type NodeFixture } from '../helpers/pki.js';

/**
 * `sark-fed nodes list|show|add|remove|health` (issue 4, item 6) end to end: the CLI as an
 * operator runs it, against real state files, and `nodes health` against real `sark-fed serve`
 * daemons on 127.0.0.1.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const FP = 'ab'.repeat(32);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** The JSON shape of a node in `nodes list|show|add --json` (nodeReport in nodes.ts). */
interface NodeReport {
  nodeId: string;
  trustDomain: string | null;
  endpoint: string | null;
  fingerprint: string | null;
  via: string[];
  trust: 'untrusted' | 'pending' | 'trusted' | 'revoked';
  health: {
    status: 'online' | 'degraded' | 'offline';
    latencyMs: number | null;
    detail: string | null;
    checkedAt: string;
  } | null;
  lastSeenAt: string | null;
  stale: boolean;
  sightings: Array<{
    source: string;
    endpoint: string;
    trustDomain: string | null;
    fingerprint: string | null;
    seenAt: string;
    expiresAt: string | null;
  }>;
}

/** One entry of `nodes health --json`. */
interface HealthReport {
  nodeId: string;
  status: 'online' | 'degraded' | 'offline';
  latencyMs: number | null;
  detail: string | null;
  checkedAt: string;
}

const NODE_REPORT_KEYS = [
  'endpoint',
  'fingerprint',
  'health',
  'lastSeenAt',
  'nodeId',
  'sightings',
  'stale',
  'trust',
  'trustDomain',
  'via',
];

let root: string;
let cas: { a: CaFixture; b: CaFixture };
let certs: { a: NodeFixture; b: NodeFixture; impostorB: NodeFixture };

/**
 * node-a (org A) and node-b (org B) trust each other and both serve. The impostor is a second
 * node-b of org B with another certificate from the same CA, serving on its own port: valid, but
 * not the certificate node-a pinned.
 */
let pristine: TestNode;
let fed: {
  a: TestNode;
  b: TestNode;
  impostor: TestNode;
  daemonA: RunningServe;
  daemonB: RunningServe;
};

/** A TCP server on 127.0.0.1 that accepts connections and never says a word. */
let silent: { server: Server; sockets: Set<Socket>; endpoint: string; acceptedAt: number[] };

beforeAll(async () => {
  root = tempDir('sark-fed-nodes-');
  const [caA, caB] = await Promise.all([
    createCa(join(root, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(root, 'ca-b'), ['--trust-domain', TD_B]),
  ]);
  cas = { a: caA, b: caB };
  const ip = ['--ip', '127.0.0.1'];
  const [certA, certB, certImpostor] = await Promise.all([
    issueNode(caA.dir, 'node-a', join(root, 'certs', 'node-a'), ip),
    issueNode(caB.dir, 'node-b', join(root, 'certs', 'node-b'), ip),
    issueNode(caB.dir, 'node-b', join(root, 'certs', 'impostor-b'), ip),
  ]);
  certs = { a: certA, b: certB, impostorB: certImpostor };

  const [a, b, impostor, clean] = await Promise.all([
    initNode(join(root, 'fed'), certs.a, 'node-a', TD_A),
    initNode(join(root, 'fed'), certs.b, 'node-b', TD_B),
    initNode(join(root, 'impostor'), certs.impostorB, 'node-b', TD_B),
    initNode(join(root, 'pristine'), certs.a, 'node-a', TD_A),
  ]);
  pristine = clean;
  await Promise.all([addAnchor(a, cas.b.certPath), addAnchor(b, cas.a.certPath)]);
  // Stopped by the federation helper after the file.
  const [daemonA, daemonB] = await Promise.all([
    startServe(a),
    startServe(b),
    startServe(impostor),
  ]);
  expectSuccess(
    await a.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslFingerprint(b.certPath),
    ]),
  );
  fed = { a, b, impostor, daemonA, daemonB };

  const sockets = new Set<Socket>();
  const acceptedAt: number[] = [];
  const server = createServer((socket) => {
    acceptedAt.push(Date.now());
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  silent = { server, sockets, endpoint: `https://127.0.0.1:${port}`, acceptedAt };
}, 60_000);

afterAll(async () => {
  if (!silent) return;
  for (const socket of silent.sockets) socket.destroy();
  await new Promise<void>((resolve) => silent.server.close(() => resolve()));
});

/**
 * A node of org A with a state file of its own, knowing nothing of other nodes: a copy of the
 * state file `init` wrote for the pristine node (one `init` run instead of one per test).
 */
async function freshNode(): Promise<TestNode> {
  const state = join(tempDir('sark-fed-nodes-fresh-'), 'state.db');
  copyFileSync(pristine.state, state);
  const cli = (args: string[], env?: Record<string, string | undefined>) =>
    runCli(['--state', state, ...args], { env });
  return { ...pristine, state, cli };
}

/**
 * `trust establish node-b` with no --fingerprint is refused (exit 3) because node-b presented
 * `presented`, not the `expected` fingerprint written down for it, and records nothing.
 */
async function expectEstablishRefused(
  node: TestNode,
  presented: string,
  expected: string,
): Promise<void> {
  const before = stateRows(node.state);
  expectRefusal(await node.cli(['trust', 'establish', 'node-b']), 3, {
    message: new RegExp(
      `^node-b presented fingerprint ${presented}, not the expected ${expected}$`,
    ),
  });
  expect(stateRows(node.state)).toEqual(before);
}

function parseJson<T>(result: RunResult): T {
  expectSuccess(result);
  return JSON.parse(result.stdout) as T;
}

async function listJson(node: TestNode): Promise<NodeReport[]> {
  return parseJson<NodeReport[]>(await node.cli(['nodes', 'list', '--json']));
}

/** TSV rows of a command's stdout in a pipe, split into fields. */
function rows(result: RunResult): string[][] {
  expectSuccess(result);
  return result.stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t'));
}

/** The one JSON error object a refused command writes on stderr with --json. */
function jsonError(result: RunResult): {
  code: string;
  message: string;
  hint: string | null;
  exitCode: number;
} {
  const lines = result.stderr.trimEnd().split('\n');
  const last = lines[lines.length - 1] ?? '';
  return (JSON.parse(last) as { error: ReturnType<typeof jsonError> }).error;
}

describe.concurrent('nodes add', () => {
  it('refuses bad input with exit 2, a one-line error and a hint, and writes nothing', async () => {
    const node = await freshNode();
    const before = stateRows(node.state);
    const cases: Array<[string[], RegExp]> = [
      [['Node_B', '--endpoint', 'https://10.0.0.2:8443'], /invalid node ID "Node_B"/],
      [
        ['node-b', '--endpoint', 'http://10.0.0.2:8443'],
        /invalid endpoint "http:\/\/10\.0\.0\.2:8443"/,
      ],
      [['node-b', '--endpoint', 'https://10.0.0.2:8443/api'], /invalid endpoint/],
      [['node-b', '--endpoint', 'not a url'], /invalid endpoint/],
      [
        ['node-b', '--endpoint', 'https://10.0.0.2:0'],
        /invalid endpoint "https:\/\/10\.0\.0\.2:0": port 0 cannot be called/,
      ],
      [
        ['node-b', '--endpoint', 'https://10.0.0.2:8443', '--fingerprint', 'abc123'],
        /invalid SHA-256 fingerprint "abc123"/,
      ],
      [
        ['node-b', '--endpoint', 'https://10.0.0.2:8443', '--trust-domain', 'Org B'],
        /invalid trust domain "Org B"/,
      ],
      [['node-b'], /--endpoint/],
    ];
    const results = await Promise.all(cases.map(([args]) => node.cli(['nodes', 'add', ...args])));
    results.forEach((result, index) => {
      expectRefusal(result, 2, { message: (cases[index] as [string[], RegExp])[1] });
    });
    expect(stateRows(node.state)).toEqual(before);
  });

  it('says so when it creates the state file (a mistyped --state is seen at once), and only then', async () => {
    const state = join(tempDir('sark-fed-nodes-new-'), 'typo.db');
    const first = await runCli([
      '--state',
      state,
      'nodes',
      'add',
      'node-q',
      '--endpoint',
      'https://10.0.0.9:8443',
    ]);
    expectSuccess(first);
    expect(first.stderr).toContain(`created the state file ${state}\n`);
    const second = await runCli([
      '--state',
      state,
      'nodes',
      'add',
      'node-r',
      '--endpoint',
      'https://10.0.0.8:8443',
    ]);
    expectSuccess(second);
    expect(second.stderr).not.toContain('created the state file');
  });

  it('refuses to add this node itself: exit 2, nothing written', async () => {
    const node = await freshNode();
    const before = stateRows(node.state);
    expectRefusal(
      await node.cli(['nodes', 'add', 'node-a', '--endpoint', 'https://10.0.0.1:8443']),
      2,
      {
        message: /^node-a is this node itself$/,
        hint: /other nodes/,
      },
    );
    expect(stateRows(node.state)).toEqual(before);
  });

  it('refuses a trust domain that contradicts a known peer: exit 3, nothing written', async () => {
    // node-a knows node-b as a trusted peer of org B.
    const { a } = fed;
    const before = stateRows(a.state);
    expectRefusal(
      await a.cli([
        'nodes',
        'add',
        'node-b',
        '--endpoint',
        'https://10.0.0.2:8443',
        '--trust-domain',
        'org-x.example',
      ]),
      3,
      {
        message: /^node-b is known here as a node of org-b\.example, not org-x\.example$/,
        hint: /trust domain/,
      },
    );
    expect(stateRows(a.state)).toEqual(before);

    // The same for a node only discovery (here: an earlier `nodes add`) recorded.
    const fresh = await freshNode();
    expectSuccess(
      await fresh.cli([
        'nodes',
        'add',
        'node-c',
        '--endpoint',
        'https://10.0.0.3:8443',
        '--trust-domain',
        'org-c.example',
      ]),
    );
    const recorded = stateRows(fresh.state);
    expectRefusal(
      await fresh.cli([
        'nodes',
        'add',
        'node-c',
        '--endpoint',
        'https://10.0.0.9:8443',
        '--trust-domain',
        'org-d.example',
      ]),
      3,
      { message: /known here as a node of org-c\.example, not org-d\.example/ },
    );
    expect(stateRows(fresh.state)).toEqual(recorded);
  });

  it('--json: the node as `nodes show --json` reports it; the note goes to stderr', async () => {
    const node = await freshNode();
    const result = await node.cli([
      'nodes',
      'add',
      'node-b',
      '--endpoint',
      'https://10.0.0.2:8443/',
      '--trust-domain',
      TD_B,
      '--fingerprint',
      `sha256:${FP.toUpperCase().replace(/(..)(?!$)/g, '$1:')}`,
      '--json',
    ]);
    const report = parseJson<NodeReport>(result);
    expect(result.stderr).toBe('✓ recorded node-b at https://10.0.0.2:8443\n');
    expect(Object.keys(report).sort()).toEqual(NODE_REPORT_KEYS);
    expect(report).toMatchObject({
      nodeId: 'node-b',
      trustDomain: TD_B,
      endpoint: 'https://10.0.0.2:8443',
      fingerprint: FP,
      via: ['manual'],
      // Added by hand with a trust domain: a peer this node has not decided to trust.
      trust: 'untrusted',
      health: null,
      stale: false,
    });
    expect(report.lastSeenAt).toMatch(ISO);
    expect(report.sightings).toEqual([
      {
        source: 'manual',
        endpoint: 'https://10.0.0.2:8443',
        trustDomain: TD_B,
        fingerprint: FP,
        seenAt: report.lastSeenAt,
        // Manual entries stay until `nodes remove`.
        expiresAt: null,
      },
    ]);
    const shown = parseJson<NodeReport>(await node.cli(['nodes', 'show', 'node-b', '--json']));
    expect(shown).toEqual(report);
  });

  it('without a trust domain records a sighting only; adding again moves it', async () => {
    const node = await freshNode();
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-c', '--endpoint', 'https://10.0.0.3:8443']),
    );
    expect(stateRows(node.state).peers).toEqual([]);
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-c', '--endpoint', 'https://10.0.0.33:8443']),
    );
    const [report] = await listJson(node);
    expect(report).toMatchObject({
      nodeId: 'node-c',
      trustDomain: null,
      endpoint: 'https://10.0.0.33:8443',
      fingerprint: null,
      trust: 'untrusted',
    });
    expect(report?.sightings).toHaveLength(1);
  });

  it('errors with --json are one JSON object on stderr', async () => {
    const node = await freshNode();
    const result = await node.cli(['nodes', 'add', 'node-b', '--endpoint', 'http://x:1', '--json']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(jsonError(result)).toMatchObject({
      code: 'BAD_ENDPOINT',
      exitCode: 2,
      hint: expect.any(String),
    });
  });
});

describe.concurrent('nodes list and show', () => {
  it('with no nodes: nothing on stdout, a note on stderr; --json prints []', async () => {
    const node = await freshNode();
    const plain = await node.cli(['nodes', 'list']);
    expectSuccess(plain);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toMatch(/^no nodes yet; find some with `sark-fed discover`\n$/);
    const json = await node.cli(['nodes', 'list', '--json']);
    expect(parseJson<unknown>(json)).toEqual([]);
    const quiet = await node.cli(['--quiet', 'nodes', 'list']);
    expectSuccess(quiet);
    expect(quiet.stderr).toBe('');
  });

  it('in a pipe: one tab-separated row per node, sorted, full fingerprints, no header', async () => {
    const node = await freshNode();
    await Promise.all([
      node.cli(['nodes', 'add', 'node-z', '--endpoint', 'https://10.0.0.26:8443']),
      node.cli([
        'nodes',
        'add',
        'node-b',
        '--endpoint',
        'https://10.0.0.2:8443',
        '--trust-domain',
        TD_B,
        '--fingerprint',
        FP,
      ]),
    ]).then((results) => results.forEach(expectSuccess));
    const listed = rows(await node.cli(['nodes', 'list']));
    expect(listed).toHaveLength(2);
    const [b, z] = listed;
    expect(b?.slice(0, 7)).toEqual([
      'node-b',
      TD_B,
      'https://10.0.0.2:8443',
      FP,
      'manual',
      'untrusted',
      'unknown',
    ]);
    expect(b?.[7]).toMatch(ISO);
    expect(z?.slice(0, 7)).toEqual([
      'node-z',
      '-',
      'https://10.0.0.26:8443',
      '-',
      'manual',
      'untrusted',
      'unknown',
    ]);

    const array = await listJson(node);
    expect(array.map((item) => item.nodeId)).toEqual(['node-b', 'node-z']);
    for (const item of array) expect(Object.keys(item).sort()).toEqual(NODE_REPORT_KEYS);
  });

  it('lists a trusted peer with its pinned fingerprint, even without any sighting', async () => {
    const [b] = (await listJson(fed.a)).filter((item) => item.nodeId === 'node-b');
    expect(b).toMatchObject({
      nodeId: 'node-b',
      trustDomain: TD_B,
      endpoint: fed.b.endpoint,
      fingerprint: fed.b.fingerprint,
      trust: 'trusted',
    });
  });

  it('show: label<TAB>value lines in a pipe', async () => {
    const node = await freshNode();
    expectSuccess(
      await node.cli([
        'nodes',
        'add',
        'node-b',
        '--endpoint',
        'https://10.0.0.2:8443',
        '--trust-domain',
        TD_B,
      ]),
    );
    const fields = new Map(
      rows(await node.cli(['nodes', 'show', 'node-b'])).map(([label, value]) => [label, value]),
    );
    expect(fields.get('Node')).toBe('node-b');
    expect(fields.get('Trust domain')).toBe(TD_B);
    expect(fields.get('Endpoint')).toBe('https://10.0.0.2:8443');
    expect(fields.get('Fingerprint')).toBe('-');
    expect(fields.get('Trust')).toBe('untrusted');
    expect(fields.get('Health')).toBe('unknown');
    expect(fields.get('Seen via manual')).toMatch(/^https:\/\/10\.0\.0\.2:8443 at \d{4}-/);
  });

  it('show of an unknown node: exit 4 with a hint', async () => {
    const node = await freshNode();
    expectRefusal(await node.cli(['nodes', 'show', 'node-q']), 4, {
      message: /^no node node-q is known here$/,
      hint: /nodes list/,
    });
    const json = await node.cli(['nodes', 'show', 'node-q', '--json']);
    expect(json.code).toBe(4);
    expect(json.stdout).toBe('');
    expect(jsonError(json)).toMatchObject({ code: 'NO_SUCH_NODE', exitCode: 4 });
  });
});

describe.concurrent('a node ID that cannot be one', () => {
  it('is a usage error (exit 2) wherever a node is named, not "no node known", and writes nothing', async () => {
    const node = await freshNode();
    const before = stateRows(node.state);
    for (const args of [
      ['nodes', 'show', 'Node_Q'],
      ['nodes', 'remove', 'Node_Q'],
      ['nodes', 'health', 'Node_Q'],
      ['trust', 'show', 'Node_Q'],
      ['trust', 'approve', 'Node_Q'],
      ['trust', 'revoke', 'Node_Q', '--reason', 'x', '--yes'],
      ['trust', 'establish', 'Node_Q'],
      ['circuit', 'reset', 'Node_Q'],
    ]) {
      const result = await node.cli(args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr.trimEnd().split('\n')).toEqual([
        'error: invalid node ID "Node_Q"',
        'hint: use 1-63 characters: lowercase letters, digits, "." and "-", starting with a letter or digit',
      ]);
    }
    expect(stateRows(node.state)).toEqual(before);
  });
});

describe.concurrent('nodes remove', () => {
  it('of an unknown node: exit 4, nothing written', async () => {
    const node = await freshNode();
    const before = stateRows(node.state);
    expectRefusal(await node.cli(['nodes', 'remove', 'node-q']), 4, {
      message: /node-q/,
      hint: /nodes list/,
    });
    // This node itself is not in its inventory: said as such (exit 2), as `nodes add` says it.
    expectRefusal(await node.cli(['nodes', 'remove', node.nodeId]), 2, {
      message: `${node.nodeId} is this node itself`,
      hint: /other nodes of the federation/,
    });
    expect(stateRows(node.state)).toEqual(before);
  });

  it('of an untrusted node: its sightings, health and peer row go', async () => {
    const node = await freshNode();
    expectSuccess(
      await node.cli([
        'nodes',
        'add',
        'node-b',
        '--endpoint',
        'https://10.0.0.2:8443',
        '--trust-domain',
        TD_B,
      ]),
    );
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-c', '--endpoint', 'https://10.0.0.3:8443']),
    );
    const before = stateRows(node.state);
    expect(before.peers).toHaveLength(1);
    expect(before.node_sightings).toHaveLength(2);

    const removed = await node.cli(['nodes', 'remove', 'node-b', '--json']);
    expect(parseJson<unknown>(removed)).toEqual({
      nodeId: 'node-b',
      removed: true,
      trustKept: null,
    });
    expect(removed.stderr).toBe('✓ removed node-b\n');
    const after = stateRows(node.state);
    expect(after.peers).toEqual([]);
    expect(after.node_sightings).toEqual([expect.objectContaining({ node_id: 'node-c' })]);
    expect((await listJson(node)).map((item) => item.nodeId)).toEqual(['node-c']);
    expectRefusal(await node.cli(['nodes', 'show', 'node-b']), 4);
    expectRefusal(await node.cli(['nodes', 'remove', 'node-b']), 4);
  });
});

/** A nodes file (discover --file) in a folder of its own, listing these entries. */
function nodesFile(entries: object[]): string {
  const path = join(tempDir('sark-fed-nodes-file-'), 'nodes.json');
  writeFileSync(path, JSON.stringify({ nodes: entries }));
  return path;
}

/** `discover --method manual --file <file>`, saving what it found; only files, never the network. */
async function scanFile(node: TestNode, file: string): Promise<void> {
  expectSuccess(await node.cli(['discover', '--method', 'manual', '--file', file]));
}

describe.concurrent('nodes add and nodes files: sightings of their own', () => {
  it('a nodes file does not replace what `nodes add` recorded: its endpoint and fingerprint win, trust establish uses them, the file is shown beside', async () => {
    const node = await freshNode();
    await addAnchor(node, cas.b.certPath);
    const { b } = fed;
    const right = opensslFingerprint(b.certPath);
    const wrong = 'cd'.repeat(32);
    const fromFile = 'ef'.repeat(32);
    // Nothing listens there: a trust establish sent to the file's endpoint could not be refused
    // for its fingerprint.
    const nowhere = `https://127.0.0.1:${await freePort()}`;
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-b', '--endpoint', b.endpoint, '--fingerprint', wrong]),
    );
    const file = nodesFile([{ node_id: 'node-b', endpoint: nowhere, fingerprint: fromFile }]);

    // The scan shows both, the hand-made entry first; VIA names the method, manual.
    const scanned = parseJson<
      Array<{ endpoint: string; fingerprint: string; via: string[]; sightings: object[] }>
    >(await node.cli(['--json', 'discover', '--method', 'manual', '--file', file]));
    expect(scanned).toEqual([
      expect.objectContaining({
        nodeId: 'node-b',
        endpoint: b.endpoint,
        fingerprint: wrong,
        via: ['manual'],
        sightings: [
          expect.objectContaining({ source: 'manual', endpoint: b.endpoint, fingerprint: wrong }),
          expect.objectContaining({ source: 'file', endpoint: nowhere, fingerprint: fromFile }),
        ],
      }),
    ]);

    const shown = parseJson<NodeReport>(await node.cli(['nodes', 'show', 'node-b', '--json']));
    expect(shown).toMatchObject({
      nodeId: 'node-b',
      endpoint: b.endpoint,
      fingerprint: wrong,
      via: ['manual'],
      stale: false,
    });
    expect(shown.sightings).toEqual([
      {
        source: 'manual',
        endpoint: b.endpoint,
        trustDomain: null,
        fingerprint: wrong,
        seenAt: expect.stringMatching(ISO) as string,
        expiresAt: null,
      },
      {
        source: 'file',
        endpoint: nowhere,
        trustDomain: null,
        fingerprint: fromFile,
        seenAt: expect.stringMatching(ISO) as string,
        expiresAt: null,
      },
    ]);
    const fields = new Map(
      rows(await node.cli(['nodes', 'show', 'node-b'])).map(([label, value]) => [label, value]),
    );
    expect(fields.get('Endpoint')).toBe(b.endpoint);
    expect(fields.get('Seen via manual')).toMatch(
      /^https:\/\/127\.0\.0\.1:\d+ at .*, added by hand$/,
    );
    expect(fields.get('Seen via file')).toBe(
      `${nowhere} at ${shown.sightings[1]?.seenAt}, from a nodes file`,
    );
    const [listed] = rows(await node.cli(['nodes', 'list']));
    expect(listed?.slice(0, 5)).toEqual(['node-b', '-', b.endpoint, wrong, 'manual']);

    // trust establish goes where `nodes add` said, expecting the fingerprint it was given.
    await expectEstablishRefused(node, right, wrong);
  });

  it('nodes add --trust-domain --fingerprint: trust establish expects that fingerprint of the peer it recorded, never pinned yet', async () => {
    const node = await freshNode();
    await addAnchor(node, cas.b.certPath);
    const { b } = fed;
    const right = opensslFingerprint(b.certPath);
    const wrong = 'cd'.repeat(32);
    expectSuccess(
      await node.cli([
        'nodes',
        'add',
        'node-b',
        '--endpoint',
        b.endpoint,
        '--trust-domain',
        TD_B,
        '--fingerprint',
        wrong,
      ]),
    );
    await expectEstablishRefused(node, right, wrong);
    // (Written down right, it establishes without --fingerprint: the test of `nodes add` without
    // a trust domain, below, shows that part; establishing here would move node-b's record of
    // node-a, which the tests beside this one read.)
  });

  it('a nodes file alone: a file sighting, which never expires, a later scan reports again, and whose fingerprint trust establish expects', async () => {
    const node = await freshNode();
    await addAnchor(node, cas.b.certPath);
    const { b } = fed;
    const right = opensslFingerprint(b.certPath);
    const wrong = 'cd'.repeat(32);
    await scanFile(
      node,
      nodesFile([{ node_id: 'node-b', endpoint: b.endpoint, fingerprint: wrong }]),
    );
    const shown = parseJson<NodeReport>(await node.cli(['nodes', 'show', 'node-b', '--json']));
    expect(shown).toMatchObject({
      endpoint: b.endpoint,
      fingerprint: wrong,
      via: ['manual'],
      stale: false,
    });
    expect(shown.sightings).toEqual([
      expect.objectContaining({ source: 'file', endpoint: b.endpoint, expiresAt: null }),
    ]);
    // A scan without the file still lists it, from the state file, as the manual method's.
    const again = parseJson<Array<{ nodeId: string; via: string[]; sightings: object[] }>>(
      await node.cli(['--json', 'discover', '--method', 'manual', '--no-save']),
    );
    expect(again).toEqual([
      expect.objectContaining({
        nodeId: 'node-b',
        via: ['manual'],
        sightings: [expect.objectContaining({ source: 'file', endpoint: b.endpoint })],
      }),
    ]);
    // An operator wrote the file: its fingerprint is expected, as one given to `nodes add` is.
    expectRefusal(await node.cli(['trust', 'establish', 'node-b']), 3, {
      message: new RegExp(`presented fingerprint ${right}, not the expected ${wrong}$`),
    });
  });

  it('a trust domain from a file fills in what `nodes add` left out, at the endpoint typed by hand, scan after scan', async () => {
    const node = await freshNode();
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-p', '--endpoint', 'https://10.0.0.5:8443']),
    );
    const file = nodesFile([
      { node_id: 'node-p', endpoint: 'https://10.0.0.50:8443', trust_domain: 'org-p.example' },
    ]);
    const peerOf = () =>
      (stateRows(node.state).peers as Array<Record<string, unknown>>).find(
        (row) => row.node_id === 'node-p',
      );
    for (const expected of ['https://10.0.0.5:8443', 'https://10.0.0.5:8443']) {
      await scanFile(node, file);
      // Seen with a trust domain: an untrusted peer, recorded where the operator said it is.
      expect(peerOf()).toMatchObject({
        trust_domain: 'org-p.example',
        trust_level: 'untrusted',
        endpoint: expected,
      });
      const shown = parseJson<NodeReport>(await node.cli(['nodes', 'show', 'node-p', '--json']));
      expect(shown).toMatchObject({ trustDomain: 'org-p.example', endpoint: expected });
    }
    // The operator moves it by hand: that holds against the file too.
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-p', '--endpoint', 'https://10.0.0.6:8443']),
    );
    await scanFile(node, file);
    expect(peerOf()).toMatchObject({ endpoint: 'https://10.0.0.6:8443' });
    const shown = parseJson<NodeReport>(await node.cli(['nodes', 'show', 'node-p', '--json']));
    expect(shown.endpoint).toBe('https://10.0.0.6:8443');
    expect(shown.sightings.map((item) => [item.source, item.endpoint])).toEqual([
      ['manual', 'https://10.0.0.6:8443'],
      ['file', 'https://10.0.0.50:8443'],
    ]);
  });

  it('a scan that only reads back what was written down does not make it "seen" again: its times stay', async () => {
    const node = await freshNode();
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-s', '--endpoint', 'https://10.0.0.9:8443']),
    );
    const file = nodesFile([{ node_id: 'node-t', endpoint: 'https://10.0.0.10:8443' }]);
    await scanFile(node, file);
    const before = await listJson(node);
    expect(before.map((item) => item.nodeId)).toEqual(['node-s', 'node-t']);

    // Neither the file nor anything on the network was asked: the state file's own entries.
    expectSuccess(await node.cli(['discover', '--method', 'manual']));
    expect(await listJson(node)).toEqual(before);

    // Reading the file again is a new sighting of what it lists.
    await scanFile(node, file);
    const [added, listed] = await listJson(node);
    expect(added).toEqual(before[0]);
    expect((listed?.sightings[0]?.seenAt ?? '') > (before[1]?.sightings[0]?.seenAt ?? '')).toBe(
      true,
    );
  });

  it('`nodes add` after a file keeps both entries; `nodes remove` forgets both', async () => {
    const node = await freshNode();
    const file = nodesFile([{ node_id: 'node-r', endpoint: 'https://10.0.0.7:8443' }]);
    await scanFile(node, file);
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-r', '--endpoint', 'https://10.0.0.8:8443']),
    );
    await scanFile(node, file);
    const sightings = () =>
      (stateRows(node.state).node_sightings as Array<{ source: string; endpoint: string }>)
        .map((row) => `${row.source} ${row.endpoint}`)
        .sort();
    expect(sightings()).toEqual(['file https://10.0.0.7:8443', 'manual https://10.0.0.8:8443']);
    const [listed] = await listJson(node);
    expect(listed).toMatchObject({ endpoint: 'https://10.0.0.8:8443', via: ['manual'] });

    expectSuccess(await node.cli(['nodes', 'remove', 'node-r']));
    expect(sightings()).toEqual([]);
    expectRefusal(await node.cli(['nodes', 'show', 'node-r']), 4);
  });
});

describe('nodes health, against real daemons', () => {
  it('a trusted running peer: online with its latency, recorded for `nodes list`', async () => {
    const { a } = fed;
    const started = performance.now();
    const result = await a.cli(['nodes', 'health', 'node-b', '--json']);
    const elapsed = performance.now() - started;
    const [report, ...others] = parseJson<HealthReport[]>(result);
    expect(others).toEqual([]);
    expect(Object.keys(report ?? {}).sort()).toEqual([
      'checkedAt',
      'detail',
      'latencyMs',
      'nodeId',
      'status',
    ]);
    expect(report).toMatchObject({ nodeId: 'node-b', status: 'online', detail: null });
    // Milliseconds, measured within the command's own run.
    expect(report?.latencyMs).toBeGreaterThan(0);
    expect(report?.latencyMs).toBeLessThan(elapsed);
    expect(report?.checkedAt).toMatch(ISO);
    // The daemon answered it, to node-a.
    const logged = await fed.daemonB.waitForLog(
      (entry) => entry.msg === 'request' && entry.path === '/api/v2/federation/health',
    );
    expect(logged).toMatchObject({ status: 200, peer: 'spiffe://org-a.example/sark/node/node-a' });

    const [listed] = (await listJson(a)).filter((item) => item.nodeId === 'node-b');
    expect(listed?.health).toEqual({
      status: 'online',
      latencyMs: report?.latencyMs,
      detail: null,
      checkedAt: report?.checkedAt,
    });
    expect(stateRows(a.state).node_health).toEqual([
      expect.objectContaining({ node_id: 'node-b', status: 'online' }),
    ]);

    // In a pipe: node, health, latency, detail.
    const [row] = rows(await a.cli(['nodes', 'health', 'node-b']));
    expect(row?.slice(0, 2)).toEqual(['node-b', 'online']);
    expect(row?.[2]).toMatch(/^\d+(\.\d)? ms$/);
  });

  it('trust establish of a node added by hand uses its endpoint and the fingerprint given to nodes add', async () => {
    const node = await freshNode();
    await addAnchor(node, cas.b.certPath);
    const { b } = fed;
    const right = opensslFingerprint(b.certPath);
    const wrong = 'cd'.repeat(32);
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-b', '--endpoint', b.endpoint, '--fingerprint', wrong]),
    );
    const before = stateRows(node.state);
    const refused = await node.cli(['trust', 'establish', 'node-b']);
    expectRefusal(refused, 3, { message: new RegExp(right) });
    expect(stateRows(node.state)).toEqual(before);

    expectSuccess(
      await node.cli(['nodes', 'add', 'node-b', '--endpoint', b.endpoint, '--fingerprint', right]),
    );
    expectSuccess(await node.cli(['trust', 'establish', 'node-b']));
    const [peer] = (await listJson(node)).filter((item) => item.nodeId === 'node-b');
    expect(peer).toMatchObject({ trust: 'trusted', fingerprint: right, trustDomain: TD_B });
    // node-b now records this copy's endpoint for node-a: give it node-a's real one back, as the
    // tests after this one expect.
    expectSuccess(await fed.a.cli(['trust', 'establish', 'node-b', '--fingerprint', right]));
  });

  it('an unknown node among the arguments: exit 4 before asking anyone, nothing recorded', async () => {
    const { a } = fed;
    const before = stateRows(a.state);
    expectRefusal(await a.cli(['nodes', 'health', 'node-b', 'node-q']), 4, {
      message: /^no node node-q is known here$/,
      hint: /nodes list/,
    });
    expect(stateRows(a.state)).toEqual(before);
  });

  it('a node where nothing listens: offline, recorded, and exit 5', async () => {
    const node = await freshNode();
    const port = await freePort();
    expectSuccess(
      await node.cli(['nodes', 'add', 'node-z', '--endpoint', `https://127.0.0.1:${port}`]),
    );
    const result = await node.cli(['nodes', 'health', 'node-z', '--json']);
    expect(result.code, result.stderr).toBe(5);
    const [report] = JSON.parse(result.stdout) as HealthReport[];
    expect(report).toMatchObject({ nodeId: 'node-z', status: 'offline', latencyMs: null });
    // The code once: Node's "connect ECONNREFUSED 127.0.0.1:<port>" repeats the endpoint.
    expect(report?.detail).toBe(`cannot reach https://127.0.0.1:${port} (ECONNREFUSED)`);
    expect(jsonError(result)).toMatchObject({ code: 'NODES_OFFLINE', exitCode: 5 });
    expect(jsonError(result).message).toMatch(/^1 of 1 node did not answer: node-z$/);
    const [listed] = await listJson(node);
    expect(listed?.health).toMatchObject({ status: 'offline', latencyMs: null });

    // Without --json: the row on stdout, the error and its hint on stderr.
    const plain = await node.cli(['nodes', 'health', 'node-z']);
    expect(plain.code).toBe(5);
    expect(plain.stdout.split('\t').slice(0, 3)).toEqual(['node-z', 'offline', '-']);
    expect(plain.stderr).toMatch(/^error: 1 of 1 node did not answer: node-z\nhint: .*serve/);
  });

  it('--timeout 1s: servers that accept TCP but never answer are offline once it passes, asked concurrently', async () => {
    const node = await freshNode();
    await Promise.all([
      node.cli(['nodes', 'add', 'node-h1', '--endpoint', silent.endpoint]),
      node.cli(['nodes', 'add', 'node-h2', '--endpoint', silent.endpoint]),
    ]).then((results) => results.forEach(expectSuccess));
    const acceptedBefore = silent.acceptedAt.length;
    const started = performance.now();
    const result = await node.cli(['nodes', 'health', '--timeout', '1s', '--json']);
    const elapsed = performance.now() - started;
    expect(result.code, result.stderr).toBe(5);
    // The command waited for the timeout (how much longer depends on the machine's load, which
    // is for benchmarks, not tests, to judge).
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    const reports = JSON.parse(result.stdout) as HealthReport[];
    expect(reports.map((item) => [item.nodeId, item.status])).toEqual([
      ['node-h1', 'offline'],
      ['node-h2', 'offline'],
    ]);
    for (const item of reports) expect(item.detail).toMatch(/did not answer in time/);
    // Asked concurrently: both connections were open before either check gave up. One after the
    // other, the second would have connected only once the first had given up.
    const accepted = silent.acceptedAt.slice(acceptedBefore);
    expect(accepted).toHaveLength(2);
    const firstGaveUp = Math.min(...reports.map((item) => Date.parse(item.checkedAt)));
    expect(Math.max(...accepted)).toBeLessThan(firstGaveUp);
    expect(jsonError(result).message).toMatch(/2 of 2 nodes did not answer: node-h1, node-h2/);
  });

  it('a peer whose certificate is not the pinned one: degraded, and exit 0', async () => {
    const { a, b, impostor } = fed;
    // The operator records that node-b moved: to where the impostor serves.
    expectSuccess(await a.cli(['nodes', 'add', 'node-b', '--endpoint', impostor.endpoint]));
    try {
      const [moved] = (await listJson(a)).filter((item) => item.nodeId === 'node-b');
      expect(moved).toMatchObject({ endpoint: impostor.endpoint, trust: 'trusted' });
      const result = await a.cli(['nodes', 'health', 'node-b', '--json']);
      const [report] = parseJson<HealthReport[]>(result);
      expect(report).toMatchObject({
        nodeId: 'node-b',
        status: 'degraded',
        detail: 'its certificate does not match the pinned fingerprint',
      });
      expect(report?.latencyMs).toBeGreaterThan(0);
      const [listed] = (await listJson(a)).filter((item) => item.nodeId === 'node-b');
      expect(listed?.health?.status).toBe('degraded');
      // Trust is untouched by a health check.
      expect(listed).toMatchObject({ trust: 'trusted', fingerprint: b.fingerprint });
    } finally {
      expectSuccess(await a.cli(['nodes', 'add', 'node-b', '--endpoint', b.endpoint]));
    }
    const [back] = parseJson<HealthReport[]>(await a.cli(['nodes', 'health', 'node-b', '--json']));
    expect(back?.status).toBe('online');
  });

  it('a node whose certificate names another node: degraded', async () => {
    const node = await freshNode();
    await addAnchor(node, cas.b.certPath);
    expectSuccess(await node.cli(['nodes', 'add', 'node-q', '--endpoint', fed.b.endpoint]));
    const [report] = parseJson<HealthReport[]>(await node.cli(['nodes', 'health', '--json']));
    expect(report).toMatchObject({
      nodeId: 'node-q',
      status: 'degraded',
      detail: 'its certificate names node-b',
    });
  });

  it('removing a trusted peer keeps its trust decision and says so', async () => {
    const { a } = fed;
    const peerBefore = (stateRows(a.state).peers as Array<Record<string, unknown>>).find(
      (row) => row.node_id === 'node-b',
    );
    const result = await a.cli(['nodes', 'remove', 'node-b', '--json']);
    expect(parseJson<unknown>(result)).toEqual({
      nodeId: 'node-b',
      removed: true,
      trustKept: 'trusted',
    });
    expect(result.stderr).toMatch(
      /its trust decision \(trusted\) stays; `sark-fed trust revoke node-b` ends it/,
    );
    const after = stateRows(a.state);
    expect(after.peers).toContainEqual(peerBefore);
    expect(after.node_health).toEqual([]);
    expect(after.node_sightings).toEqual([]);
    const [listed] = (await listJson(a)).filter((item) => item.nodeId === 'node-b');
    expect(listed).toMatchObject({
      trust: 'trusted',
      health: null,
      via: [],
      endpoint: fed.b.endpoint,
    });
  });

  it('removing a revoked node keeps its revocation, and says how trust comes back', async () => {
    const node = await freshNode();
    expectSuccess(
      await node.cli([
        'nodes',
        'add',
        'node-r',
        '--endpoint',
        'https://127.0.0.1:9',
        '--fingerprint',
        FP,
      ]),
    );
    // Known, never met: nothing to show, approve or revoke yet (exit 4), and it says why.
    for (const args of [
      ['trust', 'show', 'node-r'],
      ['--yes', 'trust', 'revoke', 'node-r'],
    ]) {
      const before = stateRows(node.state);
      expectRefusal(await node.cli(args), 4, {
        message: 'node-r is known here but trust was never established with it',
        hint: 'establish it first: sark-fed trust establish node-r',
      });
      expect(stateRows(node.state)).toEqual(before);
    }
    // A copy of node-a, which trusts node-b: revoked, then removed.
    const a = nodeCopy(fed.a);
    expectSuccess(await a.cli(['--yes', 'trust', 'revoke', 'node-b', '--no-notify']));
    const result = await a.cli(['nodes', 'remove', 'node-b', '--json']);
    expect(parseJson<unknown>(result)).toMatchObject({ nodeId: 'node-b', trustKept: 'revoked' });
    expect(result.stderr).toContain(
      'its revocation stays: found again, it is not trusted until `sark-fed trust establish node-b`',
    );
  });

  it('removing a peer that revoked this node keeps the record of that revocation', async () => {
    const { a, b, daemonA } = fed;
    // node-b revokes node-a and tells node-a's daemon, which records node-b as untrusted.
    expectSuccess(await b.cli(['--yes', 'trust', 'revoke', 'node-a', '--reason', 'rotation']));
    await daemonA.waitForLog((entry) => entry.msg === 'peer revoked this node');
    const peerBefore = (stateRows(a.state).peers as Array<Record<string, unknown>>).find(
      (row) => row.node_id === 'node-b',
    );
    expect(peerBefore).toMatchObject({
      trust_level: 'untrusted',
      revoke_reason: 'revoked by the peer: rotation',
    });

    const result = await a.cli(['nodes', 'remove', 'node-b', '--json']);
    expect(parseJson<unknown>(result)).toEqual({
      nodeId: 'node-b',
      removed: true,
      trustKept: 'untrusted',
    });
    expect(result.stderr).toContain(
      'the record that it revoked this node stays (`sark-fed trust show node-b`)',
    );
    expect(result.stderr).not.toContain('trust revoke');
    expect(stateRows(a.state).peers).toContainEqual(peerBefore);
  });
});
