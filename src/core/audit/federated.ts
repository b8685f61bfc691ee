import type { KeyObject } from 'node:crypto';
import { newCorrelationId } from '../protocol/ids.js';
import { TrustError, messageOf } from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { PATHS } from '../protocol/constants.js';
import {
  AnswerTooLarge,
  NotSentError,
  PeerTransport,
  isPeerTimeout,
} from '../routing/peer-transport.js';
import { Deadline, DeadlineExceeded } from '../routing/retry.js';
import { isTarget, peerTarget, type CallTarget } from '../routing/target.js';
import { readErrorDocument } from '../routing/wire.js';
import type { StateStore } from '../state/database.js';
import { findPeer } from '../state/trust-repository.js';
import { trustMaterial } from '../trust/trust-material.js';
import { chainHash, type AuditEvent } from './events.js';
import { eventFromWire, normaliseInstant, queryEvents, type AuditFilter } from './query.js';
import { count } from '../plural.js';

export interface FederatedAuditResult {
  /** origin = node ID whose state file held it; local ones = own node ID */
  events: Array<AuditEvent & { origin: string }>;
  /**
   * Peers that failed, timed out or were untrusted. Each message is one sentence that names the
   * node itself, to be printed as it is: whoever shows it must not put `nodeId` before it too.
   */
  problems: Array<{ nodeId: string; code: string; message: string }>;
}

type Problem = FederatedAuditResult['problems'][number];
type OriginEvent = FederatedAuditResult['events'][number];

/**
 * `audit query --federated` (DESIGN §7): this node's matching events, plus those of every peer
 * named in them (as source or target), asked concurrently over mutual TLS under one deadline.
 * Each peer answers only with events in which this node took part. Events are merged newest
 * first, de-duplicated by origin and event ID, and the limit applies to the merged list. A peer
 * that cannot be asked, fails or answers badly becomes a problem entry; this never throws for it.
 */
export async function queryFederated(options: {
  store: StateStore;
  identity: NodeIdentity;
  privateKey: KeyObject;
  filter: AuditFilter;
  timeoutMs: number;
  now: () => Date;
}): Promise<FederatedAuditResult> {
  const { store, identity, filter } = options;
  const self = identity.nodeId;
  const local = store.read((db) => queryEvents(db, filter));
  const others = peersNamed(local, self);
  const events: OriginEvent[] = local.map((event) => ({ ...event, origin: self }));
  const problems: Problem[] = [];
  if (filter.limit === 0 || others.length === 0) return { events, problems };

  const targets: CallTarget[] = [];
  for (const nodeId of others) {
    const peer = store.read((db) => findPeer(db, nodeId));
    if (!peer) {
      problems.push({
        nodeId,
        code: 'NOT_TRUSTED',
        message: `${nodeId} is not a known peer of this node; it was not asked`,
      });
      continue;
    }
    const target = peerTarget(peer, options.now());
    if (isTarget(target)) targets.push(target);
    else
      problems.push({ nodeId, code: target.code, message: `${target.reason}; it was not asked` });
  }
  if (targets.length > 0) {
    const answers = await askPeers(targets, options);
    for (const answer of answers) {
      events.push(...answer.events);
      problems.push(...answer.problems);
    }
  }
  problems.sort((x, y) => compare(x.nodeId, y.nodeId) || compare(x.code, y.code));
  return { events: merge(events, filter.limit), problems };
}

/**
 * The other nodes named (as source or target) in the local events the query found. With a limit
 * those are the newest `limit` matches: each event a peer holds about a call with this node has
 * its twin here, at about the same time, so a peer named only in older events has nothing newer
 * to add. (Listing every node named in every match instead reads them all: seconds on a million.)
 */
function peersNamed(local: readonly AuditEvent[], self: string): string[] {
  const names = new Set<string>();
  for (const event of local) {
    names.add(event.sourceNode);
    names.add(event.targetNode);
  }
  names.delete(self);
  return [...names].sort();
}

interface PeerResult {
  events: OriginEvent[];
  problems: Problem[];
}

