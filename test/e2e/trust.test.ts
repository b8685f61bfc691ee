import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { ServerResponse } from 'node:http';
import { Agent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { chownSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import {
  CLI_PATH,
  cleanEnv,
  expectRefusal,
  expectSuccess,
  listDir,
  runCli,
  tempDir,
  type RunOptions,
} from '../helpers/cli.js';
import {
  addAnchor,
  curl,
  echoServing,
  freePort,
  initNode,
  nodeCopy,
  opensslFingerprint,
  opensslNotAfter,
  startServe,
  stateRows,
  type CurlOptions,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { hoursFromNow, issueLeaf, loadCa } from '../helpers/certs.js';
import { opensslOk } from '../helpers/openssl.js';
import { createCa, issueNode, type CaFixture, type NodeFixture } from '../helpers/pki.js';
import { runInTerminal } from '../helpers/terminal.js';

/**
 * Trust between nodes and the daemon that answers peers (issue 3), end to end: real `sark-fed
 * serve` processes on 127.0.0.1, each with its own state file and certificates from `sark-fed
 * pki`, driven by the CLI as an operator runs it and by curl as a standard TLS client.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const TD_C = 'org-c.example';

const API = '/api/v2/federation';
const INFO = `${API}/info`;
const HEALTH = `${API}/health`;
const CHALLENGE = `${API}/trust/challenge`;
const TRUST = `${API}/trust`;
const RESOURCES = `${API}/resources`;

/**
 * Tests that set up their own nodes run a dozen CLI processes each, concurrently with the others:
 * on a busy two-core machine they need more than the default 30 s.
 */
const SLOW_TEST_MS = 60_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The JSON shape of a peer in `trust list --json` and `trust show --json`. */
interface PeerReport {
  nodeId: string;
  trustDomain: string;
  spiffeId: string;
  endpoint: string | null;
  trustLevel: 'untrusted' | 'pending' | 'trusted' | 'revoked';
  pinnedFingerprint: string | null;
  trustExpiresAt: string | null;
  establishedAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
  createdAt: string;
  updatedAt: string;
  /** trust list and trust show only */
  certificateProblem?: { code: string; message: string } | null;
}

interface ErrorBody {
  error: { code: string; message: string; correlation_id: string };
}

let cas: { a: CaFixture; b: CaFixture; rogueA: CaFixture; c: CaFixture };
/**
 * Node certificates issued once and shared by every test federation (each has its own state
 * files and ports): node-a and node-s of org A, node-b of org B. And client certificates no node
 * may accept: one for node-a from another CA claiming org A, and one of org C, which nobody
 * anchors.
 */
let certs: { a: NodeFixture; b: NodeFixture; s: NodeFixture; rogueA: NodeFixture; c: NodeFixture };

/**
 * A federation shared by the tests that only read: node-a (org A) and node-b (org B) trust each
 * other and both serve; node-s is a valid org-A node that node-b never trusted. Tests that change
 * trust make their own nodes (freshPair) and leave this one alone.
 */
let shared: { a: TestNode; b: TestNode; stranger: TestNode; daemonB: RunningServe };

beforeAll(async () => {
  const root = tempDir('sark-fed-trust-');
  const [a, b, rogue, c] = await Promise.all([
    createCa(join(root, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(root, 'ca-b'), ['--trust-domain', TD_B]),
    createCa(join(root, 'ca-rogue-a'), ['--trust-domain', TD_A]),
    createCa(join(root, 'ca-c'), ['--trust-domain', TD_C]),
  ]);
  cas = { a, b, rogueA: rogue, c };
  const ip = ['--ip', '127.0.0.1'];
  const [certA, certB, certS, certRogue, certC] = await Promise.all([
    issueNode(a.dir, 'node-a', join(root, 'certs', 'node-a'), ip),
    issueNode(b.dir, 'node-b', join(root, 'certs', 'node-b'), ip),
    issueNode(a.dir, 'node-s', join(root, 'certs', 'node-s'), ip),
    // The rogue CA names itself org A and issues a certificate for node-a itself.
    issueNode(rogue.dir, 'node-a', join(root, 'certs', 'rogue-node-a'), ip),
    issueNode(c.dir, 'node-c', join(root, 'certs', 'node-c'), ip),
  ]);
  certs = { a: certA, b: certB, s: certS, rogueA: certRogue, c: certC };

  const fed = join(root, 'shared');
  const [nodeA, nodeB, stranger] = await Promise.all([
    initNode(fed, certs.a, 'node-a', TD_A),
    initNode(fed, certs.b, 'node-b', TD_B),
    initNode(fed, certs.s, 'node-s', TD_A),
  ]);
  await Promise.all([
    addAnchor(nodeA, cas.b.certPath),
    addAnchor(nodeB, cas.a.certPath),
    addAnchor(stranger, cas.b.certPath),
  ]);
  // Started here, stopped by the federation helper after the file.
  const [, daemonB] = await Promise.all([startServe(nodeA), startServe(nodeB)]);
  await establish(nodeA, nodeB);
  shared = { a: nodeA, b: nodeB, stranger, daemonB };
}, 60_000);

/** Two nodes of two organizations that anchor each other's CA but have not met yet. */
async function freshPair(): Promise<{ a: TestNode; b: TestNode }> {
  const root = tempDir('sark-fed-pair-');
  const [a, b] = await Promise.all([
    initNode(root, certs.a, 'node-a', TD_A),
    initNode(root, certs.b, 'node-b', TD_B),
  ]);
  await Promise.all([addAnchor(a, cas.b.certPath), addAnchor(b, cas.a.certPath)]);
  return { a, b };
}

/** `sark-fed serve` for a node, stopped when the test ends whatever its outcome. */
async function serve(
  context: TestContext,
  node: TestNode,
  args: string[] = [],
): Promise<RunningServe> {
  const running = await startServe(node, args);
  context.onTestFinished(async () => {
    await running.stop();
  });
  return running;
}

/** A establishes trust with B by endpoint and B's real fingerprint; both sides then trust. */
async function establish(a: TestNode, b: TestNode): Promise<void> {
  expectSuccess(
    await a.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslFingerprint(b.certPath),
    ]),
  );
}

async function peers(node: TestNode, extra: string[] = []): Promise<PeerReport[]> {
  const result = await node.cli(['trust', 'list', '--json', ...extra]);
  expectSuccess(result);
  return JSON.parse(result.stdout) as PeerReport[];
}

/** A row of the peers table, read straight from the state file (no CLI process needed). */
function peerRow(node: TestNode, nodeId: string): Record<string, unknown> | undefined {
  const rows = stateRows(node.state).peers as Array<Record<string, unknown>>;
  return rows.find((row) => row.node_id === nodeId);
}

/** curl with a node's own certificate, checking the daemon against the CA of `server`. */
function curlAs(
  client: NodeFixture | undefined,
  server: TestNode,
  path: string,
  options: Omit<CurlOptions, 'cacert' | 'cert'> = {},
) {
  return curl(`${server.endpoint}${path}`, {
    cacert: server.caPath,
    ...(client ? { cert: { certPath: client.certPath, keyPath: client.keyPath } } : {}),
    ...options,
  });
}

/**
 * A refusal by the daemon: the status, a JSON error with the code, and the correlation ID in both
 * the header and the body.
 */
function expectErrorAnswer(
  answer: Awaited<ReturnType<typeof curl>>,
  status: number,
  code: string | RegExp,
): ErrorBody['error'] {
  expect(answer.exitCode, answer.stderr).toBe(0);
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const { error } = answer.json as ErrorBody;
  expect(error.code).toMatch(code);
  expect(error.message).toMatch(/\S/);
  expect(error.correlation_id).toMatch(UUID);
  expect(answer.headers['x-sark-correlation-id']).toBe(error.correlation_id);
  return error;
}

/** Correlation IDs of the marker requests sent by drainLogs. */
const markers = new Set<string>();

/**
 * Requests the daemon logged as coming from this SPIFFE ID (markers aside). Call drainLogs first:
 * log lines travel through a pipe and may arrive after the answer they follow.
 */
function requestsFrom(daemon: RunningServe, spiffeId: string) {
  return daemon.logs.filter(
    (entry) =>
      entry.msg === 'request' &&
      entry.peer === spiffeId &&
      !markers.has(entry.correlation_id as string),
  );
}

/**
 * Sends a marker request and waits for its log line: every request the daemon answered before
 * has then been logged too (one process writes its log lines in order).
 */
async function drainLogs(daemon: RunningServe, server: TestNode) {
  const id = randomUUID();
  markers.add(id);
  // No client certificate: refused (401), and logged all the same.
  await curlAs(undefined, server, INFO, { headers: { 'x-sark-correlation-id': id } });
  await daemon.waitForLog((entry) => entry.msg === 'request' && entry.correlation_id === id);
}

function spiffe(trustDomain: string, nodeId: string): string {
  return `spiffe://${trustDomain}/sark/node/${nodeId}`;
}

/** "AB:CD:…" as openssl prints fingerprints: accepted on input as well as the canonical form. */
function opensslStyle(fingerprint: string): string {
  return (fingerprint.toUpperCase().match(/../g) ?? []).join(':');
}

describe.concurrent('trust establish', { timeout: SLOW_TEST_MS }, () => {
  it('with --fingerprint: exit 0, both sides trust each other, pinned to the real leaves until they expire', async (context) => {
    const { a, b } = await freshPair();
    await serve(context, b);
    const fpA = opensslFingerprint(a.certPath);
    const fpB = opensslFingerprint(b.certPath);

    // The fingerprint as openssl prints it (upper case, colons) is accepted too.
    const result = await a.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslStyle(fpB),
    ]);
    expectSuccess(result);
    expect(result.stderr).toMatch(/mutual trust established with spiffe:\/\/org-b\.example/);
    expect(result.stdout).toContain(fpB);

    const [onA, onB] = await Promise.all([peers(a), peers(b)]);
    expect(onA).toEqual([
      expect.objectContaining({
        nodeId: 'node-b',
        trustDomain: TD_B,
        spiffeId: spiffe(TD_B, 'node-b'),
        endpoint: b.endpoint,
        trustLevel: 'trusted',
        pinnedFingerprint: fpB,
        trustExpiresAt: opensslNotAfter(b.certPath),
        revokedAt: null,
      }),
    ]);
    expect(onB).toEqual([
      expect.objectContaining({
        nodeId: 'node-a',
        trustDomain: TD_A,
        spiffeId: spiffe(TD_A, 'node-a'),
        // The initiator told the responder where it can be reached.
        endpoint: a.endpoint,
        trustLevel: 'trusted',
        pinnedFingerprint: fpA,
        trustExpiresAt: opensslNotAfter(a.certPath),
        revokedAt: null,
      }),
    ]);
    // The fingerprints are the ones `init` reported for the same certificates.
    expect([fpA, fpB]).toEqual([a.fingerprint, b.fingerprint]);
  });

  it('on first contact without --fingerprint or --yes: exit 2 naming --fingerprint, nothing recorded; --yes then accepts', async (context) => {
    const { a, b } = await freshPair();
    const daemon = await serve(context, b);
    const before = { a: stateRows(a.state), b: stateRows(b.state) };

    const refused = await a.cli(['trust', 'establish', b.endpoint]);
    expectRefusal(refused, 2, { message: /first contact/, hint: /--fingerprint/ });
    expect(stateRows(a.state)).toEqual(before.a);
    expect(stateRows(b.state)).toEqual(before.b);
    // The peer was asked who it is, but never for a challenge.
    await drainLogs(daemon, b);
    expect(requestsFrom(daemon, spiffe(TD_A, 'node-a')).map((entry) => entry.path)).toEqual([INFO]);

    // --yes accepts what the peer presents (trust on first use); --json prints one object.
    const accepted = await a.cli(['--json', '--yes', 'trust', 'establish', b.endpoint]);
    expectSuccess(accepted);
    const report = JSON.parse(accepted.stdout) as {
      peer: PeerReport;
      remoteStatus: string;
      correlationId: string;
    };
    expect(Object.keys(report).sort()).toEqual(['correlationId', 'peer', 'remoteStatus']);
    expect(report.remoteStatus).toBe('trusted');
    expect(report.correlationId).toMatch(UUID);
    expect(report.peer).toMatchObject({
      nodeId: 'node-b',
      trustLevel: 'trusted',
      pinnedFingerprint: opensslFingerprint(b.certPath),
    });
    expect(report.peer).not.toHaveProperty('certificatePem');
    // The daemon logged the exchange under the same correlation ID.
    await daemon.waitForLog(
      (entry) =>
        entry.msg === 'peer trust recorded' && entry.correlation_id === report.correlationId,
    );
    expect(peerRow(b, 'node-a')).toMatchObject({
      trust_level: 'trusted',
      pinned_fingerprint: opensslFingerprint(a.certPath),
    });
  });

  it('with this node itself by its node ID: exit 2 (SELF, as by its endpoint), nothing recorded', async () => {
    const { b } = shared;
    const before = stateRows(b.state);
    for (const target of ['node-b']) {
      const result = await b.cli(['trust', 'establish', target, '--json']);
      expect(result.code, result.stderr).toBe(2);
      expect(JSON.parse(result.stderr)).toMatchObject({
        error: {
          code: 'SELF',
          message: `${target} is this node itself`,
          hint: 'name another node',
        },
      });
    }
    expect(stateRows(b.state)).toEqual(before);
  });

  it('with the wrong --fingerprint: exit 3, nothing recorded on either side', async () => {
    const { stranger, b } = shared;
    const before = { s: stateRows(stranger.state), b: stateRows(b.state) };
    const wrong = opensslFingerprint(shared.a.certPath);

    const result = await stranger.cli(['trust', 'establish', b.endpoint, '--fingerprint', wrong]);
    expectRefusal(result, 3, { message: new RegExp(`not the expected ${wrong}`) });
    // Refused before any challenge: B was only asked who it is (other tests use node-s too).
    await drainLogs(shared.daemonB, b);
    const paths = requestsFrom(shared.daemonB, spiffe(TD_A, 'node-s')).map((entry) => entry.path);
    expect(paths).toContain(INFO);
    expect(paths).not.toContain(CHALLENGE);
    expect(paths).not.toContain(TRUST);
    expect(stateRows(stranger.state)).toEqual(before.s);
    expect(stateRows(b.state)).toEqual(before.b);
  });

  it('of an unknown node exits 4; of an endpoint where nothing listens, or nothing answers, exits 5; nothing recorded', async (context) => {
    const { a } = shared;
    const before = stateRows(a.state);

    expectRefusal(await a.cli(['trust', 'establish', 'node-zzz']), 4, {
      message: /no node node-zzz is known here/,
      hint: /https:\/\/host:port/,
    });
    expectRefusal(await a.cli(['trust', 'show', 'node-zzz']), 4, { hint: /trust list/ });
    expectRefusal(await a.cli(['trust', 'approve', 'node-zzz']), 4);
    expectRefusal(await a.cli(['--yes', 'trust', 'revoke', 'node-zzz']), 4);

    const port = await freePort();
    const unreachable = await a.cli([
      'trust',
      'establish',
      `https://127.0.0.1:${port}`,
      '--fingerprint',
      shared.b.fingerprint,
    ]);
    expectRefusal(unreachable, 5, {
      message: new RegExp(`cannot reach https://127\\.0\\.0\\.1:${port}`),
      hint: /sark-fed serve/,
    });

    // Something that accepts connections and never says a word: a timeout, also exit 5.
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    context.onTestFinished(() => {
      silent.close();
      silent.unref();
    });
    const silentPort = (silent.address() as { port: number }).port;
    const started = Date.now();
    const timedOut = await a.cli([
      'trust',
      'establish',
      `https://127.0.0.1:${silentPort}`,
      '--fingerprint',
      shared.b.fingerprint,
      '--timeout',
      '1s',
    ]);
    expectRefusal(timedOut, 5, { message: /did not answer in time/, hint: /--timeout/ });
    // --timeout 1s was honoured: with the default (10 s) the command could not have ended yet.
    expect(Date.now() - started).toBeLessThan(10_000);

    // Peers speak HTTPS only.
    expectRefusal(await a.cli(['trust', 'establish', 'http://127.0.0.1:1']), 2, {
      hint: /https:\/\/host:port/,
    });
    expect(stateRows(a.state)).toEqual(before);
  });

  it('with serve --require-approval: the server records the initiator as pending until `trust approve`, which takes effect without a restart', async (context) => {
    const { a, b } = await freshPair();
    await serve(context, b, ['--require-approval']);

    const result = await a.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslFingerprint(b.certPath),
    ]);
    expectSuccess(result);
    expect(result.stderr).toMatch(/it recorded this node as pending its operator's approval/);
    // The initiator made its own decision: it trusts B.
    expect(peerRow(a, 'node-b')).toMatchObject({ trust_level: 'trusted' });
    expect(peerRow(b, 'node-a')).toMatchObject({
      trust_level: 'pending',
      pinned_fingerprint: opensslFingerprint(a.certPath),
    });
    expect((await peers(b, ['--pending'])).map((item) => item.nodeId)).toEqual(['node-a']);

    // Pending is not trusted: B's trusted-only endpoints refuse A; info needs a valid chain only.
    const pending = stateRows(b.state);
    expectErrorAnswer(await curlAs(a, b, RESOURCES), 403, 'PENDING_APPROVAL');
    expect((await curlAs(a, b, INFO)).status).toBe(200);
    expect(stateRows(b.state)).toEqual(pending);
    // Routed, A finds its only candidate refusing it: a trust refusal (exit 3), as with --node,
    // not "no route" (exit 5).
    for (const args of [
      ['route', 'echo'],
      ['invoke', 'echo', 'echo', '--args', '1'],
    ]) {
      const routed = await a.cli(args);
      expect(routed.code, routed.stderr).toBe(3);
      expect(routed.stderr).toMatch(
        /^error: no route to echo(\/echo)?: node-b refuses this node \(PENDING_APPROVAL\)$/m,
      );
      expect(routed.stderr).toMatch(/^hint: ask the operator of node-b to accept this node/m);
    }

    expectSuccess(await b.cli(['trust', 'approve', 'node-a']));
    const approved = await curlAs(a, b, RESOURCES);
    expect(approved.status, approved.text).toBe(200);
    expect(approved.json).toMatchObject({ resources: [] });
    expect(await peers(b, ['--pending'])).toEqual([]);

    // Approving again is a usage error that changes nothing.
    const before = stateRows(b.state);
    expectRefusal(await b.cli(['trust', 'approve', 'node-a']), 2, { message: /not pending/ });
    expect(stateRows(b.state)).toEqual(before);
  });

  it('--json: list is an array, show an object, and errors are one JSON object on stderr', async () => {
    const { a, b, stranger } = shared;
    const list = await a.cli(['--json', 'trust', 'list']);
    expectSuccess(list);
    const parsed = JSON.parse(list.stdout) as PeerReport[];
    expect(Array.isArray(parsed)).toBe(true);
    expect(parsed.map((item) => [item.nodeId, item.trustLevel])).toEqual([['node-b', 'trusted']]);
    expect(Object.keys(parsed[0] as PeerReport).sort()).toEqual(
      [
        'nodeId',
        'trustDomain',
        'spiffeId',
        'endpoint',
        'trustLevel',
        'pinnedFingerprint',
        'trustExpiresAt',
        'establishedAt',
        'revokedAt',
        'revokeReason',
        'createdAt',
        'updatedAt',
        'certificateProblem',
      ].sort(),
    );
    expect(parsed[0]?.certificateProblem).toBeNull();
    const shown = await a.cli(['--json', 'trust', 'show', 'node-b']);
    expect(JSON.parse(shown.stdout)).toEqual(parsed[0]);
    expect(
      JSON.parse((await stranger.cli(['--json', 'trust', 'list', '--pending'])).stdout),
    ).toEqual([]);

    const before = { a: stateRows(a.state), b: stateRows(b.state), s: stateRows(stranger.state) };
    for (const [node, args, code, errorCode] of [
      [a, ['trust', 'show', 'node-zzz'], 4, 'NO_SUCH_NODE'],
      [stranger, ['trust', 'establish', b.endpoint, '--fingerprint', a.fingerprint], 3, /MISMATCH/],
      [a, ['trust', 'revoke', 'node-b'], 2, 'CONFIRMATION_REQUIRED'],
    ] as const) {
      const failed = await node.cli(['--json', ...args]);
      expect(failed.code, failed.stderr).toBe(code);
      expect(failed.stdout).toBe('');
      const lines = failed.stderr.trimEnd().split('\n');
      expect(lines, failed.stderr).toHaveLength(1);
      const { error } = JSON.parse(lines[0] as string) as {
        error: { code: string; message: string; hint: string | null; exitCode: number };
      };
      expect(error.code).toMatch(errorCode);
      expect(error.exitCode).toBe(code);
      expect(error.message).toMatch(/\S/);
      expect(error.hint).toMatch(/\S/);
    }
    expect(stateRows(a.state)).toEqual(before.a);
    expect(stateRows(b.state)).toEqual(before.b);
    expect(stateRows(stranger.state)).toEqual(before.s);
  });
});

