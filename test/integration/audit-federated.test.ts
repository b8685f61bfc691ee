import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, chainHash, type AuditEventInput } from '../../src/core/audit/events.js';
import { queryFederated, type FederatedAuditResult } from '../../src/core/audit/federated.js';
import { eventToWire, type AuditFilter } from '../../src/core/audit/query.js';
import { certificateFingerprint } from '../../src/core/identity/fingerprint.js';
import { pemBlocks } from '../../src/core/identity/pem.js';
import { readPrivateKeyFile } from '../../src/core/identity/keys.js';
import { CORRELATION_HEADER, PATHS } from '../../src/core/protocol/constants.js';
import { AuditQueryResponse } from '../../src/core/protocol/schemas.js';
import { openState } from '../../src/core/state/database.js';
import { loadIdentity } from '../../src/core/state/identity-repository.js';
import { findPeer, savePeer } from '../../src/core/state/trust-repository.js';
import { tempDir } from '../helpers/cli.js';
import {
  addAnchor,
  curl,
  makeNode,
  opensslFingerprint,
  startServe,
  stateRows,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { send, type Answer, type Credentials } from '../helpers/mtls-request.js';
import { createCa, issueNode } from '../helpers/pki.js';

/**
 * The federated audit trail (issue 6) with real `sark-fed serve` daemons on 127.0.0.1: node-a
 * (org A) and node-c (org C) both call node-b (org B). node-a's federated query gets node-b's
 * side of its own calls and nothing else; node-c, asking node-b directly over mutual TLS with
 * whatever filter, never sees a node-a call; untrusted callers and bad bodies are refused and
 * write nothing; a stopped or silent peer becomes a problem entry, never a failure.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const TD_C = 'org-c.example';
const SLOW_TEST_MS = 60_000;

let dir: string;
let a: TestNode;
let b: TestNode;
let c: TestNode;
/** node-u: a valid chain that node-b accepts (CA C is an anchor there), never trusted. */
let u: { certPath: string; keyPath: string };
let caBPath: string;
let caBDir: string;
let daemonB: RunningServe;
let creds: Record<'a' | 'c' | 'u', Credentials>;
/** Correlation IDs of the calls made in beforeAll. */
const calls = { ab: [] as string[], cb: [] as string[] };

const POLICY = {
  rules: [
    {
      effect: 'allow',
      nodes: ['node-a', 'node-c'],
      principals: ['*'],
      resources: ['echo'],
      capabilities: ['*'],
    },
  ],
};
const RESOURCES = {
  resources: [{ id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] }],
};

function credentialsOf(node: { certPath: string; keyPath: string }): Credentials {
  return {
    certPem: readFileSync(node.certPath, 'utf8'),
    keyPem: readFileSync(node.keyPath, 'utf8'),
  };
}

async function invoke(from: TestNode, principal: string): Promise<string> {
  const correlationId = randomUUID();
  const result = await from.cli([
    'invoke',
    'echo',
    'echo',
    '--node',
    'node-b',
    '--args',
    JSON.stringify({ from: from.nodeId }),
    '--principal',
    principal,
    '--correlation-id',
    correlationId,
  ]);
  expect(result.code, result.stderr).toBe(0);
  return correlationId;
}

