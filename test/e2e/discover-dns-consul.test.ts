import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileDigest, runCli, tempDir } from '../helpers/cli.js';
import { startConsulStandin, type ConsulStandin } from '../helpers/consul-standin.js';
import { startDnsmasq, type RunningDnsmasq } from '../helpers/dnsmasq.js';

/**
 * `sark-fed discover --method dns-sd` against a real dnsmasq, and `--method consul` against the
 * Consul stand-in (Consul's documented HTTP API; no Consul binary can be had here), through the
 * built CLI as an operator runs it: the JSON rows, and a failing method reported on stderr.
 */

const FP = 'd'.repeat(64);
let dnsmasq: RunningDnsmasq;
let consul: ConsulStandin;
let state: string;

beforeAll(async () => {
  state = join(tempDir(), 'state.db');
  dnsmasq = await startDnsmasq([
    'local=/cli.test/',
    'local=/nx.test/',
    'local-ttl=90',
    'ptr-record=_sark._tcp.cli.test,node-a._sark._tcp.cli.test',
    'srv-host=node-a._sark._tcp.cli.test,host-a.cli.test,8443,0,0',
    `txt-record=node-a._sark._tcp.cli.test,"txtvers=1","node=node-a","td=org-a.test","fp=${FP}"`,
    'host-record=host-a.cli.test,127.0.0.71',
    // A zone with typos in the optional keys: the node is kept, and -v says what was dropped.
    'local=/typo.test/',
    'ptr-record=_sark._tcp.typo.test,node-t._sark._tcp.typo.test',
    'srv-host=node-t._sark._tcp.typo.test,host-t.typo.test,8443,0,0',
    `txt-record=node-t._sark._tcp.typo.test,"txtvers=1","node=node-t","td=Org-T.test","fp=${FP.slice(1)}"`,
    'host-record=host-t.typo.test,127.0.0.73',
  ]);
  consul = await startConsulStandin();
  consul.add({
    node: 'agent-1',
    nodeAddress: '127.0.0.72',
    serviceId: 'sark-node-b',
    port: 9443,
    meta: { node_id: 'node-b', trust_domain: 'org-b.test' },
  });
});

afterAll(async () => {
  await dnsmasq?.stop();
  await consul?.close();
});

interface Row {
  nodeId: string;
  trustDomain: string | null;
  endpoint: string;
  fingerprint: string | null;
  via: string[];
  ttlSeconds: number;
}