describe.concurrent('standard clients (curl) and the daemon', () => {
  it('curl --cert --key --cacert gets info and health as JSON', async () => {
    const { a, b } = shared;
    const info = await curlAs(a, b, INFO);
    expect(info.exitCode, info.stderr).toBe(0);
    expect(info.status).toBe(200);
    expect(info.headers['content-type']).toMatch(/^application\/json/);
    expect(info.headers['x-sark-correlation-id']).toMatch(UUID);
    expect(info.json).toMatchObject({
      node_id: 'node-b',
      trust_domain: TD_B,
      spiffe_id: spiffe(TD_B, 'node-b'),
      api_version: 'v2',
      fingerprint: opensslFingerprint(b.certPath),
      endpoint: b.endpoint,
    });
    const health = await curlAs(a, b, HEALTH);
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ node_id: 'node-b', status: 'healthy' });
  });

  it('refuses, with a JSON answer rather than a hang-up, a client certificate from another CA claiming the same trust domain', async () => {
    const { b } = shared;
    const before = stateRows(b.state);
    // A certificate for node-a itself, from a CA that B does not anchor for org A.
    for (const path of [INFO, RESOURCES]) {
      const error = expectErrorAnswer(await curlAs(certs.rogueA, b, path), 403, 'UNKNOWN_ISSUER');
      expect(error.message).toMatch(/client certificate refused/);
    }
    expect(stateRows(b.state)).toEqual(before);
  });

  it('refuses a client certificate of a trust domain it has no anchor for: 403 UNKNOWN_TRUST_DOMAIN', async () => {
    const { b } = shared;
    const before = stateRows(b.state);
    const error = expectErrorAnswer(await curlAs(certs.c, b, INFO), 403, 'UNKNOWN_TRUST_DOMAIN');
    expect(error.message).toContain(TD_C);
    expect(stateRows(b.state)).toEqual(before);
  });

  it('logs a refused request with its error code, and the SPIFFE ID the refused certificate named; a successful one without either', async () => {
    const { a, b, stranger, daemonB } = shared;
    const sent = async (client: NodeFixture | undefined, path: string, status: number) => {
      const id = randomUUID();
      const answer = await curlAs(client, b, path, { headers: { 'x-sark-correlation-id': id } });
      expect(answer.status, answer.text).toBe(status);
      return daemonB.waitForLog((entry) => entry.msg === 'request' && entry.correlation_id === id);
    };
    // Refused at authentication: no peer, but whom the certificate claimed to be.
    expect(await sent(certs.c, INFO, 403)).toMatchObject({
      status: 403,
      peer: null,
      code: 'UNKNOWN_TRUST_DOMAIN',
      presented_spiffe_id: spiffe(TD_C, 'node-c'),
    });
    expect(await sent(certs.rogueA, INFO, 403)).toMatchObject({
      peer: null,
      code: 'UNKNOWN_ISSUER',
      presented_spiffe_id: spiffe(TD_A, 'node-a'),
    });
    const anonymous = await sent(undefined, INFO, 401);
    expect(anonymous).toMatchObject({ peer: null, code: 'NO_CLIENT_CERTIFICATE' });
    expect(anonymous).not.toHaveProperty('presented_spiffe_id');
    // Authenticated, then refused: the peer is known, the code says why.
    const untrusted = await sent(stranger, RESOURCES, 403);
    expect(untrusted).toMatchObject({ peer: spiffe(TD_A, 'node-s'), code: 'NOT_TRUSTED' });
    expect(untrusted).not.toHaveProperty('presented_spiffe_id');
    // Answered: the line it always was.
    const answered = await sent(a, INFO, 200);
    expect(Object.keys(answered).sort()).toEqual([
      'correlation_id',
      'duration_ms',
      'level',
      'method',
      'msg',
      'path',
      'peer',
      'status',
      'time',
    ]);
  });

  it('refuses a client without a certificate: 401 NO_CLIENT_CERTIFICATE', async () => {
    const { b } = shared;
    const before = stateRows(b.state);
    for (const [method, path] of [
      ['GET', INFO],
      ['GET', RESOURCES],
      ['POST', CHALLENGE],
    ] as const) {
      const answer = await curlAs(undefined, b, path, { method });
      expectErrorAnswer(answer, 401, 'NO_CLIENT_CERTIFICATE');
    }
    expect(stateRows(b.state)).toEqual(before);
  });

  it('resources: 403 NOT_TRUSTED for a valid but untrusted client, 200 {"resources":[]} for a trusted one', async () => {
    const { a, b, stranger } = shared;
    const before = stateRows(b.state);
    expect((await curlAs(stranger, b, INFO)).status).toBe(200);
    expectErrorAnswer(await curlAs(stranger, b, RESOURCES), 403, 'NOT_TRUSTED');
    expectErrorAnswer(await curlAs(stranger, b, `${RESOURCES}/echo`), 403, 'NOT_TRUSTED');
    const trusted = await curlAs(a, b, RESOURCES);
    expect(trusted.status, trusted.text).toBe(200);
    expect(trusted.json).toEqual({ node_id: 'node-b', resources: [] });
    expect(stateRows(b.state)).toEqual(before);
  });
});

