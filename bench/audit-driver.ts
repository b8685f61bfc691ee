// The generator of the audit benchmark, in TypeScript so that it writes through the real engine:
// bench/audit.mjs bundles it with esbuild (as scripts/limbo.mjs does) and imports it. Events are
// appended with appendEvents inside StateStore.write (BEGIN IMMEDIATE, synchronous=FULL, the hash
// chain), as the daemon's group commit and the CLI's invoker do, in large batches.
import { randomBytes, randomUUID } from 'node:crypto';
import type { AuditEventInput } from '../src/core/audit/events.js';
import { appendEvents } from '../src/core/audit/events.js';
import type { AuditOutcome, Receipt } from '../src/core/audit/receipts.js';
import { openState } from '../src/core/state/database.js';
import { SCHEMA_VERSION } from '../src/core/state/migrations.js';

/**
 * Bumped whenever what generate() writes changes, so that a cached file made by an older
 * generator is not measured in its place (bench/audit.mjs keys its cache by both versions).
 */
export const GENERATOR_VERSION = 1;
export { SCHEMA_VERSION };

/** The node whose state file is generated, as `sark-fed init` made it. */
export interface LocalNode {
  nodeId: string;
  trustDomain: string;
}

export interface GenerateOptions {
  statePath: string;
  local: LocalNode;
  events: number;
  /** Rows per transaction. */
  batch: number;
  /** The last event's time; the others spread over the 30 days before it. */
  end: Date;
  onBatch?: (written: number) => void;
}

export interface GenerateSummary {
  events: number;
  correlationIds: number;
  firstTime: string;
  lastTime: string;
  outcomes: Record<AuditOutcome, number>;
  directions: { inbound: number; outbound: number };
  withReceipt: number;
}

const DAYS = 30;
/** Events a call records on average here (outbound retries and fail-overs). */
const CALL_EVENTS = 1.022;

/** A small seeded PRNG (mulberry32): the same distributions every time the file is generated. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

interface Peer {
  nodeId: string;
  trustDomain: string;
}

const PEERS: Peer[] = [
  { nodeId: 'node-b', trustDomain: 'org-a.example' },
  { nodeId: 'node-c', trustDomain: 'org-b.example' },
  { nodeId: 'node-d', trustDomain: 'org-b.example' },
  { nodeId: 'node-e', trustDomain: 'org-c.example' },
];

/** What this node serves (inbound calls) and what it calls on its peers (outbound). */
const LOCAL_RESOURCES: Array<[string, string[]]> = [
  ['inventory', ['list', 'get', 'reserve', 'release']],
  ['reports', ['generate', 'fetch']],
  ['tickets', ['create', 'get', 'search', 'comment']],
  ['ml-models', ['predict']],
];
const REMOTE_RESOURCES: Array<{ resource: string; capabilities: string[]; nodes: string[] }> = [
  {
    resource: 'billing',
    capabilities: ['charge', 'refund', 'invoice'],
    nodes: ['node-c', 'node-d'],
  },
  { resource: 'geo', capabilities: ['lookup', 'route'], nodes: ['node-b'] },
  { resource: 'search', capabilities: ['query', 'suggest'], nodes: ['node-e'] },
  { resource: 'storage', capabilities: ['put', 'get', 'list'], nodes: ['node-b', 'node-c'] },
  { resource: 'identity', capabilities: ['resolve'], nodes: ['node-d', 'node-e'] },
];

const PEOPLE = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
const SERVICES = ['svc-billing', 'svc-orders', 'svc-reports', 'svc-sync', 'svc-ml', 'ci-runner'];

function principalsOf(trustDomain: string): string[] {
  return [...PEOPLE, ...SERVICES].map((name) => `${name}@${trustDomain}`);
}

function spiffeId(trustDomain: string, nodeId: string): string {
  return `spiffe://${trustDomain}/sark/node/${nodeId}`;
}

