import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventFromRow, type AuditEvent } from '../../src/core/audit/events.js';
import { sha256Hex, verifyReceipt, type Receipt } from '../../src/core/audit/receipts.js';
import { prepareIdentity } from '../../src/core/identity/node-identity.js';
import { PATHS } from '../../src/core/protocol/constants.js';
import {
  InvokeResponse,
  ResourceResponse,
  ResourcesResponse,
} from '../../src/core/protocol/schemas.js';
import { openState } from '../../src/core/state/database.js';
import { saveIdentity } from '../../src/core/state/identity-repository.js';
import { savePeer } from '../../src/core/state/trust-repository.js';
import { addAnchor } from '../../src/core/trust/anchor-store.js';
import {
  BindError,
  startDaemon,
  type DaemonOptions,
  type RunningDaemon,
} from '../../src/node/daemon.js';
import { NO_ARGUMENTS_SHA256 } from '../../src/node/invoke.js';
import type { Logger } from '../../src/node/logger.js';
import { Policy, type PolicyFile } from '../../src/node/policy.js';
import { ResourceCatalog, ResourcesFile } from '../../src/node/resources.js';
import { tempDir } from '../helpers/cli.js';
import { send, type Answer, type Credentials } from '../helpers/mtls-request.js';
import { certificateFingerprint } from '../../src/core/identity/fingerprint.js';
import { pemBlocks } from '../../src/core/identity/pem.js';
import { createCa, issueNode, type NodeFixture } from '../helpers/pki.js';

/**
 * The serving side of invocation (issue 5) against in-process daemons over real mutual TLS on
 * 127.0.0.1, with a real HTTP upstream: every refusal and failure is an InvokeResponse with a
 * signed receipt and an inbound audit row, and no argument or result is ever stored.
 */

const TD_S = 'org-s.example';
const TD_B = 'org-b.example';
const spiffe = (trustDomain: string, nodeId: string) =>
  `spiffe://${trustDomain}/sark/node/${nodeId}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const root = tempDir('sark-fed-invoke-');
const logs: Array<Record<string, unknown>> = [];
const logger: Logger = {
  info: (msg, fields) => logs.push({ level: 'info', msg, ...fields }),
  warn: (msg, fields) => logs.push({ level: 'warn', msg, ...fields }),
  error: (msg, fields) => logs.push({ level: 'error', msg, ...fields }),
};

let certs: { s: NodeFixture; a: NodeFixture; b: NodeFixture; u: NodeFixture };
let creds: { s: Credentials; a: Credentials; b: Credentials; u: Credentials };
let caBPath: string;
let upstream: Upstream;
const daemons: RunningDaemon[] = [];

// ---- a real HTTP upstream -----------------------------------------------------------------------

interface Upstream {
  server: Server;
  url: string;
  /** Requests the upstream received, in order. */
  received: Array<{
    method: string;
    url: string;
    headers: IncomingMessage['headers'];
    body: string;
  }>;
  /** Requests to /hold wait here until released. */
  held: ServerResponse[];
  releaseHeld(): void;
}

async function startUpstream(): Promise<Upstream> {
  const received: Upstream['received'] = [];
  const held: ServerResponse[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body,
      });
      const url = new URL(request.url ?? '/', 'http://upstream');
      const json = (status: number, value: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(value));
      };
      switch (url.pathname) {
        case '/lookup':
          return json(200, { found: true, echoed: JSON.parse(body) as unknown });
        case '/items':
          return json(200, { query: Object.fromEntries(url.searchParams) });
        case '/text':
          response.writeHead(200, { 'content-type': 'text/plain' });
          return response.end('plain words');
        case '/broken':
          return json(500, { error: 'upstream exploded at 10.1.2.3' });
        case '/bad-json':
          response.writeHead(200, { 'content-type': 'application/json' });
          return response.end('{not json');
        case '/slow':
          // Answers long after any capability's timeout; the connection is cut at the end.
          setTimeout(() => json(200, { late: true }), 5_000).unref();
          return;
        case '/hold':
          held.push(response);
          return;
        default:
          return json(404, { error: 'no such path' });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    received,
    held,
    releaseHeld() {
      for (const response of held.splice(0)) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"released":true}');
      }
    },
  };
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---- the serving node -----------------------------------------------------------------------

function resourcesFor(upstreamUrl: string, downPort: number): ResourceCatalog {
  const http = (path: string, extra: Record<string, unknown> = {}) => ({
    type: 'http',
    url: `${upstreamUrl}${path}`,
    ...extra,
  });
  const file = ResourcesFile.parse({
    resources: [
      {
        id: 'echo',
        description: 'returns its arguments',
        capabilities: [{ id: 'echo', backend: { type: 'echo' } }],
      },
      {
        id: 'inventory',
        capabilities: [
          {
            id: 'lookup',
            description: 'find an item',
            backend: http('/lookup', {
              timeout: '2s',
              idempotent: true,
              headers: { authorization: 'Bearer t0k3n' },
            }),
          },
          { id: 'list', backend: http('/items', { method: 'GET', timeout: '2s' }) },
          { id: 'text', backend: http('/text') },
          { id: 'broken', backend: http('/broken') },
          { id: 'bad-json', backend: http('/bad-json') },
          { id: 'slow', backend: http('/slow', { timeout: '300ms' }) },
          { id: 'hold', backend: http('/hold', { timeout: '10s' }) },
          {
            id: 'down',
            backend: { type: 'http', url: `http://127.0.0.1:${downPort}/x`, timeout: '2s' },
          },
          { id: 'delete', backend: { type: 'echo' } },
        ],
      },
      { id: 'secret', capabilities: [{ id: 'read', backend: { type: 'echo' } }] },
    ],
  });
  return new ResourceCatalog(file.resources);
}

