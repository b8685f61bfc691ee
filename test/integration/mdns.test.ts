import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, PROJECT_ROOT, tempDir } from '../helpers/cli.js';
import { initNode } from '../helpers/federation.js';
import { bundleProgram, netnsAvailability, runInNetns, skipNetns } from '../helpers/netns.js';
import { createCa, issueNode } from '../helpers/pki.js';

/**
 * mDNS with real multicast, inside private network namespaces only (DESIGN §8): each scenario of
 * test/netns/mdns-scenarios.ts runs in a namespace of its own, so the scenarios run concurrently
 * without seeing each other, and nothing reaches a real interface.
 */

const PYTHON = '/usr/bin/python3';
const ZEROCONF_PEER = join(PROJECT_ROOT, 'test', 'netns', 'zeroconf-peer.py');
const DISCOVER_EXISTS = existsSync(join(PROJECT_ROOT, 'src', 'cli', 'commands', 'discover.ts'));

interface ScannedNode {
  nodeId: string;
  endpoint: string;
  trustDomain: string | null;
  fingerprint: string | null;
  via: string[];
  ttlSeconds: number;
}

interface ScanSummary {
  nodes: ScannedNode[];
  skipped: string[];
  problems: unknown[];
  elapsedMs: number;
  expectMet: boolean;
}

let program: string;