describe.concurrent('daemon protocol refusals', () => {
  it('a body over 16 KiB on trust/challenge: 413, whether its length is declared or chunked, and the daemon goes on', async (context) => {
    // A daemon of its own (node-s, on another port): should this refusal go wrong, it must not
    // take the shared one down. node-s anchors org B's CA, so node-b's certificate is valid there.
    // It serves a copy of node-s's state file: its claim row would otherwise show up in the state
    // snapshots of the concurrent tests that compare node-s's file before and after.
    const port = await freePort();
    const stranger = nodeCopy(shared.stranger);
    const daemon = await serve(context, stranger, ['--listen', `127.0.0.1:${port}`]);
    const before = stateRows(stranger.state);
    const url = `https://127.0.0.1:${port}`;
    const client = { cacert: cas.a.certPath, cert: certs.b };
    const big = JSON.stringify({ padding: 'x'.repeat(20 * 1024) });
    for (const chunked of [false, true]) {
      const answer = await curl(`${url}${CHALLENGE}`, {
        ...client,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
        chunked,
      });
      expectErrorAnswer(answer, 413, 'BODY_TOO_LARGE');
      expect((await curl(`${url}${INFO}`, client)).status).toBe(200);
    }
    expect(daemon.process.exitCode).toBeNull();
    expect(daemon.stderr()).not.toMatch(/\n\s+at /);
    expect(stateRows(stranger.state)).toEqual(before);
  });

  it('malformed JSON: 400 MALFORMED_JSON; a body that is not JSON at all: 415', async () => {
    const { a, b } = shared;
    const before = stateRows(b.state);
    expectErrorAnswer(
      await curlAs(a, b, CHALLENGE, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"nonce": ',
      }),
      400,
      'MALFORMED_JSON',
    );
    expectErrorAnswer(
      await curlAs(a, b, CHALLENGE, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'hello',
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expect(stateRows(b.state)).toEqual(before);
  });

  it('an unknown path: 404 JSON; a wrong method: 405 with Allow', async () => {
    const { a, b } = shared;
    const before = stateRows(b.state);
    expectErrorAnswer(await curlAs(a, b, `${API}/nope`), 404, 'NOT_FOUND');
    expectErrorAnswer(await curlAs(a, b, '/'), 404, 'NOT_FOUND');
    const wrong = await curlAs(a, b, INFO, { method: 'DELETE' });
    expectErrorAnswer(wrong, 405, 'METHOD_NOT_ALLOWED');
    expect(wrong.headers.allow).toBe('GET');
    const wrongPost = await curlAs(a, b, CHALLENGE, { method: 'GET' });
    expectErrorAnswer(wrongPost, 405, 'METHOD_NOT_ALLOWED');
    expect(wrongPost.headers.allow).toBe('POST');
    expect(stateRows(b.state)).toEqual(before);
  });

  it('echoes a correlation ID sent in x-sark-correlation-id, on success and on errors', async () => {
    const { a, b, stranger } = shared;
    const id = '0b7c4f6e-2d1a-4e8b-9c3f-5a6b7c8d9e0f';
    const headers = { 'x-sark-correlation-id': id };
    const ok = await curlAs(a, b, INFO, { headers });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-sark-correlation-id']).toBe(id);
    for (const answer of [
      await curlAs(a, b, `${API}/nope`, { headers }),
      await curlAs(undefined, b, INFO, { headers }),
      await curlAs(stranger, b, RESOURCES, { headers }),
    ]) {
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.headers['x-sark-correlation-id']).toBe(id);
      expect((answer.json as ErrorBody).error.correlation_id).toBe(id);
    }
    // What is not a UUID is not echoed: the daemon makes its own.
    const odd = await curlAs(a, b, INFO, { headers: { 'x-sark-correlation-id': 'not-a-uuid' } });
    expect(odd.headers['x-sark-correlation-id']).toMatch(UUID);
  });
});