const POLICY: PolicyFile = {
  rules: [
    // Org B's people may use echo and inventory through node-a.
    {
      effect: 'allow',
      nodes: ['node-a'],
      principals: ['*@org-b.example'],
      resources: ['echo', 'inventory'],
      capabilities: ['*'],
    },
    // Nobody deletes inventory, through any node.
    {
      effect: 'deny',
      nodes: ['*'],
      principals: ['*'],
      resources: ['inventory'],
      capabilities: ['delete'],
    },
    // Mallory is refused everywhere, even where an allow rule admits her.
    {
      effect: 'deny',
      nodes: ['*'],
      principals: ['mallory@*'],
      resources: ['*'],
      capabilities: ['*'],
    },
    // node-b gets echo only; this node itself (the local CLI) echo too.
    {
      effect: 'allow',
      nodes: ['node-b'],
      principals: ['*'],
      resources: ['echo'],
      capabilities: ['echo'],
    },
    {
      effect: 'allow',
      nodes: ['node-s'],
      principals: ['*'],
      resources: ['echo'],
      capabilities: ['*'],
    },
  ],
};

/** A fresh state file for node-s that anchors org B and trusts node-a and node-b. */
function serverState(name: string): string {
  const state = join(root, name, 'state.db');
  const store = openState(state, { create: true });
  try {
    const now = new Date();
    const { identity } = prepareIdentity({
      nodeId: 'node-s',
      trustDomain: TD_S,
      certPath: certs.s.certPath,
      keyPath: certs.s.keyPath,
      now,
    });
    store.write((db) => saveIdentity(db, identity, now));
    addAnchor(
      store,
      (pemBlocks(readFileSync(caBPath, 'utf8'))[0] as { der: Buffer }).der,
      TD_B,
      now,
    );
    store.write((db) => {
      for (const [nodeId, fixture] of [
        ['node-a', certs.a],
        ['node-b', certs.b],
      ] as const) {
        const pem = readFileSync(fixture.certPath, 'utf8');
        const der = (pemBlocks(pem)[0] as { der: Buffer }).der;
        savePeer(db, {
          nodeId,
          trustDomain: TD_B,
          spiffeId: spiffe(TD_B, nodeId),
          endpoint: null,
          trustLevel: 'trusted',
          pinnedFingerprint: certificateFingerprint(der),
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
  } finally {
    store.close();
  }
  return state;
}

interface Served {
  daemon: RunningDaemon;
  state: string;
}

let downPort: number;

async function serve(name: string, options: Partial<DaemonOptions> = {}): Promise<Served> {
  const state = serverState(name);
  const daemon = await startDaemon({
    statePath: state,
    host: '127.0.0.1',
    port: 0,
    requireApproval: false,
    version: 'test',
    logger,
    resources: resourcesFor(upstream.url, downPort),
    policy: new Policy(POLICY),
    ...options,
  });
  daemons.push(daemon);
  return { daemon, state };
}

// ---- a caller -------------------------------------------------------------------------------

function invoke(
  who: Credentials,
  port: number,
  call: {
    resource: string;
    capability: string;
    principal?: string;
    args?: unknown;
    correlationId?: string;
  },
): Promise<Answer> {
  return send(
    who,
    port,
    PATHS.invoke,
    {
      resource_id: call.resource,
      capability_id: call.capability,
      principal_id: call.principal ?? 'alice@org-b.example',
      arguments: call.args ?? null,
    },
    call.correlationId ? { headers: { 'x-sark-correlation-id': call.correlationId } } : {},
  );
}

/**
 * An invoke answer of the documented shape: the status, the correlation ID in the header, the
 * body and the error, and a receipt this node signed for exactly this call.
 */
function expectInvokeAnswer(
  answer: Answer,
  status: number,
  code: string | null,
): InvokeResponse & { receipt: Receipt } {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  const body = InvokeResponse.parse(answer.body) as InvokeResponse & { receipt: Receipt };
  expect(body.correlation_id).toMatch(UUID);
  expect(answer.headers['x-sark-correlation-id']).toBe(body.correlation_id);
  expect(body.receipt.correlation_id).toBe(body.correlation_id);
  expect(body.receipt.target).toBe(spiffe(TD_S, 'node-s'));
  expect(body.duration_ms).toBeGreaterThanOrEqual(0);
  expect(verifyReceipt(body.receipt, creds.s.certPem)).toBe(true);
  if (code === null) {
    expect(body.success).toBe(true);
    expect(body.error).toBeUndefined();
    expect(body.receipt.outcome).toBe('success');
  } else {
    expect(body.success).toBe(false);
    expect(body.result).toBeNull();
    expect(body.error?.code).toBe(code);
    expect(body.error?.message).toMatch(/\S/);
    expect(body.error?.correlation_id).toBe(body.correlation_id);
    expect(body.receipt.result_sha256).toBeNull();
  }
  return body;
}

/** The audit events of a state file with this correlation ID. */
function auditEvents(state: string, correlationId: string): AuditEvent[] {
  const db = new Database(state, { readonly: true, fileMustExist: true });
  try {
    return (
      db
        .prepare('SELECT * FROM audit_events WHERE correlation_id = ? ORDER BY seq')
        .all(correlationId) as Parameters<typeof eventFromRow>[0][]
    ).map(eventFromRow);
  } finally {
    db.close();
  }
}

/** The one inbound event of a call, which must carry the receipt that was answered. */
function expectAudited(
  state: string,
  body: InvokeResponse & { receipt: Receipt },
  status: number,
  caller = 'node-a',
): AuditEvent {
  const events = auditEvents(state, body.correlation_id);
  expect(events).toHaveLength(1);
  const [event] = events as [AuditEvent];
  expect(event).toMatchObject({
    direction: 'inbound',
    sourceNode: caller,
    targetNode: 'node-s',
    principal: body.receipt.principal,
    resource: body.receipt.resource,
    capability: body.receipt.capability,
    outcome: body.receipt.outcome,
    statusCode: status,
    errorCode: body.error?.code ?? null,
    requestSha256: body.receipt.request_sha256,
    resultSha256: body.receipt.result_sha256,
    receipt: body.receipt,
    time: body.receipt.timestamp,
  });
  return event;
}

function localCatalog(state: string): Array<{ resource_id: string; catalog: string }> {
  const db = new Database(state, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT resource_id, catalog FROM local_catalog ORDER BY resource_id')
      .all() as Array<{
      resource_id: string;
      catalog: string;
    }>;
  } finally {
    db.close();
  }
}

// ---- setup ------------------------------------------------------------------------------------

let main: Served;

beforeAll(async () => {
  const caSDir = join(root, 'ca-s');
  const caBDir = join(root, 'ca-b');
  await Promise.all([
    createCa(caSDir, ['--trust-domain', TD_S]),
    createCa(caBDir, ['--trust-domain', TD_B]),
  ]);
  caBPath = join(caBDir, 'ca.pem');
  const ip = ['--ip', '127.0.0.1'];
  const [s, a, b, u] = await Promise.all([
    issueNode(caSDir, 'node-s', join(root, 'certs', 'node-s'), ip),
    issueNode(caBDir, 'node-a', join(root, 'certs', 'node-a'), ip),
    issueNode(caBDir, 'node-b', join(root, 'certs', 'node-b'), ip),
    // A valid org-B node that node-s never trusted.
    issueNode(caBDir, 'node-u', join(root, 'certs', 'node-u'), ip),
  ]);
  const credentialsOf = (fixture: NodeFixture): Credentials => ({
    certPem: readFileSync(fixture.certPath, 'utf8'),
    keyPem: readFileSync(fixture.keyPath, 'utf8'),
  });
  certs = { s, a, b, u } as typeof certs;
  creds = { s: credentialsOf(s), a: credentialsOf(a), b: credentialsOf(b), u: credentialsOf(u) };
  upstream = await startUpstream();
  downPort = await closedPort();
  main = await serve('main');
}, 60_000);

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.close()));
  upstream?.releaseHeld();
  upstream?.server.closeAllConnections();
  await new Promise<void>((resolve) =>
    upstream ? upstream.server.close(() => resolve()) : resolve(),
  );
});

const argsHash = (args: unknown) => sha256Hex(JSON.stringify(args ?? null));

describe('invoke: echo', () => {
  it('answers the arguments with a receipt this node signed, after committing its audit event', async () => {
    const correlationId = randomUUID();
    const args = { item: 'widget', count: 3, nested: { list: [1, 'two', null] }, ratio: 0.25 };
    const answer = await invoke(creds.a, main.daemon.port, {
      resource: 'echo',
      capability: 'echo',
      args,
      correlationId,
    });
    const body = expectInvokeAnswer(answer, 200, null);
    expect(body.correlation_id).toBe(correlationId);
    expect(body.result).toEqual(args);
    expect(body.receipt).toMatchObject({
      source: spiffe(TD_B, 'node-a'),
      principal: 'alice@org-b.example',
      resource: 'echo',
      capability: 'echo',
      // What the caller computes over the object it sent, floats and all.
      request_sha256: argsHash(args),
      result_sha256: sha256Hex(JSON.stringify(body.result)),
    });
    const event = expectAudited(main.state, body, 200);
    expect(event.requestSize).toBe(Buffer.byteLength(JSON.stringify(args)));
    expect(event.resultSize).toBe(Buffer.byteLength(JSON.stringify(args)));
    expect(event.durationUs).toBeGreaterThan(0);
  });

  it('keeps a given correlation ID only when it is a UUID (stored lowercase), else makes its own', async () => {
    const upper = randomUUID().toUpperCase();
    const kept = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, {
        resource: 'echo',
        capability: 'echo',
        correlationId: upper,
      }),
      200,
      null,
    );
    expect(kept.correlation_id).toBe(upper.toLowerCase());
    expectAudited(main.state, kept, 200);
    // 36 characters of hex digits and dashes, but no UUID: replaced, not echoed or stored.
    for (const given of ['-'.repeat(36), 'a'.repeat(36)]) {
      const answer = await invoke(creds.a, main.daemon.port, {
        resource: 'echo',
        capability: 'echo',
        correlationId: given,
      });
      const body = expectInvokeAnswer(answer, 200, null);
      expect(body.correlation_id).not.toBe(given);
      expect(body.correlation_id).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      expect(auditEvents(main.state, given)).toEqual([]);
      expectAudited(main.state, body, 200);
    }
  });

  it('echoes null arguments, accepts a context, and requires the arguments key', async () => {
    const call = {
      resource_id: 'echo',
      capability_id: 'echo',
      principal_id: 'bob@org-b.example',
      context: { trace: 'x' },
    };
    const answer = await send(creds.a, main.daemon.port, PATHS.invoke, {
      ...call,
      arguments: null,
    });
    const body = expectInvokeAnswer(answer, 200, null);
    expect(body.result).toBeNull();
    expect(body.receipt.request_sha256).toBe(sha256Hex('null'));
    const missing = expectInvokeAnswer(
      await send(creds.a, main.daemon.port, PATHS.invoke, call),
      400,
      'INVALID_BODY',
    );
    expect(missing.error?.message).toMatch(/at arguments: required \(send null for no arguments\)/);
  });

  it('gives a receipt that fails verification once altered, or against another certificate', async () => {
    const body = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, { resource: 'echo', capability: 'echo', args: [1] }),
      200,
      null,
    );
    for (const tampered of [
      { ...body.receipt, outcome: 'error' as const },
      { ...body.receipt, principal: 'mallory@org-b.example' },
      { ...body.receipt, result_sha256: sha256Hex('other') },
      { ...body.receipt, timestamp: new Date(0).toISOString() },
      { ...body.receipt, signature: body.receipt.signature.slice(0, -4) + 'AAAA' },
    ]) {
      expect(verifyReceipt(tampered, creds.s.certPem)).toBe(false);
    }
    expect(verifyReceipt(body.receipt, creds.a.certPem)).toBe(false);
  });

  it('lets this node call itself with its own certificate (the local CLI), under the policy', async () => {
    const self = expectInvokeAnswer(
      await invoke(creds.s, main.daemon.port, { resource: 'echo', capability: 'echo', args: 'hi' }),
      200,
      null,
    );
    expect(self.receipt.source).toBe(spiffe(TD_S, 'node-s'));
    expect(self.result).toBe('hi');
    expectAudited(main.state, self, 200, 'node-s');
    // The policy gives node-s nothing of inventory.
    expectInvokeAnswer(
      await invoke(creds.s, main.daemon.port, { resource: 'inventory', capability: 'lookup' }),
      403,
      'POLICY_DENIED',
    );
  });
});