describe('discover --method dns-sd / consul', () => {
  it('finds a node by DNS-SD and one by Consul in one scan, each with its source', async () => {
    const result = await runCli([
      '--state',
      state,
      'discover',
      '--method',
      'dns-sd',
      '--domain',
      'cli.test',
      '--nameserver',
      dnsmasq.nameserver,
      '--method',
      'consul',
      '--consul-url',
      consul.url,
      '--no-save',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const rows = JSON.parse(result.stdout) as Row[];
    expect(
      rows.map(({ nodeId, trustDomain, endpoint, fingerprint, via, ttlSeconds }) => ({
        nodeId,
        trustDomain,
        endpoint,
        fingerprint,
        via,
        ttlSeconds,
      })),
    ).toEqual([
      {
        nodeId: 'node-a',
        trustDomain: 'org-a.test',
        endpoint: 'https://127.0.0.71:8443',
        fingerprint: FP,
        via: ['dns-sd'],
        ttlSeconds: 90,
      },
      {
        nodeId: 'node-b',
        trustDomain: 'org-b.test',
        endpoint: 'https://127.0.0.72:9443',
        fingerprint: null,
        via: ['consul'],
        ttlSeconds: 30,
      },
    ]);
  });

  it('reports NXDOMAIN and an unreachable Consul on stderr, and exits 5 when both fail', async () => {
    const result = await runCli(
      [
        '--state',
        state,
        'discover',
        '--method',
        'dns-sd',
        '--domain',
        'nx.test',
        '--nameserver',
        dnsmasq.nameserver,
        '--method',
        'consul',
        '--no-save',
        '--json',
      ],
      // CONSUL_HTTP_ADDR without a scheme, where nothing listens.
      { env: { CONSUL_HTTP_ADDR: '127.0.0.1:1' } },
    );
    expect(result.code, result.stderr).toBe(5);
    // As docs/json-output.md has it: what was learnt (nothing) on stdout, then the error.
    expect(JSON.parse(result.stdout)).toEqual([]);
    expect(result.stderr).toContain(
      `_sark._tcp.nx.test does not exist (NXDOMAIN from nameserver ${dnsmasq.nameserver})`,
    );
    expect(result.stderr).toContain('cannot reach Consul at http://127.0.0.1:1 (ECONNREFUSED)');
    expect(JSON.parse(result.stderr.trimEnd().split('\n').at(-1) ?? '')).toEqual({
      error: {
        code: 'DISCOVERY_FAILED',
        message: 'every discovery method failed (dns-sd, consul)',
        hint: 'see the warnings above; check the nameserver, Consul address or network',
        exitCode: 5,
      },
    });

    // Without --json: one warning per method, then the error and its hint.
    const before = fileDigest(state);
    const text = await runCli([
      '--state',
      state,
      'discover',
      '--method',
      'consul',
      '--consul-url',
      'http://127.0.0.1:1',
      '--no-save',
    ]);
    expect(text.code, text.stderr).toBe(5);
    expect(text.stdout).toBe('');
    expect(text.stderr.split('\n')).toEqual([
      expect.stringMatching(/^warning: consul: cannot reach Consul at http:\/\/127\.0\.0\.1:1 /),
      'error: every discovery method failed (consul)',
      'hint: see the warnings above; check the nameserver, Consul address or network',
      '',
    ]);
    expect(fileDigest(state)).toBe(before);
  });

  it('keeps the nodes of the method that worked when the other fails', async () => {
    const result = await runCli(
      [
        '--state',
        state,
        'discover',
        '--method',
        'dns-sd',
        '--domain',
        'nx.test',
        '--nameserver',
        dnsmasq.nameserver,
        '--method',
        'consul',
        '--no-save',
        '--json',
      ],
      { env: { CONSUL_HTTP_ADDR: consul.address } },
    );
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as Row[]).map((row) => row.nodeId)).toEqual(['node-b']);
    expect(result.stderr).toContain('NXDOMAIN');
  });

  it('keeps a node whose trust domain or fingerprint is malformed, without them, and -v says why', async () => {
    const typos = await startConsulStandin();
    try {
      typos.add({
        node: 'agent-u',
        nodeAddress: '127.0.0.74',
        serviceId: 'sark-node-u',
        port: 9443,
        meta: { node_id: 'node-u', trust_domain: 'Org U', fingerprint: 'sha1:abcd' },
      });
      const result = await runCli([
        '--state',
        state,
        'discover',
        '--method',
        'dns-sd',
        '--domain',
        'typo.test',
        '--nameserver',
        dnsmasq.nameserver,
        '--method',
        'consul',
        '--consul-url',
        typos.url,
        '--no-save',
        '--json',
        '-v',
      ]);
      expect(result.code, result.stderr).toBe(0);
      expect(
        (JSON.parse(result.stdout) as Row[]).map(({ nodeId, trustDomain, fingerprint }) => ({
          nodeId,
          trustDomain,
          fingerprint,
        })),
      ).toEqual([
        { nodeId: 'node-t', trustDomain: null, fingerprint: null },
        { nodeId: 'node-u', trustDomain: null, fingerprint: null },
      ]);
      const kept = 'the node is kept without it';
      for (const line of [
        `dns-sd: skipped node-t._sark._tcp.typo.test: TXT td=Org-T.test is not a trust domain; ${kept}`,
        `dns-sd: skipped node-t._sark._tcp.typo.test: TXT fp=${FP.slice(1)} is not a SHA-256 fingerprint (64 hex digits); ${kept}`,
        `consul: skipped service sark-node-u on node agent-u: Meta trust domain "Org U" is not a trust domain; ${kept}`,
        `consul: skipped service sark-node-u on node agent-u: Meta fingerprint "sha1:abcd" is not a SHA-256 fingerprint; ${kept}`,
      ]) {
        expect(result.stderr).toContain(`${line}\n`);
      }
    } finally {
      await typos.close();
    }
  });
});
