import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectRefusal, expectSuccess, runCli, tempDir } from '../helpers/cli.js';
import { initNode, stateRows, type TestNode } from '../helpers/federation.js';
import { createCa, issueNode } from '../helpers/pki.js';

/**
 * `sark-fed discover` with the manual method (issue 4, items 4 and 5) as an operator runs it:
 * a nodes file, FEDERATION_NODES and `nodes add` entries merged by node ID, saved as untrusted
 * nodes unless --no-save, and refused up front when the file itself is wrong.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const FP_B = 'b0'.repeat(32);

interface ScanRow {
  nodeId: string;
  trustDomain: string | null;
  endpoint: string;
  fingerprint: string | null;
  via: string[];
  trust: string;
  ttlSeconds: number;
  sightings: Array<{ source: string; endpoint: string }>;
}

let root: string;
let local: TestNode;
let nodesFile: string;

beforeAll(async () => {
  root = tempDir('sark-fed-discover-');
  const ca = await createCa(join(root, 'ca-a'), ['--trust-domain', TD_A]);
  const certs = await issueNode(ca.dir, 'node-a', join(root, 'node-a'), ['--ip', '127.0.0.1']);
  local = await initNode(root, certs, 'node-a', TD_A);
  nodesFile = join(root, 'nodes.json');
  writeFileSync(
    nodesFile,
    JSON.stringify({
      nodes: [
        {
          node_id: 'node-b',
          endpoint: 'https://127.0.0.1:9443',
          trust_domain: TD_B,
          fingerprint: FP_B,
        },
        { node_id: 'node-c', endpoint: 'https://127.0.0.1:9444' },
        // This node itself is never listed as a discovery result.
        { node_id: 'node-a', endpoint: 'https://127.0.0.1:9400', trust_domain: TD_A },
        { node_id: 'Not A Node', endpoint: 'https://127.0.0.1:1' },
      ],
    }),
  );
});

function parseRows(stdout: string): ScanRow[] {
  return JSON.parse(stdout) as ScanRow[];
}

describe('discover --method manual', () => {
  it('lists the file and FEDERATION_NODES merged by node ID, sorted, without this node', async () => {
    const result = await local.cli(
      ['--json', 'discover', '--method', 'manual', '--file', nodesFile, '--no-save'],
      { FEDERATION_NODES: 'node-d=https://127.0.0.1:9445' },
    );
    expectSuccess(result);
    const rows = parseRows(result.stdout);
    expect(rows.map((row) => row.nodeId)).toEqual(['node-b', 'node-c', 'node-d']);
    expect(rows[0]).toMatchObject({
      trustDomain: TD_B,
      endpoint: 'https://127.0.0.1:9443',
      fingerprint: FP_B,
      via: ['manual'],
      trust: 'untrusted',
    });
    expect(rows[1]).toMatchObject({ trustDomain: null, fingerprint: null });
    // The bad entry is reported on stderr as skipped, not fatal.
    expect(result.stderr).toContain(
      'manual: skipped 1 malformed or incomplete record (-v lists them)',
    );
  });

  it('-v lists each skipped entry, and the count then does not send the reader to -v', async () => {
    const result = await local.cli([
      'discover',
      '--method',
      'manual',
      '--file',
      nodesFile,
      '--no-save',
      '-v',
    ]);
    expectSuccess(result);
    expect(result.stderr).toContain(
      `manual: skipped ${nodesFile} entry 4: node_id: not a node ID\n`,
    );
    expect(result.stderr).toContain('manual: skipped 1 malformed or incomplete record\n');
    expect(result.stderr).not.toContain('-v lists');
  });

  it('--expect more than there are: a warning saying the methods had finished, exit 0', async () => {
    const result = await local.cli([
      'discover',
      '--method',
      'manual',
      '--file',
      nodesFile,
      '--no-save',
      '--expect',
      '5',
      '--timeout',
      '20s',
    ]);
    expectSuccess(result);
    expect(result.stderr).toContain(
      'warning: found 2 of the 5 nodes expected when every method had finished\n',
    );
  });

  it('--no-save leaves the state file as it was', async () => {
    const before = stateRows(local.state);
    expectSuccess(
      await local.cli(['discover', '--method', 'manual', '--file', nodesFile, '--no-save']),
    );
    expect(stateRows(local.state)).toEqual(before);
  });

  it('saves sightings; a node with a known trust domain becomes an untrusted peer', async () => {
    const result = await local.cli(['discover', '--method', 'manual', '--file', nodesFile]);
    expectSuccess(result);
    // In a pipe: tab-separated rows, full fingerprints, no header.
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      ['node-b', TD_B, 'https://127.0.0.1:9443', FP_B, 'manual', 'untrusted'].join('\t'),
      ['node-c', '-', 'https://127.0.0.1:9444', '-', 'manual', 'untrusted'].join('\t'),
    ]);
    const rows = stateRows(local.state);
    expect(rows.peers).toEqual([
      expect.objectContaining({ node_id: 'node-b', trust_level: 'untrusted', trust_domain: TD_B }),
    ]);
    expect(
      (rows.node_sightings as Array<{ node_id: string; source: string }>).map(
        (row) => `${row.node_id}/${row.source}`,
      ),
      // A file's entries: sightings of their own kind, never `nodes add`'s (manual).
    ).toEqual(['node-b/file', 'node-c/file']);
    const listed = await local.cli(['--json', 'nodes', 'list']);
    expectSuccess(listed);
    expect((JSON.parse(listed.stdout) as Array<{ nodeId: string }>).map((n) => n.nodeId)).toEqual([
      'node-b',
      'node-c',
    ]);
  });

  it('an edited file wins over the entry an earlier scan saved from it', async () => {
    const file = join(root, 'moving.json');
    const write = (port: number) =>
      writeFileSync(
        file,
        JSON.stringify([{ node_id: 'node-m', endpoint: `https://127.0.0.1:${port}` }]),
      );
    write(9501);
    expectSuccess(await local.cli(['discover', '--method', 'manual', '--file', file]));
    write(9502);
    const result = await local.cli(['--json', 'discover', '--method', 'manual', '--file', file]);
    expectSuccess(result);
    const row = parseRows(result.stdout).find((item) => item.nodeId === 'node-m');
    expect(row?.endpoint).toBe('https://127.0.0.1:9502');
  });

  it('includes nodes recorded with `nodes add`', async () => {
    expectSuccess(
      await local.cli(['nodes', 'add', 'node-e', '--endpoint', 'https://127.0.0.1:9446']),
    );
    const result = await local.cli(['--json', 'discover', '--method', 'manual', '--no-save']);
    expectSuccess(result);
    expect(parseRows(result.stdout).map((row) => row.nodeId)).toContain('node-e');
  });

  it('FEDERATION_NODES never replaces what `nodes add` recorded: both are kept, by hand wins', async () => {
    expectSuccess(
      await local.cli([
        'nodes',
        'add',
        'node-f',
        '--endpoint',
        'https://127.0.0.1:9447',
        '--fingerprint',
        FP_B,
      ]),
    );
    const result = await local.cli(['--json', 'discover', '--method', 'manual'], {
      FEDERATION_NODES: 'node-f=https://127.0.0.1:9448',
    });
    expectSuccess(result);
    const row = parseRows(result.stdout).find((item) => item.nodeId === 'node-f');
    expect(row).toMatchObject({
      endpoint: 'https://127.0.0.1:9447',
      fingerprint: FP_B,
      via: ['manual'],
      sightings: [
        expect.objectContaining({ source: 'manual', endpoint: 'https://127.0.0.1:9447' }),
        expect.objectContaining({ source: 'file', endpoint: 'https://127.0.0.1:9448' }),
      ],
    });
    const saved = (
      stateRows(local.state).node_sightings as Array<{
        node_id: string;
        source: string;
        endpoint: string;
        fingerprint: string | null;
        expires_at: string | null;
      }>
    )
      .filter((item) => item.node_id === 'node-f')
      .sort((a, b) => a.source.localeCompare(b.source));
    expect(saved).toEqual([
      expect.objectContaining({
        source: 'file',
        endpoint: 'https://127.0.0.1:9448',
        fingerprint: null,
        expires_at: null,
      }),
      expect.objectContaining({
        source: 'manual',
        endpoint: 'https://127.0.0.1:9447',
        fingerprint: FP_B,
        expires_at: null,
      }),
    ]);
  });

  it('refuses a file that is not JSON with exit 2, before scanning, writing nothing', async () => {
    const bad = join(root, 'bad.json');
    writeFileSync(bad, 'node-b https://127.0.0.1:9443\n');
    const before = stateRows(local.state);
    const result = await local.cli(['discover', '--method', 'manual', '--file', bad]);
    expectRefusal(result, 2, { message: /not valid JSON/, hint: /docs\/guide\.md|format/ });
    expect(stateRows(local.state)).toEqual(before);
  });

  it('refuses a missing file with exit 2', async () => {
    const result = await local.cli([
      'discover',
      '--method',
      'manual',
      '--file',
      join(root, 'missing.json'),
    ]);
    expectRefusal(result, 2);
  });

  it('refuses an unknown method and a DNS-SD scan without --domain with exit 2', async () => {
    expectRefusal(await local.cli(['discover', '--method', 'carrier-pigeon']), 2, {
      message: /carrier-pigeon/,
    });
    expectRefusal(await local.cli(['discover', '--method', 'dns-sd']), 2, {
      message: /domain/,
      hint: /--domain/,
    });
    // Empty where a server is named: refused, not taken for the default one.
    expectRefusal(
      await local.cli(['discover', '--method', 'consul', '--consul-url', '', '--no-save']),
      2,
      { message: /^--consul-url is empty$/, hint: /CONSUL_HTTP_ADDR/ },
    );
    expectRefusal(
      await local.cli([
        'discover',
        '--method',
        'dns-sd',
        '--domain',
        'example.org',
        '--nameserver',
        '',
        '--no-save',
      ]),
      2,
      { message: /^invalid nameserver ""$/ },
    );
    // FEDERATION_NODES that is no list of nodes is refused as a bad --file is, before any scan
    // (an entry of it that is malformed is a skipped record, as in a file).
    const before = stateRows(local.state);
    for (const [value, message] of [
      ['[{"node_id":', /^FEDERATION_NODES is not valid JSON/],
      ['{"nodes":1}', /^FEDERATION_NODES is not a list of nodes$/],
    ] as const) {
      expectRefusal(
        await local.cli(['discover', '--method', 'manual'], { FEDERATION_NODES: value }),
        2,
        { message, hint: /\S/ },
      );
    }
    expect(stateRows(local.state)).toEqual(before);
  });

  it('refuses Consul settings and a DNS domain it cannot use before any query (exit 2), recording nothing', async () => {
    const before = stateRows(local.state);
    // Port 1 of loopback: were anything sent, it would be refused, not answered.
    const consul = ['discover', '--method', 'consul', '--consul-url', 'http://127.0.0.1:1'];
    const missing = join(root, 'no-such-token');
    const cases: Array<[string[], Record<string, string>, RegExp, RegExp]> = [
      [
        consul,
        { CONSUL_HTTP_TOKEN_FILE: missing },
        new RegExp(`^cannot read CONSUL_HTTP_TOKEN_FILE ${missing} \\(ENOENT\\)$`),
        /^check CONSUL_HTTP_TOKEN_FILE$/,
      ],
      [
        consul,
        { CONSUL_HTTP_TOKEN: 'two\nlines' },
        /^the Consul token has characters a header cannot carry$/,
        /CONSUL_HTTP_TOKEN/,
      ],
      [
        ['discover', '--method', 'consul', '--consul-url', 'unix:///run/consul.sock'],
        {},
        /^invalid Consul address "unix:\/\/\/run\/consul\.sock" \(--consul-url\): unix sockets are not supported$/,
        /^give host:port or a URL/,
      ],
      [
        ['discover', '--method', 'consul'],
        { CONSUL_HTTP_ADDR: 'http://127.0.0.1:99999' },
        /^invalid Consul address "http:\/\/127\.0\.0\.1:99999" \(CONSUL_HTTP_ADDR\)/,
        /^give host:port or a URL/,
      ],
      [
        ['discover', '--method', 'dns-sd', '--domain', 'a..b', '--nameserver', '127.0.0.1:1'],
        {},
        /^invalid DNS domain "a\.\.b"$/,
        /^pass --domain with a DNS name/,
      ],
    ];
    for (const [args, env, message, hint] of cases) {
      expectRefusal(await local.cli(args, env), 2, { message, hint });
    }
    expect(stateRows(local.state)).toEqual(before);
  });

  it('refuses --watch with another method than mDNS (exit 2)', async () => {
    expectRefusal(await local.cli(['discover', '--method', 'manual', '--watch']), 2, {
      message: /--watch/,
      hint: /--method mdns --watch/,
    });
  });

  it('a bare --watch follows FEDERATION_DISCOVERY_METHOD: refused (exit 2) when it does not name mDNS alone', async () => {
    // The address of no interface: should --watch ever fall back to mDNS here, it fails on
    // --interface (BAD_INTERFACE) before a packet is sent, never browsing from the test.
    const args = ['--json', 'discover', '--watch', '--interface', '192.0.2.1'];
    for (const methods of ['manual', 'consul,manual']) {
      const result = await local.cli(args, { FEDERATION_DISCOVERY_METHOD: methods });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stdout).toBe('');
      expect(JSON.parse(result.stderr.trim().split('\n').pop() as string)).toMatchObject({
        error: {
          code: 'WATCH_NEEDS_MDNS',
          message: `--watch streams mDNS events only, and FEDERATION_DISCOVERY_METHOD names ${methods}`,
          exitCode: 2,
        },
      });
    }
    // A name it does not know is said, not silently dropped (a typo would otherwise mean
    // whatever the rest names, or the defaults).
    const typo = await local.cli(['--json', 'discover', '--file', nodesFile, '--no-save'], {
      FEDERATION_DISCOVERY_METHOD: 'manual,dns',
    });
    expectSuccess(typo);
    expect(typo.stderr).toMatch(/^warning: FEDERATION_DISCOVERY_METHOD: ignoring dns \(known: /m);
    expect(new Set(parseRows(typo.stdout).flatMap((row) => row.via))).toEqual(new Set(['manual']));
    // The flag still wins over the variable.
    const flagged = await local.cli([...args, '--method', 'mdns'], {
      FEDERATION_DISCOVERY_METHOD: 'manual',
    });
    expect(flagged.code, flagged.stderr).toBe(2);
    expect(flagged.stderr).toMatch(/"code":"BAD_INTERFACE"/);
  });

  it('works without a state file when --no-save is given, and creates none', async () => {
    const nowhere = join(tempDir('sark-fed-nostate-'), 'state.db');
    const result = await runCli([
      '--state',
      nowhere,
      '--json',
      'discover',
      '--method',
      'manual',
      '--file',
      nodesFile,
      '--no-save',
    ]);
    expectSuccess(result);
    expect(parseRows(result.stdout).map((row) => row.nodeId)).toContain('node-a');
    expect(existsSync(nowhere)).toBe(false);
  });
});