describe('invoke: refusals', () => {
  it('denies what no allow rule admits, and what a deny rule refuses even where one does (403)', async () => {
    const cases = [
      // mallory@org-b.example matches node-a's allow rule and the deny rule: deny wins.
      { who: creds.a, resource: 'echo', capability: 'echo', principal: 'mallory@org-b.example' },
      // Another organization's principal through node-a: no allow rule.
      { who: creds.a, resource: 'echo', capability: 'echo', principal: 'carol@org-c.example' },
      // node-b has echo only.
      { who: creds.b, resource: 'inventory', capability: 'lookup', principal: 'bob@org-b.example' },
      // Nobody deletes inventory.
      {
        who: creds.a,
        resource: 'inventory',
        capability: 'delete',
        principal: 'alice@org-b.example',
      },
      { who: creds.a, resource: 'secret', capability: 'read', principal: 'alice@org-b.example' },
    ];
    for (const { who, ...call } of cases) {
      const body = expectInvokeAnswer(
        await invoke(who, main.daemon.port, call),
        403,
        'POLICY_DENIED',
      );
      expect(body.receipt.outcome).toBe('denied');
      expect(body.receipt.principal).toBe(call.principal);
      expectAudited(main.state, body, 403, who === creds.b ? 'node-b' : 'node-a');
    }
    // The upstream was never called for the denied lookup.
    expect(
      upstream.received.some((r) => r.headers['x-sark-principal'] === 'bob@org-b.example'),
    ).toBe(false);
    // Allowed as soon as the principal is one the rules admit.
    expectInvokeAnswer(
      await invoke(creds.b, main.daemon.port, {
        resource: 'echo',
        capability: 'echo',
        principal: 'bob@org-b.example',
      }),
      200,
      null,
    );
  });

  it('answers 404 UNKNOWN_RESOURCE and UNKNOWN_CAPABILITY', async () => {
    const resource = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, { resource: 'nothing', capability: 'echo' }),
      404,
      'UNKNOWN_RESOURCE',
    );
    expect(resource.receipt).toMatchObject({ outcome: 'error', resource: 'nothing' });
    expectAudited(main.state, resource, 404);
    const capability = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, { resource: 'echo', capability: 'shout' }),
      404,
      'UNKNOWN_CAPABILITY',
    );
    expectAudited(main.state, capability, 404);
  });

  it('answers 400 to malformed JSON, a body of the wrong shape, and 415 to another media type', async () => {
    const port = main.daemon.port;
    const malformed = expectInvokeAnswer(
      await send(creds.a, port, PATHS.invoke, undefined, { raw: '{"resource_id": ' }),
      400,
      'MALFORMED_JSON',
    );
    // Nothing of the body could be read: placeholders, and the hash of no bytes.
    expect(malformed.receipt).toMatchObject({
      principal: '',
      resource: '-',
      capability: '-',
      request_sha256: NO_ARGUMENTS_SHA256,
      outcome: 'error',
    });
    expect(expectAudited(main.state, malformed, 400).requestSize).toBeNull();

    for (const shape of [
      { resource_id: 'echo', capability_id: 'echo' },
      { resource_id: 'echo', capability_id: 'echo', principal_id: 'p', extra: true },
      { resource_id: 'bad id!', capability_id: 'echo', principal_id: 'p' },
      // Control characters in the principal: it would reach both trails and terminals.
      { resource_id: 'echo', capability_id: 'echo', principal_id: 'eve\u001b[2J@x' },
      { resource_id: 'echo', capability_id: 'echo', principal_id: 'eve@x\nforged@y' },
      [1, 2, 3],
    ]) {
      const body = expectInvokeAnswer(
        await send(creds.a, port, PATHS.invoke, shape),
        400,
        'INVALID_BODY',
      );
      expectAudited(main.state, body, 400);
    }
    expectInvokeAnswer(
      await send(creds.a, port, PATHS.invoke, undefined, { method: 'POST' }),
      400,
      'INVALID_BODY',
    );
    expectInvokeAnswer(
      await send(creds.a, port, PATHS.invoke, undefined, {
        raw: 'x=1',
        contentType: 'application/x-www-form-urlencoded',
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  });

  it('refuses an untrusted caller with 403 before reading anything: no receipt, no audit event', async () => {
    const correlationId = randomUUID();
    for (const path of [PATHS.invoke, PATHS.resources, `${PATHS.resources}/echo`]) {
      const answer = await send(
        creds.u,
        main.daemon.port,
        path,
        path === PATHS.invoke
          ? { resource_id: 'echo', capability_id: 'echo', principal_id: 'u@org-b.example' }
          : undefined,
        { headers: { 'x-sark-correlation-id': correlationId } },
      );
      expect(answer.status).toBe(403);
      expect(answer.body).toEqual({
        error: { code: 'NOT_TRUSTED', message: expect.any(String), correlation_id: correlationId },
      });
    }
    expect(auditEvents(main.state, correlationId)).toEqual([]);
  });
});

describe('invoke: HTTP backends', () => {
  it('POSTs the arguments to the upstream with the configured and x-sark headers, and relays its JSON', async () => {
    const correlationId = randomUUID();
    const args = { sku: 'A-1', qty: 2 };
    const body = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, {
        resource: 'inventory',
        capability: 'lookup',
        args,
        correlationId,
      }),
      200,
      null,
    );
    expect(body.result).toEqual({ found: true, echoed: args });
    const seen = upstream.received.find(
      (r) => r.headers['x-sark-correlation-id'] === correlationId,
    );
    expect(seen).toMatchObject({
      method: 'POST',
      url: '/lookup',
      body: JSON.stringify(args),
      headers: expect.objectContaining({
        authorization: 'Bearer t0k3n',
        'content-type': 'application/json',
        'x-sark-principal': 'alice@org-b.example',
        'x-sark-source-node': 'node-a',
        'x-sark-source-spiffe-id': spiffe(TD_B, 'node-a'),
        'x-sark-resource': 'inventory',
        'x-sark-capability': 'lookup',
      }),
    });
    expectAudited(main.state, body, 200);
  });

  it('passes traceparent on, and a principal outside printable ASCII percent-encoded', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const correlationId = randomUUID();
    const answer = await send(
      creds.a,
      main.daemon.port,
      PATHS.invoke,
      {
        resource_id: 'inventory',
        capability_id: 'lookup',
        principal_id: 'josé@org-b.example',
        arguments: {},
      },
      { headers: { traceparent, 'x-sark-correlation-id': correlationId } },
    );
    expect(expectInvokeAnswer(answer, 200, null).receipt.principal).toBe('josé@org-b.example');
    const seen = upstream.received.find(
      (r) => r.headers['x-sark-correlation-id'] === correlationId,
    );
    expect(seen?.headers.traceparent).toBe(traceparent);
    expect(seen?.headers['x-sark-principal']).toBe('jos%C3%A9%40org-b.example');
  });

  it('sends the arguments of a GET capability as query parameters, and refuses nested ones (400)', async () => {
    const ok = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, {
        resource: 'inventory',
        capability: 'list',
        args: { shelf: 'b 2', limit: 10, all: true },
      }),
      200,
      null,
    );
    expect(ok.result).toEqual({ query: { shelf: 'b 2', limit: '10', all: 'true' } });
    expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, {
        resource: 'inventory',
        capability: 'list',
        args: { a: { b: 1 } },
      }),
      400,
      'INVALID_ARGUMENTS',
    );
  });

  it('relays a text answer as a string', async () => {
    const body = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, { resource: 'inventory', capability: 'text' }),
      200,
      null,
    );
    expect(body.result).toBe('plain words');
    expect(body.receipt.result_sha256).toBe(sha256Hex(JSON.stringify('plain words')));
  });

  it('answers 504 BACKEND_TIMEOUT when the upstream is slower than the capability timeout', async () => {
    const started = Date.now();
    const body = expectInvokeAnswer(
      await invoke(creds.a, main.daemon.port, { resource: 'inventory', capability: 'slow' }),
      504,
      'BACKEND_TIMEOUT',
    );
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(body.duration_ms).toBeGreaterThanOrEqual(290);
    expect(body.receipt.outcome).toBe('timeout');
    expectAudited(main.state, body, 504);
  });

  it('answers 502 BACKEND_ERROR for an upstream error status, invalid JSON, or no upstream at all, without its details', async () => {
    for (const capability of ['broken', 'bad-json', 'down']) {
      const body = expectInvokeAnswer(
        await invoke(creds.a, main.daemon.port, { resource: 'inventory', capability }),
        502,
        'BACKEND_ERROR',
      );
      expect(body.error?.message).not.toMatch(/10\.1\.2\.3|127\.0\.0\.1|ECONNREFUSED/);
      expect(body.receipt.outcome).toBe('error');
      expectAudited(main.state, body, 502);
    }
    // The operator finds the reason in the daemon's log.
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'backend failed',
        capability: 'down',
        detail: expect.stringMatching(/ECONNREFUSED/),
      }),
    );
  });
});

