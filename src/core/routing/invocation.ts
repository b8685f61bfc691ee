import { appendEvents, type AuditEventInput } from '../audit/events.js';
import {
  OperationError,
  SarkError,
  TrustError,
  UnavailableError,
  type ErrorKind,
} from '../errors.js';
import { findKnownNode } from '../discovery/node-view.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { unknownNodeError } from '../identity/spiffe.js';
import type { InvokeResponse } from '../protocol/schemas.js';
import type { StateStore } from '../state/database.js';
import { runningDaemonEndpoint } from '../state/daemon-claim.js';
import { findPeer } from '../state/trust-repository.js';
import { cachedResource, forgetListing, localResource } from './catalogs.js';
import { circuitRefusal, type CircuitBreakers } from './circuit-breaker.js';
import { argumentsDigest, attemptInvoke, type AttemptOutcome, type InvokeCall } from './invoker.js';
import type { PeerTransport } from './peer-transport.js';
import { backoffDelay, type BackoffPolicy, type Deadline, type Sleep } from './retry.js';
import { findRoute, noRouteError, type RouteResult } from './router.js';
import {
  isTarget,
  localTarget,
  peerTarget,
  type CallTarget,
  type TargetProblem,
} from './target.js';

export interface InvocationOptions {
  store: StateStore;
  identity: NodeIdentity;
  transport: PeerTransport;
  breakers: CircuitBreakers;
  deadline: Deadline;
  backoff: BackoffPolicy;
  random: () => number;
  sleep: Sleep;
  now: () => Date;
  /** Call this node and no other, skipping routing. */
  node?: string | undefined;
  /** Told about each attempt and wait, for --verbose. */
  onEvent?: (event: InvocationEvent) => void;
}

export type InvocationEvent =
  | { type: 'route'; route: RouteResult }
  | { type: 'attempt'; nodeId: string; attempt: number; outcome: AttemptOutcome }
  | { type: 'circuit-open'; nodeId: string; retryAt: string }
  | { type: 'wait'; nodeId: string; ms: number };

export interface AttemptSummary {
  nodeId: string;
  attempt: number;
  status: number | null;
  errorCode: string | null;
  durationMs: number;
}

export interface InvocationResult {
  correlationId: string;
  nodeId: string;
  response: InvokeResponse;
  attempts: AttemptSummary[];
}

/**
 * A whole `invoke`: pick the candidates (the named node, or the route), then for each in rank
 * order call it through its circuit, retrying with full-jitter backoff where retrying cannot
 * run the capability twice (it did not run, or it is idempotent), and fail over to the next
 * candidate on the same condition. Every attempt that reached a node, and every refusal to call
 * one, is appended to the audit trail; arguments and results only as SHA-256 and size.
 */
export async function invoke(
  call: InvokeCall,
  options: InvocationOptions,
): Promise<InvocationResult> {
  const attempts: AttemptSummary[] = [];
  // Every call that reaches a node is recorded here after it: a state file that cannot take the
  // record (read-only, locked beyond the busy timeout) is refused before any node runs anything.
  options.store.assertWritable();
  const candidates = await candidatesFor(call, options);
  const failures: SarkError[] = [];

  for (const { target, idempotent } of candidates) {
    const outcome = await tryNode(call, target, idempotent, options, attempts);
    if ('response' in outcome) {
      return {
        correlationId: call.correlationId,
        nodeId: target.nodeId,
        response: outcome.response,
        attempts,
      };
    }
    failures.push(outcome.error);
    if (!outcome.failover) throw outcome.error;
    if (options.deadline.expired) break;
  }
  throw combined(call, failures);
}

interface Candidate {
  target: CallTarget;
  /** The capability's idempotent flag from the node's catalog; false when unknown. */
  idempotent: boolean;
}