describe.concurrent('revocation', { timeout: SLOW_TEST_MS }, () => {
  it('revoke --no-notify: the daemon refuses the revoked peer at once, without a restart, and the CLI refuses to call it', async (context) => {
    const { a, b } = await freshPair();
    await serve(context, b);
    const daemonA = await serve(context, a);
    await establish(a, b);
    expect((await curlAs(a, b, RESOURCES)).status).toBe(200);

    const revoked = await b.cli([
      '--yes',
      'trust',
      'revoke',
      'node-a',
      '--no-notify',
      '--reason',
      'key compromise',
    ]);
    expectSuccess(revoked);
    expect(peerRow(b, 'node-a')).toMatchObject({
      trust_level: 'revoked',
      revoke_reason: 'key compromise',
    });
    // The same daemon process, on A's next request.
    const before = { a: stateRows(a.state), b: stateRows(b.state) };
    expectErrorAnswer(await curlAs(a, b, RESOURCES), 403, 'REVOKED');
    // A was not told: it still trusts B.
    expect(peerRow(a, 'node-b')).toMatchObject({ trust_level: 'trusted' });

    // B's CLI refuses to call A at all now: A's daemon hears nothing from B.
    await drainLogs(daemonA, a);
    const fromB = requestsFrom(daemonA, spiffe(TD_B, 'node-b')).length;
    expectRefusal(await b.cli(['trust', 'establish', 'node-a']), 3, {
      message: /^node-a is revoked here; it is not called$/,
      hint: /--fingerprint/,
    });
    await drainLogs(daemonA, a);
    expect(requestsFrom(daemonA, spiffe(TD_B, 'node-b'))).toHaveLength(fromB);

    // And A cannot re-establish from its side: only B's operator can restore trust.
    const retry = await a.cli(['trust', 'establish', 'node-b', '--fingerprint', b.fingerprint]);
    expectRefusal(retry, 3, { message: /403 REVOKED/ });
    expect(stateRows(a.state)).toEqual(before.a);
    expect(stateRows(b.state)).toEqual(before.b);

    // Notifying is best effort: A revokes B in turn, B refuses A's notice, A's revocation stands.
    const revokedBack = await a.cli(['--yes', '--json', 'trust', 'revoke', 'node-b']);
    expectSuccess(revokedBack);
    expect(JSON.parse(revokedBack.stdout)).toMatchObject({ notified: false });
    expect(revokedBack.stderr).toMatch(/could not notify node-b: .*403 REVOKED/);
    expect(peerRow(a, 'node-b')).toMatchObject({ trust_level: 'revoked' });
    expect(stateRows(b.state)).toEqual(before.b);
  });

  it('revoke with notification: the revoked peer records it, and the revoker refuses to call it (exit 3)', async (context) => {
    const { a, b } = await freshPair();
    const daemonB = await serve(context, b);
    await establish(a, b);

    const revoked = await a.cli([
      '--yes',
      '--json',
      'trust',
      'revoke',
      'node-b',
      '--reason',
      'audit',
    ]);
    expectSuccess(revoked);
    expect(JSON.parse(revoked.stdout)).toMatchObject({
      peer: { nodeId: 'node-b', trustLevel: 'revoked', revokeReason: 'audit' },
      notified: true,
    });
    const notice = await daemonB.waitForLog((entry) => entry.msg === 'peer revoked this node');
    expect(notice).toMatchObject({ peer: spiffe(TD_A, 'node-a') });
    // B stops trusting A too, as `untrusted`: the decision was A's, so B's operator has nothing to undo.
    expect(peerRow(b, 'node-a')).toMatchObject({
      trust_level: 'untrusted',
      revoke_reason: 'revoked by the peer: audit',
    });
    const before = { a: stateRows(a.state), b: stateRows(b.state) };
    expectErrorAnswer(await curlAs(a, b, RESOURCES), 403, 'NOT_TRUSTED');

    // A refuses to call B, before any connection.
    await drainLogs(daemonB, b);
    const fromA = requestsFrom(daemonB, spiffe(TD_A, 'node-a')).length;
    for (const extra of [[], ['--non-interactive']]) {
      expectRefusal(await a.cli([...extra, 'trust', 'establish', 'node-b']), 3, {
        message: /^node-b is revoked here; it is not called$/,
      });
    }
    await drainLogs(daemonB, b);
    expect(requestsFrom(daemonB, spiffe(TD_A, 'node-a'))).toHaveLength(fromA);
    // Named by its endpoint, B must be asked who it is; once it is known as node-b, A refuses.
    expectRefusal(await a.cli(['trust', 'establish', b.endpoint]), 3, {
      message: /^node-b is revoked here$/,
      hint: /--fingerprint/,
    });
    expect(stateRows(a.state)).toEqual(before.a);
    expect(stateRows(b.state)).toEqual(before.b);
  });

  it('revoke whose notice cannot be sent says why: an anchor gone is not a pin mismatch', async (context) => {
    const { a, b } = await freshPair();
    await serve(context, b);
    await establish(a, b);
    // A no longer anchors org B: B's certificate no longer validates here at all.
    expectSuccess(
      await a.cli(['trust', 'anchor', 'remove', opensslFingerprint(cas.b.certPath), '--yes']),
    );
    const revoked = await a.cli(['--json', 'trust', 'revoke', 'node-b', '--yes']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ notified: false });
    expect(revoked.stderr).toMatch(
      /^warning: could not notify node-b: the certificate of https:\/\/127\.0\.0\.1:\d+ is refused: .*org-b\.example/m,
    );
    expect(revoked.stderr).not.toMatch(/not the pinned/);
  });

  it('revoke without --yes in non-interactive mode: exit 2 naming --yes, nothing changed', async () => {
    const { a, b } = shared;
    const before = { a: stateRows(a.state), b: stateRows(b.state) };
    for (const extra of [[], ['--no-notify']]) {
      expectRefusal(await a.cli(['trust', 'revoke', 'node-b', ...extra]), 2, {
        message: /node-b/,
        hint: /--yes/,
      });
    }
    expect(stateRows(a.state)).toEqual(before.a);
    expect(stateRows(b.state)).toEqual(before.b);
  });
});

