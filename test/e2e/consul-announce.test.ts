import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { startConsulStandin, type ConsulStandin } from '../helpers/consul-standin.js';
import { freePort, makeNode, startServe, type TestNode } from '../helpers/federation.js';
import { createCa } from '../helpers/pki.js';

/**
 * `sark-fed serve --announce consul`, end to end: the built CLI registers the node with a Consul
 * agent (a stand-in answering Consul's documented HTTP API: no Consul binary can be had here),
 * with its Meta and a TCP health check the stand-in really runs, and deregisters on SIGTERM
 * before exiting 0.
 */

const TD = 'org-a.example';
const TOKEN = 'b6a1c2f0-7f3e-4c55-9d1e-3a2b1c0d9e8f';

let root: string;
let node: TestNode;
let consul: ConsulStandin;

beforeAll(async () => {
  root = tempDir();
  const ca = await createCa(join(root, 'ca'), ['--trust-domain', TD]);
  node = await makeNode(root, ca.dir, 'node-a', TD);
  consul = await startConsulStandin({ token: TOKEN });
});

afterAll(async () => {
  await consul?.close();
});

describe('serve --announce consul', () => {
  it('registers with a TCP check, is listed once the check passes, and deregisters on SIGTERM', async () => {
    const serve = await startServe(
      node,
      ['--announce', 'consul'],
      // CONSUL_HTTP_ADDR without a scheme, as Consul's tools take it; the token from the env.
      { CONSUL_HTTP_ADDR: consul.address, CONSUL_HTTP_TOKEN: TOKEN },
    );
    try {
      const logged = await serve.waitForLog((entry) => entry.msg === 'registered with consul');
      expect(logged).toMatchObject({
        consul: consul.url,
        service_id: 'sark-node-a',
        address: '127.0.0.1',
        port: node.port,
        check: `127.0.0.1:${node.port}`,
      });
      const register = await consul.waitForRequest(
        (request) => request.path === '/v1/agent/service/register',
      );
      expect(register.method).toBe('PUT');
      expect(register.headers['x-consul-token']).toBe(TOKEN);
      expect(JSON.parse(register.body)).toMatchObject({
        ID: 'sark-node-a',
        Name: 'sark',
        Address: '127.0.0.1',
        Port: node.port,
        Meta: {
          node_id: 'node-a',
          trust_domain: TD,
          fingerprint: node.fingerprint,
        },
        Check: {
          TCP: `127.0.0.1:${node.port}`,
          Interval: '10s',
          DeregisterCriticalServiceAfter: '10m',
        },
      });

      // The stand-in's TCP check reaches the daemon: the node is listed as passing, and
      // `discover`'s engine finds it with what it registered.
      const { consulRunner } = await import('../../src/core/discovery/consul.js');
      const { scan } = await import('../../src/core/discovery/scanner.js');
      const deadline = Date.now() + 5_000;
      let found: Awaited<ReturnType<typeof scan>> | undefined;
      while (Date.now() < deadline) {
        found = await scan({
          runners: [
            consulRunner({ env: { CONSUL_HTTP_ADDR: consul.url, CONSUL_HTTP_TOKEN: TOKEN } }),
          ],
          timeoutMs: 3_000,
        });
        if (found.nodes.length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(found?.nodes.map((item) => [item.nodeId, item.endpoint, item.fingerprint])).toEqual([
        ['node-a', node.endpoint, node.fingerprint],
      ]);
    } finally {
      expect(await serve.stop('SIGTERM')).toBe(0);
    }
    const deregister = consul.requests.find(
      (request) => request.path === '/v1/agent/service/deregister/sark-node-a',
    );
    expect(deregister?.method).toBe('PUT');
    expect(deregister?.headers['x-consul-token']).toBe(TOKEN);
    expect(consul.registered.size).toBe(0);
    expect(serve.logs.map((entry) => entry.msg)).toContain('deregistered from consul');
  });

  it('--consul-url wins over CONSUL_HTTP_ADDR, and SIGINT deregisters too', async () => {
    const unused = await freePort();
    const serve = await startServe(node, ['--announce', 'consul', '--consul-url', consul.url], {
      CONSUL_HTTP_ADDR: `127.0.0.1:${unused}`,
      CONSUL_HTTP_TOKEN: TOKEN,
    });
    try {
      await serve.waitForLog((entry) => entry.msg === 'registered with consul');
      expect(consul.registered.has('sark-node-a')).toBe(true);
    } finally {
      expect(await serve.stop('SIGINT')).toBe(0);
    }
    expect(consul.registered.size).toBe(0);
  });

  it('does not run unfindable: a refused registration stops serve with exit 5', async () => {
    const before = consul.requests.length;
    const result = await node.cli(['serve', '--announce', 'consul', '--consul-url', consul.url], {
      CONSUL_HTTP_TOKEN: 'not-the-token',
    });
    expect(result.code, result.stderr).toBe(5);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^error: Consul at http:\/\/127\.0\.0\.1:\d+ refused to register sark-node-a \(HTTP 403: ACL not found\)$/m,
    );
    expect(result.stderr).toMatch(
      /^hint: check the ACL token's policy \(service:write on "sark"\)$/m,
    );
    expect(consul.requests.length).toBe(before + 1);
    expect(consul.registered.size).toBe(0);
  });
});
