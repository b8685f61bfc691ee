import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  expectRefusal,
  expectSuccess,
  fileDigest,
  listDir,
  modeOf,
  runCli,
  tempDir,
  type RunOptions,
  type RunResult,
} from '../helpers/cli.js';
import {
  issueLeafWithOpenssl,
  normalizeOpensslFingerprint,
  opensslOk,
} from '../helpers/openssl.js';
import { createCa, issueNode, type CaFixture, type NodeFixture } from '../helpers/pki.js';

/** The JSON shape of `status --json` and `init --json`. */
interface IdentityReport {
  nodeId: string;
  trustDomain: string;
  spiffeId: string;
  endpoint: string | null;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  expiresInDays: number;
  expired: boolean;
  keyPath: string;
  statePath: string;
  counts: { anchors: number; revocationLists: number; peers: Record<string, number> };
  keyProblem: { code: string; message: string } | null;
  daemon: { state: string; pid: number | null; unclean: boolean };
}

const REPORT_KEYS = [
  'counts',
  'crlDueFirst',
  'daemon',
  'endpoint',
  'expired',
  'expiresInDays',
  'fingerprint',
  'keyPath',
  'keyProblem',
  'nodeId',
  'notAfter',
  'notBefore',
  'spiffeId',
  'statePath',
  'trustDomain',
];

const TD = 'org-a.example';

let root: string;
let ca: CaFixture;
let nodeA: NodeFixture;
let nodeB: NodeFixture;
/** A valid state file holding node-a's identity; refusals run against copies of it. */
let baseState: string;

function initArgs(node: NodeFixture, nodeId: string, trustDomain = TD): string[] {
  return [
    'init',
    '--node-id',
    nodeId,
    '--trust-domain',
    trustDomain,
    '--cert',
    node.certPath,
    '--key',
    node.keyPath,
  ];
}

function parseReport(result: RunResult): IdentityReport {
  expectSuccess(result);
  const report = JSON.parse(result.stdout) as IdentityReport;
  expect(Object.keys(report).sort()).toEqual(REPORT_KEYS);
  return report;
}

function opensslFingerprint(certPath: string): string {
  return normalizeOpensslFingerprint(
    opensslOk(['x509', '-in', certPath, '-noout', '-fingerprint', '-sha256']),
  );
}

let copies = 0;
/** A copy of the base state file in a folder of its own. */
function stateCopy(): string {
  const dir = join(root, `state-${++copies}`);
  mkdirSync(dir, { mode: 0o700 });
  const path = join(dir, 'state.db');
  copyFileSync(baseState, path);
  chmodSync(path, 0o600);
  return path;
}

/** What a refused command must leave behind: the same bytes, and no new files beside them. */
function snapshot(statePath: string): { digest: string; files: string[] } {
  return { digest: fileDigest(statePath), files: listDir(dirname(statePath)) };
}

async function expectRefusedUntouched(
  args: string[],
  statePath: string,
  exitCode: number,
  expected: { message?: RegExp | string; hint?: RegExp | string } = {},
  options: RunOptions = {},
): Promise<{ message: string; hint: string }> {
  const before = snapshot(statePath);
  const result = await runCli(['--state', statePath, ...args], options);
  const refusal = expectRefusal(result, exitCode, expected);
  expect(snapshot(statePath)).toEqual(before);
  return refusal;
}

beforeAll(async () => {
  root = tempDir();
  ca = await createCa(join(root, 'ca'), ['--trust-domain', TD]);
  [nodeA, nodeB] = await Promise.all([
    issueNode(ca.dir, 'node-a', join(root, 'node-a'), ['--ip', '127.0.0.1']),
    issueNode(ca.dir, 'node-b', join(root, 'node-b')),
  ]);
  baseState = join(root, 'base', 'state.db');
  expectSuccess(await runCli(['--state', baseState, ...initArgs(nodeA, 'node-a')]));
});