async function candidatesFor(call: InvokeCall, options: InvocationOptions): Promise<Candidate[]> {
  const { store, identity } = options;
  if (options.node !== undefined) {
    const nodeId = options.node;
    if (nodeId === identity.nodeId) {
      const target = localTarget(identity, () =>
        store.read((db) => runningDaemonEndpoint(db, store.path)),
      );
      if (!isTarget(target)) {
        throw new UnavailableError('NO_ENDPOINT', target.reason, {
          hint: 'record one with `sark-fed init --endpoint`, then run `sark-fed serve`',
        });
      }
      const served = store.read((db) => localResource(db, call.resource));
      return [{ target, idempotent: isIdempotent(served, call.capability) }];
    }
    const { peer, known } = store.read((db) => ({
      peer: findPeer(db, nodeId),
      known: findKnownNode(db, nodeId, options.now()) !== undefined,
    }));
    if (!peer && !known) {
      throw unknownNodeError(nodeId, 'see `sark-fed nodes list`');
    }
    // A node known only from discovery or `nodes add` has no trust record: refused as untrusted,
    // as route shows it, and audited like every other refusal to call.
    const target: CallTarget | TargetProblem = peer
      ? peerTarget(peer, options.now())
      : { code: 'NOT_TRUSTED', reason: `${nodeId} is not trusted by this node` };
    if (!isTarget(target)) {
      if (target.code === 'NO_ENDPOINT') {
        throw new UnavailableError('NO_ENDPOINT', target.reason, {
          hint: `record one: sark-fed nodes add ${nodeId} --endpoint https://host:port`,
        });
      }
      // Refused here, before any connection: the refusal is part of the audit trail too.
      audit(options, refusalEvent(call, options, nodeId, target.code));
      throw new TrustError(target.code, `refusing to call ${nodeId}: ${target.reason}`, {
        hint:
          target.code === 'REVOKED'
            ? `establish trust again if this was a mistake: sark-fed trust establish ${nodeId}`
            : target.code === 'PENDING_APPROVAL'
              ? `approve it first: sark-fed trust approve ${nodeId}`
              : `establish trust first: sark-fed trust establish ${nodeId}`,
      });
    }
    const cached = store.read((db) => cachedResource(db, nodeId, call.resource));
    return [{ target, idempotent: isIdempotent(cached, call.capability) }];
  }

  const route = await findRoute({
    store,
    identity,
    transport: options.transport,
    breakers: options.breakers,
    deadline: options.deadline,
    now: options.now,
    resource: call.resource,
    capability: call.capability,
  });
  options.onEvent?.({ type: 'route', route });
  if (!route.chosen) throw noRouteError(route);
  return route.candidates
    .filter((candidate) => candidate.rank !== null && candidate.target !== null)
    .map((candidate) => ({
      target: candidate.target as CallTarget,
      idempotent: candidate.idempotent === true,
    }));
}

function isIdempotent(
  resource: { capabilities: Array<{ id: string; idempotent: boolean }> } | undefined,
  capability: string,
): boolean {
  return resource?.capabilities.find((item) => item.id === capability)?.idempotent === true;
}

type NodeOutcome = { response: InvokeResponse } | { error: SarkError; failover: boolean };

/** Up to backoff.attempts calls to one node; retried only where that cannot run it twice. */
async function tryNode(
  call: InvokeCall,
  target: CallTarget,
  idempotent: boolean,
  options: InvocationOptions,
  attempts: AttemptSummary[],
): Promise<NodeOutcome> {
  const { breakers, deadline } = options;
  let last: { error: SarkError; failover: boolean } | undefined;
  for (let attempt = 1; attempt <= options.backoff.attempts; attempt++) {
    if (deadline.expired) return last ?? timedOut(target);
    const admission = breakers.admit(target.nodeId);
    if (!admission.admitted) {
      options.onEvent?.({
        type: 'circuit-open',
        nodeId: target.nodeId,
        retryAt: admission.retryAt,
      });
      // A failed trial re-opened the circuit: what failed matters more than the circuit.
      if (last) return last;
      // Not a failure of the node: the call was never made. Another node may take it.
      return {
        error: new UnavailableError(
          'CIRCUIT_OPEN',
          admission.state === 'open'
            ? `the circuit to ${target.nodeId} is open; next trial at ${admission.retryAt}`
            : `the circuit to ${target.nodeId} is ${circuitRefusal(admission.state, admission.retryAt)}`,
          {
            hint:
              admission.state === 'open'
                ? `wait, or close it if the node is known to be back: sark-fed circuit reset ${target.nodeId}`
                : `try again in a moment (see sark-fed circuit list), or close it if the node is known to be back: sark-fed circuit reset ${target.nodeId}`,
          },
        ),
        failover: true,
      };
    }
    // A trial must end before its claim lapses, or a second process could start another.
    const timeoutMs = Math.min(
      deadline.remaining(),
      admission.trial === null ? Infinity : breakers.trialDeadline(),
    );
    const signal = admission.trial === null ? deadline.signal : deadline.within(timeoutMs);
    const outcome = await attemptInvoke(
      options.transport,
      options.identity,
      target,
      call,
      signal,
      timeoutMs,
      options.now,
    );
    try {
      if (outcome.circuitFailure !== null) {
        breakers.recordFailure(target.nodeId, outcome.circuitFailure, admission.trial);
      } else {
        breakers.recordSuccess(target.nodeId, admission.trial);
      }
      if (outcome.reached) audit(options, attemptEvent(call, options, outcome));
    } catch (error) {
      if (!outcome.reached || !(error instanceof SarkError)) throw error;
      throw notRecorded(outcome, error);
    }
    attempts.push({
      nodeId: target.nodeId,
      attempt,
      status: outcome.status,
      errorCode: outcome.errorCode,
      durationMs: Math.round(outcome.durationUs / 100) / 10,
    });
    options.onEvent?.({ type: 'attempt', nodeId: target.nodeId, attempt, outcome });
    if (outcome.error === null && outcome.response) return { response: outcome.response };
    const error = outcome.error as SarkError;

    const repeatable = !outcome.mayHaveExecuted || idempotent;
    if (error.code === 'UNKNOWN_RESOURCE' || error.code === 'UNKNOWN_CAPABILITY') {
      // The cached catalog said otherwise: ask the node again next time.
      options.store.write((db) => forgetListing(db, target.nodeId));
    }
    last = { error, failover: outcome.failover && repeatable };
    if (!outcome.transient || !repeatable || attempt === options.backoff.attempts) return last;

    let wait = backoffDelay(attempt, options.backoff, options.random);
    if (outcome.retryAfterMs !== null) {
      // A peer asking for more patience than the backoff cap is not retried within this call.
      if (outcome.retryAfterMs > options.backoff.capMs) return last;
      wait = Math.max(wait, outcome.retryAfterMs);
    }
    if (wait >= deadline.remaining()) return last;
    options.onEvent?.({ type: 'wait', nodeId: target.nodeId, ms: wait });
    try {
      await options.sleep(wait, deadline.signal);
    } catch {
      return last;
    }
  }
  return last ?? timedOut(target);
}