describe('invoke: limits', () => {
  it('rate-limits each node with a token bucket: 429 with Retry-After, then allowed once earned', async () => {
    let offset = 0;
    const limited = await serve('rate', {
      now: () => new Date(Date.now() + offset),
      invocation: { rateLimit: { perHour: 3600, burst: 2 } },
    });
    const call = () =>
      invoke(creds.a, limited.daemon.port, { resource: 'echo', capability: 'echo' });
    expectInvokeAnswer(await call(), 200, null);
    expectInvokeAnswer(await call(), 200, null);
    const refused = await call();
    const body = expectInvokeAnswer(refused, 429, 'RATE_LIMITED');
    expect(refused.headers['retry-after']).toBe('1');
    expect(body.receipt.outcome).toBe('denied');
    expectAudited(limited.state, body, 429);
    // Another node has its own bucket.
    expectInvokeAnswer(
      await invoke(creds.b, limited.daemon.port, {
        resource: 'echo',
        capability: 'echo',
        principal: 'b@x',
      }),
      200,
      null,
    );
    // One call an hour per 3600: a second later node-a has earned one more.
    offset += 1_000;
    expectInvokeAnswer(await call(), 200, null);
    expectInvokeAnswer(await call(), 429, 'RATE_LIMITED');
  });

  it('charges audit queries to the same bucket: 429 RATE_LIMITED with Retry-After', async () => {
    const limited = await serve('rate-audit', {
      invocation: { rateLimit: { perHour: 1, burst: 2 } },
    });
    const query = () => send(creds.a, limited.daemon.port, PATHS.auditQuery, {});
    expect((await query()).status).toBe(200);
    expectInvokeAnswer(
      await invoke(creds.a, limited.daemon.port, { resource: 'echo', capability: 'echo' }),
      200,
      null,
    );
    const refused = await query();
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('3600');
    expect(refused.body).toMatchObject({ error: { code: 'RATE_LIMITED' } });
  });

  it('takes per-node rate limits from the policy file before the defaults', async () => {
    const limited = await serve('rate-policy', {
      policy: new Policy({
        ...POLICY,
        rate_limits: [{ nodes: ['node-b'], rate_limit_per_hour: 1, burst: 1 }],
      }),
    });
    const callB = () =>
      invoke(creds.b, limited.daemon.port, {
        resource: 'echo',
        capability: 'echo',
        principal: 'b@x',
      });
    expectInvokeAnswer(await callB(), 200, null);
    const refused = await callB();
    expectInvokeAnswer(refused, 429, 'RATE_LIMITED');
    expect(refused.headers['retry-after']).toBe('3600');
    for (let i = 0; i < 3; i++) {
      expectInvokeAnswer(
        await invoke(creds.a, limited.daemon.port, { resource: 'echo', capability: 'echo' }),
        200,
        null,
      );
    }
  });

  it('caps the calls one node has in progress: 503 BUSY with Retry-After, others unaffected', async () => {
    const capped = await serve('busy', { invocation: { maxConcurrentPerNode: 2 } });
    const port = capped.daemon.port;
    const first = [
      invoke(creds.a, port, { resource: 'inventory', capability: 'hold' }),
      invoke(creds.a, port, { resource: 'inventory', capability: 'hold' }),
    ];
    await expect.poll(() => upstream.held.length, { timeout: 5_000 }).toBe(2);
    const busy = await invoke(creds.a, port, { resource: 'echo', capability: 'echo' });
    const body = expectInvokeAnswer(busy, 503, 'BUSY');
    expect(busy.headers['retry-after']).toBe('1');
    expectAudited(capped.state, body, 503);
    // node-b is not held up by node-a.
    expectInvokeAnswer(
      await invoke(creds.b, port, { resource: 'echo', capability: 'echo', principal: 'b@x' }),
      200,
      null,
    );
    upstream.releaseHeld();
    for (const answer of await Promise.all(first)) {
      expect(expectInvokeAnswer(answer, 200, null).result).toEqual({ released: true });
    }
    // The slots are free again.
    expectInvokeAnswer(
      await invoke(creds.a, port, { resource: 'echo', capability: 'echo' }),
      200,
      null,
    );
  });

  it('refuses a body over the cap with 413, declared or chunked, and still answers with a receipt', async () => {
    const small = await serve('body', { invocation: { maxBodyBytes: 1024 } });
    const big = {
      resource_id: 'echo',
      capability_id: 'echo',
      principal_id: 'p@org-b.example',
      arguments: 'x'.repeat(4096),
    };
    for (const chunked of [false, true]) {
      const answer = await send(creds.a, small.daemon.port, PATHS.invoke, big, { chunked });
      const body = expectInvokeAnswer(answer, 413, 'BODY_TOO_LARGE');
      expect(answer.headers.connection).toBe('close');
      expect(body.receipt).toMatchObject({ resource: '-', request_sha256: NO_ARGUMENTS_SHA256 });
      expectAudited(small.state, body, 413);
    }
    // Just under the cap is fine.
    const fits = { ...big, arguments: 'x'.repeat(900) };
    expectInvokeAnswer(await send(creds.a, small.daemon.port, PATHS.invoke, fits), 200, null);
  });
});