beforeAll(async () => {
  dir = tempDir('sark-fed-audit-federated-');
  const [caA, caB, caC] = await Promise.all([
    createCa(join(dir, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(dir, 'ca-b'), ['--trust-domain', TD_B]),
    createCa(join(dir, 'ca-c'), ['--trust-domain', TD_C]),
  ]);
  caBPath = caB.certPath;
  caBDir = caB.dir;
  [a, b, c, u] = await Promise.all([
    makeNode(dir, caA.dir, 'node-a', TD_A),
    makeNode(dir, caB.dir, 'node-b', TD_B),
    makeNode(dir, caC.dir, 'node-c', TD_C),
    issueNode(caC.dir, 'node-u', join(dir, 'node-u'), ['--ip', '127.0.0.1']),
  ]);
  creds = { a: credentialsOf(a), c: credentialsOf(c), u: credentialsOf(u) };
  await Promise.all([
    addAnchor(a, caB.certPath),
    addAnchor(b, caA.certPath),
    addAnchor(b, caC.certPath),
    addAnchor(c, caB.certPath),
  ]);
  const resources = join(dir, 'resources.json');
  const policy = join(dir, 'policy.json');
  writeFileSync(resources, JSON.stringify(RESOURCES));
  writeFileSync(policy, JSON.stringify(POLICY));
  daemonB = await startServe(b, ['--resources', resources, '--policy', policy]);
  for (const caller of [a, c]) {
    const established = await caller.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslFingerprint(b.certPath),
    ]);
    expect(established.code, established.stderr).toBe(0);
  }
  // In turn, so that times differ: a, c, a, c.
  for (let round = 0; round < 2; round++) {
    calls.ab.push(await invoke(a, 'alice@org-a.example'));
    calls.cb.push(await invoke(c, 'carol@org-c.example'));
  }
}, SLOW_TEST_MS);

afterAll(async () => {
  await daemonB?.stop();
});

async function federated(
  node: TestNode,
  filter: AuditFilter,
  timeoutMs = 5_000,
): Promise<FederatedAuditResult> {
  const store = openState(node.state, { create: false });
  try {
    const identity = store.read(loadIdentity);
    if (!identity) throw new Error(`no identity in ${node.state}`);
    const result = await queryFederated({
      store,
      identity,
      privateKey: readPrivateKeyFile(identity.keyPath),
      filter,
      timeoutMs,
      now: () => new Date(),
    });
    // Every problem's message names its node, once: the CLI prints it as it is.
    for (const problem of result.problems) {
      expect(problem.message.split(problem.nodeId), problem.message).toHaveLength(2);
    }
    return result;
  } finally {
    store.close();
  }
}

function auditQuery(who: Credentials, body: unknown, options = {}): Promise<Answer> {
  return send(who, b.port, PATHS.auditQuery, body, { method: 'POST', ...options });
}

function bAuditRows(): unknown[] {
  return stateRows(b.state).audit_events as unknown[];
}

/** Records, in node-a's own trail, one outbound event per target (as if node-a had called it). */
function recordLocalCalls(resource: string, targets: string[]): void {
  const store = openState(a.state, { create: false });
  try {
    store.write((db) =>
      appendEvents(
        db,
        targets.map((targetNode) => ({
          correlationId: randomUUID(),
          time: new Date().toISOString(),
          direction: 'outbound' as const,
          sourceNode: 'node-a',
          targetNode,
          principal: 'alice@org-a.example',
          resource,
          capability: 'probe',
          outcome: 'error' as const,
          statusCode: null,
          errorCode: 'UNREACHABLE',
          durationUs: 10,
          requestSha256: null,
          requestSize: null,
          resultSha256: null,
          resultSize: null,
          receipt: null,
        })),
      ),
    );
  } finally {
    store.close();
  }
}

/** Makes node-a trust nodeId (spiffe ID in org B) at endpoint, pinned to certPem. */
function trustOnA(nodeId: string, endpoint: string, certPem: string): void {
  const store = openState(a.state, { create: false });
  try {
    const peerB = store.read((db) => findPeer(db, 'node-b'));
    if (!peerB) throw new Error('node-a does not know node-b');
    const [leaf] = pemBlocks(certPem);
    if (!leaf) throw new Error('no certificate');
    store.write((db) =>
      savePeer(db, {
        ...peerB,
        nodeId,
        spiffeId: `spiffe://${TD_B}/sark/node/${nodeId}`,
        endpoint,
        pinnedFingerprint: certificateFingerprint(leaf.der),
        certificatePem: certPem,
      }),
    );
  } finally {
    store.close();
  }
}