function timedOut(target: CallTarget): { error: SarkError; failover: boolean } {
  return {
    error: new UnavailableError(
      'TIMEOUT',
      `the deadline ran out before ${target.nodeId} could be called`,
      { hint: 'raise --timeout' },
    ),
    failover: false,
  };
}

/**
 * When every candidate failed in a way that let the next one be tried: one failure is reported
 * as it is; several as one error listing them, of their common kind, or "unavailable" when they
 * differ.
 */
function combined(call: InvokeCall, failures: SarkError[]): SarkError {
  if (failures.length === 1) return failures[0] as SarkError;
  if (failures.length === 0) {
    return new UnavailableError('TIMEOUT', 'the deadline ran out before any node could be called', {
      hint: 'raise --timeout',
    });
  }
  const kinds = new Set(failures.map((failure) => failure.kind));
  const kind: ErrorKind = kinds.size === 1 ? (failures[0] as SarkError).kind : 'unavailable';
  const code = kinds.size === 1 ? (failures[0] as SarkError).code : 'ALL_CANDIDATES_FAILED';
  return new SarkError(
    kind,
    code,
    `no candidate could serve ${call.resource}/${call.capability}: ${failures.map((failure) => failure.message).join('; ')}`,
    {
      hint: `see \`sark-fed route ${call.resource} --capability ${call.capability}\` and \`sark-fed circuit list\``,
    },
  );
}

function attemptEvent(
  call: InvokeCall,
  options: InvocationOptions,
  outcome: AttemptOutcome,
): AuditEventInput {
  const request = argumentsDigest(call.arguments);
  return {
    correlationId: call.correlationId,
    time: outcome.startedAt,
    direction: 'outbound',
    sourceNode: options.identity.nodeId,
    targetNode: outcome.target.nodeId,
    principal: call.principal,
    resource: call.resource,
    capability: call.capability,
    outcome: outcome.auditOutcome,
    statusCode: outcome.status,
    errorCode: outcome.errorCode,
    durationUs: outcome.durationUs,
    requestSha256: request.sha256,
    requestSize: request.size,
    resultSha256: outcome.resultSha256,
    resultSize: outcome.resultSize,
    receipt: outcome.receipt,
  };
}

function refusalEvent(
  call: InvokeCall,
  options: InvocationOptions,
  nodeId: string,
  code: string,
): AuditEventInput {
  const request = argumentsDigest(call.arguments);
  return {
    correlationId: call.correlationId,
    time: options.now().toISOString(),
    direction: 'outbound',
    sourceNode: options.identity.nodeId,
    targetNode: nodeId,
    principal: call.principal,
    resource: call.resource,
    capability: call.capability,
    outcome: 'denied',
    statusCode: null,
    errorCode: code,
    durationUs: 0,
    requestSha256: request.sha256,
    requestSize: request.size,
    resultSha256: null,
    resultSize: null,
    receipt: null,
  };
}

/**
 * The call reached the node, which may have run it, and the state file then refused its record
 * (a full disk, a lock held too long): the operator must not take the state file's own error
 * ("retry") for the whole story and run the call a second time.
 */
function notRecorded(outcome: AttemptOutcome, error: SarkError): OperationError {
  const { nodeId } = outcome.target;
  return new OperationError(
    'AUDIT_NOT_RECORDED',
    `the call reached ${nodeId} (${outcome.auditOutcome}) but this node could not record it: ${error.message}`,
    {
      cause: error,
      hint: `it may have run there: find it in ${nodeId}'s audit trail by its correlation ID before calling again; ${error.hint ?? 'then fix the state file'}`,
    },
  );
}

function audit(options: InvocationOptions, event: AuditEventInput): void {
  options.store.write((db) => appendEvents(db, [event]));
}
