import Database from 'better-sqlite3';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventsByCorrelation } from '../../src/core/audit/events.js';
import { sha256Hex, signReceipt, type ReceiptClaims } from '../../src/core/audit/receipts.js';
import { SarkError } from '../../src/core/errors.js';
import { certificateFingerprint } from '../../src/core/identity/fingerprint.js';
import { prepareIdentity, type NodeIdentity } from '../../src/core/identity/node-identity.js';
import { pemBlocks } from '../../src/core/identity/pem.js';
import { CORRELATION_HEADER, PATHS } from '../../src/core/protocol/constants.js';
import type { CatalogResource } from '../../src/core/protocol/schemas.js';
import { CATALOG_TTL_MS, saveListing } from '../../src/core/routing/catalogs.js';
import {
  CircuitBreakers,
  DEFAULT_BREAKER,
  findCircuit,
} from '../../src/core/routing/circuit-breaker.js';
import { invoke, type InvocationResult } from '../../src/core/routing/invocation.js';
import type { InvokeCall } from '../../src/core/routing/invoker.js';
import { NotSentError, PeerTransport } from '../../src/core/routing/peer-transport.js';
import { DEFAULT_BACKOFF, Deadline } from '../../src/core/routing/retry.js';
import { findRoute } from '../../src/core/routing/router.js';
import { openState, type StateStore } from '../../src/core/state/database.js';
import { saveHealth } from '../../src/core/state/discovery-repository.js';
import { readCounters } from '../../src/core/state/metric-counters.js';
import { loadIdentity, saveIdentity } from '../../src/core/state/identity-repository.js';
import { savePeer } from '../../src/core/state/trust-repository.js';
import { addAnchor } from '../../src/core/trust/anchor-store.js';
import { tempDir } from '../helpers/cli.js';
import { freePort } from '../helpers/federation.js';
import { createCa, issueNode, type NodeFixture } from '../helpers/pki.js';

/**
 * The calling side of invocation (issue 5) in-process, over real mutual TLS on 127.0.0.1: the
 * real transport, retry loop, circuit breaker and receipt checks against a stand-in peer, an
 * https server in this test that speaks the invoke contract (DESIGN §5) and signs real receipts
 * with the node key, and can also answer in every way a real daemon should not.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const spiffe = (trustDomain: string, nodeId: string) =>
  `spiffe://${trustDomain}/sark/node/${nodeId}`;

const root = tempDir('sark-fed-invoke-client-');
let caB: string;
let certs: {
  a: NodeFixture;
  b: NodeFixture;
  c: NodeFixture;
  /** A second, valid certificate for node-b: not the one node-a pinned. */
  bOther: NodeFixture;
  /** node-b's name, issued by a CA that also calls itself org B but that no one anchors. */
  bRogue: NodeFixture;
};