describe('resources catalog', () => {
  it('lists to each node only what the policy lets it use, without backends', async () => {
    const forA = await send(creds.a, main.daemon.port, PATHS.resources);
    expect(forA.status).toBe(200);
    const catalogA = ResourcesResponse.parse(forA.body);
    expect(catalogA.node_id).toBe('node-s');
    expect(catalogA.resources.map((r) => r.id)).toEqual(['echo', 'inventory']);
    const inventory = catalogA.resources.find((r) => r.id === 'inventory');
    // delete is refused to every principal, so it is not shown; secret is nobody's.
    expect(inventory?.capabilities.map((c) => c.id)).toEqual([
      'lookup',
      'list',
      'text',
      'broken',
      'bad-json',
      'slow',
      'hold',
      'down',
    ]);
    expect(inventory?.capabilities[0]).toEqual({
      id: 'lookup',
      description: 'find an item',
      idempotent: true,
    });
    expect(JSON.stringify(forA.body)).not.toContain('127.0.0.1');

    const forB = ResourcesResponse.parse(
      (await send(creds.b, main.daemon.port, PATHS.resources)).body,
    );
    expect(forB.resources).toEqual([
      {
        id: 'echo',
        description: 'returns its arguments',
        capabilities: [{ id: 'echo', description: null, idempotent: true }],
      },
    ]);
  });

  it('answers one resource, or 404 UNKNOWN_RESOURCE when it is not served or not shown to the caller', async () => {
    const one = await send(creds.a, main.daemon.port, `${PATHS.resources}/echo`);
    expect(one.status).toBe(200);
    expect(ResourceResponse.parse(one.body).resource.id).toBe('echo');
    for (const [who, id] of [
      [creds.a, 'nothing'],
      [creds.a, 'secret'],
      [creds.b, 'inventory'],
      // No resource can have this ID: unknown too, not a missing endpoint.
      [creds.a, 'bad%20id'],
    ] as const) {
      const answer = await send(who, main.daemon.port, `${PATHS.resources}/${id}`);
      expect(answer.status).toBe(404);
      expect((answer.body.error as { code: string }).code).toBe('UNKNOWN_RESOURCE');
    }
  });

  it('shows nothing to anyone, and denies every call, without a policy', async () => {
    const open = await serve('no-policy', { policy: undefined });
    const listed = ResourcesResponse.parse(
      (await send(creds.a, open.daemon.port, PATHS.resources)).body,
    );
    expect(listed.resources).toEqual([]);
    expectInvokeAnswer(
      await invoke(creds.a, open.daemon.port, { resource: 'echo', capability: 'echo' }),
      403,
      'POLICY_DENIED',
    );
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'no policy given: every invocation will be denied',
      }),
    );
  });

  it('records what this node may use on itself in local_catalog while it serves, and clears it on close', async () => {
    const own = await serve('local-catalog');
    const rows = localCatalog(own.state);
    expect(rows.map((row) => row.resource_id)).toEqual(['echo']);
    expect(JSON.parse((rows[0] as { catalog: string }).catalog)).toEqual({
      id: 'echo',
      description: 'returns its arguments',
      capabilities: [{ id: 'echo', description: null, idempotent: true }],
    });
    await own.daemon.close();
    daemons.splice(daemons.indexOf(own.daemon), 1);
    expect(localCatalog(own.state)).toEqual([]);
  });
});