async function scenario<T>(name: string, config: unknown, timeoutMs = 45_000): Promise<T> {
  const result = await runInNetns([process.execPath, program, name, JSON.stringify(config)], {
    timeoutMs,
  });
  expect(result.code, `stderr: ${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout) as T;
}

describe.skipIf(skipNetns).concurrent('mDNS in a private network namespace', () => {
  beforeAll(async () => {
    const availability = netnsAvailability();
    if (!availability.ok) {
      throw new Error(
        `no private network namespace for the mDNS tests: ${availability.reason} ` +
          '(set SARK_FED_SKIP_NETNS=1 to skip them deliberately)',
      );
    }
    program = await bundleProgram(new URL('../netns/mdns-scenarios.ts', import.meta.url));
  });

  it('finds `serve --announce mdns` daemons with their TXT, SRV and A data; goodbyes on SIGTERM and SIGINT', async () => {
    const root = tempDir('sark-fed-mdns-');
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'mdns.example']);
    const ids = ['node-a', 'node-b', 'node-c'];
    const nodes = await Promise.all(
      ids.map(async (nodeId) => {
        const fixture = await issueNode(ca.dir, nodeId, join(root, 'certs', nodeId), [
          '--ip',
          '127.0.0.1',
        ]);
        return initNode(root, fixture, nodeId, 'mdns.example');
      }),
    );

    const result = await scenario<{
      ports: Record<string, number>;
      scan: ScanSummary;
      discover: { code: number; elapsedMs: number; stdout: string; stderr: string } | null;
      cliWatchLines: Array<{ event: string; nodeId: string; reason?: string }> | null;
      cliWatchStop: { code: number | null; stderr: string } | null;
      cliWatchText: { code: number | null; stderr: string; lines: string[] } | null;
      watchEvents: Array<{ type: string; nodeId: string; reason?: string }>;
      watchSkipped: string[];
      stops: Array<{ nodeId: string; signal: string; code: number | null; goodbye: boolean }>;
    }>('serve', {
      cli: CLI_PATH,
      nodes: nodes.map((node) => ({ nodeId: node.nodeId, state: node.state })),
      ...(DISCOVER_EXISTS ? { discoverState: join(root, 'discover.db') } : {}),
    });

    // Every daemon, with what its TXT (node, td, fp), SRV (port) and A (address) records say.
    expect(result.scan.problems).toEqual([]);
    expect(result.scan.nodes).toEqual(
      nodes.map((node) => ({
        nodeId: node.nodeId,
        endpoint: `https://127.0.0.1:${result.ports[node.nodeId]}`,
        trustDomain: 'mdns.example',
        fingerprint: node.fingerprint,
        via: ['mdns'],
        ttlSeconds: 120,
      })),
    );
    // --expect 3 ended the scan as soon as the third node was resolved (about a second in), long
    // before its 10 s deadline.
    expect(result.scan.expectMet).toBe(true);
    expect(result.scan.elapsedMs).toBeLessThan(5_000);
    expect(result.scan.skipped).toEqual([]);

    if (result.discover) {
      expect(result.discover.code, result.discover.stderr).toBe(0);
      const listed = JSON.parse(result.discover.stdout) as Array<{ nodeId: string }>;
      expect(listed.map((node) => node.nodeId).sort()).toEqual(ids);
    }

    // Each daemon said goodbye and exited 0; the watcher saw `+` then `-` (goodbye) for each.
    for (const stop of result.stops) {
      expect(stop, JSON.stringify(result.stops)).toMatchObject({ code: 0, goodbye: true });
    }
    expect(result.stops.map((stop) => stop.signal)).toEqual(['SIGTERM', 'SIGINT', 'SIGTERM']);
    for (const nodeId of ids) {
      const events = result.watchEvents.filter((event) => event.nodeId === nodeId);
      expect(events, JSON.stringify(result.watchEvents)).toEqual([
        { type: '+', nodeId, at: expect.any(Number) },
        { type: '-', nodeId, reason: 'goodbye', at: expect.any(Number) },
      ]);
    }
    expect(result.watchSkipped).toEqual([]);
    if (result.cliWatchLines) {
      // `discover --watch --json` streamed the same, as NDJSON.
      for (const nodeId of ids) {
        const lines = result.cliWatchLines.filter((line) => line.nodeId === nodeId);
        expect(lines, JSON.stringify(result.cliWatchLines)).toMatchObject([
          { event: 'up', nodeId },
          { event: 'down', nodeId, reason: 'goodbye' },
        ]);
      }
    }
    if (result.cliWatchStop && result.cliWatchText) {
      // Ctrl-C is how a watch ends, as for `tail -f`: exit 130 (interrupted) and nothing on
      // stderr, no error line, with --json or without.
      expect(result.cliWatchStop).toEqual({ code: 130, stderr: '' });
      expect(result.cliWatchText).toMatchObject({ code: 130, stderr: '' });
      // Without --json, in a pipe: tab-separated + and - lines.
      for (const nodeId of ids) {
        const lines = result.cliWatchText.lines
          .map((line) => line.split('\t'))
          .filter((fields) => fields[2] === nodeId);
        expect(lines, result.cliWatchText.lines.join('\n')).toEqual([
          ['+', expect.stringMatching(/^\d{4}-/), nodeId, 'mdns.example', expect.any(String)],
          [
            '-',
            expect.stringMatching(/^\d{4}-/),
            nodeId,
            'mdns.example',
            expect.any(String),
            'goodbye',
          ],
        ]);
      }
    }
  }, 60_000);

  describe('raw responders and bad traffic', () => {
    let raw: Promise<{ scan: ScanSummary; counts: Record<string, number> }>;
    const rawResult = () => {
      raw ??= scenario('raw', { many: 20 });
      return raw;
    };

    it('resolves answers in additional sections, in separate responses and unasked trickles, from many responders', async () => {
      const { scan, counts } = await rawResult();
      const found = new Map(scan.nodes.map((node) => [node.nodeId, node]));
      for (const [nodeId, port] of [
        ['raw-additional', 4001],
        ['raw-separate', 4002],
        ['raw-trickle', 4003],
        ['raw-repeat', 4004],
      ] as const) {
        expect(found.get(nodeId), nodeId).toEqual({
          nodeId,
          endpoint: `https://127.0.0.1:${port}`,
          trustDomain: 'raw.example',
          fingerprint: 'ab'.repeat(32),
          via: ['mdns'],
          ttlSeconds: 120,
        });
      }
      for (let index = 0; index < 20; index++) {
        const nodeId = `raw-many-${String(index).padStart(2, '0')}`;
        expect(found.get(nodeId)?.endpoint, nodeId).toBe(`https://127.0.0.1:${5000 + index}`);
      }
      // Answered three times per query and queried several times: reported once.
      expect(counts['raw-repeat']).toBe(1);
      expect(Math.max(...Object.values(counts))).toBe(1);
      expect(scan.problems).toEqual([]);
    }, 60_000);

    it('skips non-DNS, truncated, wrong-port and wrong-type packets and bad TXT, SRV or A: no crash, no half node', async () => {
      const { scan } = await rawResult();
      const ids = scan.nodes.map((node) => node.nodeId).sort();
      // The announcer that lived through the garbage still answers; the duplicate `node=` key
      // resolves to its first occurrence; nothing bad became a node.
      expect(ids).toContain('steady');
      expect(ids).toContain('dupkey-first');
      expect(ids.filter((id) => /^bad-|dupkey-second/.test(id))).toEqual([]);
      expect(ids).toHaveLength(4 + 20 + 2);

      const skipped = scan.skipped.join('\n');
      for (const pattern of [
        /not a DNS packet/,
        /a truncated packet/,
        /a response from port \d+ .*wants 5353/,
        /_sark\._tcp\.local: a record of the wrong type TXT/,
        /bad-type\._sark\._tcp\.local: a record of the wrong type CNAME/,
        /bad-big\._sark\._tcp\.local: TXT record the TXT record is \d+ bytes, over 1300/,
        /bad-nonode\._sark\._tcp\.local: TXT record no valid node= key/,
        /bad-dupkey\._sark\._tcp\.local: TXT record repeats node; the first occurrence is used/,
        /bad-nowhere\._sark\._tcp\.local: its SRV record points nowhere/,
        /bad-noaddr\._sark\._tcp\.local: SRV target ghost\.local has no address/,
      ]) {
        expect(skipped).toMatch(pattern);
      }
    }, 60_000);
  });

  it('interoperates with python-zeroconf: each finds what the other publishes', async () => {
    expect(existsSync(PYTHON), `${PYTHON} (Debian's python3 with python3-zeroconf)`).toBe(true);
    const result = await scenario<{
      scan: ScanSummary;
      zeroconfBrowse: {
        code: number;
        stderr: string;
        services: Array<{
          name: string;
          server: string;
          port: number;
          addresses: string[];
          properties: Record<string, string>;
        }>;
      };
      events: Array<{ type: string; nodeId: string; reason?: string }>;
    }>('zeroconf', { python: PYTHON, peer: ZEROCONF_PEER });

    // Our browser resolves the service python-zeroconf registered.
    expect(result.scan.nodes).toEqual([
      {
        nodeId: 'zc-node',
        endpoint: 'https://127.0.0.1:7443',
        trustDomain: 'zeroconf.example',
        fingerprint: 'ab'.repeat(32),
        via: ['mdns'],
        ttlSeconds: expect.any(Number),
      },
    ]);
    // python-zeroconf's browser resolves the node we announce.
    expect(result.zeroconfBrowse.code, result.zeroconfBrowse.stderr).toBe(0);
    expect(result.zeroconfBrowse.services).toContainEqual({
      name: 'sark-node._sark._tcp.local.',
      server: 'sark-node.local.',
      port: 8443,
      addresses: ['127.0.0.1'],
      properties: {
        txtvers: '1',
        node: 'sark-node',
        td: 'sark.example',
        fp: 'ab'.repeat(32),
        api: 'v2',
      },
    });
    // And its goodbye on unregistering reaches our watcher.
    expect(result.events).toContainEqual({ type: '-', nodeId: 'zc-node', reason: 'goodbye' });
  }, 60_000);
});