beforeAll(async () => {
  const [a, b, rogue] = await Promise.all([
    createCa(join(root, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(root, 'ca-b'), ['--trust-domain', TD_B]),
    createCa(join(root, 'ca-rogue'), ['--trust-domain', TD_B]),
  ]);
  caB = b.certPath;
  const ip = ['--ip', '127.0.0.1'];
  const [certA, certB, certC, certBOther, certBRogue] = await Promise.all([
    issueNode(a.dir, 'node-a', join(root, 'certs', 'node-a'), ip),
    issueNode(b.dir, 'node-b', join(root, 'certs', 'node-b'), ip),
    issueNode(b.dir, 'node-c', join(root, 'certs', 'node-c'), ip),
    issueNode(b.dir, 'node-b', join(root, 'certs', 'node-b-other'), ip),
    issueNode(rogue.dir, 'node-b', join(root, 'certs', 'node-b-rogue'), ip),
  ]);
  certs = { a: certA, b: certB, c: certC, bOther: certBOther, bRogue: certBRogue };
}, 60_000);

// ---- the stand-in peer --------------------------------------------------------------------------

interface Received {
  method: string;
  path: string;
  correlationId: string;
  body: string;
}

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Answer this much later (the client's deadline may run out first). */
  delayMs?: number;
}

interface StandIn {
  nodeId: string;
  endpoint: string;
  received: Received[];
  /** Invoke requests only. */
  invokes(): Received[];
  reply: (request: Received) => Reply;
  catalog: CatalogResource[];
  /** TLS connections the peer accepted: what the caller's pooling keeps down. */
  tlsConnections: number;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

const ECHO: CatalogResource = { id: 'echo', capabilities: [{ id: 'echo', idempotent: false }] };
const LOOKUP: CatalogResource = {
  id: 'inventory',
  capabilities: [{ id: 'lookup', idempotent: true }],
};

/** An https server with a node's certificate that asks for the client's, as a daemon does. */
async function standIn(
  nodeId: string,
  fixture: NodeFixture,
  reply: StandIn['reply'] = (request) => signed(nodeId, fixture, request),
  catalog: CatalogResource[] = [ECHO, LOOKUP],
): Promise<StandIn> {
  const peer: StandIn = {
    nodeId,
    endpoint: '',
    received: [],
    invokes: () => peer.received.filter((item) => item.path === PATHS.invoke),
    reply,
    catalog,
    tlsConnections: 0,
  };
  const server = createServer(
    {
      cert: readFileSync(fixture.certPath),
      key: readFileSync(fixture.keyPath),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received: Received = {
          method: request.method ?? '',
          path: request.url ?? '',
          correlationId: String(request.headers[CORRELATION_HEADER] ?? ''),
          body: Buffer.concat(chunks).toString('utf8'),
        };
        peer.received.push(received);
        const answer: Reply =
          received.path === PATHS.resources
            ? { status: 200, body: { node_id: nodeId, resources: peer.catalog } }
            : peer.reply(received);
        const send = () => {
          const payload = JSON.stringify(answer.body);
          response.writeHead(answer.status, {
            'content-type': 'application/json',
            [CORRELATION_HEADER]: received.correlationId,
            ...answer.headers,
          });
          response.end(payload);
        };
        if (answer.delayMs) setTimeout(send, answer.delayMs).unref();
        else send();
      });
    },
  );
  server.on('secureConnection', () => peer.tlsConnections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  peer.endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return peer;
}

interface SignedOptions {
  status?: number;
  success?: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  outcome?: ReceiptClaims['outcome'];
  headers?: Record<string, string>;
  /** Signs with this key rather than the node's own. */
  signWith?: KeyObject;
  /** Changes claims before signing (a node that lies about the call). */
  claims?: Partial<ReceiptClaims>;
  /** Changes the body after signing (tampering on the way). */
  tamper?: (body: Record<string, unknown>) => void;
}

/** An InvokeResponse as the daemon writes it, with a receipt signed by the node's key. */
function signed(
  nodeId: string,
  fixture: NodeFixture,
  request: Received,
  options: SignedOptions = {},
): Reply {
  const body = JSON.parse(request.body) as {
    resource_id: string;
    capability_id: string;
    principal_id: string;
    arguments: unknown;
  };
  const success = options.success ?? (options.status ?? 200) < 300;
  const result = success ? (options.result ?? body.arguments) : null;
  const claims: ReceiptClaims = {
    correlation_id: request.correlationId,
    source: spiffe(TD_A, 'node-a'),
    target: spiffe(TD_B, nodeId),
    principal: body.principal_id,
    resource: body.resource_id,
    capability: body.capability_id,
    request_sha256: sha256Hex(JSON.stringify(body.arguments ?? null)),
    outcome: options.outcome ?? (success ? 'success' : 'error'),
    result_sha256: success ? sha256Hex(JSON.stringify(result)) : null,
    timestamp: new Date().toISOString(),
    ...options.claims,
  };
  const key = options.signWith ?? createPrivateKey(readFileSync(fixture.keyPath));
  const response: Record<string, unknown> = {
    correlation_id: request.correlationId,
    success,
    result,
    ...(options.error
      ? { error: { ...options.error, correlation_id: request.correlationId } }
      : {}),
    duration_ms: 0.25,
    receipt: signReceipt(key, claims),
  };
  options.tamper?.(response);
  return {
    status: options.status ?? 200,
    body: response,
    ...(options.headers ? { headers: options.headers } : {}),
  };
}

// ---- the caller ---------------------------------------------------------------------------------

interface Caller {
  store: StateStore;
  identity: NodeIdentity;
  privateKey: KeyObject;
  path: string;
}

const stores: StateStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

/** node-a's state file: it anchors org B and trusts each peer given, pinned to its certificate. */
function caller(peers: Array<{ nodeId: string; endpoint: string; fixture: NodeFixture }>): Caller {
  const path = join(tempDir('sark-fed-caller-'), 'state.db');
  const store = openState(path, { create: true });
  stores.push(store);
  const now = new Date();
  const { identity } = prepareIdentity({
    nodeId: 'node-a',
    trustDomain: TD_A,
    certPath: certs.a.certPath,
    keyPath: certs.a.keyPath,
    now,
  });
  store.write((db) => saveIdentity(db, identity, now));
  addAnchor(store, (pemBlocks(readFileSync(caB, 'utf8'))[0] as { der: Buffer }).der, TD_B, now);
  store.write((db) => {
    for (const peer of peers) {
      const pem = readFileSync(peer.fixture.certPath, 'utf8');
      savePeer(db, {
        nodeId: peer.nodeId,
        trustDomain: TD_B,
        spiffeId: spiffe(TD_B, peer.nodeId),
        endpoint: peer.endpoint,
        trustLevel: 'trusted',
        pinnedFingerprint: certificateFingerprint((pemBlocks(pem)[0] as { der: Buffer }).der),
        certificatePem: pem,
        trustExpiresAt: null,
        establishedAt: now.toISOString(),
        revokedAt: null,
        revokeReason: null,
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
      });
    }
  });
  return {
    store,
    identity: store.read(loadIdentity) as NodeIdentity,
    privateKey: createPrivateKey(readFileSync(certs.a.keyPath)),
    path,
  };
}

interface RunOptions {
  node?: string;
  timeoutMs?: number;
  attempts?: number;
  now?: () => Date;
}

interface Run {
  result?: InvocationResult;
  error?: SarkError;
  /** Backoff waits the retry loop asked for (the sleep is injected: nothing really waits). */
  waits: number[];
  elapsedMs: number;
}

let correlationCounter = 0;
function call(extra: Partial<InvokeCall> = {}): InvokeCall {
  correlationCounter++;
  return {
    resource: 'echo',
    capability: 'echo',
    principal: 'alice@node-a',
    arguments: { secret: 'do-not-store-me', n: correlationCounter },
    correlationId: `00000000-0000-4000-8000-${String(correlationCounter).padStart(12, '0')}`,
    ...extra,
  };
}

async function run(who: Caller, invocation: InvokeCall, options: RunOptions = {}): Promise<Run> {
  const now = options.now ?? (() => new Date());
  const transport = new PeerTransport({
    identity: who.identity,
    privateKey: who.privateKey,
    material: {
      anchorsFor: (domain) =>
        domain === TD_B ? [(pemBlocks(readFileSync(caB, 'utf8'))[0] as { der: Buffer }).der] : [],
      crls: () => [],
    },
    now,
  });
  const deadline = new Deadline(options.timeoutMs ?? 10_000);
  const waits: number[] = [];
  const started = performance.now();
  try {
    const result = await invoke(invocation, {
      store: who.store,
      identity: who.identity,
      transport,
      breakers: new CircuitBreakers(who.store, DEFAULT_BREAKER, now),
      deadline,
      backoff: { ...DEFAULT_BACKOFF, attempts: options.attempts ?? 3 },
      random: () => 0.5,
      sleep: async (ms) => {
        waits.push(ms);
      },
      now,
      node: options.node,
    });
    return { result, waits, elapsedMs: performance.now() - started };
  } catch (error) {
    if (!(error instanceof SarkError)) throw error;
    return { error, waits, elapsedMs: performance.now() - started };
  } finally {
    deadline.dispose();
    await transport.close();
  }
}

function outbound(who: Caller, correlationId: string) {
  return who.store.read((db) => eventsByCorrelation(db, correlationId));
}

/** Every value of every row of the state file, as text: what a leak would show up in. */
function everything(who: Caller): string {
  const db = new Database(who.path, { readonly: true });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .pluck()
      .all() as string[];
    return tables
      .map((table) => JSON.stringify(db.prepare(`SELECT * FROM "${table}"`).all()))
      .join('\n');
  } finally {
    db.close();
  }
}