async function askPeers(
  targets: readonly CallTarget[],
  options: Parameters<typeof queryFederated>[0],
): Promise<PeerResult[]> {
  // zod only now: a query that stays local never pays for loading it (DESIGN §1).
  const { AuditQueryResponse, AUDIT_QUERY_MAX_LIMIT } = await import('../protocol/schemas.js');
  const { filter, identity } = options;
  const limit = Math.min(filter.limit ?? AUDIT_QUERY_MAX_LIMIT, AUDIT_QUERY_MAX_LIMIT);
  const body = JSON.stringify(wireFilter(filter, limit));
  const correlationId = newCorrelationId();
  const deadline = new Deadline(options.timeoutMs);
  const transport = new PeerTransport({
    identity,
    privateKey: options.privateKey,
    material: trustMaterial(options.store),
    now: options.now,
  });

  const ask = async (target: CallTarget): Promise<PeerResult> => {
    const nodeId = target.nodeId;
    const fail = (code: string, message: string): PeerResult => ({
      events: [],
      problems: [{ nodeId, code, message }],
    });
    let answer;
    try {
      // The deadline's signal ends the call at any stage, the TLS handshake included.
      answer = await transport.request(target, {
        method: 'POST',
        path: PATHS.auditQuery,
        correlationId,
        body,
        signal: deadline.signal,
        timeoutMs: Math.max(1, deadline.remaining()),
      });
    } catch (error) {
      const failure = describeFailure(error, target, deadline);
      return fail(failure.code, failure.message);
    }
    if (answer.status !== 200) {
      const document = readErrorDocument(answer.body);
      const code = document?.code ?? `HTTP_${answer.status}`;
      return fail(
        code,
        `${nodeId} answered ${answer.status} ${code}: ${document?.message ?? 'no details'}`,
      );
    }
    const parsed = AuditQueryResponse.safeParse(answer.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
      return fail(
        'MALFORMED_ANSWER',
        `${nodeId} answered with an invalid audit query response${where}: ${issue?.message ?? 'malformed'}`,
      );
    }
    if (parsed.data.node_id !== nodeId) {
      return fail(
        'WRONG_NODE',
        `${nodeId} (${target.endpoint}) answered as ${parsed.data.node_id}`,
      );
    }
    const result: PeerResult = { events: [], problems: [] };
    let foreign = 0;
    let tampered = 0;
    for (const wire of parsed.data.events) {
      const event = eventFromWire(wire);
      // What this node may see, and what it asked for; anything else the peer had no business
      // sending.
      if (!matches(event, { ...filter, participant: identity.nodeId })) {
        foreign++;
        continue;
      }
      if (chainHash(event.prevHash, event) !== event.hash) {
        tampered++;
        continue;
      }
      if (filter.participant !== undefined && !matches(event, { participant: filter.participant }))
        continue;
      result.events.push({ ...event, origin: nodeId });
    }
    if (foreign > 0) {
      result.problems.push({
        nodeId,
        code: 'UNEXPECTED_EVENTS',
        message: `${nodeId} answered ${count(foreign, 'event')} that ${foreign === 1 ? 'does' : 'do'} not match the query; ${foreign === 1 ? 'it was' : 'they were'} left out`,
      });
    }
    if (tampered > 0) {
      result.problems.push({
        nodeId,
        code: 'HASH_MISMATCH',
        message: `${count(tampered, 'event')} from ${nodeId} ${tampered === 1 ? 'does not match its' : 'do not match their'} own hash; ${tampered === 1 ? 'it was' : 'they were'} left out`,
      });
    }
    if (parsed.data.truncated && (filter.limit === undefined || filter.limit > limit)) {
      result.problems.push({
        nodeId,
        code: 'TRUNCATED',
        message: `${nodeId} holds more matching events than it answers at once (${limit}); narrow the query`,
      });
    }
    return result;
  };

  try {
    return await Promise.all(targets.map(ask));
  } finally {
    deadline.dispose();
    await transport.close();
  }
}

/** The filter as the audit/query body names it (docs/protocol.md); `participant` is the peer's. */
function wireFilter(filter: AuditFilter, limit: number): Record<string, string | number> {
  const body: Record<string, string | number> = {};
  if (filter.correlationId !== undefined) body.correlation_id = filter.correlationId;
  if (filter.principal !== undefined) body.principal = filter.principal;
  if (filter.resource !== undefined) body.resource = filter.resource;
  if (filter.capability !== undefined) body.capability = filter.capability;
  if (filter.node !== undefined) body.node = filter.node;
  if (filter.outcome !== undefined) body.outcome = filter.outcome;
  if (filter.since !== undefined) body.since = normaliseInstant(filter.since, 'since');
  if (filter.until !== undefined) body.until = normaliseInstant(filter.until, 'until');
  body.limit = limit;
  return body;
}

/** The filter of queryEvents, in memory, for events a peer sent (limit aside). */
function matches(event: AuditEvent, filter: AuditFilter): boolean {
  const involves = (node: string) => event.sourceNode === node || event.targetNode === node;
  return (
    (filter.correlationId === undefined || event.correlationId === filter.correlationId) &&
    (filter.principal === undefined || event.principal === filter.principal) &&
    (filter.resource === undefined || event.resource === filter.resource) &&
    (filter.capability === undefined || event.capability === filter.capability) &&
    (filter.outcome === undefined || event.outcome === filter.outcome) &&
    (filter.node === undefined || involves(filter.node)) &&
    (filter.participant === undefined || involves(filter.participant)) &&
    (filter.since === undefined || event.time >= normaliseInstant(filter.since, 'since')) &&
    (filter.until === undefined || event.time < normaliseInstant(filter.until, 'until'))
  );
}

/** Newest first; one copy of each event of each origin; then the limit. */
function merge(events: OriginEvent[], limit: number | undefined): OriginEvent[] {
  const seen = new Set<string>();
  const unique = events.filter((event) => {
    const key = `${event.origin}\u0000${event.eventId}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  unique.sort((x, y) => compare(y.time, x.time) || compare(x.origin, y.origin) || y.seq - x.seq);
  return limit === undefined ? unique : unique.slice(0, limit);
}

function compare(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

function describeFailure(
  error: unknown,
  target: CallTarget,
  deadline: Deadline,
): { code: string; message: string } {
  const where = `${target.nodeId} (${target.endpoint})`;
  if (error instanceof NotSentError) {
    const reason = error.reason;
    // The server's chain or pin was refused: nothing was sent.
    if (reason instanceof TrustError) return { code: reason.code, message: reason.message };
    const errnoCode = (reason as NodeJS.ErrnoException).code;
    const errno = typeof errnoCode === 'string' ? errnoCode : messageOf(reason);
    return { code: 'UNREACHABLE', message: `cannot reach ${where}: ${errno}` };
  }
  if (error instanceof AnswerTooLarge) {
    return { code: 'ANSWER_TOO_LARGE', message: `${where} answered with ${error.message}` };
  }
  if (deadline.signal.aborted || error instanceof DeadlineExceeded || isPeerTimeout(error)) {
    return { code: 'TIMEOUT', message: `${where} did not answer within ${deadline.totalMs} ms` };
  }
  return {
    code: 'CONNECTION_LOST',
    message: `the connection to ${where} broke: ${messageOf(error)}`,
  };
}
