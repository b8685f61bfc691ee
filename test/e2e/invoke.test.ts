import Database from 'better-sqlite3';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, signReceipt } from '../../src/core/audit/receipts.js';
import { certificateFingerprint } from '../../src/core/identity/fingerprint.js';
import { pemBlocks } from '../../src/core/identity/pem.js';
import { CORRELATION_HEADER } from '../../src/core/protocol/constants.js';
import { runCli, tempDir, type RunResult } from '../helpers/cli.js';
import {
  addAnchor,
  makeNode,
  opensslFingerprint,
  startServe,
  stateRows,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { createCa, issueNode } from '../helpers/pki.js';

/**
 * The calling side of invocation (issue 5) end to end: `sark-fed route`, `invoke` and `circuit`
 * run as operators run them, against real `sark-fed serve` daemons (node-b and node-c of org B)
 * that node-a (org A) trusts, with trust set up by the CLI. The tampered-receipt case needs a
 * peer that misbehaves, which the real daemon never does: there a stand-in https server of this
 * test plays node-t, and the test name says so.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A short open circuit, so that the half-open test waits 2 s rather than 30 (documented for tests). */
// Long enough that the two CLI processes run while it is open still find it open on a machine
// under heavy load (process start alone took over a second at load 11), short enough to wait out.
const CIRCUIT_OPEN_MS = 5000;
const CIRCUIT_ENV = { SARK_FED_CIRCUIT_OPEN_MS: String(CIRCUIT_OPEN_MS) };
const SLOW_TEST_MS = 60_000;

let dir: string;
let a: TestNode;
let b: TestNode;
let c: TestNode;
let caADir: string;
let caBCert: string;
let caBDir: string;
const daemons = new Map<string, RunningServe>();
const serveArgs = new Map<string, string[]>();

// ---- an HTTP upstream that holds requests until the test lets them go -----------------------------

let upstreamUrl: string;
const held: ServerResponse[] = [];
let upstreamRequests = 0;
/** Called whenever a request starts waiting, so a test can release it when its turn comes. */
let onHeld: (() => void) | undefined;
const upstream = createHttpServer((request, response) => {
  request.resume();
  request.on('end', () => {
    upstreamRequests++;
    held.push(response);
    onHeld?.();
  });
});

function releaseHeld(): void {
  for (const response of held.splice(0)) {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end('{"released":true}');
  }
}

afterAll(async () => {
  releaseHeld();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function resourcesFile(): string {
  return file(
    'resources.json',
    JSON.stringify({
      resources: [
        { id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] },
        {
          id: 'slow',
          capabilities: [
            // Held by the upstream until the test releases it.
            {
              id: 'wait',
              backend: { type: 'http', method: 'POST', url: `${upstreamUrl}/wait`, timeout: '20s' },
            },
            {
              id: 'stall',
              backend: {
                type: 'http',
                method: 'POST',
                url: `${upstreamUrl}/stall`,
                timeout: '300ms',
              },
            },
          ],
        },
      ],
    }),
  );
}

const POLICY = JSON.stringify({
  rules: [
    {
      effect: 'allow',
      nodes: ['node-a'],
      principals: ['*'],
      resources: ['*'],
      capabilities: ['*'],
    },
    {
      effect: 'allow',
      nodes: ['node-b'],
      principals: ['*'],
      resources: ['echo'],
      capabilities: ['*'],
    },
    {
      effect: 'deny',
      nodes: ['*'],
      principals: ['mallory@*'],
      resources: ['*'],
      capabilities: ['*'],
    },
  ],
});

async function serve(node: TestNode, extra: string[] = []): Promise<void> {
  const args = serveArgs.get(node.nodeId) ?? [
    '--resources',
    resourcesFile(),
    '--policy',
    file('policy.json', POLICY),
    ...extra,
  ];
  serveArgs.set(node.nodeId, args);
  daemons.set(node.nodeId, await startServe(node, args));
}

async function kill(node: TestNode): Promise<void> {
  await daemons.get(node.nodeId)?.stop('SIGKILL');
  daemons.delete(node.nodeId);
}

beforeAll(async () => {
  dir = tempDir('sark-fed-invoke-e2e-');
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const [caA, caB] = await Promise.all([
    createCa(join(dir, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(dir, 'ca-b'), ['--trust-domain', TD_B]),
  ]);
  caADir = caA.dir;
  caBCert = caB.certPath;
  caBDir = caB.dir;
  [a, b, c] = await Promise.all([
    makeNode(dir, caA.dir, 'node-a', TD_A),
    makeNode(dir, caB.dir, 'node-b', TD_B),
    makeNode(dir, caB.dir, 'node-c', TD_B),
  ]);
  await Promise.all([
    addAnchor(a, caB.certPath),
    addAnchor(b, caA.certPath),
    addAnchor(c, caA.certPath),
  ]);
  // node-b accepts bodies up to 4 KiB: the oversized-body test needs a small cap.
  await Promise.all([serve(b, ['--max-body', '4KiB']), serve(c)]);
  for (const peer of [b, c]) {
    const established = await a.cli([
      'trust',
      'establish',
      peer.endpoint,
      '--fingerprint',
      opensslFingerprint(peer.certPath),
    ]);
    expect(established.code, established.stderr).toBe(0);
  }
  // node-s is known (added by hand) but never trusted.
  const added = await a.cli([
    'nodes',
    'add',
    'node-s',
    '--endpoint',
    'https://127.0.0.1:9',
    '--trust-domain',
    TD_B,
  ]);
  expect(added.code, added.stderr).toBe(0);
}, SLOW_TEST_MS);

function auditRows(node: TestNode, correlationId: string): Array<Record<string, unknown>> {
  return (stateRows(node.state).audit_events as Array<Record<string, unknown>>).filter(
    (row) => row.correlation_id === correlationId,
  );
}

function correlationIdOf(result: RunResult): string | undefined {
  return /^correlation ID: (\S+)$/m.exec(result.stderr)?.[1];
}

interface InvokeJson {
  correlationId: string;
  node: string;
  resource: string;
  capability: string;
  principal: string;
  success: boolean;
  result: unknown;
  durationMs: number;
  attempts: Array<{
    nodeId: string;
    attempt: number;
    status: number | null;
    errorCode: string | null;
  }>;
  receipt: Record<string, unknown>;
}

describe('invoke and route against real daemons', () => {
  it(
    'invokes echo on the best node: result on stdout, correlation ID on stderr, both nodes audit it without the arguments',
    async () => {
      const correlationId = randomUUID();
      const marker = `secret-${randomUUID()}`;
      const result = await a.cli([
        'invoke',
        'echo',
        'echo',
        '--args',
        JSON.stringify({ marker, n: [1, 2] }),
        '--correlation-id',
        correlationId,
        '--principal',
        'alice@org-a.example',
      ]);
      expect(result.code, result.stderr).toBe(0);
      // In a pipe: the result as one line of JSON, ready for jq.
      expect(result.stdout).toBe(`${JSON.stringify({ marker, n: [1, 2] })}\n`);
      expect(result.stderr).toBe(`correlation ID: ${correlationId}\n`);

      const [outbound, ...moreOutbound] = auditRows(a, correlationId);
      expect(moreOutbound).toHaveLength(0);
      const argumentsJson = JSON.stringify({ marker, n: [1, 2] });
      expect(outbound).toMatchObject({
        direction: 'outbound',
        source_node: 'node-a',
        principal: 'alice@org-a.example',
        resource: 'echo',
        capability: 'echo',
        outcome: 'success',
        status_code: 200,
        request_sha256: sha256Hex(argumentsJson),
        request_size: Buffer.byteLength(argumentsJson),
      });
      const target = outbound?.target_node === 'node-b' ? b : c;
      expect(['node-b', 'node-c']).toContain(outbound?.target_node);
      const inbound = auditRows(target, correlationId);
      expect(inbound).toEqual([
        expect.objectContaining({
          direction: 'inbound',
          source_node: 'node-a',
          target_node: target.nodeId,
          request_sha256: sha256Hex(argumentsJson),
        }),
      ]);
      // The receipt node-a keeps is the one the serving node issued and recorded.
      expect(JSON.parse(outbound?.receipt as string)).toEqual(
        JSON.parse(inbound[0]?.receipt as string),
      );
      for (const node of [a, b, c]) {
        expect(JSON.stringify(stateRows(node.state))).not.toContain(marker);
      }
    },
    SLOW_TEST_MS,
  );

  it('prints the whole answer with --json, arguments from stdin or @file', async () => {
    const fromStdin = await runCli(
      ['--state', a.state, 'invoke', 'echo', 'echo', '--args', '-', '--node', 'node-c', '--json'],
      { input: '{"from":"stdin"}' },
    );
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    const answer = JSON.parse(fromStdin.stdout) as InvokeJson;
    expect(answer).toMatchObject({
      node: 'node-c',
      resource: 'echo',
      capability: 'echo',
      principal: expect.stringMatching(/@node-a$/),
      success: true,
      result: { from: 'stdin' },
      attempts: [{ nodeId: 'node-c', attempt: 1, status: 200, errorCode: null }],
      receipt: { target: 'spiffe://org-b.example/sark/node/node-c', outcome: 'success' },
    });
    expect(answer.correlationId).toMatch(UUID);
    // With --json the correlation ID is in the document; stderr stays free for JSON errors.
    expect(fromStdin.stderr).toBe('');

    const argsFile = file('args.json', '[1, "two", {"three": 3}]');
    const fromFile = await a.cli([
      'invoke',
      'echo',
      'echo',
      '--args',
      `@${argsFile}`,
      '--node',
      'node-c',
    ]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toEqual([1, 'two', { three: 3 }]);
  });

  it('refuses arguments that are not JSON before anything is sent or audited (exit 2)', async () => {
    const before = (stateRows(a.state).audit_events as unknown[]).length;
    const result = await a.cli([
      'invoke',
      'echo',
      'echo',
      '--args',
      '{not json',
      '--node',
      'node-c',
    ]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^error: the arguments from --args are not JSON/);
    expect((stateRows(a.state).audit_events as unknown[]).length).toBe(before);
  });

  it('route names the chosen node, the fallback, and why the others are skipped', async () => {
    const result = await a.cli(['route', 'echo', '--capability', 'echo', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const route = JSON.parse(result.stdout) as {
      resource: string;
      capability: string;
      chosen: string;
      candidates: Array<{
        nodeId: string;
        local: boolean;
        status: string;
        rank: number | null;
        trust: string;
        health: string;
        circuit: string;
        catalog: string | null;
        idempotent: boolean | null;
        skipped: { code: string; reason: string } | null;
      }>;
    };
    expect(route).toMatchObject({ resource: 'echo', capability: 'echo' });
    expect(['node-b', 'node-c']).toContain(route.chosen);
    const byNode = Object.fromEntries(route.candidates.map((item) => [item.nodeId, item]));
    expect(byNode[route.chosen]).toMatchObject({ status: 'chosen', rank: 1, trust: 'trusted' });
    expect(typeof byNode[route.chosen]?.idempotent).toBe('boolean');
    expect(byNode[route.chosen === 'node-b' ? 'node-c' : 'node-b']).toMatchObject({
      status: 'fallback',
      rank: 2,
      trust: 'trusted',
      circuit: 'closed',
    });
    expect(byNode['node-a']).toMatchObject({
      local: true,
      status: 'skipped',
      skipped: { code: 'no-resource' },
    });
    expect(byNode['node-s']).toMatchObject({
      trust: 'untrusted',
      status: 'skipped',
      skipped: { code: 'untrusted' },
    });

    // In a pipe: one tab-separated row per node, the chosen one first.
    const rows = await a.cli(['route', 'echo']);
    expect(rows.code, rows.stderr).toBe(0);
    expect(rows.stdout.split('\n')[0]).toMatch(new RegExp(`^${route.chosen}\tchosen\t`));
    // The first field is the bare node ID, this node's too (its catalog field says `local`).
    const fields = rows.stdout
      .trimEnd()
      .split('\n')
      .map((line) => line.split('\t'));
    expect(fields.map((row) => row[0]).sort()).toEqual(
      route.candidates.map((item) => item.nodeId).sort(),
    );
    expect(fields.find((row) => row[0] === 'node-a')?.[5]).toBe('local');
  });

  it('route: a resource no node offers is not found (exit 4)', async () => {
    const result = await a.cli(['route', 'nothing-here']);
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toMatch(/no node offers nothing-here/);
  });

  it('a node that serves the resource itself routes to itself, and invokes through its own daemon', async () => {
    const route = await b.cli(['route', 'echo', '--json']);
    expect(route.code, route.stderr).toBe(0);
    const parsed = JSON.parse(route.stdout) as { chosen: string; candidates: unknown[] };
    expect(parsed.chosen).toBe('node-b');
    expect(parsed.candidates[0]).toMatchObject({
      nodeId: 'node-b',
      local: true,
      status: 'chosen',
      trust: 'self',
      catalog: 'local',
    });
    const result = await b.cli(['invoke', 'echo', 'echo', '--args', '"to myself"', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ node: 'node-b', result: 'to myself' });
  });

  it(
    'a node whose init recorded no endpoint calls itself where its daemon listens (serve --listen 127.0.0.1:0)',
    async () => {
      const certs = await issueNode(caBDir, 'node-e', join(dir, 'node-e-certs'), [
        '--ip',
        '127.0.0.1',
      ]);
      const state = join(dir, 'node-e.db');
      const e: TestNode = {
        ...b,
        nodeId: 'node-e',
        state,
        cli: (args, env) => runCli(['--state', state, ...args], { env }),
      };
      const init = await e.cli([
        'init',
        '--node-id',
        'node-e',
        '--trust-domain',
        TD_B,
        '--cert',
        certs.certPath,
        '--key',
        certs.keyPath,
      ]);
      expect(init.code, init.stderr).toBe(0);
      const policy = file(
        'policy-e.json',
        JSON.stringify({
          rules: [
            {
              effect: 'allow',
              nodes: ['node-e'],
              principals: ['*'],
              resources: ['echo'],
              capabilities: ['*'],
            },
          ],
        }),
      );
      // Not running: nowhere to call it, as before.
      const stopped = await e.cli(['invoke', 'echo', 'echo', '--node', 'node-e']);
      expect(stopped.code, stopped.stderr).toBe(5);
      expect(stopped.stderr).toMatch(/this node has no endpoint recorded/);

      const daemon = await startServe(e, [
        '--listen',
        '127.0.0.1:0',
        '--resources',
        resourcesFile(),
        '--policy',
        policy,
      ]);
      try {
        const port = (daemon.logs.find((entry) => entry.msg === 'listening') as { port: number })
          .port;
        const route = JSON.parse((await e.cli(['route', 'echo', '--json'])).stdout) as {
          chosen: string;
          candidates: Array<{ nodeId: string; endpoint: string | null; status: string }>;
        };
        expect(route.chosen).toBe('node-e');
        expect(route.candidates[0]).toMatchObject({
          nodeId: 'node-e',
          status: 'chosen',
          endpoint: `https://127.0.0.1:${port}`,
        });
        const called = await e.cli(['invoke', 'echo', 'echo', '--args', '"hi"', '--json']);
        expect(called.code, called.stderr).toBe(0);
        expect(JSON.parse(called.stdout)).toMatchObject({ node: 'node-e', result: 'hi' });
      } finally {
        await daemon.stop();
      }
      // Stopped: the address it had is not offered any more.
      const after = await e.cli(['invoke', 'echo', 'echo', '--node', 'node-e']);
      expect(after.code, after.stderr).toBe(5);
      expect(after.stderr).toMatch(/this node has no endpoint recorded/);
    },
    SLOW_TEST_MS,
  );

  it('refuses to call a node it does not trust (exit 3), and audits the refusal', async () => {
    const result = await a.cli(['invoke', 'echo', 'echo', '--node', 'node-s']);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toMatch(/refusing to call node-s: node-s is not trusted/);
    const correlationId = correlationIdOf(result) as string;
    expect(auditRows(a, correlationId)).toEqual([
      expect.objectContaining({
        direction: 'outbound',
        target_node: 'node-s',
        outcome: 'denied',
        error_code: 'NOT_TRUSTED',
        status_code: null,
      }),
    ]);
  });

  it('refuses to call a node known only by `nodes add` (no trust record) the same way (exit 3)', async () => {
    const added = await a.cli(['nodes', 'add', 'node-u', '--endpoint', 'https://127.0.0.1:9']);
    expect(added.code, added.stderr).toBe(0);
    const result = await a.cli(['invoke', 'echo', 'echo', '--node', 'node-u', '--json']);
    expect(result.code, result.stderr).toBe(3);
    const error = JSON.parse(result.stderr) as {
      error: { code: string; message: string; hint: string };
    };
    expect(error.error).toMatchObject({
      code: 'NOT_TRUSTED',
      message: 'refusing to call node-u: node-u is not trusted by this node',
    });
    expect(error.error.hint).toMatch(
      /^establish trust first: sark-fed trust establish node-u \(correlation ID /,
    );
    const correlationId = /correlation ID ([0-9a-f-]{36})/.exec(error.error.hint)?.[1] as string;
    expect(auditRows(a, correlationId)).toEqual([
      expect.objectContaining({
        target_node: 'node-u',
        outcome: 'denied',
        error_code: 'NOT_TRUSTED',
      }),
    ]);
    // A node ID nothing here knows is not found (exit 4); one that cannot be a node ID is a usage
    // error (exit 2).
    const unknown = await a.cli(['invoke', 'echo', 'echo', '--node', 'node-zz']);
    expect(unknown.code, unknown.stderr).toBe(4);
    expect(unknown.stderr).toMatch(/^error: no node node-zz is known here$/m);
  });

  it('refuses bad arguments before anything is routed, sent or audited (exit 2)', async () => {
    const auditedBefore = (stateRows(a.state).audit_events as unknown[]).length;
    const principal =
      /^error: a principal is 1 to 512 characters, none of them a control character\nhint: e\.g\. --principal /m;
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [['--correlation-id', 'not-a-uuid'], /^error: invalid correlation ID "not-a-uuid"$/m],
      [['--correlation-id', '-'.repeat(36)], /^error: invalid correlation ID/m],
      [['--node', 'Node_B'], /^error: invalid node ID "Node_B"$/m],
      [['--principal', ''], principal],
      [['--principal', 'p'.repeat(513)], principal],
      // An escape sequence or a newline would reach both trails and the operators' terminals.
      [['--principal', 'eve\u001b[31m@org-a.example'], principal],
      [['--principal', 'eve@org-a.example\nforged@x'], principal],
      [['--retries', '11'], /^error: .*retries/m],
      [['--timeout', 'soon'], /^error: .*timeout/m],
      // The breaker's open time, a setting for tests: refused rather than read as 0 or NaN.
      [
        [],
        /^error: SARK_FED_CIRCUIT_OPEN_MS=1\.5 is not a duration\nhint: give whole milliseconds/m,
        { SARK_FED_CIRCUIT_OPEN_MS: '1.5' },
      ],
    ];
    for (const [extra, message, env] of cases) {
      const result = await a.cli(['invoke', 'echo', 'echo', ...extra], env);
      expect(result.code, `${extra.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/^hint: /m);
    }
    const badResource = await a.cli(['invoke', 'no such', 'echo']);
    expect(badResource.code).toBe(2);
    expect(badResource.stderr).toMatch(/^error: invalid resource ID "no such"$/m);
    const badCapability = await a.cli(['invoke', 'echo', 'echo!']);
    expect(badCapability.code).toBe(2);
    expect(badCapability.stderr).toMatch(
      /^error: invalid capability ID "echo!"\nhint: IDs are 1 to 128 letters, digits, dots, dashes or underscores$/m,
    );
    expect((stateRows(a.state).audit_events as unknown[]).length).toBe(auditedBefore);
  });

  it('with --quiet, a failure still gives its correlation ID, at the end of the hint', async () => {
    const result = await a.cli(['invoke', 'echo', 'nocap', '--node', 'node-c', '--quiet']);
    expect(result.code).toBe(4);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^error: .*UNKNOWN_CAPABILITY/);
    const correlationId = /^hint: .* \(correlation ID ([0-9a-f-]{36})\)$/.exec(lines[1] ?? '')?.[1];
    expect(correlationId).toMatch(UUID);
    expect(auditRows(c, correlationId as string)).toHaveLength(1);
    expect(result.stdout).toBe('');
  });

  it('an unknown resource or capability is not found (exit 4)', async () => {
    const resource = await a.cli(['invoke', 'nothing-here', 'x']);
    expect(resource.code, resource.stderr).toBe(4);
    expect(resource.stderr).toMatch(/^error: no node offers nothing-here to this node$/m);
    // Asked of one node directly: that node's own 404, through its signed answer.
    const capability = await a.cli(['invoke', 'echo', 'nocap', '--node', 'node-c', '--json']);
    expect(capability.code, capability.stderr).toBe(4);
    expect(JSON.parse(capability.stderr)).toMatchObject({
      error: { code: 'UNKNOWN_CAPABILITY', exitCode: 4 },
    });
  });

  it(
    'a resource a peer began to serve within the catalog cache: exit 4 says the catalog was cached and how to ask again, then route --refresh finds it',
    async (context) => {
      // A pair of its own: node-y restarts with another resources file, which the other tests'
      // routes must not see.
      const [x, y] = await Promise.all([
        makeNode(dir, caADir, 'node-x', TD_A),
        makeNode(dir, caBDir, 'node-y', TD_B),
      ]);
      await Promise.all([addAnchor(x, caBCert), addAnchor(y, join(caADir, 'ca.pem'))]);
      const policy = file(
        'policy-y.json',
        JSON.stringify({
          rules: [
            {
              effect: 'allow',
              nodes: ['node-x'],
              principals: ['*'],
              resources: ['*'],
              capabilities: ['*'],
            },
          ],
        }),
      );
      const served = (ids: string[]) =>
        file(
          `resources-y-${ids.join('-')}.json`,
          JSON.stringify({
            resources: ids.map((id) => ({ id, capabilities: [{ id, backend: { type: 'echo' } }] })),
          }),
        );
      let daemon = await startServe(y, ['--resources', served(['echo']), '--policy', policy]);
      context.onTestFinished(async () => {
        await daemon.stop();
      });
      const established = await x.cli([
        'trust',
        'establish',
        y.endpoint,
        '--fingerprint',
        opensslFingerprint(y.certPath),
      ]);
      expect(established.code, established.stderr).toBe(0);
      // node-x learns node-y's catalog: echo only, cached for 60 s.
      const learnt = await x.cli(['route', 'echo']);
      expect(learnt.code, learnt.stderr).toBe(0);

      await daemon.stop();
      daemon = await startServe(y, ['--resources', served(['echo', 'fresh']), '--policy', policy]);

      const stale = await x.cli(['invoke', 'fresh', 'fresh', '--json']);
      expect(stale.code, stale.stderr).toBe(4);
      const { error } = JSON.parse(stale.stderr) as { error: { code: string; hint: string } };
      expect(error.code).toBe('UNKNOWN_RESOURCE');
      expect(error.hint).toMatch(
        /^node-y's catalog came from the cache \(kept 60 s\): `sark-fed route fresh --refresh` asks again; else check the resource ID, or ask its owners to allow this node in their policy/,
      );
      // route says the same, and its --refresh asks node-y again.
      const routeStale = await x.cli(['route', 'fresh']);
      expect(routeStale.code).toBe(4);
      expect(routeStale.stderr).toMatch(/^hint: node-y's catalog came from the cache/m);
      const refreshed = await x.cli(['route', 'fresh', '--refresh']);
      expect(refreshed.code, refreshed.stderr).toBe(0);
      expect(refreshed.stdout).toMatch(/^node-y\tchosen\t/m);
      const invoked = await x.cli(['invoke', 'fresh', 'fresh', '--args', '"now"']);
      expect(invoked.code, invoked.stderr).toBe(0);
      expect(invoked.stdout).toBe('"now"\n');
    },
    SLOW_TEST_MS,
  );

  it('a peer that revoked this node refuses its invoke (exit 3), and records nothing of it', async () => {
    // node-d (org A) and node-c trust each other; node-c then revokes node-d while node-d's
    // daemon is down, so node-d never hears of it and still calls.
    const d = await makeNode(dir, caADir, 'node-d', TD_A);
    await addAnchor(d, caBCert);
    const established = await d.cli([
      'trust',
      'establish',
      c.endpoint,
      '--fingerprint',
      opensslFingerprint(c.certPath),
    ]);
    expect(established.code, established.stderr).toBe(0);
    const revoked = await c.cli(['trust', 'revoke', 'node-d', '--reason', 'test', '--yes']);
    expect(revoked.code, revoked.stderr).toBe(0);

    const result = await d.cli(['invoke', 'echo', 'echo', '--node', 'node-c', '--json']);
    expect(result.code, result.stderr).toBe(3);
    const error = JSON.parse(result.stderr) as { error: { code: string; hint: string } };
    expect(error.error.code).toBe('REVOKED');
    const correlationId = /correlation ID ([0-9a-f-]{36})/.exec(error.error.hint)?.[1] as string;
    // Refused at authentication, before the body is read: no inbound event, no receipt.
    expect(auditRows(c, correlationId)).toEqual([]);
    expect(auditRows(d, correlationId)).toEqual([
      expect.objectContaining({ direction: 'outbound', target_node: 'node-c', receipt: null }),
    ]);
  });

  it('a policy denial is refused by the peer (exit 6)', async () => {
    const result = await a.cli([
      'invoke',
      'echo',
      'echo',
      '--node',
      'node-c',
      '--principal',
      'mallory@node-a',
    ]);
    expect(result.code, result.stderr).toBe(6);
    expect(result.stderr).toMatch(/POLICY_DENIED/);
    const correlationId = correlationIdOf(result) as string;
    expect(auditRows(a, correlationId)[0]).toMatchObject({ outcome: 'denied', status_code: 403 });
    expect(auditRows(c, correlationId)[0]).toMatchObject({ outcome: 'denied' });
  });

  it('a backend timeout is unavailable (exit 5), not retried: it may have run', async () => {
    const before = upstreamRequests;
    const result = await a.cli(['invoke', 'slow', 'stall', '--node', 'node-c']);
    releaseHeld();
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr).toMatch(/504 BACKEND_TIMEOUT/);
    expect(upstreamRequests - before).toBe(1);
  });

  it('an oversized body is refused by the peer (exit 1)', async () => {
    const result = await a.cli([
      'invoke',
      'echo',
      'echo',
      '--node',
      'node-b',
      '--args',
      JSON.stringify('x'.repeat(8 * 1024)),
    ]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/413 BODY_TOO_LARGE/);
  });
});

describe('failover and the circuit breaker with real processes', () => {
  it(
    'fails over to the other node when the chosen one is killed',
    async () => {
      // Both catalogs cached (an earlier test made node-c's be fetched again), with the latencies
      // of their fetches: route and the invoke below rank the two alike.
      expect((await a.cli(['route', 'echo'])).code).toBe(0);
      const route = JSON.parse((await a.cli(['route', 'echo', '--json'])).stdout) as {
        chosen: string;
      };
      const [first, second] = route.chosen === 'node-b' ? [b, c] : [c, b];
      await kill(first);
      const result = await a.cli(['invoke', 'echo', 'echo', '--args', '1', '--json']);
      expect(result.code, result.stderr).toBe(0);
      const answer = JSON.parse(result.stdout) as InvokeJson;
      expect(answer.node).toBe(second.nodeId);
      // Refused connections cannot have run anything: retried, then failed over.
      expect(answer.attempts.map((attempt) => [attempt.nodeId, attempt.errorCode])).toEqual([
        [first.nodeId, 'UNREACHABLE'],
        [first.nodeId, 'UNREACHABLE'],
        [first.nodeId, 'UNREACHABLE'],
        [second.nodeId, null],
      ]);
      await serve(first);
      expect((await a.cli(['circuit', 'reset', first.nodeId])).code).toBe(0);
    },
    SLOW_TEST_MS,
  );

  it(
    'opens the circuit after 5 failures, then lets exactly one of 8 racing processes make the trial',
    async () => {
      await kill(b);
      for (let failure = 1; failure <= 5; failure++) {
        const result = await a.cli(
          ['invoke', 'echo', 'echo', '--node', 'node-b', '--retries', '0'],
          CIRCUIT_ENV,
        );
        expect(result.code, result.stderr).toBe(5);
        expect(result.stderr).toMatch(/cannot reach node-b/);
      }
      const listed = await a.cli(['circuit', 'list', '--json'], CIRCUIT_ENV);
      const circuits = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
      const circuit = circuits.find((item) => item.nodeId === 'node-b') as Record<string, string>;
      expect(circuit).toMatchObject({
        state: 'open',
        consecutiveFailures: 5,
        lastFailure: 'ECONNREFUSED',
      });
      expect(Date.parse(circuit.retryAt as string) - Date.parse(circuit.openedAt as string)).toBe(
        CIRCUIT_OPEN_MS,
      );
      expect(circuits.find((item) => item.nodeId === 'node-c')).toMatchObject({ state: 'closed' });
      // In the table: open while its retry time is ahead; once it has passed (read with a 1 ms
      // open time), the next call is let through as the trial, and the table says so.
      const stateField = async (openMs: string) =>
        (await a.cli(['circuit', 'list'], { SARK_FED_CIRCUIT_OPEN_MS: openMs })).stdout
          .split('\n')
          .find((row) => row.startsWith('node-b\t'))
          ?.split('\t')[1];
      expect(await stateField('600000')).toBe('open');
      expect(await stateField('1')).toBe('open (trial due)');

      // Open: refused at once, without trying to connect, and not counted as a failure.
      const refused = await a.cli(['invoke', 'echo', 'echo', '--node', 'node-b'], CIRCUIT_ENV);
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/the circuit to node-b is open/);

      // route skips it, saying until when (read with a longer open time, so that the circuit is
      // certainly still open however slowly this machine runs the command).
      const routed = await a.cli(['route', 'echo', '--capability', 'echo', '--json'], {
        SARK_FED_CIRCUIT_OPEN_MS: '600000',
      });
      expect(routed.code, routed.stderr).toBe(0);
      const route = JSON.parse(routed.stdout) as {
        chosen: string;
        candidates: Array<Record<string, unknown>>;
      };
      expect(route.chosen).toBe('node-c');
      expect(route.candidates.find((item) => item.nodeId === 'node-b')).toMatchObject({
        status: 'skipped',
        circuit: 'open',
        skipped: {
          code: 'circuit-open',
          reason: expect.stringMatching(/^its circuit is open until /),
        },
      });

      // node-b's own CLI calls node-b through its daemon, which was killed: that circuit opens
      // too, with the default 30 s, and route then skips this very node.
      for (let failure = 1; failure <= 5; failure++) {
        const result = await b.cli([
          'invoke',
          'echo',
          'echo',
          '--node',
          'node-b',
          '--retries',
          '0',
        ]);
        expect(result.code, result.stderr).toBe(5);
      }
      const selfCircuit = (
        JSON.parse((await b.cli(['circuit', 'list', '--json'])).stdout) as Array<
          Record<string, string>
        >
      ).find((item) => item.nodeId === 'node-b') as Record<string, string>;
      expect(selfCircuit).toMatchObject({ state: 'open', consecutiveFailures: 5 });
      expect(
        Date.parse(selfCircuit.retryAt as string) - Date.parse(selfCircuit.openedAt as string),
      ).toBe(30_000);
      const selfRoute = await b.cli(['route', 'echo', '--json']);
      expect(selfRoute.code).toBe(5);
      expect(
        JSON.parse(selfRoute.stdout) as { chosen: string | null; candidates: unknown[] },
      ).toMatchObject({
        chosen: null,
        candidates: expect.arrayContaining([
          expect.objectContaining({
            nodeId: 'node-b',
            local: true,
            skipped: expect.objectContaining({ code: 'circuit-open' }),
          }),
        ]) as unknown,
      });
      // circuit reset closes an open circuit, and says what it was.
      const reset = await b.cli(['circuit', 'reset', 'node-b', '--json']);
      expect(reset.code, reset.stderr).toBe(0);
      expect(JSON.parse(reset.stdout)).toEqual({
        nodeId: 'node-b',
        state: 'closed',
        previousState: 'open',
      });
      const resetText = await b.cli(['circuit', 'reset', 'node-b']);
      expect(resetText.stderr).toMatch(/the circuit to node-b is closed/);
      // Its circuit closed, this node is still not offered: the killed daemon's catalog is in
      // the state file, but its claim on the file names a process that is gone.
      const afterReset = await b.cli(['route', 'echo', '--json']);
      expect(afterReset.code).toBe(5);
      expect(JSON.parse(afterReset.stdout)).toMatchObject({
        chosen: null,
        candidates: expect.arrayContaining([
          expect.objectContaining({
            nodeId: 'node-b',
            local: true,
            circuit: 'closed',
            skipped: {
              code: 'unreachable',
              reason: "this node's daemon is not running (it stopped without a clean shutdown)",
            },
          }),
        ]) as unknown,
      });

      await serve(b);
      const due = Date.parse(circuit.retryAt as string) - Date.now();
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due + 50));

      // The trial's upstream call is held until the other seven have finished.
      const before = upstreamRequests;
      const racers = Array.from({ length: 8 }, () =>
        runCli(
          ['--state', a.state, 'invoke', 'slow', 'wait', '--node', 'node-b', '--timeout', '30s'],
          { env: CIRCUIT_ENV, timeoutMs: 40_000 },
        ),
      );
      const results: RunResult[] = [];
      // Released once seven racers are done and the trial's call has reached the upstream,
      // whichever comes last (on a busy machine the trial may be the slowest to start).
      const releaseWhenDone = () => {
        if (results.length >= 7 && held.length > 0) releaseHeld();
      };
      onHeld = releaseWhenDone;
      const settled = racers.map((racer) =>
        racer.then((result) => {
          results.push(result);
          releaseWhenDone();
          return result;
        }),
      );
      // Should a second racer be admitted too, both would wait here: bound the wait.
      const safety = setTimeout(releaseHeld, 15_000);
      await Promise.all(settled);
      clearTimeout(safety);
      onHeld = undefined;
      releaseHeld();

      const codes = results.map((result) => result.code).sort();
      expect(codes, results.map((result) => result.stderr).join('\n')).toEqual([
        0, 5, 5, 5, 5, 5, 5, 5,
      ]);
      for (const result of results.filter((item) => item.code === 5)) {
        // Not "next trial at" the claim's lapse, a minute away: the trial in flight decides.
        expect(result.stderr).toMatch(
          /error: the circuit to node-b is half-open: a trial call is in flight, and its outcome closes or re-opens it\nhint: try again in a moment/,
        );
      }
      expect(upstreamRequests - before).toBe(1);
      const after = JSON.parse(
        (await a.cli(['circuit', 'list', '--json'], CIRCUIT_ENV)).stdout,
      ) as Array<Record<string, unknown>>;
      expect(after.find((item) => item.nodeId === 'node-b')).toMatchObject({
        state: 'closed',
        consecutiveFailures: 0,
      });
    },
    SLOW_TEST_MS,
  );

  it('circuit reset of a closed circuit; an unknown node is not found (exit 4), a bad ID or none is a usage error (exit 2)', async () => {
    const reset = await a.cli(['circuit', 'reset', 'node-b', '--json']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(JSON.parse(reset.stdout)).toMatchObject({
      nodeId: 'node-b',
      state: 'closed',
      previousState: 'closed',
    });
    const unknown = await a.cli(['circuit', 'reset', 'node-zz']);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toMatch(/^error: no node node-zz is known here$/m);
    const badId = await a.cli(['circuit', 'reset', 'Node_B', '--json']);
    expect(badId.code).toBe(2);
    expect(JSON.parse(badId.stderr)).toMatchObject({
      error: { code: 'BAD_NODE_ID', message: 'invalid node ID "Node_B"', exitCode: 2 },
    });
    const missing = await a.cli(['circuit', 'reset']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/node/);
  });

  it(
    'a rate limit (429) is refused by the peer (exit 6), not retried for an hour',
    async () => {
      await kill(c);
      serveArgs.delete('node-c');
      await serve(c, ['--rate-limit-per-hour', '1', '--rate-limit-burst', '1']);
      const first = await a.cli(['invoke', 'echo', 'echo', '--node', 'node-c']);
      expect(first.code, first.stderr).toBe(0);
      const second = await a.cli(['invoke', 'echo', 'echo', '--node', 'node-c', '--json']);
      expect(second.code, second.stderr).toBe(6);
      const error = JSON.parse(second.stderr) as { error: { code: string; hint: string } };
      expect(error.error.code).toBe('RATE_LIMITED');
      expect(error.error.hint).toMatch(/correlation ID [0-9a-f-]{36}/);
    },
    SLOW_TEST_MS,
  );
});

describe('a peer that lies (a stand-in https server plays node-t)', () => {
  let standIn: Server;

  afterAll(async () => {
    standIn?.closeAllConnections();
    await new Promise<void>((resolve) => (standIn ? standIn.close(() => resolve()) : resolve()));
  });

  it('a tampered receipt is detected (exit 3) and the call is still audited', async () => {
    const caB = join(dir, 'ca-b');
    const t = await issueNode(caB, 'node-t', join(dir, 'node-t'), ['--ip', '127.0.0.1']);
    const tKey = createPrivateKey(readFileSync(t.keyPath));
    standIn = createHttpsServer(
      {
        cert: readFileSync(t.certPath),
        key: readFileSync(t.keyPath),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            principal_id: string;
            arguments: unknown;
          };
          const correlationId = String(request.headers[CORRELATION_HEADER]);
          const receipt = signReceipt(tKey, {
            correlation_id: correlationId,
            source: 'spiffe://org-a.example/sark/node/node-a',
            target: 'spiffe://org-b.example/sark/node/node-t',
            principal: body.principal_id,
            resource: 'echo',
            capability: 'echo',
            request_sha256: sha256Hex(JSON.stringify(body.arguments ?? null)),
            outcome: 'success',
            result_sha256: sha256Hex(JSON.stringify(body.arguments)),
            timestamp: new Date().toISOString(),
          });
          // Signed for one result, sent with another.
          const payload = JSON.stringify({
            correlation_id: correlationId,
            success: true,
            result: { amount: 1_000_000 },
            duration_ms: 1,
            receipt,
          });
          response.writeHead(200, {
            'content-type': 'application/json',
            [CORRELATION_HEADER]: correlationId,
          });
          response.end(payload);
        });
      },
    );
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    const port = (standIn.address() as AddressInfo).port;
    // node-a trusts node-t, pinned to its certificate (as `trust establish` would record it).
    const pem = readFileSync(t.certPath, 'utf8');
    const db = new Database(a.state);
    try {
      const now = new Date().toISOString();
      db.prepare(
        `INSERT INTO peers (node_id, trust_domain, spiffe_id, endpoint, trust_level,
           pinned_fingerprint, certificate_pem, established_at, created_at, updated_at)
         VALUES ('node-t', ?, ?, ?, 'trusted', ?, ?, ?, ?, ?)`,
      ).run(
        TD_B,
        'spiffe://org-b.example/sark/node/node-t',
        `https://127.0.0.1:${port}`,
        certificateFingerprint((pemBlocks(pem)[0] as { der: Buffer }).der),
        pem,
        now,
        now,
        now,
      );
    } finally {
      db.close();
    }

    const result = await a.cli([
      'invoke',
      'echo',
      'echo',
      '--node',
      'node-t',
      '--args',
      '{"amount":1}',
    ]);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/the receipt from node-t does not verify/);
    const correlationId = correlationIdOf(result) as string;
    expect(auditRows(a, correlationId)).toEqual([
      expect.objectContaining({
        target_node: 'node-t',
        outcome: 'error',
        status_code: 200,
        error_code: 'RECEIPT_INVALID',
        receipt: null,
      }),
    ]);
  });
});