/** Appends `events` audit events to the state file, `batch` to a transaction. */
export function generate(options: GenerateOptions): GenerateSummary {
  const random = prng(0x5a4b);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  /** Skewed towards the first items: a few principals and resources make most of the calls. */
  const pickSkewed = <T>(items: readonly T[]): T =>
    items[Math.floor(random() ** 2 * items.length)] as T;
  const hex = () => randomBytes(32).toString('hex');
  const between = (low: number, high: number) => Math.round(low + random() * (high - low));
  // A P-256 ECDSA signature in DER, base64url: 70-72 bytes. Random bytes of that size, not a
  // real signature: `audit verify` would reject these receipts, which nothing here checks.
  const signature = () => randomBytes(between(70, 72)).toString('base64url');

  const local = options.local;
  const localSpiffe = spiffeId(local.trustDomain, local.nodeId);
  const localPrincipals = principalsOf(local.trustDomain);
  const peerPrincipals = new Map(
    PEERS.map((peer) => [peer.nodeId, principalsOf(peer.trustDomain)]),
  );
  const peerById = new Map(PEERS.map((peer) => [peer.nodeId, peer]));

  const endMs = options.end.getTime();
  let clock = endMs - DAYS * 24 * 3600 * 1000;
  // Mean gap between calls (exponential gaps) so that the events span a little less than the 30
  // days; the few that would still land after the end are put at the end, never in the future.
  const meanGapMs = (0.995 * DAYS * 24 * 3600 * 1000 * CALL_EVENTS) / options.events;
  const outcomes: Record<AuditOutcome, number> = { success: 0, denied: 0, error: 0, timeout: 0 };
  const directions = { inbound: 0, outbound: 0 };
  let correlationIds = 0;
  let withReceipt = 0;

  const receipt = (
    claims: Omit<Receipt, 'signature' | 'timestamp'>,
    timestamp: string,
  ): Receipt => ({ ...claims, timestamp, signature: signature() });

  /** One inbound call: a peer's principal calling something this node serves. */
  const inbound = (correlationId: string): AuditEventInput[] => {
    const peer = pick(PEERS);
    const [resource, capabilities] = pickSkewed(LOCAL_RESOURCES);
    const capability = pickSkewed(capabilities);
    const principal = pickSkewed(peerPrincipals.get(peer.nodeId) as string[]);
    const draw = random();
    let outcome: AuditOutcome = 'success';
    let statusCode = 200;
    let errorCode: string | null = null;
    if (draw < 0.01) [outcome, statusCode, errorCode] = ['denied', 403, 'POLICY_DENIED'];
    else if (draw < 0.015) [outcome, statusCode, errorCode] = ['denied', 429, 'RATE_LIMITED'];
    else if (draw < 0.025) [outcome, statusCode, errorCode] = ['error', 502, 'BACKEND_ERROR'];
    else if (draw < 0.03) [outcome, statusCode, errorCode] = ['error', 400, 'INVALID_ARGUMENTS'];
    else if (draw < 0.035) [outcome, statusCode, errorCode] = ['timeout', 504, 'BACKEND_TIMEOUT'];
    const time = new Date(clock).toISOString();
    const requestSha256 = hex();
    const resultSha256 = outcome === 'success' ? hex() : null;
    return [
      {
        correlationId,
        time,
        direction: 'inbound',
        sourceNode: peer.nodeId,
        targetNode: local.nodeId,
        principal,
        resource,
        capability,
        outcome,
        statusCode,
        errorCode,
        durationUs: outcome === 'timeout' ? between(5_000_000, 30_000_000) : between(300, 250_000),
        requestSha256,
        requestSize: between(2, 4_000),
        resultSha256,
        resultSize: resultSha256 === null ? null : between(2, 40_000),
        receipt: receipt(
          {
            correlation_id: correlationId,
            source: spiffeId(peer.trustDomain, peer.nodeId),
            target: localSpiffe,
            principal,
            resource,
            capability,
            request_sha256: requestSha256,
            outcome,
            result_sha256: resultSha256,
          },
          time,
        ),
      },
    ];
  };

  /**
   * One outbound call, as the invoker records it: one event per attempt that reached a node,
   * all with the call's correlation ID. Most calls take one attempt; a few are retried or fail
   * over to another replica; a few are refused before any node is called (trust lapsed).
   */
  const outbound = (correlationId: string): AuditEventInput[] => {
    const remote = pickSkewed(REMOTE_RESOURCES);
    const capability = pickSkewed(remote.capabilities);
    const principal = pickSkewed(localPrincipals);
    const requestSha256 = hex();
    const requestSize = between(2, 4_000);
    const base = {
      correlationId,
      direction: 'outbound' as const,
      sourceNode: local.nodeId,
      principal,
      resource: remote.resource,
      capability,
      requestSha256,
      requestSize,
    };
    if (random() < 0.005) {
      return [
        {
          ...base,
          time: new Date(clock).toISOString(),
          targetNode: pick(remote.nodes),
          outcome: 'denied',
          statusCode: null,
          errorCode: 'TRUST_EXPIRED',
          durationUs: 0,
          resultSha256: null,
          resultSize: null,
          receipt: null,
        },
      ];
    }
    const draw = random();
    const attempts = draw < 0.96 ? 1 : draw < 0.99 ? 2 : 3;
    const events: AuditEventInput[] = [];
    let attemptClock = clock;
    let nodeIndex = Math.floor(random() * remote.nodes.length);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const targetNode = remote.nodes[nodeIndex % remote.nodes.length] as string;
      const peer = peerById.get(targetNode) as Peer;
      const time = new Date(attemptClock).toISOString();
      const last = attempt === attempts;
      let outcome: AuditOutcome = 'success';
      let statusCode: number | null = 200;
      let errorCode: string | null = null;
      let durationUs = between(2_000, 400_000);
      let answered = true;
      if (!last) {
        // A transient failure: an overloaded node, or no answer in time (no receipt then).
        if (random() < 0.6) [outcome, statusCode, errorCode] = ['error', 503, 'OVERLOADED'];
        else {
          [outcome, statusCode, errorCode, answered] = ['timeout', null, 'TIMEOUT', false];
          durationUs = between(5_000_000, 10_000_000);
        }
      } else {
        const final = random();
        if (final < 0.01) [outcome, statusCode, errorCode] = ['denied', 403, 'POLICY_DENIED'];
        else if (final < 0.02) [outcome, statusCode, errorCode] = ['error', 502, 'BACKEND_ERROR'];
      }
      const resultSha256 = outcome === 'success' ? hex() : null;
      events.push({
        ...base,
        time,
        targetNode,
        outcome,
        statusCode,
        errorCode,
        durationUs,
        resultSha256,
        resultSize: resultSha256 === null ? null : between(2, 40_000),
        receipt: answered
          ? receipt(
              {
                correlation_id: correlationId,
                source: localSpiffe,
                target: spiffeId(peer.trustDomain, peer.nodeId),
                principal,
                resource: remote.resource,
                capability,
                request_sha256: requestSha256,
                outcome,
                result_sha256: resultSha256,
              },
              time,
            )
          : null,
      });
      // Backoff, then the next attempt; a failed-over call goes to the next replica.
      attemptClock = Math.min(endMs, attemptClock + durationUs / 1000 + between(100, 2_000));
      nodeIndex++;
    }
    return events;
  };

  const store = openState(options.statePath, { create: false });
  let firstTime = '';
  let lastTime = '';
  try {
    // A larger page cache for the writer only (not stored in the file): index inserts at random
    // correlation IDs otherwise re-read pages from the OS cache all the time.
    store.db.pragma('cache_size = -1048576');
    let written = 0;
    while (written < options.events) {
      const batch: AuditEventInput[] = [];
      while (batch.length < options.batch && written + batch.length < options.events) {
        const correlationId = randomUUID();
        correlationIds++;
        const calls = random() < 0.55 ? inbound(correlationId) : outbound(correlationId);
        for (const event of calls.slice(0, options.events - written - batch.length)) {
          batch.push(event);
          directions[event.direction]++;
          outcomes[event.outcome]++;
          if (event.receipt !== null) withReceipt++;
        }
        clock = Math.min(endMs, clock + -Math.log(1 - random()) * meanGapMs);
      }
      store.write((db) => appendEvents(db, batch));
      if (firstTime === '') firstTime = (batch[0] as AuditEventInput).time;
      lastTime = (batch[batch.length - 1] as AuditEventInput).time;
      written += batch.length;
      options.onBatch?.(written);
    }
    // Leave one self-contained file behind: the WAL folded in and removed on close.
    store.db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    store.close();
  }
  return {
    events: options.events,
    correlationIds,
    firstTime,
    lastTime,
    outcomes,
    directions,
    withReceipt,
  };
}