describe('serve --metrics on an address in use', () => {
  it('fails naming the metrics socket, having logged nothing, with its TLS socket closed again', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const held = (holder.address() as AddressInfo).port;
    const tlsPort = await closedPort();
    const said: string[] = [];
    const quiet: Logger = {
      info: (msg) => said.push(msg),
      warn: (msg) => said.push(msg),
      error: (msg) => said.push(msg),
    };
    try {
      const failure: unknown = await serve('metrics-in-use', {
        port: tlsPort,
        logger: quiet,
        metrics: { host: '127.0.0.1', port: held },
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BindError);
      expect(failure).toMatchObject({
        socket: 'metrics',
        host: '127.0.0.1',
        port: held,
        code: 'EADDRINUSE',
      });
      // Not "listening", not "serving resources": nothing that says it serves.
      expect(said).toEqual([]);
      // This process, which started the daemon, can bind the TLS port again: it was released.
      const again = createServer();
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(tlsPort, '127.0.0.1', resolve);
      });
      await new Promise<void>((resolve) => again.close(() => resolve()));
      expect(localCatalog(join(root, 'metrics-in-use', 'state.db'))).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });
});

describe('audit', () => {
  it('never stores arguments or results, only their hashes and sizes', async () => {
    const marker = `MARKER-${randomUUID()}`;
    const audited = await serve('no-content');
    const bodies = [
      expectInvokeAnswer(
        await invoke(creds.a, audited.daemon.port, {
          resource: 'echo',
          capability: 'echo',
          args: { secret: marker },
        }),
        200,
        null,
      ),
      expectInvokeAnswer(
        await invoke(creds.a, audited.daemon.port, {
          resource: 'inventory',
          capability: 'lookup',
          args: [marker],
        }),
        200,
        null,
      ),
      expectInvokeAnswer(
        await invoke(creds.a, audited.daemon.port, {
          resource: 'echo',
          capability: 'echo',
          principal: 'mallory@org-b.example',
          args: marker,
        }),
        403,
        'POLICY_DENIED',
      ),
    ];
    expect(JSON.stringify(bodies[0]?.result)).toContain(marker);
    for (const body of bodies) expectAudited(audited.state, body, body.success ? 200 : 403);
    // Every byte the state file has: the database, its WAL and its shared memory.
    await audited.daemon.close();
    daemons.splice(daemons.indexOf(audited.daemon), 1);
    for (const suffix of ['', '-wal', '-shm']) {
      const path = `${audited.state}${suffix}`;
      if (!existsSync(path)) continue;
      expect(readFileSync(path).includes(marker), `${path} holds the marker`).toBe(false);
    }
  });

  it('answers 500 AUDIT_UNAVAILABLE, with a signed error receipt and nothing stored, when its audit row cannot be committed', async () => {
    const refusing = await serve('audit-refused');
    // Another process makes the state file refuse audit rows while the daemon runs.
    const other = new Database(refusing.state);
    try {
      other.exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the disk refused the write'); END`);
      const marker = `MARKER-${randomUUID()}`;
      const refused = expectInvokeAnswer(
        await invoke(creds.a, refusing.daemon.port, {
          resource: 'echo',
          capability: 'echo',
          args: { secret: marker },
        }),
        500,
        'AUDIT_UNAVAILABLE',
      );
      expect(refused.error?.message).toBe('the node could not record the call in its audit trail');
      expect(refused.receipt.outcome).toBe('error');
      expect(auditEvents(refusing.state, refused.correlation_id)).toEqual([]);
      expect(logs).toContainEqual(
        expect.objectContaining({
          level: 'error',
          msg: 'audit append failed',
          correlation_id: refused.correlation_id,
        }),
      );
      // A refused commit fails its own batch only: once the file accepts rows, calls succeed.
      other.exec('DROP TRIGGER refuse_audit');
      const body = expectInvokeAnswer(
        await invoke(creds.a, refusing.daemon.port, {
          resource: 'echo',
          capability: 'echo',
          args: 1,
        }),
        200,
        null,
      );
      expectAudited(refusing.state, body, 200);
    } finally {
      other.close();
    }
  });

  it('chains the events of concurrent calls in one order', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        invoke(creds.a, main.daemon.port, { resource: 'echo', capability: 'echo', args: i }),
      ),
    );
    for (const answer of answers) expectInvokeAnswer(answer, 200, null);
    const db = new Database(main.state, { readonly: true, fileMustExist: true });
    try {
      const rows = db
        .prepare('SELECT prev_hash, hash FROM audit_events ORDER BY seq')
        .all() as Array<{
        prev_hash: string;
        hash: string;
      }>;
      for (let i = 1; i < rows.length; i++) expect(rows[i]?.prev_hash).toBe(rows[i - 1]?.hash);
    } finally {
      db.close();
    }
  });
});
