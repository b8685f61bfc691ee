import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/core/protocol/constants.js';
import { expectRefusal, expectSuccess, tempDir } from '../helpers/cli.js';
import {
  addAnchor,
  echoServing,
  freePort,
  makeNode,
  nodeCopy,
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
    // A connection of its own each time (agent: false): a pooled one could be reused just as the
    // server closes it for idleness, and one test measures that idleness on a socket of its own.
    const options = { host: '127.0.0.1', port: metricsPort, path, agent: false };
    const outgoing = request(options, (response) => {
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
  daemonB = await startServe(b, [...echoServing(dir, ['node-a']), '--metrics', '127.0.0.1:0']);
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
    const call = (capability: string, resource = 'echo') =>
      send(
        who,
        b.port,
        PATHS.invoke,
        {
          resource_id: resource,
          capability_id: capability,
          principal_id: 'alice@org-a.example',
          arguments: { n: 1 },
        },
        { headers: { 'x-sark-correlation-id': randomUUID() } },
      );
    expect((await call('echo')).status).toBe(200);
    expect((await call('echo')).status).toBe(200);
    expect((await call('nope')).status).toBe(404);
    expect((await call('nope-2')).status).toBe(404);
    expect((await call('echo', 'made-up')).status).toBe(404);
    const { text } = await scrape();
    const labels = { node: 'node-a', resource: 'echo', capability: 'echo' };
    expect(
      sample(text, 'federation_invocation_requests_total', { ...labels, outcome: 'success' }),
    ).toBe(2);
    // IDs the peer sent that this node does not serve share one placeholder series, so a peer
    // cannot add series by making IDs up: the two unknown capabilities are counted together.
    expect(
      sample(text, 'federation_invocation_requests_total', {
        node: 'node-a',
        resource: 'echo',
        capability: '(unknown)',
        outcome: 'error',
      }),
    ).toBe(2);
    expect(
      sample(text, 'federation_invocation_requests_total', {
        node: 'node-a',
        resource: '(unknown)',
        capability: '(unknown)',
        outcome: 'error',
      }),
    ).toBe(1);
    expect(text).not.toMatch(/nope|made-up/);
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

  it('reports circuit breakers and route lookups as samples, not only as declared metrics', async () => {
    // prom-client prints "# TYPE" for a metric without samples: before anything happened, none.
    let { text } = await scrape();
    expect(sample(text, 'federation_circuit_breaker_state', { node: 'node-a' })).toBeUndefined();
    expect(sample(text, 'federation_route_lookups_total', { outcome: 'no_route' })).toBeUndefined();

    // node-a runs no daemon here: a route lookup finds no route, and the failed catalog query
    // is node-a's circuit's first failure (closed, 0).
    expect((await b.cli(['route', 'echo'])).code).toBe(5);
    ({ text } = await scrape());
    expect(sample(text, 'federation_route_lookups_total', { outcome: 'no_route' })).toBe(1);
    expect(sample(text, 'federation_circuit_breaker_state', { node: 'node-a' })).toBe(0);

    // Four more failures open it (2).
    for (let failure = 2; failure <= 5; failure++) {
      const result = await b.cli(['invoke', 'echo', 'echo', '--node', 'node-a', '--retries', '0']);
      expect(result.code, result.stderr).toBe(5);
    }
    ({ text } = await scrape());
    expect(sample(text, 'federation_circuit_breaker_state', { node: 'node-a' })).toBe(2);
    // Invocations with --node look no route up.
    expect(sample(text, 'federation_route_lookups_total', { outcome: 'no_route' })).toBe(1);

    // Read from the state file at each scrape: a reset circuit is no longer reported.
    expectSuccess(await b.cli(['circuit', 'reset', 'node-a']));
    ({ text } = await scrape());
    expect(sample(text, 'federation_circuit_breaker_state', { node: 'node-a' })).toBeUndefined();
  });

  it('answers anything but GET /metrics with 404', async () => {
    expect((await scrape('/')).status).toBe(404);
  });

  it('closes an idle kept-alive connection after 2 s, and says so in Keep-Alive', async () => {
    const socket = connect(metricsPort, '127.0.0.1');
    let answer = '';
    let answered = 0;
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8');
      answered = Date.now();
    });
    socket.write('GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n\r\n');
    const idle = (await closed) - answered;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer.toLowerCase()).toContain('keep-alive: timeout=2\r\n');
    // Node closes a second after the timeout it advertises (so that clients give up first): ~3 s
    // here, ~6 s with Node's default of 5 s. Timers may fire late on a loaded machine, not early.
    expect(idle).toBeGreaterThanOrEqual(1_900);
    expect(idle).toBeLessThan(4_500);
  });
});

describe('serve --metrics: refusals', () => {
  // node-b's daemon runs for the other tests: these start node-b on a copy of its state file.
  let spare: TestNode;
  beforeAll(() => {
    spare = nodeCopy(b);
  });

  /** A port held by this test, as another program would hold it. */
  async function holdPort(): Promise<{ port: number; release(): Promise<void> }> {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    return {
      port: (holder.address() as AddressInfo).port,
      release: () => new Promise<void>((resolve) => holder.close(() => resolve())),
    };
  }

  /** Whether something accepts connections on a loopback port. */
  function answers(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.on('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
  }

  it('names the metrics address in use and points at --metrics; nothing is left listening', async (context) => {
    const held = await holdPort();
    context.onTestFinished(() => held.release());
    const listen = await freePort();
    const args = [
      'serve',
      '--listen',
      `127.0.0.1:${listen}`,
      '--metrics',
      `127.0.0.1:${held.port}`,
    ];

    // Exactly the two lines: no "listening" log line came before them.
    const { hint } = expectRefusal(await spare.cli(args), 1, {
      message: `cannot serve metrics on 127.0.0.1:${held.port}: it is already in use`,
      hint: /pass --metrics host:port with another address/,
    });
    expect(hint).not.toContain('--listen');
    expect(await answers(listen)).toBe(false);

    // With --json, stderr is the one error document.
    const json = await spare.cli(['--json', ...args]);
    expect(json.code).toBe(1);
    expect(json.stdout).toBe('');
    expect(JSON.parse(json.stderr)).toEqual({
      error: {
        code: 'ADDRESS_IN_USE',
        message: `cannot serve metrics on 127.0.0.1:${held.port}: it is already in use`,
        hint: 'stop whatever uses it, or pass --metrics host:port with another address',
        exitCode: 1,
      },
    });
    expect(await answers(listen)).toBe(false);
  });

  it('refuses --metrics on the address --listen takes, naming it as the metrics address', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    expectRefusal(await spare.cli(['serve', '--listen', address, '--metrics', address]), 1, {
      message: `cannot serve metrics on ${address}: it is already in use`,
      hint: `the node itself listens there (${address}): pass --metrics host:port with a port of its own`,
    });
    expect(await answers(port)).toBe(false);
  });

  it.for([
    ['nonsense', 'no port'],
    ['127.0.0.1:99999', 'a port above 65535'],
    ['127.0.0.1:', 'an empty port'],
  ])('refuses --metrics %s (%s) as usage, before binding anything (exit 2)', async ([value]) => {
    const listen = await freePort();
    expectRefusal(
      await spare.cli(['serve', '--listen', `127.0.0.1:${listen}`, '--metrics', value as string]),
      2,
      {
        message: new RegExp(
          `--metrics <host:port>' argument '${value as string}' is invalid\\. expected host:port with a port up to 65535, e\\.g\\. 127\\.0\\.0\\.1:9464$`,
        ),
        hint: /sark-fed serve --help/,
      },
    );
  });
});