describe.concurrent('pins and live state', { timeout: SLOW_TEST_MS }, () => {
  it('a peer that swaps its certificate is refused (pin mismatch) until trust is re-established with its new fingerprint', async (context) => {
    const { a, b } = await freshPair();
    // B serves echo to A, so that calls before and after the renewal leave receipts on both sides.
    const serving = echoServing(tempDir('sark-fed-renewal-'), ['node-a']);
    const daemonB = await serve(context, b, serving);
    await serve(context, a);
    await establish(a, b);
    const oldFpB = opensslFingerprint(b.certPath);
    const call = () => a.cli(['invoke', 'echo', 'echo', '--node', 'node-b', '--args', '1']);
    expectSuccess(await call());

    // B gets a new key and certificate for the same node ID, and restarts its daemon.
    const renewed = await issueNode(cas.b.dir, 'node-b', join(dirname(b.state), 'renewed'), [
      '--ip',
      '127.0.0.1',
    ]);
    const newFpB = opensslFingerprint(renewed.certPath);
    expect(newFpB).not.toBe(oldFpB);
    expect(await daemonB.stop()).toBe(0);
    expectSuccess(
      await b.cli([
        '--yes',
        'init',
        '--node-id',
        'node-b',
        '--trust-domain',
        TD_B,
        '--cert',
        renewed.certPath,
        '--key',
        renewed.keyPath,
        '--endpoint',
        b.endpoint,
      ]),
    );
    await serve(context, b, serving);

    const before = { a: stateRows(a.state), b: stateRows(b.state) };
    for (const extra of [[], ['--yes']]) {
      const result = await a.cli([...extra, 'trust', 'establish', 'node-b']);
      const { message } = expectRefusal(result, 3, { hint: /--fingerprint/ });
      expect(message).toContain(newFpB);
      expect(message).toContain(`pinned ${oldFpB}`);
    }
    // At a terminal too, --yes is no answer to a changed certificate: it is refused, not re-pinned.
    const atTerminal = await runInTerminal([
      '--state',
      a.state,
      'trust',
      'establish',
      'node-b',
      '--yes',
    ]);
    expect(atTerminal.screen).toContain(`not the pinned ${oldFpB}`);
    expect(atTerminal.code).toBe(3);
    expect(stateRows(a.state)).toEqual(before.a);
    expect(stateRows(b.state)).toEqual(before.b);

    // A's daemon refuses B's new certificate on trusted endpoints; info needs a valid chain only.
    expectErrorAnswer(await curlAs(renewed, a, RESOURCES), 403, 'PIN_MISMATCH');
    expect((await curlAs(renewed, a, INFO)).status).toBe(200);
    // B's daemon still accepts A, which presents the certificate B pinned.
    expect((await curlAs(a, b, RESOURCES)).status).toBe(200);
    expect(stateRows(a.state)).toEqual(before.a);

    // B, with its new certificate, establishes towards A: A's daemon holds the new pin for A's
    // operator instead of replacing the old one on its own.
    const towardsA = await b.cli([
      '--json',
      'trust',
      'establish',
      'node-a',
      '--fingerprint',
      a.fingerprint,
    ]);
    expectSuccess(towardsA);
    expect(JSON.parse(towardsA.stdout)).toMatchObject({ remoteStatus: 'pending' });
    expect(peerRow(a, 'node-b')).toMatchObject({
      trust_level: 'pending',
      pinned_fingerprint: newFpB,
    });
    expectErrorAnswer(await curlAs(renewed, a, RESOURCES), 403, 'PENDING_APPROVAL');

    // Re-establishing with the new fingerprint restores trust.
    expectSuccess(await a.cli(['trust', 'establish', 'node-b', '--fingerprint', newFpB]));
    expect(peerRow(a, 'node-b')).toMatchObject({
      trust_level: 'trusted',
      pinned_fingerprint: newFpB,
    });
    expect((await curlAs(renewed, a, RESOURCES)).status).toBe(200);

    // The receipt of the call before the renewal, signed with B's old key (within minutes of the
    // new certificate's backdated notBefore), and the one after, with its new key: both verify,
    // on A (B's certificates) and on B (its own).
    expectSuccess(await call());
    for (const node of [a, b]) {
      const verified = await node.cli(['--json', 'audit', 'verify']);
      expect(verified.code, verified.stderr).toBe(0);
      expect(JSON.parse(verified.stdout)).toMatchObject({
        ok: true,
        receipts: { verified: 2, invalid: 0, unknownSigner: 0 },
      });
    }
  });

  it('refuses a file of several certificates as an anchor (exit 2), rather than take the first', async () => {
    const node = nodeCopy(shared.stranger);
    const bundle = join(tempDir('sark-fed-bundle-'), 'bundle.pem');
    writeFileSync(
      bundle,
      readFileSync(cas.a.certPath, 'utf8') + readFileSync(cas.c.certPath, 'utf8'),
    );
    const before = stateRows(node.state);
    expectRefusal(await node.cli(['trust', 'anchor', 'add', bundle]), 2, {
      message: /bundle\.pem holds 2 certificates; an anchor is one CA certificate$/,
      hint: /each CA in a file of its own/,
    });
    expect(stateRows(node.state)).toEqual(before);
  });

  it('refuses anchors that cannot vouch for a trust domain, changing nothing in the state file', async () => {
    const node = nodeCopy(shared.stranger);
    const dir = tempDir('sark-fed-bad-anchors-');
    // A CA certificate that may not sign certificates, and one that expired yesterday.
    const noKeyCertSign = join(dir, 'no-keycertsign.pem');
    opensslOk([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(dir, 'no-keycertsign.key'),
      '-out',
      noKeyCertSign,
      '-subj',
      '/CN=no keyCertSign',
      '-days',
      '30',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,digitalSignature',
      '-addext',
      `subjectAltName=URI:spiffe://${TD_C}`,
    ]);
    const expired = join(dir, 'expired.pem');
    writeFileSync(
      expired,
      (
        await issueLeaf({
          issuer: loadCa(cas.c.dir),
          uris: [`spiffe://${TD_C}`],
          subject: 'CN=expired CA',
          ca: true,
          notBefore: hoursFromNow(-48),
          notAfter: hoursFromNow(-24),
        })
      ).certPem,
    );
    const noDomain = await createCa(join(dir, 'ca-no-domain'));
    const before = stateRows(node.state);
    const cases: Array<[string[], number, RegExp, RegExp]> = [
      [[certs.a.certPath], 3, /^CN=node-a, O=org-a\.example is not a CA certificate$/, /ca\.pem/],
      [
        [noKeyCertSign],
        3,
        /^CN=no keyCertSign may not sign certificates \(no keyCertSign\)$/,
        /issuing CA/,
      ],
      [[expired], 3, /^CN=expired CA expired at \S+$/, /current CA certificate/],
      [[noDomain.certPath], 2, /names no trust domain$/, /^pass --trust-domain/],
      [
        [cas.c.certPath, '--trust-domain', TD_A],
        2,
        new RegExp(`^this CA names trust domain ${TD_C}, not ${TD_A}$`),
        /omit --trust-domain/,
      ],
    ];
    for (const [args, exitCode, message, hint] of cases) {
      expectRefusal(await node.cli(['trust', 'anchor', 'add', ...args]), exitCode, {
        message,
        hint,
      });
    }
    expect(stateRows(node.state)).toEqual(before);

    // A CA that names no trust domain is bound to the one given; it cannot be rebound quietly.
    expectSuccess(
      await node.cli(['trust', 'anchor', 'add', noDomain.certPath, '--trust-domain', TD_C]),
    );
    const bound = stateRows(node.state);
    expectRefusal(
      await node.cli([
        'trust',
        'anchor',
        'add',
        noDomain.certPath,
        '--trust-domain',
        'org-d.example',
      ]),
      2,
      {
        message: `this CA is already the anchor of ${TD_C}`,
        hint: /remove it first to rebind it/,
      },
    );
    // A whole fingerprint that no anchor has is not found (exit 4).
    expectRefusal(await node.cli(['trust', 'anchor', 'remove', '0'.repeat(64)]), 4, {
      message: `no trust anchor with fingerprint ${'0'.repeat(64)}`,
      hint: /trust anchor list/,
    });
    expect(stateRows(node.state)).toEqual(bound);
  });

  it('a peer that established trust without an endpoint cannot be called back: NO_ENDPOINT, nothing written', async (context) => {
    const { b } = await freshPair();
    await serve(context, b);
    // node-a recorded without --endpoint: it calls node-b, but cannot say where it is reached.
    const state = join(tempDir('sark-fed-no-endpoint-'), 'state.db');
    const a = (args: string[]) => runCli(['--state', state, ...args]);
    const init = ['init', '--node-id', 'node-a', '--trust-domain', TD_A];
    expectSuccess(await a([...init, '--cert', certs.a.certPath, '--key', certs.a.keyPath]));
    expectSuccess(await a(['trust', 'anchor', 'add', cas.b.certPath]));
    expectSuccess(
      await a(['trust', 'establish', b.endpoint, '--fingerprint', opensslFingerprint(b.certPath)]),
    );
    expect(peerRow(b, 'node-a')).toMatchObject({ trust_level: 'trusted', endpoint: null });

    const before = stateRows(b.state);
    const hint = /^record one: sark-fed nodes add node-a --endpoint https:\/\/host:port$/;
    for (const args of [
      ['trust', 'establish', 'node-a'],
      ['nodes', 'health', 'node-a'],
    ]) {
      expectRefusal(await b.cli(args), 2, { message: 'no endpoint is recorded for node-a', hint });
    }
    // invoke says the correlation ID first (the handle on every call), then the refusal.
    const invoked = await b.cli(['invoke', 'echo', 'echo', '--node', 'node-a']);
    expect(invoked.code, invoked.stderr).toBe(5);
    expect(invoked.stdout).toBe('');
    expect(invoked.stderr).toMatch(
      /^correlation ID: \S+\nerror: no endpoint is recorded for node-a\nhint: record one: sark-fed nodes add node-a --endpoint https:\/\/host:port\n$/,
    );
    expect(stateRows(b.state)).toEqual(before);

    // Nor can node-a call itself through a daemon it has no address for.
    const self = await a(['invoke', 'echo', 'echo', '--node', 'node-a']);
    expect(self.code, self.stderr).toBe(5);
    expect(self.stderr).toMatch(
      /\nerror: this node has no endpoint recorded \(sark-fed init --endpoint\)\nhint: record one with `sark-fed init --endpoint`, then run `sark-fed serve`\n$/,
    );
  });

  it('refuses an endpoint that answers as no sark-fed node would, trusting nothing', async (context) => {
    const node = nodeCopy(shared.stranger);
    const fingerprint = opensslFingerprint(certs.b.certPath);
    // Another certificate of node-b, from the same CA: valid, but not the one approved.
    const other = await issueNode(cas.b.dir, 'node-b', join(tempDir('sark-fed-other-b-'), 'b'), [
      '--ip',
      '127.0.0.1',
    ]);
    const tls = (fixture: NodeFixture) => ({
      cert: readFileSync(fixture.certPath),
      key: readFileSync(fixture.keyPath),
    });
    const info = {
      node_id: 'node-b',
      trust_domain: TD_B,
      spiffe_id: `spiffe://${TD_B}/sark/node/node-b`,
      version: 'stand-in',
      api_version: 'v2',
      fingerprint,
      endpoint: null,
    };
    let answer: (response: ServerResponse) => void = () => {};
    // node-b's own certificate, asking for the client's as a daemon does; what it says varies.
    const server = createHttpsServer(
      { ...tls(certs.b), requestCert: true, rejectUnauthorized: false },
      (_request, response) => answer(response),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    context.onTestFinished(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const json =
      (body: unknown, headers: Record<string, string> = {}) =>
      (response: ServerResponse) => {
        response.writeHead(200, { 'content-type': 'application/json', ...headers });
        response.end(JSON.stringify(body));
      };
    const notANode = /^check that the endpoint is a sark-fed node \(`sark-fed serve`\)$/;
    const cases: Array<[(response: ServerResponse) => void, number, string, RegExp]> = [
      [
        (response) => response.end('<html>a web server</html>'),
        1,
        `${endpoint} answered with something other than JSON`,
        notANode,
      ],
      [
        (response) => response.end('x'.repeat(1024 * 1024 + 1)),
        1,
        `${endpoint} answered with more than 1 MiB`,
        notANode,
      ],
      [
        json({ ...info, node_id: 'node-x' }),
        3,
        `${endpoint} describes itself as node-x but its certificate names spiffe://${TD_B}/sark/node/node-b`,
        /impersonated/,
      ],
      [
        json({ ...info, fingerprint: 'f'.repeat(64) }),
        3,
        `${endpoint} describes its certificate as ${'f'.repeat(64)}, not the ${fingerprint} it presented`,
        /impersonated/,
      ],
      [
        // It closes the connection after its info, and the next one presents another certificate.
        (response) => {
          server.setSecureContext(tls(other));
          json(info, { connection: 'close' })(response);
        },
        3,
        `${endpoint} switched certificates during the exchange`,
        /something sits between the nodes/,
      ],
    ];
    const before = stateRows(node.state);
    for (const [reply, exitCode, message, hint] of cases) {
      server.setSecureContext(tls(certs.b));
      answer = reply;
      expectRefusal(
        await node.cli(['trust', 'establish', endpoint, '--fingerprint', fingerprint]),
        exitCode,
        { message, hint },
      );
    }
    expect(stateRows(node.state)).toEqual(before);
  });

  it('removing the last anchor of a trust domain names the trusted peers it cuts off', async () => {
    // A copy of node-a's state: it trusts node-b, with org B's CA as its one anchor for org B.
    const a = nodeCopy(shared.a);
    const anchorB = opensslFingerprint(cas.b.certPath);
    const removed = await a.cli(['trust', 'anchor', 'remove', anchorB, '--json']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse(removed.stdout)).toEqual({
      fingerprint: anchorB,
      removed: true,
      trustDomain: TD_B,
      peersWithoutAnchor: ['node-b'],
    });
    expect(removed.stderr).toContain(
      `warning: no anchor is left for ${TD_B}: node-b can no longer be authenticated, and calls to and from it are refused until one is added again`,
    );
    // Still "trusted" by decision, but refused: trust list and trust show say why.
    const listed = JSON.parse((await a.cli(['trust', 'list', '--json'])).stdout) as PeerReport[];
    expect(listed.find((peer) => peer.nodeId === 'node-b')).toMatchObject({
      trustLevel: 'trusted',
      certificateProblem: {
        code: 'UNKNOWN_TRUST_DOMAIN',
        message: `no trust anchor is configured for ${TD_B}`,
      },
    });
    const rows = (await a.cli(['trust', 'list'])).stdout.trimEnd().split('\n');
    expect(
      rows
        .find((row) => row.startsWith('node-b\t'))
        ?.split('\t')
        .at(-1),
    ).toBe(`refused: no trust anchor is configured for ${TD_B}`);
    const shown = await a.cli(['trust', 'show', 'node-b']);
    expect(shown.stderr).toContain(
      `warning: node-b is trusted, but its pinned certificate is refused here: no trust anchor is configured for ${TD_B} (UNKNOWN_TRUST_DOMAIN)`,
    );
    // Another anchor of the domain left, or no peer of it: no warning. The anchor goes by the
    // 16 digits a terminal shows, too; digits no anchor starts with are not found (exit 4).
    await addAnchor(a, cas.b.certPath);
    expectRefusal(await a.cli(['trust', 'anchor', 'remove', '0'.repeat(16)]), 4, {
      message: `no trust anchor's fingerprint starts with ${'0'.repeat(16)}`,
    });
    // Digits that start two anchors' fingerprints name neither: exit 2, nothing removed. (Two
    // real CAs sharing 16 digits is a 2^-64 chance, so the second row is written here by hand:
    // a copy of org B's anchor under a fingerprint that differs only in its last digit.)
    const twin = `${anchorB.slice(0, -1)}${anchorB.endsWith('0') ? '1' : '0'}`;
    const db = new Database(a.state);
    db.prepare(
      `INSERT INTO trust_anchors SELECT ?, trust_domain, subject, certificate_der, not_after, added_at
       FROM trust_anchors WHERE fingerprint = ?`,
    ).run(twin, anchorB);
    db.close();
    const twins = stateRows(a.state);
    expectRefusal(await a.cli(['trust', 'anchor', 'remove', anchorB.slice(0, 16)]), 2, {
      message: `${anchorB.slice(0, 16)} starts the fingerprints of 2 anchors`,
      hint: /give more digits, or the whole fingerprint/,
    });
    expect(stateRows(a.state)).toEqual(twins);
    expectSuccess(await a.cli(['trust', 'anchor', 'remove', twin]));
    expectSuccess(await a.cli(['trust', 'anchor', 'remove', anchorB.slice(0, 16).toUpperCase()]));
    expect(
      JSON.parse((await a.cli(['trust', 'anchor', 'list', '--json'])).stdout),
    ).not.toContainEqual(expect.objectContaining({ fingerprint: anchorB }));
    await addAnchor(a, cas.b.certPath);
    const quiet = await nodeCopy(shared.stranger).cli([
      'trust',
      'anchor',
      'remove',
      anchorB,
      '--json',
    ]);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(JSON.parse(quiet.stdout)).toMatchObject({ peersWithoutAnchor: [] });
    expect(quiet.stderr).not.toContain('warning');
  });

  it('the daemon notices anchor removal, anchor addition and CRL import by the CLI without a restart, even on a kept-alive connection', async (context) => {
    const root = tempDir('sark-fed-anchor-');
    const b = await initNode(root, certs.b, 'node-b', TD_B);
    await addAnchor(b, cas.a.certPath);
    await serve(context, b);
    const anchorA = opensslFingerprint(cas.a.certPath);

    const agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: readFileSync(b.caPath),
      cert: readFileSync(certs.a.certPath),
      key: readFileSync(certs.a.keyPath),
    });
    context.onTestFinished(() => agent.destroy());
    expect((await get(agent, b.port, INFO)).status).toBe(200);
    expect((await curlAs(certs.a, b, INFO)).status).toBe(200);

    expectSuccess(await b.cli(['trust', 'anchor', 'remove', anchorA]));
    const before = stateRows(b.state);
    expect(before.trust_anchors).toEqual([]);

    const again = await get(agent, b.port, INFO);
    expect(again.reusedSocket).toBe(true);
    expect(again.status).toBe(403);
    expect((JSON.parse(again.body) as ErrorBody).error.code).toBe('UNKNOWN_TRUST_DOMAIN');
    expectErrorAnswer(await curlAs(certs.a, b, INFO), 403, 'UNKNOWN_TRUST_DOMAIN');
    expect(stateRows(b.state)).toEqual(before);

    // The anchor back: accepted again.
    await addAnchor(b, cas.a.certPath);
    expect((await curlAs(certs.a, b, INFO)).status).toBe(200);

    // A CRL of org A's CA revoking node-a's certificate: refused from the next request on.
    const crl = join(root, 'crl.pem');
    expectSuccess(
      await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        cas.a.dir,
        '--revoke',
        certs.a.certPath,
        '--out',
        crl,
      ]),
    );
    expectSuccess(await b.cli(['trust', 'crl', 'import', crl]));
    const withCrl = stateRows(b.state);
    const error = expectErrorAnswer(await curlAs(certs.a, b, INFO), 403, 'REVOKED');
    expect(error.message).toMatch(/revoked/);
    // node-s, from the same CA but not on the list, is still welcome.
    expect((await curlAs(certs.s, b, INFO)).status).toBe(200);
    expect(stateRows(b.state)).toEqual(withCrl);
  });
});

