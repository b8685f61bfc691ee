import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/core/protocol/constants.js';
import { expectSuccess, tempDir } from '../helpers/cli.js';
import {
  addAnchor,
  makeNode,
  opensslFingerprint,
  startServe,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { send } from '../helpers/mtls-request.js';
import { createCa } from '../helpers/pki.js';

/**
 * `serve --metrics host:port` (issue 5, item 7): a real daemon, real calls, and the Prometheus
 * text a scraper would read, with the metric names of the original design.
 */

const NAMES = [
  'federation_invocation_requests_total',
  'federation_invocation_duration_seconds',
  'federation_circuit_breaker_state',
  'federation_node_health_status',
  'federation_trust_establishment_total',
  'federation_route_lookups_total',
  'federation_discovery_requests_total',
  'federation_certificate_expiry_days',
];

let a: TestNode;
let b: TestNode;
let daemonB: RunningServe;
let metricsPort: number;

function scrape(path = '/metrics'): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port: metricsPort, path }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          type: String(response.headers['content-type']),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** The value of one sample line, e.g. name{a="b"} 3. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  const line = text
    .split('\n')
    .find((item) => item.startsWith(`${name}{`) && wanted.every((pair) => item.includes(pair)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

beforeAll(async () => {
  const dir = tempDir('sark-fed-metrics-');
  const [caA, caB] = await Promise.all([
    createCa(join(dir, 'ca-a'), ['--trust-domain', 'org-a.example']),
    createCa(join(dir, 'ca-b'), ['--trust-domain', 'org-b.example']),
  ]);
  [a, b] = await Promise.all([
    makeNode(dir, caA.dir, 'node-a', 'org-a.example'),
    makeNode(dir, caB.dir, 'node-b', 'org-b.example'),
  ]);
  await Promise.all([addAnchor(a, caB.certPath), addAnchor(b, caA.certPath)]);
  const resources = join(dir, 'resources.json');
  const policy = join(dir, 'policy.json');
  writeFileSync(
    resources,
    JSON.stringify({
      resources: [{ id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] }],
    }),
  );
  writeFileSync(
    policy,
    JSON.stringify({
      rules: [
        {
          effect: 'allow',
          nodes: ['node-a'],
          principals: ['*'],
          resources: ['echo'],
          capabilities: ['*'],
        },
      ],
    }),
  );
  daemonB = await startServe(b, [
    '--resources',
    resources,
    '--policy',
    policy,
    '--metrics',
    '127.0.0.1:0',
  ]);
  const line = await daemonB.waitForLog((entry) => entry.msg === 'metrics listening');
  metricsPort = Number(line.port);
  expectSuccess(
    await a.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslFingerprint(b.certPath),
    ]),
  );
}, 60_000);

describe('serve --metrics', () => {
  it('serves every metric of the original design in the Prometheus text format', async () => {
    const { status, type, text } = await scrape();
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    for (const name of NAMES) expect(text, name).toContain(`# TYPE ${name} `);
    // This node's own certificate, about a year away.
    const days = sample(text, 'federation_certificate_expiry_days', {
      node: 'node-b',
      role: 'self',
    });
    expect(days).toBeGreaterThan(300);
    // node-a is trusted now, so its pinned certificate's expiry is reported too.
    expect(
      sample(text, 'federation_certificate_expiry_days', { node: 'node-a', role: 'peer' }),
    ).toBeGreaterThan(300);
  });

  it('counts the trust establishment peers asked of it', async () => {
    const { text } = await scrape();
    expect(sample(text, 'federation_trust_establishment_total', { outcome: 'trusted' })).toBe(1);
  });

  it('counts invocations by node, resource, capability and outcome, with their durations', async () => {
    const who = {
      certPem: readFileSync(a.certPath, 'utf8'),
      keyPem: readFileSync(a.keyPath, 'utf8'),
    };
    const call = (capability: string) =>
      send(
        who,
        b.port,
        PATHS.invoke,
        {
          resource_id: 'echo',
          capability_id: capability,
          principal_id: 'alice@org-a.example',
          arguments: { n: 1 },
        },
        { headers: { 'x-sark-correlation-id': randomUUID() } },
      );
    expect((await call('echo')).status).toBe(200);
    expect((await call('echo')).status).toBe(200);
    expect((await call('nope')).status).toBe(404);
    const { text } = await scrape();
    const labels = { node: 'node-a', resource: 'echo', capability: 'echo' };
    expect(
      sample(text, 'federation_invocation_requests_total', { ...labels, outcome: 'success' }),
    ).toBe(2);
    expect(
      sample(text, 'federation_invocation_requests_total', {
        capability: 'nope',
        outcome: 'error',
      }),
    ).toBe(1);
    expect(
      sample(text, 'federation_invocation_duration_seconds_count', { outcome: 'success' }),
    ).toBe(2);
  });

  it('reports what CLI processes did on the node: discovery scans and health checks', async () => {
    const nodes = join(tempDir('sark-fed-metrics-nodes-'), 'nodes.json');
    writeFileSync(nodes, JSON.stringify([{ node_id: 'node-a', endpoint: a.endpoint }]));
    expectSuccess(await b.cli(['discover', '--method', 'manual', '--file', nodes]));
    // node-a runs no daemon here: offline, and exit 5.
    expect((await b.cli(['nodes', 'health', 'node-a', '--timeout', '2s'])).code).toBe(5);
    const { text } = await scrape();
    expect(
      sample(text, 'federation_discovery_requests_total', { method: 'manual', outcome: 'success' }),
    ).toBe(1);
    // node-a runs no daemon here: its health is recorded as offline (0).
    expect(sample(text, 'federation_node_health_status', { node: 'node-a' })).toBe(0);
  });

  it('answers anything but GET /metrics with 404', async () => {
    expect((await scrape('/')).status).toBe(404);
  });
});