/** Accepts TCP connections and never says a word: no TLS handshake ever completes. */
async function silentTcpServer(): Promise<{
  endpoint: string;
  connections: () => number;
  close: () => Promise<void>;
}> {
  const sockets: Socket[] = [];
  const server = createTcpServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `https://127.0.0.1:${port}`,
    connections: () => sockets.length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function closedEndpoint(): Promise<string> {
  return `https://127.0.0.1:${await freePort()}`;
}

// ---- tests ------------------------------------------------------------------------------------

describe('invoke against a stand-in peer', () => {
  it('returns the result, verifies the receipt and audits the call without its arguments', async () => {
    const b = await standIn('node-b', certs.b);
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { result, error } = await run(who, invocation, { node: 'node-b' });
    expect(error).toBeUndefined();
    expect(result?.response.result).toEqual(invocation.arguments);
    expect(result?.nodeId).toBe('node-b');
    expect(b.invokes()[0]?.correlationId).toBe(invocation.correlationId);

    const [event, ...more] = outbound(who, invocation.correlationId);
    expect(more).toHaveLength(0);
    const argumentsJson = JSON.stringify(invocation.arguments);
    expect(event).toMatchObject({
      direction: 'outbound',
      sourceNode: 'node-a',
      targetNode: 'node-b',
      principal: 'alice@node-a',
      outcome: 'success',
      statusCode: 200,
      requestSha256: sha256Hex(argumentsJson),
      requestSize: Buffer.byteLength(argumentsJson),
      resultSha256: sha256Hex(argumentsJson),
      resultSize: Buffer.byteLength(argumentsJson),
      receipt: result?.response.receipt,
    });
    expect(everything(who)).not.toContain('do-not-store-me');
  });

  it('retries a refused connection with full-jitter waits, then reports it unreachable', async () => {
    const who = caller([{ nodeId: 'node-b', endpoint: await closedEndpoint(), fixture: certs.b }]);
    const invocation = call();
    const { error, waits } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'unavailable', code: 'UNREACHABLE' });
    // random() = 0.5 of the ceilings 100 ms and 200 ms.
    expect(waits).toEqual([50, 100]);
    expect(who.store.read((db) => findCircuit(db, 'node-b'))).toMatchObject({
      state: 'closed',
      consecutiveFailures: 3,
      lastFailure: 'ECONNREFUSED',
    });
    // Nothing reached a peer: nothing to audit.
    expect(outbound(who, invocation.correlationId)).toHaveLength(0);
  });

  it('does not retry a 502 of a capability that is not idempotent: it may have run', async () => {
    const b = await standIn('node-b', certs.b, (request) =>
      signed('node-b', certs.b, request, {
        status: 502,
        error: { code: 'BACKEND_ERROR', message: 'upstream failed' },
      }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error, waits } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'failed', code: 'BACKEND_ERROR' });
    expect(b.invokes()).toHaveLength(1);
    expect(waits).toEqual([]);
    const [event] = outbound(who, invocation.correlationId);
    expect(event).toMatchObject({ outcome: 'error', statusCode: 502, errorCode: 'BACKEND_ERROR' });
    expect(event?.receipt).not.toBeNull();
    expect(who.store.read((db) => findCircuit(db, 'node-b'))?.consecutiveFailures).toBe(1);
  });

  it('retries a 502 of an idempotent capability, auditing each attempt', async () => {
    let calls = 0;
    const b = await standIn('node-b', certs.b, (request) =>
      ++calls < 3
        ? signed('node-b', certs.b, request, {
            status: 502,
            error: { code: 'BACKEND_ERROR', message: 'flaky' },
          })
        : signed('node-b', certs.b, request, { result: { sku: 42 } }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    who.store.write((db) => saveListing(db, 'node-b', [LOOKUP], new Date()));
    const invocation = call({ resource: 'inventory', capability: 'lookup' });
    const { result, waits, error } = await run(who, invocation, { node: 'node-b' });
    expect(error).toBeUndefined();
    expect(result?.response.result).toEqual({ sku: 42 });
    expect(waits).toEqual([50, 100]);
    expect(outbound(who, invocation.correlationId).map((event) => event.outcome)).toEqual([
      'error',
      'error',
      'success',
    ]);
    // The success closed the count of consecutive failures again.
    expect(who.store.read((db) => findCircuit(db, 'node-b'))?.consecutiveFailures).toBe(0);
    // The three attempts went over one kept-alive connection of the peer's pool.
    expect(b.invokes()).toHaveLength(3);
    expect(b.tlsConnections).toBe(1);
  });

  it("retries 503 BUSY after the peer's Retry-After: it did not run", async () => {
    let calls = 0;
    const b = await standIn('node-b', certs.b, (request) =>
      ++calls === 1
        ? signed('node-b', certs.b, request, {
            status: 503,
            error: { code: 'BUSY', message: 'too many calls' },
            headers: { 'retry-after': '1' },
          })
        : signed('node-b', certs.b, request),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const { result, waits } = await run(who, call(), { node: 'node-b' });
    expect(result).toBeDefined();
    expect(waits).toEqual([1000]);
    expect(b.invokes()).toHaveLength(2);
  });

  it('does not retry 429 whose Retry-After is beyond the backoff cap: refused (exit 6)', async () => {
    const b = await standIn('node-b', certs.b, (request) =>
      signed('node-b', certs.b, request, {
        status: 429,
        error: { code: 'RATE_LIMITED', message: 'slow down' },
        outcome: 'denied',
        headers: { 'retry-after': '3600' },
      }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'refused', code: 'RATE_LIMITED' });
    expect(b.invokes()).toHaveLength(1);
    expect(outbound(who, invocation.correlationId)[0]).toMatchObject({
      outcome: 'denied',
      statusCode: 429,
    });
    // A refusal is an answer: it does not count against the circuit.
    expect(who.store.read((db) => findCircuit(db, 'node-b'))).toBeUndefined();
  });

  it('maps a policy denial to refused, an unknown capability to not found', async () => {
    const b = await standIn('node-b', certs.b, (request) =>
      request.body.includes('"nope"')
        ? signed('node-b', certs.b, request, {
            status: 404,
            error: { code: 'UNKNOWN_CAPABILITY', message: 'no such capability' },
          })
        : signed('node-b', certs.b, request, {
            status: 403,
            error: { code: 'POLICY_DENIED', message: 'not you' },
            outcome: 'denied',
          }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const denied = await run(who, call(), { node: 'node-b' });
    expect(denied.error).toMatchObject({ kind: 'refused', code: 'POLICY_DENIED' });
    const unknown = await run(who, call({ capability: 'nope' }), { node: 'node-b' });
    expect(unknown.error).toMatchObject({ kind: 'not-found', code: 'UNKNOWN_CAPABILITY' });
    expect(b.invokes()).toHaveLength(2);
  });

  it("hints what the caller can act on for each refusal, never the peer's log it cannot read", async () => {
    const answers: Record<string, { status: number; code: string }> = {
      args: { status: 400, code: 'INVALID_ARGUMENTS' },
      body: { status: 400, code: 'INVALID_BODY' },
      big: { status: 413, code: 'BODY_TOO_LARGE' },
      fault: { status: 500, code: 'INTERNAL' },
    };
    const b = await standIn('node-b', certs.b, (request) => {
      const { kind } = (JSON.parse(request.body) as { arguments: { kind: string } }).arguments;
      const { status, code } = answers[kind] as { status: number; code: string };
      return signed('node-b', certs.b, request, { status, error: { code, message: 'refused' } });
    });
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const hints: Record<string, string | undefined> = {};
    for (const kind of Object.keys(answers)) {
      const { error } = await run(who, call({ arguments: { kind } }), {
        node: 'node-b',
        attempts: 1,
      });
      expect(error?.code).toBe(answers[kind]?.code);
      hints[kind] = error?.hint;
    }
    expect(hints).toEqual({
      args: `change --args to what the capability takes, e.g. --args '{"name":"value"}'`,
      body: 'the peer refused the request; its operator can find why in its log, by the correlation ID',
      big: "the arguments exceed the peer's body limit",
      fault: "the peer's operator can find why in its log, by the correlation ID",
    });
  });

  it('takes a plain error document of a peer that does not trust this node as a trust failure', async () => {
    const b = await standIn('node-b', certs.b, (request) => ({
      status: 403,
      body: {
        error: {
          code: 'REVOKED',
          message: 'trust was revoked',
          correlation_id: request.correlationId,
        },
      },
    }));
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'trust', code: 'REVOKED' });
    expect(outbound(who, invocation.correlationId)[0]).toMatchObject({
      outcome: 'denied',
      errorCode: 'REVOKED',
      receipt: null,
    });
  });
});

describe('receipts of refusals', () => {
  it('accepts a refusal receipted as unread: the node refused the body without reading it', async () => {
    const b = await standIn('node-b', certs.b, (request) =>
      signed('node-b', certs.b, request, {
        status: 413,
        error: { code: 'BODY_TOO_LARGE', message: 'over 4 KiB' },
        claims: { principal: '', resource: '-', capability: '-', request_sha256: sha256Hex('') },
      }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const { error } = await run(who, call(), { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'failed', code: 'BODY_TOO_LARGE' });
  });

  it('does not accept the unread form for a success', async () => {
    const b = await standIn('node-b', certs.b, (request) =>
      signed('node-b', certs.b, request, {
        claims: { principal: '', request_sha256: sha256Hex('') },
      }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const { error } = await run(who, call(), { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'trust', code: 'RECEIPT_INVALID' });
  });
});

describe('receipts that do not verify', () => {
  const cases: Array<[string, (request: Received) => Reply]> = [
    [
      'signed by a key other than the pinned certificate’s',
      (request) =>
        signed('node-b', certs.b, request, {
          signWith: createPrivateKey(readFileSync(certs.c.keyPath)),
        }),
    ],
    [
      'whose result was altered after signing',
      (request) =>
        signed('node-b', certs.b, request, {
          tamper: (body) => {
            body.result = { secret: 'altered' };
          },
        }),
    ],
    [
      'whose outcome was altered after signing',
      (request) =>
        signed('node-b', certs.b, request, {
          tamper: (body) => {
            (body.receipt as Record<string, unknown>).outcome = 'error';
          },
        }),
    ],
    [
      'signed for another correlation ID (a replayed receipt)',
      (request) =>
        signed('node-b', certs.b, request, {
          claims: { correlation_id: '11111111-1111-4111-8111-111111111111' },
        }),
    ],
    [
      'signed for other arguments',
      (request) =>
        signed('node-b', certs.b, request, { claims: { request_sha256: sha256Hex('{}') } }),
    ],
    [
      'signed for another principal',
      (request) => signed('node-b', certs.b, request, { claims: { principal: 'mallory@node-a' } }),
    ],
    [
      'naming another caller as its source',
      (request) =>
        signed('node-b', certs.b, request, { claims: { source: spiffe(TD_A, 'node-z') } }),
    ],
    [
      'naming another node as its target',
      (request) =>
        signed('node-b', certs.b, request, { claims: { target: spiffe(TD_B, 'node-c') } }),
    ],
  ];

  it.each(cases)('a receipt %s is a trust failure, audited', async (_name, reply) => {
    const b = await standIn('node-b', certs.b, reply);
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error, waits } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'trust', code: 'RECEIPT_INVALID' });
    expect(error?.message).toMatch(/receipt from node-b does not verify/);
    expect(waits).toEqual([]);
    expect(outbound(who, invocation.correlationId)).toEqual([
      expect.objectContaining({ outcome: 'error', errorCode: 'RECEIPT_INVALID', receipt: null }),
    ]);
  });

  it('a success without a receipt is a trust failure', async () => {
    const b = await standIn('node-b', certs.b, (request) => ({
      status: 200,
      body: { correlation_id: request.correlationId, success: true, result: 1, duration_ms: 1 },
    }));
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const { error } = await run(who, call(), { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'trust', code: 'RECEIPT_MISSING' });
  });
});

describe("the server's certificate, checked before anything is sent", () => {
  it('refuses a server presenting another certificate than the pinned one', async () => {
    const impostor = await standIn('node-b', certs.bOther);
    const who = caller([{ nodeId: 'node-b', endpoint: impostor.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error, waits } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'trust', code: 'PIN_MISMATCH' });
    expect(waits).toEqual([]);
    expect(impostor.received).toHaveLength(0);
    expect(outbound(who, invocation.correlationId)[0]).toMatchObject({
      outcome: 'denied',
      errorCode: 'PIN_MISMATCH',
      statusCode: null,
    });
  });

  it('refuses a server whose chain does not lead to an anchor of its trust domain', async () => {
    const rogue = await standIn('node-b', certs.bRogue);
    const who = caller([{ nodeId: 'node-b', endpoint: rogue.endpoint, fixture: certs.b }]);
    const { error } = await run(who, call(), { node: 'node-b' });
    expect(error?.kind).toBe('trust');
    expect(error?.message).toMatch(/does not accept/);
    expect(rogue.received).toHaveLength(0);
  });

  it('refuses a server that is another trusted node than the one named', async () => {
    const c = await standIn('node-c', certs.c);
    const who = caller([
      { nodeId: 'node-b', endpoint: c.endpoint, fixture: certs.b },
      { nodeId: 'node-c', endpoint: c.endpoint, fixture: certs.c },
    ]);
    const { error } = await run(who, call(), { node: 'node-b' });
    expect(error).toMatchObject({ kind: 'trust', code: 'WRONG_NODE' });
    expect(c.received).toHaveLength(0);
  });
});

/** node-b ranks first: online and faster, as far as the last health check knew. */
function preferNodeB(who: Caller): void {
  const checkedAt = new Date().toISOString();
  who.store.write((db) => {
    saveHealth(db, { nodeId: 'node-b', status: 'online', latencyMs: 1, detail: null, checkedAt });
    saveHealth(db, { nodeId: 'node-c', status: 'online', latencyMs: 9, detail: null, checkedAt });
  });
}

describe('deadline, failover and circuit', () => {
  it('gives up at the deadline, audits a timeout, and does not retry what may have run', async () => {
    const b = await standIn('node-b', certs.b, (request) => ({
      ...signed('node-b', certs.b, request),
      delayMs: 3_000,
    }));
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error, elapsedMs } = await run(who, invocation, { node: 'node-b', timeoutMs: 400 });
    expect(error).toMatchObject({ kind: 'unavailable', code: 'TIMEOUT' });
    expect(elapsedMs).toBeLessThan(2_000);
    expect(b.invokes()).toHaveLength(1);
    expect(outbound(who, invocation.correlationId)[0]).toMatchObject({
      outcome: 'timeout',
      statusCode: null,
    });
  });

  it('gives up at the deadline while a peer that accepted TCP never completes the TLS handshake', async () => {
    const silent = await silentTcpServer();
    try {
      const who = caller([{ nodeId: 'node-b', endpoint: silent.endpoint, fixture: certs.b }]);
      const invocation = call();
      // The deadline (400 ms) is far shorter than the connect timeout (5 s): it must win.
      const { error } = await run(who, invocation, { node: 'node-b', timeoutMs: 400 });
      expect(error).toMatchObject({ kind: 'unavailable', code: 'TIMEOUT' });
      expect(silent.connections()).toBeGreaterThan(0);
    } finally {
      await silent.close();
    }
  });

  it('reports a connect timeout as not sent: nothing reached the peer', async () => {
    const silent = await silentTcpServer();
    const who = caller([{ nodeId: 'node-b', endpoint: silent.endpoint, fixture: certs.b }]);
    const transport = new PeerTransport({
      identity: who.identity,
      privateKey: who.privateKey,
      material: { anchorsFor: () => [], crls: () => [] },
      now: () => new Date(),
      timeouts: { connectMs: 300, keepAliveMs: 1_000 },
    });
    try {
      const failure = await transport
        .request(
          {
            nodeId: 'node-b',
            endpoint: silent.endpoint,
            spiffeId: `spiffe://${TD_B}/sark/node/node-b`,
            pinnedFingerprint: '0'.repeat(64),
            certificatePem: '',
            local: false,
          },
          {
            method: 'POST',
            path: PATHS.invoke,
            correlationId: call().correlationId,
            body: '{}',
            signal: new AbortController().signal,
            timeoutMs: 10_000,
          },
        )
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(failure).toBeInstanceOf(NotSentError);
      expect((failure as NotSentError).reason).toMatchObject({ code: 'CONNECT_TIMEOUT' });
    } finally {
      await transport.close();
      await silent.close();
    }
  });

  it('fails over to the next route candidate when the first is unreachable', async () => {
    const c = await standIn('node-c', certs.c);
    const who = caller([
      { nodeId: 'node-b', endpoint: await closedEndpoint(), fixture: certs.b },
      { nodeId: 'node-c', endpoint: c.endpoint, fixture: certs.c },
    ]);
    who.store.write((db) => {
      saveListing(db, 'node-b', [ECHO], new Date());
      saveListing(db, 'node-c', [ECHO], new Date());
    });
    preferNodeB(who);
    const { result, waits } = await run(who, call());
    expect(result?.nodeId).toBe('node-c');
    expect(result?.attempts.map((attempt) => [attempt.nodeId, attempt.errorCode])).toEqual([
      ['node-b', 'UNREACHABLE'],
      ['node-b', 'UNREACHABLE'],
      ['node-b', 'UNREACHABLE'],
      ['node-c', null],
    ]);
    expect(waits).toEqual([50, 100]);
  });

  it('does not fail over a call that may have run on a node, unless it is idempotent', async () => {
    const broken = (request: Received) =>
      signed('node-b', certs.b, request, {
        status: 502,
        error: { code: 'BACKEND_ERROR', message: 'failed' },
      });
    const b = await standIn('node-b', certs.b, broken);
    const c = await standIn('node-c', certs.c);
    const who = caller([
      { nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b },
      { nodeId: 'node-c', endpoint: c.endpoint, fixture: certs.c },
    ]);
    preferNodeB(who);
    const notIdempotent = await run(who, call());
    expect(notIdempotent.error).toMatchObject({ code: 'BACKEND_ERROR' });
    expect(c.invokes()).toHaveLength(0);
    const idempotent = await run(who, call({ resource: 'inventory', capability: 'lookup' }));
    expect(idempotent.result?.nodeId).toBe('node-c');
    expect(c.invokes()).toHaveLength(1);
  });

  it('an answer over 8 MiB is refused unread, not retried, and audited as ANSWER_TOO_LARGE', async () => {
    const b = await standIn('node-b', certs.b, () => ({
      status: 200,
      body: { result: 'x'.repeat(8 * 1024 * 1024 + 1) },
    }));
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const invocation = call({ resource: 'inventory', capability: 'lookup' });
    const { error } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({
      kind: 'failed',
      code: 'ANSWER_TOO_LARGE',
      message: `node-b (${b.endpoint}) answered with more than 8 MiB`,
      hint: 'ask for less at once',
    });
    // Idempotent as it is, the call ran there: asking again would get the same answer.
    expect(b.invokes()).toHaveLength(1);
    expect(outbound(who, invocation.correlationId)).toEqual([
      expect.objectContaining({ outcome: 'error', errorCode: 'ANSWER_TOO_LARGE' }),
    ]);
  });

  it('a connection the peer drops after the request is CONNECTION_LOST: it may have run there', async () => {
    let requests = 0;
    const server = createServer(
      {
        cert: readFileSync(certs.b.certPath),
        key: readFileSync(certs.b.keyPath),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (request) => {
        request.resume();
        request.on('end', () => {
          requests++;
          request.socket.destroy();
        });
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const who = caller([{ nodeId: 'node-b', endpoint, fixture: certs.b }]);
    const invocation = call();
    const { error } = await run(who, invocation, { node: 'node-b' });
    expect(error).toMatchObject({
      kind: 'unavailable',
      code: 'CONNECTION_LOST',
      message: expect.stringMatching(
        new RegExp(`^the connection to node-b \\(${endpoint}\\) broke: `),
      ) as unknown,
      hint: 'the call may or may not have run there; check its audit trail',
    });
    // Not idempotent: not sent again.
    expect(requests).toBe(1);
    expect(outbound(who, invocation.correlationId)).toEqual([
      expect.objectContaining({ outcome: 'error', errorCode: 'CONNECTION_LOST' }),
    ]);
  });

  it('an open circuit refuses without connecting, then lets one trial through that closes it', async () => {
    const b = await standIn('node-b', certs.b);
    const endpoint = await closedEndpoint();
    const who = caller([{ nodeId: 'node-b', endpoint, fixture: certs.b }]);
    let clock = Date.now();
    const now = () => new Date(clock);
    await run(who, call(), { node: 'node-b', now }); // 3 failures
    await run(who, call(), { node: 'node-b', now, attempts: 2 }); // 5: open
    expect(who.store.read((db) => findCircuit(db, 'node-b'))?.state).toBe('open');

    // The node is back, at its recorded endpoint; the circuit still refuses for 30 s.
    who.store.write((db) =>
      db.prepare('UPDATE peers SET endpoint = ? WHERE node_id = ?').run(b.endpoint, 'node-b'),
    );
    const refused = await run(who, call(), { node: 'node-b', now });
    expect(refused.error).toMatchObject({ kind: 'unavailable', code: 'CIRCUIT_OPEN' });
    expect(b.received).toHaveLength(0);
    expect(who.store.read((db) => findCircuit(db, 'node-b'))?.consecutiveFailures).toBe(5);

    clock += DEFAULT_BREAKER.openMs;
    const trial = await run(who, call(), { node: 'node-b', now });
    expect(trial.result?.nodeId).toBe('node-b');
    expect(who.store.read((db) => findCircuit(db, 'node-b'))).toMatchObject({
      state: 'closed',
      consecutiveFailures: 0,
    });
  });
});

describe('a state file that cannot take the record of the call', () => {
  /** who, through a connection that gives up on a lock after 100 ms rather than 5 s. */
  function impatient(who: Caller): Caller {
    const store = openState(who.path, { create: false, busyTimeoutMs: 100 });
    stores.push(store);
    return { ...who, store };
  }

  /** Another process's write transaction on who's state file, until release(). */
  function lock(who: Caller): { release: () => void } {
    const other = new Database(who.path);
    other.exec('BEGIN IMMEDIATE');
    return {
      release: () => {
        other.exec('ROLLBACK');
        other.close();
      },
    };
  }

  it('is refused before any call while another process holds its write lock', async () => {
    const b = await standIn('node-b', certs.b);
    const who = impatient(caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]));
    const held = lock(who);
    try {
      const { error } = await run(who, call(), { node: 'node-b' });
      expect(error).toMatchObject({ kind: 'failed', code: 'STATE_BUSY' });
    } finally {
      held.release();
    }
    // Nothing reached node-b: the call can simply be made again.
    expect(b.received).toHaveLength(0);
  });

  it('says that a call which reached the node may have run there when its record fails', async () => {
    let held: { release: () => void } | undefined;
    const caught: { who?: Caller } = {};
    // The lock is taken while node-b answers: after the check before the call, before the record.
    const b = await standIn('node-b', certs.b, (request) => {
      held = lock(caught.who as Caller);
      return signed('node-b', certs.b, request);
    });
    const who = impatient(caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]));
    caught.who = who;
    const invocation = call();
    let error: SarkError | undefined;
    try {
      ({ error } = await run(who, invocation, { node: 'node-b' }));
    } finally {
      held?.release();
    }
    expect(b.invokes()).toHaveLength(1);
    expect(error).toMatchObject({ kind: 'failed', code: 'AUDIT_NOT_RECORDED' });
    expect(error?.message).toBe(
      `the call reached node-b (success) but this node could not record it: state file ${who.path} is locked by another process`,
    );
    expect(error?.hint).toMatch(/^it may have run there: find it in node-b's audit trail/);
    expect(outbound(who, invocation.correlationId)).toEqual([]);
  });
});

describe('findRoute', () => {
  async function route(
    who: Caller,
    options: { capability?: string; refresh?: boolean; now?: () => Date } = {},
  ) {
    const now = options.now ?? (() => new Date());
    const transport = new PeerTransport({
      identity: who.identity,
      privateKey: who.privateKey,
      material: {
        anchorsFor: (domain) =>
          domain === TD_B ? [(pemBlocks(readFileSync(caB, 'utf8'))[0] as { der: Buffer }).der] : [],
        crls: () => [],
      },
      now: () => new Date(),
    });
    const deadline = new Deadline(5_000);
    try {
      return await findRoute({
        store: who.store,
        identity: who.identity,
        transport,
        breakers: new CircuitBreakers(who.store),
        deadline,
        now,
        resource: 'echo',
        capability: options.capability,
        refresh: options.refresh,
      });
    } finally {
      deadline.dispose();
      await transport.close();
    }
  }

  it('ranks by health then latency, caches catalogs, and says why each other node is skipped', async () => {
    const b = await standIn('node-b', certs.b);
    const c = await standIn('node-c', certs.c);
    const d = await standIn('node-d', certs.c, undefined, [LOOKUP]);
    const who = caller([
      { nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b },
      { nodeId: 'node-c', endpoint: c.endpoint, fixture: certs.c },
      { nodeId: 'node-e', endpoint: await closedEndpoint(), fixture: certs.c },
    ]);
    const now = new Date().toISOString();
    who.store.write((db) => {
      saveHealth(db, {
        nodeId: 'node-b',
        status: 'degraded',
        latencyMs: 1,
        detail: 'x',
        checkedAt: now,
      });
      saveHealth(db, {
        nodeId: 'node-c',
        status: 'online',
        latencyMs: 30,
        detail: null,
        checkedAt: now,
      });
      db.prepare(
        `INSERT INTO peers (node_id, trust_domain, spiffe_id, endpoint, trust_level, created_at, updated_at)
         VALUES ('node-s', 'org-b.example', 'spiffe://org-b.example/sark/node/node-s', ?, 'untrusted', ?, ?)`,
      ).run(d.endpoint, now, now);
    });

    const first = await route(who);
    expect(first.chosen?.nodeId).toBe('node-c');
    const summary = first.candidates.map((candidate) => [
      candidate.nodeId,
      candidate.rank,
      candidate.skipped?.code ?? null,
    ]);
    expect(summary).toEqual([
      ['node-c', 1, null],
      ['node-b', 2, null],
      ['node-a', null, 'no-resource'],
      ['node-e', null, 'unreachable'],
      ['node-s', null, 'untrusted'],
    ]);
    expect(first.candidates[0]?.catalog).toBe('fetched');
    // An unreachable node counts as a failure of its circuit; an untrusted one is never asked.
    expect(who.store.read((db) => findCircuit(db, 'node-e'))?.consecutiveFailures).toBe(1);
    expect(d.received).toHaveLength(0);

    const listings = b.received.length + c.received.length;
    const second = await route(who, { capability: 'echo' });
    expect(second.candidates[0]).toMatchObject({
      nodeId: 'node-c',
      catalog: 'cache',
      idempotent: false,
    });
    expect(b.received.length + c.received.length).toBe(listings);
    const refreshed = await route(who, { refresh: true });
    expect(refreshed.candidates[0]?.catalog).toBe('fetched');
    expect(b.received.length + c.received.length).toBe(listings + 2);
    // Counted for the daemon's /metrics.
    expect(who.store.read((db) => readCounters(db, 'federation_route_lookups_total'))).toEqual([
      { labels: { outcome: 'success' }, value: 3 },
    ]);
  });

  it('asks a node again once its cached catalog is older than the TTL', async () => {
    const b = await standIn('node-b', certs.b);
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const start = Date.now();
    const at = (ms: number) => () => new Date(start + ms);
    const fetched = (await route(who, { now: at(0) })).candidates[0];
    expect(fetched?.catalog).toBe('fetched');
    expect(fetched?.latencyMs).toBeGreaterThan(0);
    // The cached listing keeps the latency of its fetch: every command ranks the node alike.
    expect((await route(who, { now: at(CATALOG_TTL_MS - 1_000) })).candidates[0]).toMatchObject({
      catalog: 'cache',
      latencyMs: fetched?.latencyMs,
    });
    expect((await route(who, { now: at(CATALOG_TTL_MS + 1_000) })).candidates[0]?.catalog).toBe(
      'fetched',
    );
    expect(b.received.filter((item) => item.path === PATHS.resources)).toHaveLength(2);
  });

  it('reads a listing cached before latencies were kept as one without a latency', async () => {
    const b = await standIn('node-b', certs.b);
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    who.store.write((db) => {
      saveListing(db, 'node-b', [ECHO], new Date());
      db.prepare(
        `UPDATE peer_catalogs SET catalog = '["echo"]' WHERE node_id = 'node-b' AND resource_id = '*'`,
      ).run();
    });
    expect((await route(who)).candidates[0]).toMatchObject({
      catalog: 'cache',
      latencyMs: null,
      skipped: null,
    });
  });

  it('forgets a cached catalog the node contradicted with 404, and asks it again next time', async () => {
    const b = await standIn('node-b', certs.b, (request) =>
      signed('node-b', certs.b, request, {
        status: 404,
        error: { code: 'UNKNOWN_CAPABILITY', message: 'resource echo has no capability echo' },
      }),
    );
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    expect((await route(who)).candidates[0]?.catalog).toBe('fetched');
    expect((await route(who)).candidates[0]?.catalog).toBe('cache');
    const { error } = await run(who, call(), { node: 'node-b' });
    expect(error).toMatchObject({ code: 'UNKNOWN_CAPABILITY', kind: 'not-found' });
    expect(
      who.store.read((db) =>
        db.prepare("SELECT count(*) AS n FROM peer_catalogs WHERE node_id = 'node-b'").get(),
      ),
    ).toEqual({ n: 0 });
    expect((await route(who)).candidates[0]?.catalog).toBe('fetched');
  });

  it('skips nodes that do not offer the capability asked for', async () => {
    const b = await standIn('node-b', certs.b);
    const who = caller([{ nodeId: 'node-b', endpoint: b.endpoint, fixture: certs.b }]);
    const result = await route(who, { capability: 'missing' });
    expect(result.chosen).toBeNull();
    expect(
      result.candidates.find((candidate) => candidate.nodeId === 'node-b')?.skipped,
    ).toMatchObject({
      code: 'no-capability',
    });
  });
});
