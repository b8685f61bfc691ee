import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  consulRunner,
  consulTarget,
  queryHealthService,
  registerConsul,
} from '../../src/core/discovery/consul.js';
import { scan, type ScanResult } from '../../src/core/discovery/scanner.js';
import { startConsulStandin, type ConsulStandin } from '../helpers/consul-standin.js';

/**
 * The Consul method against a stand-in answering the shapes of Consul's documented HTTP API (no
 * Consul binary can be had here; see test/helpers/consul-standin.ts), over real HTTP on
 * 127.0.0.1: which instances are used, how their Meta and addresses are read, how the token and
 * CONSUL_HTTP_ADDR are honoured, and every way a Consul can fail.
 */

const FP = 'c'.repeat(64);
let standin: ConsulStandin | undefined;
const closers: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  await standin?.close();
  standin = undefined;
  for (const close of closers.splice(0)) await close();
});

async function consulScan(
  env: Record<string, string | undefined>,
  options: { url?: string; timeoutMs?: number; scanTimeoutMs?: number } = {},
): Promise<ScanResult> {
  return scan({
    runners: [consulRunner({ env, url: options.url, timeoutMs: options.timeoutMs })],
    timeoutMs: options.scanTimeoutMs ?? 4_000,
  });
}

describe('consul discovery', () => {
  it('lists passing instances only, with node ID, trust domain and fingerprint from Meta', async () => {
    standin = await startConsulStandin();
    standin.add({
      node: 'agent-1',
      nodeAddress: '10.0.0.1',
      serviceId: 'sark-node-a',
      address: '127.0.0.21',
      port: 8443,
      meta: { node_id: 'node-a', trust_domain: 'org-a.test', fingerprint: FP, api: 'v2' },
    });
    // The short TXT-like keys, a fingerprint with colons in capitals, and no service address:
    // the node's address is used.
    standin.add({
      node: 'agent-2',
      nodeAddress: '127.0.0.22',
      serviceId: 'sark-node-b',
      port: 9443,
      meta: { node: 'node-b', td: 'org-b.test', fp: 'AB:'.repeat(31) + 'AB' },
    });
    standin.add({
      node: 'agent-3',
      nodeAddress: '::1',
      serviceId: 'sark-node-c',
      port: 7443,
      meta: { node_id: 'node-c' },
    });
    // Failing checks: not listed with ?passing (and not trusted to be absent otherwise).
    standin.add({
      node: 'agent-4',
      nodeAddress: '127.0.0.24',
      serviceId: 'sark-node-d',
      port: 8443,
      meta: { node_id: 'node-d' },
      checks: ['passing', 'critical'],
    });
    standin.add({
      node: 'agent-5',
      nodeAddress: '127.0.0.25',
      serviceId: 'sark-node-e',
      port: 8443,
      meta: { node_id: 'node-e' },
      checks: ['warning'],
    });
    // Another service altogether.
    standin.add({
      node: 'agent-1',
      nodeAddress: '10.0.0.1',
      serviceId: 'web',
      service: 'web',
      port: 80,
      meta: { node_id: 'web-1' },
    });

    const result = await consulScan({ CONSUL_HTTP_ADDR: standin.url });
    expect(result.problems).toEqual([]);
    expect(result.skipped).toEqual([]);
    expect(result.succeeded).toEqual(['consul']);
    expect(
      result.nodes.map(({ nodeId, endpoint, trustDomain, fingerprint, ttlSeconds, via }) => ({
        nodeId,
        endpoint,
        trustDomain,
        fingerprint,
        ttlSeconds,
        via,
      })),
    ).toEqual([
      {
        nodeId: 'node-a',
        endpoint: 'https://127.0.0.21:8443',
        trustDomain: 'org-a.test',
        fingerprint: FP,
        ttlSeconds: 30,
        via: ['consul'],
      },
      {
        nodeId: 'node-b',
        endpoint: 'https://127.0.0.22:9443',
        trustDomain: 'org-b.test',
        fingerprint: 'ab'.repeat(32),
        ttlSeconds: 30,
        via: ['consul'],
      },
      {
        nodeId: 'node-c',
        endpoint: 'https://[::1]:7443',
        trustDomain: null,
        fingerprint: null,
        ttlSeconds: 30,
        via: ['consul'],
      },
    ]);
    const query = standin.requests.find((item) => item.path === '/v1/health/service/sark');
    expect(query?.method).toBe('GET');
    expect(query?.query.get('passing')).toBe('1');
    expect(query?.headers['x-consul-token']).toBeUndefined();
  });

  it('skips malformed entries one by one, and entries that are not passing', async () => {
    standin = await startConsulStandin();
    standin.add({
      node: 'agent-1',
      nodeAddress: '127.0.0.31',
      serviceId: 'sark-ok',
      port: 8443,
      meta: { node_id: 'ok' },
    });
    const entry = (service: Record<string, unknown>, node: Record<string, unknown> = {}) => ({
      Node: { Node: 'bad-agent', Address: '127.0.0.32', ...node },
      Service: { ID: 'sark-bad', Service: 'sark', Address: '', Port: 8443, ...service },
      Checks: [],
    });
    standin.rawEntries = [
      'not an object',
      null,
      entry({ Meta: {} }),
      entry({ Meta: { node_id: 'Not A Node ID!' } }),
      entry({ Meta: { node_id: 'p0' }, Port: 0 }),
      entry({ Meta: { node_id: 'pstr' }, Port: '8443' }),
      entry({ Meta: { node_id: 'addr' }, Address: 'https://evil.test/path' }),
      entry({ Meta: { node_id: 'noaddr' } }, { Address: '' }),
      // Terminal escapes from the network never reach the operator's terminal.
      entry({ Meta: { node_id: 'esc' }, Address: '\u001b[31mred' }),
      entry({ Meta: { node_id: 'meta', x: 5 } }),
      entry({ Meta: { node_id: 'long' }, Address: 'a'.repeat(300) }),
      { ...entry({ Meta: { node_id: 'crit' } }), Checks: [{ CheckID: 'c1', Status: 'critical' }] },
      // A duplicate of a node already given: the first one stands.
      entry({ Meta: { node_id: 'ok' }, Address: '127.0.0.99' }),
      // Malformed optional values are dropped, the node kept, and each one said.
      entry({ Meta: { node_id: 'partial', trust_domain: 'Bad Domain', fingerprint: 'xyz' } }),
    ];
    const result = await consulScan({ CONSUL_HTTP_ADDR: standin.url });
    expect(result.problems).toEqual([]);
    expect(
      result.nodes.map((node) => [node.nodeId, node.endpoint, node.trustDomain, node.fingerprint]),
    ).toEqual([
      ['ok', 'https://127.0.0.31:8443', null, null],
      ['partial', 'https://127.0.0.32:8443', null, null],
    ]);
    const details = result.skipped.map((item) => item.detail);
    expect(details).toEqual([
      expect.stringMatching(/^service \? on node \?: malformed entry/),
      expect.stringMatching(/^service \? on node \?: malformed entry/),
      'service sark-bad on node bad-agent: no valid node_id in Service.Meta',
      'service sark-bad on node bad-agent: no valid node_id in Service.Meta',
      expect.stringMatching(/malformed entry at Service\.Port/),
      expect.stringMatching(/malformed entry at Service\.Port/),
      expect.stringMatching(/no usable address \("https:\/\/evil\.test\/path"\)/),
      expect.stringMatching(/no usable address \(""\)/),
      'service sark-bad on node bad-agent: no usable address ("?[31mred")',
      expect.stringMatching(/malformed entry at Service\.Meta\.x/),
      expect.stringMatching(/malformed entry at Service\.Address/),
      'service sark-bad on node bad-agent: check c1 is critical',
      'service sark-bad on node bad-agent: another entry already gave node ok',
      'service sark-bad on node bad-agent: Meta trust domain "Bad Domain" is not a trust domain; the node is kept without it',
      'service sark-bad on node bad-agent: Meta fingerprint "xyz" is not a SHA-256 fingerprint; the node is kept without it',
    ]);
  });

  it('reports garbage JSON as the method problem', async () => {
    standin = await startConsulStandin({ mode: 'garbage' });
    const result = await consulScan({ CONSUL_HTTP_ADDR: standin.url });
    expect(result.nodes).toEqual([]);
    expect(result.problems).toEqual([
      {
        method: 'consul',
        code: 'CONSUL_BAD_RESPONSE',
        message: expect.stringMatching(
          new RegExp(`^Consul at ${standin.url} answered with something that is not JSON`),
        ),
        hint: 'check that --consul-url or CONSUL_HTTP_ADDR names a Consul agent',
      },
    ]);
  });

  it('reports JSON of the wrong shape, and an endless answer, as the method problem', async () => {
    standin = await startConsulStandin({ mode: 'wrong-shape' });
    const shape = await consulScan({ CONSUL_HTTP_ADDR: standin.url });
    expect(shape.problems).toMatchObject([
      { code: 'CONSUL_BAD_RESPONSE', message: expect.stringContaining('not a list') },
    ]);
    standin.mode = 'huge';
    const huge = await consulScan({ CONSUL_HTTP_ADDR: standin.url });
    expect(huge.problems).toMatchObject([
      {
        code: 'CONSUL_RESPONSE_TOO_LARGE',
        message: `Consul at ${standin.url} answered with more than 8 MiB`,
      },
    ]);
  });

  it('reports HTTP 500 with what Consul said', async () => {
    standin = await startConsulStandin({ mode: 'error500' });
    const result = await consulScan({ CONSUL_HTTP_ADDR: standin.url });
    expect(result.problems).toEqual([
      {
        method: 'consul',
        code: 'CONSUL_HTTP_ERROR',
        message: `Consul at ${standin.url} failed to list service "sark" (HTTP 500: rpc error making call: No cluster leader)`,
        hint: 'check the Consul agent and its logs',
      },
    ]);
  });

  it('keeps a path prefix of the address (a proxy in front of Consul), in requests and messages', async () => {
    standin = await startConsulStandin({ mode: 'error500' });
    const result = await consulScan({}, { url: `${standin.url}/proxy/` });
    expect(standin.requests.map((request) => request.path)).toEqual([
      '/proxy/v1/health/service/sark',
    ]);
    expect(result.problems).toMatchObject([
      {
        code: 'CONSUL_HTTP_ERROR',
        message: expect.stringMatching(
          new RegExp(`^Consul at ${standin.url}/proxy failed to list`),
        ),
      },
    ]);
  });

  it('bounds a hanging Consul by its timeout and reports it, well before the deadline', async () => {
    standin = await startConsulStandin({ mode: 'hang' });
    const result = await consulScan(
      { CONSUL_HTTP_ADDR: standin.url },
      { timeoutMs: 300, scanTimeoutMs: 10_000 },
    );
    // Had the deadline come first, the method would have ended quietly (see the next test): the
    // problem itself says that the 300 ms timeout ended it.
    expect(result.succeeded).toEqual([]);
    expect(result.problems).toMatchObject([
      {
        method: 'consul',
        code: 'CONSUL_TIMEOUT',
        message: `no answer from Consul at ${standin.url} within 300 ms (GET /v1/health/service/sark)`,
      },
    ]);
  });

  it('ends quietly when the scan deadline comes before the timeout', async () => {
    standin = await startConsulStandin({ mode: 'hang' });
    const started = Date.now();
    const result = await consulScan(
      { CONSUL_HTTP_ADDR: standin.url },
      { timeoutMs: 10_000, scanTimeoutMs: 300 },
    );
    // The request's own timeout would take 10 s; a method still running after the grace would
    // be a problem.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(result.problems).toEqual([]);
    expect(result.succeeded).toEqual(['consul']);
  });

  it('reports a Consul that is not there', async () => {
    const port = await closedPort();
    const result = await consulScan({ CONSUL_HTTP_ADDR: `127.0.0.1:${port}` });
    expect(result.problems).toMatchObject([
      {
        code: 'CONSUL_UNREACHABLE',
        message: `cannot reach Consul at http://127.0.0.1:${port} (ECONNREFUSED)`,
        hint: expect.stringContaining('CONSUL_HTTP_ADDR'),
      },
    ]);
  });

  it('sends CONSUL_HTTP_TOKEN, and says so when ACLs hide entries or refuse the token', async () => {
    standin = await startConsulStandin({ token: 'secret-token' });
    standin.add({
      node: 'agent-1',
      nodeAddress: '127.0.0.41',
      serviceId: 'sark-node-a',
      port: 8443,
      meta: { node_id: 'node-a' },
    });
    const withToken = await consulScan({
      CONSUL_HTTP_ADDR: standin.address,
      CONSUL_HTTP_TOKEN: 'secret-token',
    });
    expect(withToken.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
    expect(standin.requests.at(-1)?.headers['x-consul-token']).toBe('secret-token');

    const anonymous = await consulScan({ CONSUL_HTTP_ADDR: standin.address });
    expect(anonymous.nodes).toEqual([]);
    expect(anonymous.problems).toEqual([]);
    // A notice, not a skipped record: `discover` shows it as a warning, not among the skipped.
    expect(anonymous.skipped).toEqual([]);
    expect(anonymous.notices).toEqual([
      {
        method: 'consul',
        detail: 'Consul hid some entries from the anonymous token: set CONSUL_HTTP_TOKEN',
      },
    ]);

    const wrong = await consulScan({
      CONSUL_HTTP_ADDR: standin.address,
      CONSUL_HTTP_TOKEN: 'nope',
    });
    expect(wrong.problems).toMatchObject([
      {
        code: 'CONSUL_FORBIDDEN',
        message: expect.stringContaining('(HTTP 403: ACL not found)'),
        hint: `check the ACL token's policy (service:read on "sark")`,
      },
    ]);
  });

  it('reads CONSUL_HTTP_ADDR without a scheme as http, and --consul-url before it', async () => {
    standin = await startConsulStandin();
    standin.add({
      node: 'agent-1',
      nodeAddress: '127.0.0.51',
      serviceId: 'sark-node-a',
      port: 8443,
      meta: { node_id: 'node-a' },
    });
    const bare = await consulScan({ CONSUL_HTTP_ADDR: standin.address });
    expect(bare.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
    const closed = await closedPort();
    const flag = await consulScan(
      { CONSUL_HTTP_ADDR: `127.0.0.1:${closed}` },
      { url: standin.url },
    );
    expect(flag.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
  });

  it('answers blocking queries: held until the index moves, with the new X-Consul-Index', async () => {
    standin = await startConsulStandin();
    const target = consulTarget({ env: { CONSUL_HTTP_ADDR: standin.address } });
    const first = await queryHealthService(target);
    expect(first.entries).toEqual([]);
    expect(first.index).toBe(String(standin.index()));

    const started = Date.now();
    const blocked = queryHealthService(target, { index: first.index ?? '0', waitMs: 10_000 });
    await standin.waitForRequest((request) => request.query.get('index') === first.index);
    expect(standin.requests.at(-1)?.query.get('wait')).toBe('10s');
    setTimeout(
      () =>
        standin?.add({
          node: 'agent-1',
          nodeAddress: '127.0.0.61',
          serviceId: 'sark-late',
          port: 8443,
          meta: { node_id: 'late' },
        }),
      200,
    );
    const second = await blocked;
    // Held until the change 200 ms in, not for the whole 10 s wait.
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(Number(second.index)).toBeGreaterThan(Number(first.index));
    expect(second.entries).toHaveLength(1);

    // Nothing changes: the query returns at the end of its wait, with the same index.
    const unchanged = await queryHealthService(target, {
      index: second.index ?? '0',
      waitMs: 1_000,
    });
    expect(unchanged.index).toBe(second.index);
  });
});

describe('consul registration', () => {
  it('registers with a TCP check and Meta, is listed once the check passes, and deregisters', async () => {
    standin = await startConsulStandin({ token: 'write-token' });
    // The node's port: something listening, as the daemon would.
    const listener = await listening();
    const port = (listener.address() as { port: number }).port;
    const target = consulTarget({
      env: { CONSUL_HTTP_ADDR: standin.url, CONSUL_HTTP_TOKEN: 'write-token' },
    });
    const registration = await registerConsul(target, {
      nodeId: 'node-r',
      trustDomain: 'org-r.test',
      fingerprint: FP,
      address: '127.0.0.1',
      port,
      checkInterval: '1s',
    });
    expect(registration.serviceId).toBe('sark-node-r');
    const sent = await standin.waitForRequest(
      (request) => request.path === '/v1/agent/service/register',
    );
    expect(sent.method).toBe('PUT');
    expect(sent.query.get('replace-existing-checks')).toBe('true');
    expect(sent.headers['x-consul-token']).toBe('write-token');
    expect(JSON.parse(sent.body)).toEqual({
      ID: 'sark-node-r',
      Name: 'sark',
      Tags: ['sark-fed', 'api-v2'],
      Address: '127.0.0.1',
      Port: port,
      Meta: { node_id: 'node-r', trust_domain: 'org-r.test', fingerprint: FP, api: 'v2' },
      Check: {
        CheckID: 'sark-node-r:tcp',
        Name: 'sark-fed listens',
        TCP: `127.0.0.1:${port}`,
        Interval: '1s',
        Timeout: '3s',
        DeregisterCriticalServiceAfter: '10m',
      },
    });

    // The stand-in runs the TCP check; the registration is listed once it passed.
    const found = await eventually(async () => {
      const result = await consulScan({
        CONSUL_HTTP_ADDR: standin?.url,
        CONSUL_HTTP_TOKEN: 'write-token',
      });
      return result.nodes.length > 0 ? result : undefined;
    });
    expect(found.nodes.map((node) => [node.nodeId, node.endpoint, node.trustDomain])).toEqual([
      ['node-r', `https://127.0.0.1:${port}`, 'org-r.test'],
    ]);

    await registration.deregister();
    expect(standin.requests.at(-1)).toMatchObject({
      method: 'PUT',
      path: '/v1/agent/service/deregister/sark-node-r',
    });
    expect(standin.registered.size).toBe(0);
    // Deregistering what the agent no longer knows is not an error.
    await registration.deregister();
    const after = await consulScan({
      CONSUL_HTTP_ADDR: standin.url,
      CONSUL_HTTP_TOKEN: 'write-token',
    });
    expect(after.nodes).toEqual([]);
  });

  it('refuses to register without a token the ACLs accept', async () => {
    standin = await startConsulStandin({ token: 'write-token' });
    const target = consulTarget({ env: { CONSUL_HTTP_ADDR: standin.url } });
    await expect(
      registerConsul(target, {
        nodeId: 'node-r',
        trustDomain: 'org-r.test',
        fingerprint: FP,
        address: '',
        port: 8443,
      }),
    ).rejects.toMatchObject({
      code: 'CONSUL_FORBIDDEN',
      hint: 'set CONSUL_HTTP_TOKEN to an ACL token allowed to do this',
    });
    expect(standin.registered.size).toBe(0);
  });
});

/** A TCP listener on a loopback port, closed after the test. */
async function listening(): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Retries `attempt` every 100 ms until it returns something (at most 5 s). */
async function eventually<T>(attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