describe('federated audit query against real daemons', () => {
  it(
    "node-a gets its own and node-b's events of its calls, each with its origin",
    async () => {
      const [first] = calls.ab;
      const result = await federated(a, { correlationId: first as string });
      expect(result.problems).toEqual([]);
      expect(result.events.map((e) => [e.origin, e.direction, e.sourceNode, e.targetNode])).toEqual(
        expect.arrayContaining([
          ['node-a', 'outbound', 'node-a', 'node-b'],
          ['node-b', 'inbound', 'node-a', 'node-b'],
        ]),
      );
      expect(result.events).toHaveLength(2);
      // Both sides hold the same receipt, the one node-b signed.
      const [x, y] = result.events;
      expect(x?.receipt).toEqual(y?.receipt);
      expect(x?.receipt?.correlation_id).toBe(first);

      const everything = await federated(a, {});
      expect(everything.problems).toEqual([]);
      expect(everything.events).toHaveLength(4);
      expect(new Set(everything.events.map((e) => e.correlationId))).toEqual(new Set(calls.ab));
      // Newest first across both nodes.
      const times = everything.events.map((e) => e.time);
      expect([...times].sort().reverse()).toEqual(times);
      // The limit applies to the merged list.
      const limited = await federated(a, { limit: 3 });
      expect(limited.events).toEqual(everything.events.slice(0, 3));
    },
    SLOW_TEST_MS,
  );

  it(
    "node-c's federated query holds only calls node-c took part in",
    async () => {
      const result = await federated(c, { principal: 'carol@org-c.example' });
      expect(result.problems).toEqual([]);
      expect(result.events).toHaveLength(4);
      for (const event of result.events) {
        expect(calls.cb).toContain(event.correlationId);
        expect([event.sourceNode, event.targetNode]).toContain('node-c');
      }
      expect(result.events.filter((e) => e.origin === 'node-b')).toHaveLength(2);
      // Asking by node-a's correlation ID finds nothing anywhere.
      const probe = await federated(c, { correlationId: calls.ab[0] as string });
      expect(probe).toEqual({ events: [], problems: [] });
    },
    SLOW_TEST_MS,
  );

  it(
    'node-b answers node-c, asking directly, nothing of node-a calls, whatever the filter',
    async () => {
      const bodies: Array<Record<string, unknown> | undefined> = [
        { correlation_id: calls.ab[0] },
        { node: 'node-a' },
        { principal: 'alice@org-a.example' },
        { node: 'node-a', outcome: 'success', resource: 'echo', since: '2000-01-01T00:00:00Z' },
        {},
        undefined,
      ];
      for (const body of bodies) {
        const answer = await auditQuery(creds.c, body, body === undefined ? { raw: '' } : {});
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        const parsed = AuditQueryResponse.parse(answer.body);
        expect(parsed.node_id).toBe('node-b');
        for (const event of parsed.events) {
          expect(event.source_node).toBe('node-c');
          expect(calls.cb).toContain(event.correlation_id);
        }
        const narrowed = body !== undefined && Object.keys(body).length > 0;
        expect(parsed.events, JSON.stringify(body)).toHaveLength(narrowed ? 0 : 2);
      }
      // node-a, asking the same way, sees its own call.
      const own = await auditQuery(creds.a, { correlation_id: calls.ab[0] });
      expect(own.status).toBe(200);
      expect(AuditQueryResponse.parse(own.body).events).toEqual([
        expect.objectContaining({
          correlation_id: calls.ab[0],
          direction: 'inbound',
          source_node: 'node-a',
          target_node: 'node-b',
          seq: expect.any(Number),
          event_id: expect.any(String),
          prev_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
          hash: expect.stringMatching(/^[0-9a-f]{64}$/),
          receipt: expect.objectContaining({ correlation_id: calls.ab[0] }),
        }),
      ]);
    },
    SLOW_TEST_MS,
  );

  it('answers with at most limit events and says when more matched', async () => {
    const one = AuditQueryResponse.parse((await auditQuery(creds.c, { limit: 1 })).body);
    expect(one.events).toHaveLength(1);
    expect(one.truncated).toBe(true);
    expect(one.events[0]?.correlation_id).toBe(calls.cb[1]);
    const capped = await auditQuery(creds.c, { limit: 1_000_000 });
    expect(capped.status).toBe(200);
    expect(AuditQueryResponse.parse(capped.body)).toMatchObject({ truncated: false });
    expect(AuditQueryResponse.parse(capped.body).events).toHaveLength(2);
  });

  it('echoes the correlation ID of every answer, refusals included', async () => {
    for (const body of [{}, { bogus: 1 }]) {
      const correlationId = randomUUID();
      const answer = await auditQuery(creds.c, body, {
        headers: { [CORRELATION_HEADER]: correlationId },
      });
      expect(answer.headers[CORRELATION_HEADER]).toBe(correlationId);
    }
  });

  it('refuses bad bodies with 400 or 413 and an error code, writing nothing', async () => {
    const before = bAuditRows();
    const cases: Array<[string, Parameters<typeof auditQuery>, number, string]> = [
      ['malformed JSON', [creds.c, undefined, { raw: '{"limit":' }], 400, 'MALFORMED_JSON'],
      ['an unknown key', [creds.c, { participant: 'node-a' }], 400, 'INVALID_BODY'],
      ['a bad outcome', [creds.c, { outcome: 'maybe' }], 400, 'INVALID_BODY'],
      ['a bad time', [creds.c, { since: 'yesterday' }], 400, 'INVALID_BODY'],
      ['a limit of 0', [creds.c, { limit: 0 }], 400, 'INVALID_BODY'],
      ['an array', [creds.c, [1, 2]], 400, 'INVALID_BODY'],
      [
        'another media type',
        [creds.c, undefined, { raw: '{}', contentType: 'text/plain' }],
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        'a body over 16 KiB',
        [creds.c, { principal: 'x'.repeat(17 * 1024) }],
        413,
        'BODY_TOO_LARGE',
      ],
      [
        'a chunked body over 16 KiB',
        [creds.c, { principal: 'x'.repeat(17 * 1024) }, { chunked: true }],
        413,
        'BODY_TOO_LARGE',
      ],
    ];
    for (const [name, args, status, code] of cases) {
      const answer = await auditQuery(...args).catch((error: unknown) => {
        // An oversized body may be cut off before the answer is read whole.
        throw new Error(`${name}: ${String(error)}`);
      });
      expect(answer.status, name).toBe(status);
      expect(answer.body, name).toMatchObject({
        error: { code, correlation_id: expect.any(String) },
      });
    }
    const get = await send(creds.c, b.port, PATHS.auditQuery, undefined, { method: 'GET' });
    expect(get.status).toBe(405);
    expect(bAuditRows()).toEqual(before);
  });

  it('refuses callers that are not trusted peers, as invoke does', async () => {
    const before = bAuditRows();
    // A chain node-b accepts (CA C is an anchor), but node-u was never trusted.
    const untrusted = await auditQuery(creds.u, {});
    expect(untrusted.status).toBe(403);
    expect(untrusted.body).toMatchObject({ error: { code: 'NOT_TRUSTED' } });
    const invoke = await send(creds.u, b.port, PATHS.invoke, {
      resource_id: 'echo',
      capability_id: 'echo',
      principal_id: 'u@org-c.example',
      arguments: null,
    });
    expect(invoke.status).toBe(untrusted.status);
    expect((invoke.body.error as { code: string }).code).toBe('NOT_TRUSTED');
    // No client certificate at all, from a standard TLS client.
    const anonymous = await curl(`${b.endpoint}${PATHS.auditQuery}`, {
      cacert: caBPath,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(anonymous.status, anonymous.stderr).toBe(401);
    expect(anonymous.json).toMatchObject({ error: { code: 'NO_CLIENT_CERTIFICATE' } });
    expect(anonymous.headers[CORRELATION_HEADER]).toMatch(/^[0-9a-f-]{36}$/);
    // A certificate of a CA node-b has no anchor for.
    const caD = await createCa(join(dir, 'ca-d'), ['--trust-domain', 'org-d.example']);
    const d = await issueNode(caD.dir, 'node-d', join(dir, 'node-d'), ['--ip', '127.0.0.1']);
    const stranger = await auditQuery(credentialsOf(d), {});
    expect(stranger.status).toBe(403);
    expect(stranger.body).toMatchObject({ error: { code: 'UNKNOWN_TRUST_DOMAIN' } });
    expect(bAuditRows()).toEqual(before);
  });

  it(
    'reports peers that cannot be asked, or do not answer in time, and still returns local events',
    async () => {
      // node-a's trail names two more nodes: node-x, known only by name, and node-s, trusted
      // but silent (its endpoint accepts connections and never says a word).
      const silent: Server = createServer((socket: Socket) => {
        socket.on('error', () => {});
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const silentPort = (silent.address() as { port: number }).port;
      const store = openState(a.state, { create: false });
      try {
        const peerB = store.read((db) => findPeer(db, 'node-b'));
        if (!peerB) throw new Error('node-a does not know node-b');
        store.write((db) => {
          savePeer(db, {
            ...peerB,
            nodeId: 'node-s',
            spiffeId: `spiffe://${TD_B}/sark/node/node-s`,
            endpoint: `https://127.0.0.1:${silentPort}`,
          });
          const base: AuditEventInput = {
            correlationId: randomUUID(),
            time: new Date().toISOString(),
            direction: 'outbound',
            sourceNode: 'node-a',
            targetNode: 'node-x',
            principal: 'alice@org-a.example',
            resource: 'side',
            capability: 'probe',
            outcome: 'error',
            statusCode: null,
            errorCode: 'UNREACHABLE',
            durationUs: 10,
            requestSha256: null,
            requestSize: null,
            resultSha256: null,
            resultSize: null,
            receipt: null,
          };
          appendEvents(db, [base, { ...base, correlationId: randomUUID(), targetNode: 'node-s' }]);
        });
      } finally {
        store.close();
      }
      try {
        const result = await federated(a, { resource: 'side' }, 1_500);
        expect(result.events.map((e) => [e.origin, e.targetNode]).sort()).toEqual([
          ['node-a', 'node-s'],
          ['node-a', 'node-x'],
        ]);
        expect(result.problems).toEqual([
          { nodeId: 'node-s', code: 'TIMEOUT', message: expect.stringContaining('node-s') },
          { nodeId: 'node-x', code: 'NOT_TRUSTED', message: expect.stringContaining('not asked') },
        ]);
      } finally {
        silent.close();
      }
    },
    SLOW_TEST_MS,
  );

  it(
    'keeps from a misbehaving peer only well-formed events of its own calls (a stand-in server plays node-t)',
    async () => {
      // The real daemon never answers like this: a stand-in https server with node-t's real
      // certificate (from CA B, which node-a anchors, and pinned) answers what the test says.
      const t = await issueNode(caBDir, 'node-t', join(dir, 'node-t'), ['--ip', '127.0.0.1']);
      const certPem = readFileSync(t.certPath, 'utf8');
      let reply: (requestBody: string) => unknown = () => ({});
      const bodies: string[] = [];
      const standIn = createHttpsServer(
        { cert: certPem, key: readFileSync(t.keyPath, 'utf8') },
        (request, response) => {
          const chunks: Buffer[] = [];
          request.on('data', (chunk: Buffer) => chunks.push(chunk));
          request.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            bodies.push(text);
            const payload = JSON.stringify(reply(text));
            response.writeHead(200, { 'content-type': 'application/json' });
            response.end(payload);
          });
        },
      );
      await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
      const port = (standIn.address() as { port: number }).port;
      try {
        trustOnA('node-t', `https://127.0.0.1:${port}`, certPem);
        recordLocalCalls('standin', ['node-t']);
        const input = (overrides: Partial<AuditEventInput>): AuditEventInput => ({
          correlationId: randomUUID(),
          time: '2030-06-01T00:00:00.000Z',
          direction: 'inbound',
          sourceNode: 'node-a',
          targetNode: 'node-t',
          principal: 'alice@org-a.example',
          resource: 'standin',
          capability: 'probe',
          outcome: 'error',
          statusCode: 502,
          errorCode: 'X',
          durationUs: 1,
          requestSha256: null,
          requestSize: null,
          resultSha256: null,
          resultSize: null,
          receipt: null,
          ...overrides,
        });
        const wire = (event: AuditEventInput, seq: number, tamper = false) => {
          const eventId = randomUUID();
          const prevHash = '0'.repeat(64);
          const hash = chainHash(prevHash, { ...event, eventId });
          return eventToWire({
            ...event,
            seq,
            eventId,
            prevHash,
            hash,
            ...(tamper ? { principal: 'mallory@org-a.example' } : {}),
          });
        };
        const good = wire(input({}), 1);
        reply = () => ({
          node_id: 'node-t',
          events: [
            good,
            // A call between two other nodes: not node-a's to see.
            wire(input({ sourceNode: 'node-b', targetNode: 'node-c' }), 2),
            // Altered after it was hashed.
            wire(input({}), 3, true),
            // Not what was asked for.
            wire(input({ resource: 'other' }), 4),
          ],
          truncated: false,
        });
        const result = await federated(a, { resource: 'standin' });
        expect(JSON.parse(bodies.at(-1) as string)).toEqual({ resource: 'standin', limit: 1000 });
        expect(result.events.filter((e) => e.origin === 'node-t')).toEqual([
          expect.objectContaining({ eventId: good.event_id, origin: 'node-t', hash: good.hash }),
        ]);
        expect(result.events.filter((e) => e.origin === 'node-a')).toHaveLength(1);
        expect(result.problems.map((p) => [p.nodeId, p.code])).toEqual([
          ['node-t', 'HASH_MISMATCH'],
          ['node-t', 'UNEXPECTED_EVENTS'],
        ]);

        for (const [answer, code] of [
          [{ node_id: 'node-t', events: [{ seq: 'one' }], truncated: false }, 'MALFORMED_ANSWER'],
          [{ node_id: 'node-b', events: [], truncated: false }, 'WRONG_NODE'],
          ['not an object', 'MALFORMED_ANSWER'],
        ] as const) {
          reply = () => answer;
          const refused = await federated(a, { resource: 'standin' });
          expect(refused.problems.map((p) => [p.nodeId, p.code])).toEqual([['node-t', code]]);
          if (code === 'WRONG_NODE') {
            expect(refused.problems[0]?.message).toBe(
              `node-t (https://127.0.0.1:${port}) answered as node-b`,
            );
          }
          expect(refused.events.map((e) => e.origin)).toEqual(['node-a']);
        }
      } finally {
        standIn.close();
      }
    },
    SLOW_TEST_MS,
  );

  it(
    'reports a stopped peer as a problem and still returns the local events',
    async () => {
      await daemonB.stop();
      const result = await federated(a, { correlationId: calls.ab[1] as string });
      expect(result.events).toEqual([
        expect.objectContaining({
          origin: 'node-a',
          correlationId: calls.ab[1],
          direction: 'outbound',
        }),
      ]);
      expect(result.problems).toEqual([
        { nodeId: 'node-b', code: 'UNREACHABLE', message: expect.stringContaining('node-b') },
      ]);
    },
    SLOW_TEST_MS,
  );
});