describe.concurrent('serve', () => {
  // SIGHUP: what a daemon in the foreground gets when its terminal closes.
  it.for(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)(
    'stops on %s: finishes the request in flight, exits 0, logs a final line, gives the state file up',
    async (signal, context) => {
      // A copy of node-s's state, served on a port of its own: the cases run side by side, and
      // one state file takes one daemon.
      const port = await freePort();
      const node = nodeCopy(shared.stranger);
      const daemon = await serve(context, node, ['--listen', `127.0.0.1:${port}`]);

      // A request whose body is still on its way when the signal comes.
      const inFlight = startRequest(port, CHALLENGE, {
        ca: cas.a.certPath,
        cert: certs.b,
        contentType: 'application/json',
      });
      inFlight.write('{');
      await delay(500);
      const stopped = daemon.stop(signal);
      await daemon.waitForLog((entry) => entry.msg === 'shutting down');
      inFlight.end('}');
      const answer = await inFlight.response;
      expect(answer.status, answer.body).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ node_id: 'node-s' });
      expect(await stopped).toBe(0);

      const lines = daemon
        .stderr()
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.at(-1)).toMatchObject({ msg: 'stopped' });
      expect(lines.find((line) => line.msg === 'signal received')).toMatchObject({ signal });
      expect(stateRows(node.state).settings).toEqual([]);
      // No new connection is accepted once it stops.
      expect(
        (await curl(`https://127.0.0.1:${port}${INFO}`, { cacert: cas.a.certPath })).exitCode,
      ).toBe(7);
    },
  );

  it('logs a failed TLS handshake once, as a reason and the remote address; a bare TCP probe not at all', async (context) => {
    const port = await freePort();
    const daemon = await serve(context, nodeCopy(shared.stranger), [
      '--listen',
      `127.0.0.1:${port}`,
    ]);
    // A TCP health check (Consul's every 10 s): connects, sends nothing, closes.
    await new Promise<void>((resolve, reject) => {
      const probe = connect(port, '127.0.0.1', () => probe.end());
      probe.on('close', () => resolve());
      probe.on('error', reject);
    });
    // A client offering TLS 1.1 only, below the daemon's minimum.
    const old = await new Promise<Error>((resolve) => {
      const socket = tlsConnect({
        port,
        host: '127.0.0.1',
        minVersion: 'TLSv1.1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
        rejectUnauthorized: false,
      });
      socket.on('error', resolve);
    });
    expect(old.message).toMatch(/alert|version|protocol/i);
    const logged = await daemon.waitForLog((entry) => entry.msg === 'tls handshake failed');
    expect(logged).toEqual({
      time: expect.any(String),
      level: 'warn',
      msg: 'tls handshake failed',
      error: 'unsupported protocol',
      code: 'ERR_SSL_UNSUPPORTED_PROTOCOL',
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
    // Still serving, and nothing else was logged for either connection.
    expect(
      (await curl(`https://127.0.0.1:${port}${INFO}`, { cacert: cas.a.certPath, cert: certs.b }))
        .status,
    ).toBe(200);
    expect(daemon.logs.filter((entry) => entry.level !== 'info').map((entry) => entry.msg)).toEqual(
      ['tls handshake failed'],
    );
  });

  it('with --quiet logs warnings and errors only: no start, request or stop lines', async () => {
    const port = await freePort();
    const node = nodeCopy(shared.stranger);
    const child = spawn(
      process.execPath,
      [CLI_PATH, '--state', node.state, '-q', 'serve', '--listen', `127.0.0.1:${port}`],
      { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      // Nothing says it listens: wait for the port (bounded).
      let answer = await curl(`https://127.0.0.1:${port}${INFO}`, {
        cacert: cas.a.certPath,
        cert: certs.b,
      });
      for (let tries = 0; answer.status !== 200 && tries < 100; tries += 1) {
        await delay(100);
        answer = await curl(`https://127.0.0.1:${port}${INFO}`, {
          cacert: cas.a.certPath,
          cert: certs.b,
        });
      }
      expect(answer.status).toBe(200);
      // A refused TLS client is a warning: still logged.
      await curl(`https://127.0.0.1:${port}${INFO}`, { cacert: cas.b.certPath });
      await delay(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const lines = stderr
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => [line.level, line.msg])).toEqual([['warn', 'tls handshake failed']]);
  });

  it('on an occupied port: a one-line error and exit 1, no stack trace', async (context) => {
    // Nothing serves node-s's own endpoint: occupy its port, then start its daemon there.
    const { stranger } = shared;
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(stranger.port, '127.0.0.1', resolve));
    context.onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

    const before = stateRows(stranger.state);
    expectRefusal(await stranger.cli(['serve']), 1, {
      message: new RegExp(
        `cannot listen on 127\\.0\\.0\\.1:${stranger.port}: it is already in use`,
      ),
      hint: /--listen/,
    });
    expect(stateRows(stranger.state)).toEqual(before);
  });

  it('on an address this machine does not have: exit 1 naming the flag to change, nothing written', async () => {
    const node = nodeCopy(shared.stranger);
    const before = stateRows(node.state);
    // 192.0.2.1 (TEST-NET-1) is no interface's address here: the bind fails, nothing is sent.
    for (const [flags, where, flag] of [
      [['--listen', '192.0.2.1:8443'], 'listen on 192.0.2.1:8443', '--listen'],
      [
        ['--listen', '127.0.0.1:0', '--metrics', '192.0.2.1:9090'],
        'serve metrics on 192.0.2.1:9090',
        '--metrics',
      ],
    ] as const) {
      expectRefusal(await node.cli(['serve', ...flags]), 1, {
        message: `cannot ${where}: no such address on this machine`,
        hint: `pass ${flag} with an address of one of its interfaces`,
      });
    }
    expect(stateRows(node.state)).toEqual(before);
  });

  it('on a privileged port without the privilege: exit 1 with a hint to take a higher port', async (context) => {
    const lowest = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
    if (lowest <= 443) context.skip('every port is unprivileged on this machine');
    // Root may bind any port: the daemon runs as nobody, from a state file and key nobody owns.
    const options: RunOptions = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const dir = tempDir('sark-fed-unprivileged-');
    cpSync(certs.s.dir, join(dir, 'certs'), { recursive: true });
    const state = join(dir, 'state', 'state.db');
    if (options.uid !== undefined) {
      for (const path of [
        dir,
        join(dir, 'certs'),
        ...listDir(join(dir, 'certs')).map((name) => join(dir, 'certs', name)),
      ]) {
        chownSync(path, 65534, 65534);
      }
    }
    const cli = (args: string[]) => runCli(['--state', state, ...args], options);
    expectSuccess(
      await cli([
        'init',
        '--node-id',
        'node-s',
        '--trust-domain',
        TD_A,
        '--cert',
        join(dir, 'certs', 'cert.pem'),
        '--key',
        join(dir, 'certs', 'key.pem'),
        '--endpoint',
        'https://127.0.0.1:443',
      ]),
    );
    const before = stateRows(state);
    for (const [flags, where, flag] of [
      [[], 'listen on 127.0.0.1:443', '--listen'],
      [
        ['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:81'],
        'serve metrics on 127.0.0.1:81',
        '--metrics',
      ],
    ] as const) {
      expectRefusal(await cli(['serve', ...flags]), 1, {
        message: `cannot ${where}: permission denied`,
        hint: `ports below 1024 need privileges; pass ${flag} host:port with a higher port`,
      });
    }
    expect(stateRows(state)).toEqual(before);
  });

  it('with neither --listen nor an endpoint recorded by init: exit 2 saying where to give one', async () => {
    const state = join(tempDir('sark-fed-serve-'), 'state.db');
    const cli = (args: string[], env?: Record<string, string>) =>
      runCli(['--state', state, ...args], { env });
    expectSuccess(
      await cli([
        'init',
        '--node-id',
        'node-s',
        '--trust-domain',
        TD_A,
        '--cert',
        certs.s.certPath,
        '--key',
        certs.s.keyPath,
      ]),
    );
    const before = stateRows(state);
    expectRefusal(await cli(['serve']), 2, {
      message: 'no address to listen on',
      hint: /^pass --listen host:port, set FEDERATION_LISTEN_ADDRESS, or give init an --endpoint$/,
    });
    expect(stateRows(state)).toEqual(before);
  });

  it('without an identity: exit 4 with a hint to run init', async () => {
    const state = join(tempDir('sark-fed-serve-'), 'state.db');
    expectRefusal(await runCli(['--state', state, 'serve']), 4, { hint: /sark-fed init/ });
    // A state file that holds an anchor but no identity.
    expectSuccess(await runCli(['--state', state, 'trust', 'anchor', 'add', cas.a.certPath]));
    const before = stateRows(state);
    for (const extra of [[], ['--listen', '127.0.0.1:0']]) {
      expectRefusal(await runCli(['--state', state, 'serve', ...extra]), 4, {
        message: /no node identity/,
        hint: /sark-fed init/,
      });
    }
    expect(stateRows(state)).toEqual(before);
  });
});

/** A POST whose body the test writes piece by piece (chunked), on a connection of its own. */
function startRequest(
  port: number,
  path: string,
  options: { ca: string; cert: NodeFixture; contentType: string },
) {
  let request!: ReturnType<typeof httpsRequest>;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        ca: readFileSync(options.ca),
        cert: readFileSync(options.cert.certPath),
        key: readFileSync(options.cert.keyPath),
        headers: { 'content-type': options.contentType, 'transfer-encoding': 'chunked' },
        timeout: 15_000,
      },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () =>
          resolve({
            status: answer.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        answer.on('error', reject);
      },
    );
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error('timed out')));
  });
  return {
    response,
    write: (text: string) => request.write(text),
    end: (text: string) => request.end(text),
  };
}

/** A GET over a given keep-alive agent, saying whether the socket was reused. */
function get(
  agent: Agent,
  port: number,
  path: string,
): Promise<{ status: number; body: string; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      { host: '127.0.0.1', port, path, agent, method: 'GET', timeout: 10_000 },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            reusedSocket: request.reusedSocket,
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.end();
  });
}