describe.concurrent('init and status', () => {
  let statePath: string;
  let initResult: RunResult;

  beforeAll(async () => {
    statePath = join(root, 'happy', 'nested', 'state.db');
    initResult = await runCli([
      '--state',
      statePath,
      ...initArgs(nodeA, 'node-a'),
      '--endpoint',
      'https://127.0.0.1:8443/',
    ]);
  });

  it('records the identity in a 0600 state file inside 0700 folders it creates', () => {
    expectSuccess(initResult);
    expect(initResult.stderr).toBe(
      `✓ initialised spiffe://${TD}/sark/node/node-a in ${statePath}\n`,
    );
    expect(modeOf(statePath)).toBe(0o600);
    expect(modeOf(dirname(statePath))).toBe(0o700);
    expect(modeOf(join(root, 'happy'))).toBe(0o700);
    // Closed cleanly: no WAL or shared-memory file is left next to it.
    expect(listDir(dirname(statePath))).toEqual(['state.db']);
  });

  it('shows it with status as label<TAB>value lines when stdout is not a terminal', async () => {
    const result = await runCli(['--state', statePath, 'status']);
    expectSuccess(result);
    expect(result.stderr).toBe('');
    const lines = result.stdout.trimEnd().split('\n');
    const fields = lines.map((line) => line.split('\t'));
    expect(fields.every((field) => field.length === 2)).toBe(true);
    expect(fields.map(([label]) => label)).toEqual([
      'Node',
      'Trust domain',
      'SPIFFE ID',
      'Endpoint',
      'Fingerprint',
      'Expires',
      'Key',
      'State',
      'Anchors',
      'Peers',
      'Daemon',
    ]);
    const values = new Map(fields as Array<[string, string]>);
    expect(values.get('Node')).toBe('node-a');
    expect(values.get('Trust domain')).toBe(TD);
    expect(values.get('SPIFFE ID')).toBe(`spiffe://${TD}/sark/node/node-a`);
    expect(values.get('Endpoint')).toBe('https://127.0.0.1:8443');
    expect(values.get('Fingerprint')).toBe(opensslFingerprint(nodeA.certPath));
    expect(values.get('Expires')).toMatch(/^\d{4}-.*Z \(in 364 days\)$/);
    expect(values.get('Key')).toBe(nodeA.keyPath);
    expect(values.get('State')).toBe(statePath);
    expect(values.get('Anchors')).toBe('0 (0 CRLs)');
    expect(values.get('Peers')).toBe('0 trusted, 0 pending, 0 untrusted, 0 revoked');
    expect(values.get('Daemon')).toBe('not running');
    // The pipe form printed by init is the same record.
    expect(initResult.stdout).toBe(result.stdout);
  });

  it('prints the documented JSON shape with status --json', async () => {
    const report = parseReport(await runCli(['--state', statePath, 'status', '--json']));
    const notAfter = opensslOk(['x509', '-in', nodeA.certPath, '-noout', '-enddate'])
      .trim()
      .replace(/^notAfter=/, '');
    expect(report).toEqual({
      nodeId: 'node-a',
      trustDomain: TD,
      spiffeId: `spiffe://${TD}/sark/node/node-a`,
      endpoint: 'https://127.0.0.1:8443',
      fingerprint: opensslFingerprint(nodeA.certPath),
      notBefore: expect.stringMatching(/Z$/),
      notAfter: new Date(notAfter).toISOString(),
      expiresInDays: 364,
      expired: false,
      keyPath: nodeA.keyPath,
      statePath,
      counts: {
        anchors: 0,
        revocationLists: 0,
        peers: { trusted: 0, pending: 0, untrusted: 0, revoked: 0 },
      },
      keyProblem: null,
      daemon: {
        state: 'stopped',
        pid: null,
        host: null,
        since: null,
        unclean: false,
        listening: null,
      },
      crlDueFirst: null,
    });
  });

  it('status reads the key again: one changed since init is reported, and it still exits 0', async () => {
    const dir = join(root, 'key-changed');
    cpSync(nodeA.dir, dir, { recursive: true });
    const node = { ...nodeA, certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem') };
    const path = join(root, 'key-changed-state', 'state.db');
    expectSuccess(await runCli(['--state', path, ...initArgs(node, 'node-a')]));

    chmodSync(node.keyPath, 0o644);
    const loose = await runCli(['--state', path, 'status', '--json']);
    expect(parseReport(loose).keyProblem).toMatchObject({ code: 'KEY_PERMISSIONS' });
    expect(loose.stderr).toMatch(
      /^warning: the node key cannot be used: key file .* \(mode 0644\); serve and calls to peers will fail$/m,
    );

    rmSync(node.keyPath);
    const gone = await runCli(['--state', path, 'status']);
    expectSuccess(gone);
    expect(gone.stderr).toMatch(
      /warning: the node key cannot be used: cannot read key file .* \(ENOENT\)/,
    );
    // serve takes no --key: the hint says where the key comes from.
    await expectRefusedUntouched(['serve', '--listen', '127.0.0.1:0'], path, 2, {
      message: /^cannot read key file .*key\.pem \(ENOENT\)$/,
      hint: /^the key `sark-fed init` recorded is gone: .*run `sark-fed init` again/,
    });

    // Another key put in its place.
    cpSync(nodeB.keyPath, node.keyPath);
    chmodSync(node.keyPath, 0o600);
    const other = await runCli(['--state', path, 'status', '--json']);
    expect(parseReport(other).keyProblem).toEqual({
      code: 'KEY_MISMATCH',
      message: `${node.keyPath} is no longer the key of this node's certificate`,
    });

    // The daemon and every command that talks to peers refuse it before anything is sent (it
    // failed inside TLS, looked like the peer's fault, and opened the peer's circuit), exit 3,
    // writing nothing. Nothing listens on port 1: a connection attempt would exit 5.
    const mismatch = {
      message: `${node.keyPath} is no longer the key of this node's certificate`,
      hint: /^the key file changed since `sark-fed init`.*run `sark-fed init` again with the new --cert and --key$/,
    };
    for (const args of [
      ['serve', '--listen', '127.0.0.1:0'],
      ['serve', '--listen', '127.0.0.1:0', '--check'],
      ['trust', 'establish', 'https://127.0.0.1:1', '--fingerprint', 'ab'.repeat(32)],
      ['invoke', 'echo', 'echo', '--node', 'node-b', '--args', '1'],
      ['route', 'echo'],
    ]) {
      await expectRefusedUntouched(args, path, 3, mismatch);
    }
  });

  it('prints the same shape from init --json, and endpoint null without --endpoint', async () => {
    const path = join(root, 'json-init', 'state.db');
    const report = parseReport(
      await runCli(['--json', '--state', path, ...initArgs(nodeB, 'node-b')]),
    );
    expect(report).toMatchObject({ nodeId: 'node-b', endpoint: null, statePath: path });
  });
});

describe.concurrent('where the state file is', () => {
  /** One identity per location, told apart by endpoint. */
  const places = ['flag', 'state', 'home', 'xdg', 'dothome'] as const;
  type Place = (typeof places)[number];
  let paths: Record<Place, string>;
  let env: Record<string, string>;

  beforeAll(async () => {
    const base = join(root, 'where');
    env = {
      SARK_FED_STATE: join(base, 'env-state', 'state.db'),
      SARK_FED_HOME: join(base, 'sark-home'),
      XDG_STATE_HOME: join(base, 'xdg'),
      HOME: join(base, 'home'),
    };
    mkdirSync(env.HOME as string, { recursive: true });
    paths = {
      flag: join(base, 'flag', 'state.db'),
      state: env.SARK_FED_STATE as string,
      home: join(env.SARK_FED_HOME as string, 'state.db'),
      xdg: join(env.XDG_STATE_HOME as string, 'sark-fed', 'state.db'),
      dothome: join(env.HOME as string, '.local', 'state', 'sark-fed', 'state.db'),
    };
    // init itself follows the same precedence: each run drops the stronger settings.
    const runs: Array<[Place, string[], Record<string, string | undefined>]> = [
      ['flag', ['--state', paths.flag], env],
      ['state', [], env],
      ['home', [], { ...env, SARK_FED_STATE: undefined }],
      ['xdg', [], { ...env, SARK_FED_STATE: undefined, SARK_FED_HOME: undefined }],
      [
        'dothome',
        [],
        {
          ...env,
          SARK_FED_STATE: undefined,
          SARK_FED_HOME: undefined,
          XDG_STATE_HOME: undefined,
        },
      ],
    ];
    for (let index = 0; index < runs.length; index += 2) {
      const results = await Promise.all(
        runs
          .slice(index, index + 2)
          .map(([place, flags, runEnv]) =>
            runCli(
              [...flags, ...initArgs(nodeA, 'node-a'), '--endpoint', `https://${place}.example:1`],
              { env: runEnv },
            ),
          ),
      );
      for (const result of results) expectSuccess(result);
    }
  });

  it('creates the file where the precedence says, each in a fresh 0700 folder', () => {
    for (const place of places) {
      expect(existsSync(paths[place]), place).toBe(true);
      expect(modeOf(paths[place]), place).toBe(0o600);
      expect(modeOf(dirname(paths[place])), place).toBe(0o700);
    }
    // SARK_FED_HOME is the folder itself; XDG_STATE_HOME and HOME get a sark-fed folder.
    expect(modeOf(join(root, 'where', 'xdg'))).toBe(0o700);
    expect(modeOf(join(root, 'where', 'home', '.local', 'state'))).toBe(0o700);
  });

  it.each([
    ['--state beats SARK_FED_STATE', 'flag', true, {}],
    ['SARK_FED_STATE beats SARK_FED_HOME', 'state', false, {}],
    ['SARK_FED_HOME beats XDG_STATE_HOME', 'home', false, { SARK_FED_STATE: undefined }],
    [
      'XDG_STATE_HOME beats HOME',
      'xdg',
      false,
      { SARK_FED_STATE: undefined, SARK_FED_HOME: undefined },
    ],
    [
      'HOME/.local/state is the last resort',
      'dothome',
      false,
      { SARK_FED_STATE: undefined, SARK_FED_HOME: undefined, XDG_STATE_HOME: undefined },
    ],
  ] as const)('%s', async (_label, place, withFlag, overrides) => {
    const args = withFlag ? ['--state', paths.flag, 'status', '--json'] : ['status', '--json'];
    const report = parseReport(await runCli(args, { env: { ...env, ...overrides } }));
    expect(report.statePath).toBe(paths[place]);
    expect(report.endpoint).toBe(`https://${place}.example:1`);
  });
});

describe.concurrent('FEDERATION_* fallbacks', () => {
  it('takes node ID, certificate and key from FEDERATION_* when the flags are absent', async () => {
    const path = join(root, 'fallback', 'state.db');
    const report = parseReport(
      await runCli(['--json', '--state', path, 'init', '--trust-domain', TD], {
        env: {
          FEDERATION_NODE_ID: 'node-b',
          FEDERATION_NODE_CERT_PATH: nodeB.certPath,
          FEDERATION_NODE_KEY_PATH: nodeB.keyPath,
        },
      }),
    );
    expect(report).toMatchObject({
      nodeId: 'node-b',
      keyPath: nodeB.keyPath,
      fingerprint: opensslFingerprint(nodeB.certPath),
    });
  });

  it('lets the flags beat FEDERATION_*', async () => {
    const path = join(root, 'fallback-flags', 'state.db');
    const report = parseReport(
      await runCli(['--json', '--state', path, ...initArgs(nodeA, 'node-a')], {
        env: {
          FEDERATION_NODE_ID: 'node-b',
          FEDERATION_NODE_CERT_PATH: nodeB.certPath,
          FEDERATION_NODE_KEY_PATH: nodeB.keyPath,
        },
      }),
    );
    expect(report).toMatchObject({
      nodeId: 'node-a',
      keyPath: nodeA.keyPath,
      fingerprint: opensslFingerprint(nodeA.certPath),
    });
  });

  it('names the variable when a value it gave is refused (the operator did not type it)', async () => {
    const path = join(root, 'fallback-bad', 'state.db');
    const env = {
      FEDERATION_NODE_ID: 'Node_B',
      FEDERATION_NODE_CERT_PATH: nodeB.certPath,
      FEDERATION_NODE_KEY_PATH: nodeB.keyPath,
    };
    expectRefusal(await runCli(['--state', path, 'init', '--trust-domain', TD], { env }), 2, {
      message: 'invalid node ID "Node_B" (from FEDERATION_NODE_ID)',
      hint: /lowercase letters/,
    });
    // Typed on the command line, the same value is refused in the same words, without it.
    expectRefusal(
      await runCli(['--state', path, 'init', '--trust-domain', TD, '--node-id', 'Node_B'], { env }),
      2,
      { message: /^invalid node ID "Node_B"$/ },
    );
    expect(existsSync(path)).toBe(false);
    expectRefusal(
      await runCli(
        ['--state', path, 'discover', '--method', 'dns-sd', '--domain', 'example.test'],
        {
          env: { FEDERATION_DNS_NAMESERVER: 'bad host' },
        },
      ),
      2,
      { message: 'invalid nameserver "bad host" (from FEDERATION_DNS_NAMESERVER)' },
    );
  });

  it('takes an empty FEDERATION_* for an unset one (as `VAR=` in an env file means)', async () => {
    const path = join(root, 'fallback-empty', 'state.db');
    const report = parseReport(
      await runCli(['--json', '--state', path, ...initArgs(nodeA, 'node-a')], {
        env: { FEDERATION_CA_CERT_PATH: '' },
      }),
    );
    // No CA given, so no anchor: not a failure to read a file named "".
    expect(report).toMatchObject({ nodeId: 'node-a', counts: { anchors: 0 } });
    // A mandatory option with an empty variable is missing, as without it.
    const missing = await runCli(
      ['--json', '--state', join(root, 'fallback-empty-id', 'state.db'), 'init'],
      {
        env: {
          FEDERATION_NODE_ID: '',
          FEDERATION_NODE_CERT_PATH: nodeA.certPath,
          FEDERATION_NODE_KEY_PATH: nodeA.keyPath,
        },
      },
    );
    expect(missing.code, missing.stderr).toBe(2);
    expect(JSON.parse(missing.stderr.trim())).toMatchObject({
      error: {
        code: 'usage.missingMandatoryOptionValue',
        message: "required option '--node-id <id>' not specified",
      },
    });
  });
});

describe.concurrent("the organization's own CA (init --ca, FEDERATION_CA_CERT_PATH)", () => {
  it('records the CA as the anchor of the node’s trust domain', async () => {
    const path = join(root, 'own-ca', 'state.db');
    const report = parseReport(
      await runCli(['--json', '--state', path, ...initArgs(nodeA, 'node-a'), '--ca', ca.certPath]),
    );
    expect(report.counts.anchors).toBe(1);
    const anchors = await runCli(['--json', '--state', path, 'trust', 'anchor', 'list']);
    expectSuccess(anchors);
    expect(JSON.parse(anchors.stdout)).toEqual([
      expect.objectContaining({ trustDomain: TD, fingerprint: opensslFingerprint(ca.certPath) }),
    ]);
  });

  it('takes the CA from FEDERATION_CA_CERT_PATH when --ca is absent', async () => {
    const path = join(root, 'own-ca-env', 'state.db');
    const report = parseReport(
      await runCli(['--json', '--state', path, ...initArgs(nodeA, 'node-a')], {
        env: { FEDERATION_CA_CERT_PATH: ca.certPath },
      }),
    );
    expect(report.counts.anchors).toBe(1);
  });

  it('refuses a --chain that did not issue the certificate (exit 3), naming the chain file', async () => {
    const other = await createCa(join(root, 'other-chain-ca'), ['--trust-domain', TD]);
    await expectRefusedUntouched(
      [...initArgs(nodeA, 'node-a'), '--chain', other.certPath],
      stateCopy(),
      3,
      {
        message: `certificate 1 of ${nodeA.certPath} is not signed by certificate 1 of ${other.certPath}`,
        hint: /leaf first, each certificate followed by its issuer/,
      },
    );
  });

  it('refuses a CA that did not issue the node certificate (exit 3), writing nothing', async () => {
    const other = await createCa(join(root, 'other-ca'), ['--trust-domain', TD]);
    const statePath = stateCopy();
    await expectRefusedUntouched(
      [...initArgs(nodeA, 'node-a'), '--ca', other.certPath, '--yes'],
      statePath,
      3,
      { message: /does not chain to/, hint: /ca\.pem of the CA that issued/ },
    );
  });
});

describe.concurrent('init refusals leave the state file as it was', () => {
  it.each([
    ['--node-id', /--node-id/],
    ['--trust-domain', /--trust-domain/],
    ['--cert', /--cert/],
    ['--key', /--key/],
  ])('refuses a missing %s with exit 2', async (flag, message) => {
    const args = initArgs(nodeA, 'node-a');
    args.splice(args.indexOf(flag), 2);
    const statePath = join(root, `missing${flag}`, 'state.db');
    await expectRefusedUntouched(args, statePath, 2, { message, hint: /init --help/ });
    expect(existsSync(dirname(statePath))).toBe(false);
  });

  it('refuses an unknown flag with exit 2', async () => {
    await expectRefusedUntouched([...initArgs(nodeA, 'node-a'), '--nodeid', 'x'], stateCopy(), 2, {
      message: /unknown option '--nodeid'/,
      hint: /did you mean --node-id/,
    });
    // A required option mistyped: the typo is named, not the option "missing".
    const typo = initArgs(nodeA, 'node-a');
    typo[typo.indexOf('--node-id')] = '--nodeid';
    await expectRefusedUntouched(typo, stateCopy(), 2, {
      message: "unknown option '--nodeid'",
      hint: 'did you mean --node-id? see `sark-fed init --help`',
    });
  });

  it('refuses a key that is not the certificate’s (exit 3)', async () => {
    const args = initArgs(nodeA, 'node-a');
    args[args.indexOf('--key') + 1] = nodeB.keyPath;
    await expectRefusedUntouched(args, stateCopy(), 3, {
      message: `${nodeB.keyPath} is not the key of ${nodeA.certPath}`,
    });
  });

  it('refuses a certificate issued to another node (exit 3)', async () => {
    await expectRefusedUntouched(initArgs(nodeB, 'node-a'), stateCopy(), 3, {
      message: `${nodeB.certPath} names spiffe://${TD}/sark/node/node-b, not spiffe://${TD}/sark/node/node-a`,
      hint: /--node-id and --trust-domain/,
    });
  });

  it('refuses a certificate of another trust domain (exit 3)', async () => {
    await expectRefusedUntouched(initArgs(nodeA, 'node-a', 'org-b.example'), stateCopy(), 3, {
      message: /names spiffe:\/\/org-a\.example\/sark\/node\/node-a, not spiffe:\/\/org-b\.example/,
    });
  });

  it('refuses a CA certificate as a node certificate (exit 3)', async () => {
    const args = [
      'init',
      '--node-id',
      'node-a',
      '--trust-domain',
      TD,
      '--cert',
      ca.certPath,
      '--key',
      ca.keyPath,
    ];
    await expectRefusedUntouched(args, stateCopy(), 3, {
      message: /is not a node certificate: it is a CA certificate/,
    });
  });

  it('refuses a key readable by its group (exit 2, chmod 600 hint)', async () => {
    const dir = join(root, 'open-key');
    cpSync(nodeA.dir, dir, { recursive: true });
    chmodSync(join(dir, 'key.pem'), 0o640);
    const node = { ...nodeA, certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem') };
    await expectRefusedUntouched(initArgs(node, 'node-a'), stateCopy(), 2, {
      message: /mode 0640/,
      hint: `run: chmod 600 ${node.keyPath}`,
    });
  });

  it('names what a --key file holds when it is no usable key, before looking at its mode (exit 2)', async () => {
    const dir = join(root, 'wrong-keys');
    mkdirSync(dir);
    // The certificate given as the key (a swap), world-readable as certificates are.
    const asKey = { ...nodeA, keyPath: nodeA.certPath };
    await expectRefusedUntouched(initArgs(asKey, 'node-a'), stateCopy(), 2, {
      message: new RegExp(
        `^${nodeA.certPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} holds a certificate, not a private key$`,
      ),
      hint: 'give --key the key file (key.pem beside the certificate)',
    });
    // The node's key, encrypted with a passphrase.
    const encrypted = join(dir, 'encrypted.pem');
    const made = spawnSync('openssl', [
      'pkey',
      '-in',
      nodeA.keyPath,
      '-aes256',
      '-passout',
      'pass:secret',
      '-out',
      encrypted,
    ]);
    expect(made.status, made.stderr?.toString()).toBe(0);
    chmodSync(encrypted, 0o600);
    await expectRefusedUntouched(
      initArgs({ ...nodeA, keyPath: encrypted }, 'node-a'),
      stateCopy(),
      2,
      {
        message: /encrypted\.pem is an encrypted private key$/,
        hint: /^sark-fed reads keys without a passphrase: openssl pkey -in /,
      },
    );
  });

  it('refuses an expired certificate (exit 3)', async () => {
    const dir = join(root, 'expired');
    mkdirSync(dir);
    const { certPath, keyPath } = issueLeafWithOpenssl({
      caDir: ca.dir,
      outDir: dir,
      spiffeId: `spiffe://${TD}/sark/node/node-a`,
      subject: `/CN=node-a/O=${TD}`,
      startDate: '20200101000000Z',
      endDate: '20200102000000Z',
    });
    // The certificate is otherwise right: openssl finds nothing wrong but the dates.
    const verify = opensslOk(['verify', '-no_check_time', '-CAfile', ca.certPath, certPath], {});
    expect(verify).toContain('OK');
    const node = { ...nodeA, certPath, keyPath };
    await expectRefusedUntouched(initArgs(node, 'node-a'), stateCopy(), 3, {
      message: `${certPath} expired at 2020-01-02T00:00:00.000Z`,
      hint: /pki issue/,
    });
  });

  it('refuses a certificate that is not valid yet (exit 3)', async () => {
    const dir = join(root, 'future');
    mkdirSync(dir);
    const year = new Date().getUTCFullYear() + 2;
    const { certPath, keyPath } = issueLeafWithOpenssl({
      caDir: ca.dir,
      outDir: dir,
      spiffeId: `spiffe://${TD}/sark/node/node-a`,
      subject: `/CN=node-a/O=${TD}`,
      startDate: `${year}0101000000Z`,
      endDate: `${year + 1}0101000000Z`,
    });
    const node = { ...nodeA, certPath, keyPath };
    await expectRefusedUntouched(initArgs(node, 'node-a'), stateCopy(), 3, {
      message: `${certPath} is not valid before ${year}-01-01T00:00:00.000Z`,
    });
  });

  it('refuses to replace the identity without --yes when not interactive; --yes replaces it', async () => {
    const statePath = stateCopy();
    await expectRefusedUntouched(initArgs(nodeB, 'node-b'), statePath, 2, {
      message: `replacing the identity spiffe://${TD}/sark/node/node-a needs confirmation`,
      hint: /--yes/,
    });
    expect(parseReport(await runCli(['--state', statePath, '--json', 'status'])).nodeId).toBe(
      'node-a',
    );

    const replaced = await runCli(['--state', statePath, '--yes', ...initArgs(nodeB, 'node-b')]);
    expectSuccess(replaced);
    const report = parseReport(await runCli(['--state', statePath, '--json', 'status']));
    expect(report).toMatchObject({
      nodeId: 'node-b',
      spiffeId: `spiffe://${TD}/sark/node/node-b`,
      fingerprint: opensslFingerprint(nodeB.certPath),
    });
    expect(modeOf(statePath)).toBe(0o600);
  });

  it('keeps the recorded endpoint when init runs again for the same node without --endpoint', async () => {
    const statePath = join(root, 'renewed', 'state.db');
    const endpoint = 'https://127.0.0.1:8443';
    expectSuccess(
      await runCli(['--state', statePath, ...initArgs(nodeA, 'node-a'), '--endpoint', endpoint]),
    );
    // node-a's certificate issued again (another key, another fingerprint): confirmed with --yes.
    const renewed = await issueNode(ca.dir, 'node-a', join(root, 'renewed-node-a'));
    const again = await runCli(['--state', statePath, '--yes', ...initArgs(renewed, 'node-a')]);
    expectSuccess(again);
    expect(again.stderr).toContain(`kept the endpoint recorded before, ${endpoint} (--endpoint)`);
    const report = parseReport(await runCli(['--state', statePath, '--json', 'status']));
    expect(report).toMatchObject({ endpoint, fingerprint: opensslFingerprint(renewed.certPath) });

    // Another node in its place starts without one.
    const other = await runCli(['--state', statePath, '--yes', ...initArgs(nodeB, 'node-b')]);
    expectSuccess(other);
    expect(other.stderr).not.toContain('kept the endpoint');
    expect(parseReport(await runCli(['--state', statePath, '--json', 'status'])).endpoint).toBe(
      null,
    );
  });

  it('refuses when a state file would be created and the certificate is wrong: no file', async () => {
    const statePath = join(root, 'never', 'state.db');
    await expectRefusedUntouched(initArgs(nodeB, 'node-a'), statePath, 3);
    expect(existsSync(dirname(statePath))).toBe(false);
  });
});

describe.concurrent('state files that are not ours, or damaged, are refused and left alone', () => {
  const commands: Array<[string, () => string[]]> = [
    ['status', () => ['status']],
    ['init', () => initArgs(nodeA, 'node-a')],
  ];

  function textFile(): string {
    const path = join(root, `text-${++copies}`, 'state.db');
    mkdirSync(dirname(path));
    writeFileSync(path, 'node_id = "node-a"\n# not a database\n');
    return path;
  }

  function foreignDatabase(): string {
    const path = join(root, `foreign-${++copies}`, 'state.db');
    mkdirSync(dirname(path));
    const db = new Database(path);
    db.exec('CREATE TABLE recipes (name TEXT PRIMARY KEY, steps TEXT)');
    db.prepare('INSERT INTO recipes VALUES (?, ?)').run('bread', 'knead, wait, bake');
    db.close();
    return path;
  }

  function newerSchema(): string {
    const path = stateCopy();
    const db = new Database(path);
    db.pragma('user_version = 999');
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    expect(listDir(dirname(path))).toEqual(['state.db']);
    return path;
  }

  function corruptPage(): string {
    const path = stateCopy();
    // Page 1 is the 100-byte header, then the b-tree page header of sqlite_schema.
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(8, 0xff), 0, 8, 100);
    closeSync(fd);
    return path;
  }

  function truncated(): string {
    const path = stateCopy();
    truncateSync(path, 3000);
    return path;
  }

  describe.each(commands)('%s', (_name, args) => {
    it('refuses a text file: exit 1, not a sark-fed state file', async () => {
      await expectRefusedUntouched(args(), textFile(), 1, {
        message: /is not a sark-fed state file/,
        hint: /--state/,
      });
    });

    it('refuses another program’s SQLite database: exit 1', async () => {
      await expectRefusedUntouched(args(), foreignDatabase(), 1, {
        message: /is not a sark-fed state file/,
        hint: /another program/,
      });
    });

    it('refuses a state file of a newer schema: exit 1, names the versions, says upgrade', async () => {
      await expectRefusedUntouched(args(), newerSchema(), 1, {
        message: /has schema version 999; this sark-fed knows up to \d+$/,
        hint: /upgrade sark-fed/,
      });
    });

    it('refuses a state file with a damaged page: exit 1, corrupt', async () => {
      await expectRefusedUntouched(args(), corruptPage(), 1, {
        message: /is corrupt/,
        hint: /backup/,
      });
    });

    it('refuses a truncated state file: exit 1, corrupt', async () => {
      await expectRefusedUntouched(args(), truncated(), 1, { message: /is corrupt/ });
    });
  });

  it('status without a state file: exit 4, hint sark-fed init, nothing created', async () => {
    const statePath = join(root, 'nowhere', 'state.db');
    await expectRefusedUntouched(['status'], statePath, 4, {
      message: `no state file at ${statePath}`,
      hint: /sark-fed init/,
    });
    expect(existsSync(dirname(statePath))).toBe(false);
  });

  it.each([
    ['status', () => ['status']],
    ['init', () => initArgs(nodeA, 'node-a')],
  ])(
    '%s with --state or SARK_FED_STATE naming a folder: exit 2 (bad argument), folder untouched',
    async (_name, args) => {
      const folder = join(root, `a-folder-${++copies}`);
      mkdirSync(folder);
      const expected = {
        message: `state path ${folder} is not a regular file`,
        hint: `it is a folder: point --state (or SARK_FED_STATE) at a file, e.g. ${join(folder, 'state.db')}`,
      };
      expectRefusal(await runCli(['--state', folder, ...args()]), 2, expected);
      expectRefusal(await runCli(args(), { env: { SARK_FED_STATE: folder } }), 2, expected);
      const json = await runCli(['--state', folder, '--json', ...args()]);
      expect(JSON.parse(json.stderr)).toEqual({
        error: { code: 'STATE_NOT_A_FILE', ...expected, exitCode: 2 },
      });
      expect(listDir(folder)).toEqual([]);
    },
  );

  it('status of an empty state file: exit 4', async () => {
    const statePath = join(root, 'empty', 'state.db');
    mkdirSync(dirname(statePath));
    writeFileSync(statePath, '', { mode: 0o600 });
    await expectRefusedUntouched(['status'], statePath, 4, { hint: /sark-fed init/ });
  });

  it('init into a folder it cannot write: exit 1, cannot create state file, nothing created', async () => {
    const asRoot = process.getuid?.() === 0;
    const folder = join(root, 'read-only');
    mkdirSync(folder, { mode: 0o755 });
    let node = nodeA;
    let options: RunOptions = {};
    if (asRoot) {
      // Root ignores permission bits: run the CLI as nobody, with a key nobody owns.
      const keys = join(root, 'nobody-keys');
      cpSync(nodeA.dir, keys, { recursive: true });
      chownSync(keys, 65534, 65534);
      for (const name of listDir(keys)) chownSync(join(keys, name), 65534, 65534);
      node = { ...nodeA, certPath: join(keys, 'cert.pem'), keyPath: join(keys, 'key.pem') };
      options = { uid: 65534, gid: 65534 };
      const probe = await runCli(['--version'], options);
      expect(probe.code, `the project must be readable by nobody: ${probe.stderr}`).toBe(0);
    } else {
      chmodSync(folder, 0o500);
    }
    try {
      for (const statePath of [join(folder, 'state.db'), join(folder, 'sub', 'state.db')]) {
        await expectRefusedUntouched(
          initArgs(node, 'node-a'),
          statePath,
          1,
          {
            message: `cannot create state file ${statePath} (EACCES)`,
            hint: /writable|--state/,
          },
          options,
        );
      }
      expect(listDir(folder)).toEqual([]);
    } finally {
      chmodSync(folder, 0o755);
    }
  });
});
