import { newCorrelationId } from '../protocol/ids.js';
import { performance } from 'node:perf_hooks';
import { NotFoundError, TrustError, UnavailableError, messageOf } from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { PATHS } from '../protocol/constants.js';
import type { CatalogResource } from '../protocol/schemas.js';
import type { StateStore } from '../state/database.js';
import { listHealth, type HealthStatus } from '../state/discovery-repository.js';
import { incrementCounter } from '../state/metric-counters.js';
import { listPeers, type TrustLevel } from '../state/trust-repository.js';
import { listKnownNodes } from '../discovery/node-view.js';
import { daemonGone, runningDaemonEndpoint } from '../state/daemon-claim.js';
import { CATALOG_TTL_MS, cachedListing, localResource, saveListing } from './catalogs.js';
import {
  circuitRefusal,
  findCircuit,
  type CircuitBreakers,
  type CircuitState,
} from './circuit-breaker.js';
import { NotSentError, isPeerTimeout, type PeerTransport } from './peer-transport.js';
import type { Deadline } from './retry.js';
import { isTarget, localTarget, peerTarget, type CallTarget } from './target.js';
import { readResourceListing } from './wire.js';

export type Health = HealthStatus | 'unknown';

export type SkipCode =
  | 'untrusted'
  | 'no-endpoint'
  | 'circuit-open'
  | 'unreachable'
  | 'refused'
  | 'no-resource'
  | 'no-capability';

/** A node considered for a route: usable (ranked), or skipped with the reason. */
export interface RouteCandidate {
  nodeId: string;
  local: boolean;
  trust: TrustLevel | 'self';
  endpoint: string | null;
  health: Health;
  latencyMs: number | null;
  circuit: CircuitState;
  /** When an open circuit lets its next trial through. */
  circuitRetryAt: string | null;
  /** Where its catalog came from this time; null when it was not consulted. */
  catalog: 'local' | 'cache' | 'fetched' | null;
  /** The capability's idempotent flag (when a capability was asked for and is offered). */
  idempotent: boolean | null;
  /** 1 for the chosen node, 2 for the first fallback...; null when skipped. */
  rank: number | null;
  skipped: { code: SkipCode; reason: string } | null;
  target: CallTarget | null;
}

export interface RouteResult {
  resource: string;
  capability: string | null;
  chosen: RouteCandidate | null;
  /** Usable candidates in rank order, then skipped nodes by node ID. */
  candidates: RouteCandidate[];
}

export interface RouteOptions {
  store: StateStore;
  identity: NodeIdentity;
  transport: PeerTransport;
  breakers: CircuitBreakers;
  deadline: Deadline;
  now: () => Date;
  resource: string;
  capability?: string | undefined;
  /** Ask every peer again, whatever the cache holds. */
  refresh?: boolean;
  /** Bound on the concurrent catalog queries (they also fit in the deadline). */
  catalogTimeoutMs?: number;
  catalogTtlMs?: number;
}

export const CATALOG_QUERY_TIMEOUT_MS = 2_000;

const HEALTH_ORDER: Record<Health, number> = { online: 0, degraded: 1, unknown: 2, offline: 3 };

/**
 * Route ranking (DESIGN §6): this node first, then health (online, degraded, never checked,
 * offline: a node never checked may well be fine, one that failed its last check probably is
 * not), then measured latency (unknown last), then node ID so that the order is stable.
 */
export function compareCandidates(a: RouteCandidate, b: RouteCandidate): number {
  if (a.local !== b.local) return a.local ? -1 : 1;
  const health = HEALTH_ORDER[a.health] - HEALTH_ORDER[b.health];
  if (health !== 0) return health;
  if (a.latencyMs !== b.latencyMs) {
    if (a.latencyMs === null) return 1;
    if (b.latencyMs === null) return -1;
    return a.latencyMs - b.latencyMs;
  }
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/**
 * Every node that could serve resource (and capability), ranked, and every other known node with
 * the reason it cannot. Catalogs come from the cache, or from concurrent `resources` queries
 * (each through the node's circuit) under a short deadline; what was fetched is cached.
 */
export async function findRoute(options: RouteOptions): Promise<RouteResult> {
  const now = options.now();
  const { identity, store, breakers } = options;
  const { peers, known, health } = store.read((db) => ({
    peers: listPeers(db),
    known: listKnownNodes(db, now),
    health: new Map(listHealth(db).map((item) => [item.nodeId, item])),
  }));
  const circuitOf = (nodeId: string) => {
    const record = store.read((db) => findCircuit(db, nodeId));
    return {
      record,
      state: record?.state ?? ('closed' as CircuitState),
      retryAt: record ? breakers.retryAt(record) : null,
    };
  };
  const base = (nodeId: string, local: boolean, trust: RouteCandidate['trust']) => {
    const circuit = circuitOf(nodeId);
    const checked = health.get(nodeId);
    return {
      candidate: {
        nodeId,
        local,
        trust,
        endpoint: null,
        health: checked?.status ?? 'unknown',
        latencyMs: checked?.latencyMs ?? null,
        circuit: circuit.state,
        circuitRetryAt: circuit.retryAt,
        catalog: null,
        idempotent: null,
        rank: null,
        skipped: null,
        target: null,
      } as RouteCandidate,
      refusing: breakers.refuses(circuit.record),
    };
  };

  const candidates: RouteCandidate[] = [];
  const toFetch: RouteCandidate[] = [];

  // This node, through its own daemon, when that daemon serves the resource.
  {
    const { candidate, refusing } = base(identity.nodeId, true, 'self');
    const target = localTarget(identity, () =>
      store.read((db) => runningDaemonEndpoint(db, store.path)),
    );
    candidate.endpoint = isTarget(target) ? target.endpoint : null;
    candidate.catalog = 'local';
    const served = store.read((db) => localResource(db, options.resource));
    if (!served) {
      candidate.skipped = {
        code: 'no-resource',
        reason: `this node does not serve ${options.resource}`,
      };
    } else {
      offers(candidate, served, options);
      if (!candidate.skipped && !isTarget(target)) {
        candidate.skipped = { code: 'no-endpoint', reason: target.reason };
      } else if (!candidate.skipped && isTarget(target)) {
        candidate.target = target;
        // The local daemon has a circuit like any peer: an open one is skipped here as it would
        // be for a peer. A daemon that was killed left its catalog in the state file: skipped
        // too, rather than chosen until five failed calls open its circuit.
        if (refusing) candidate.skipped = circuitOpen(candidate);
        else if (store.read((db) => daemonGone(db, store.path))) {
          candidate.skipped = {
            code: 'unreachable',
            reason: "this node's daemon is not running (it stopped without a clean shutdown)",
          };
        }
      }
    }
    candidates.push(candidate);
  }

  const peersById = new Map(peers.map((peer) => [peer.nodeId, peer]));
  for (const node of known) {
    if (node.nodeId === identity.nodeId) continue;
    const peer = peersById.get(node.nodeId);
    const { candidate, refusing } = base(node.nodeId, false, node.trust);
    candidate.endpoint = node.endpoint;
    candidates.push(candidate);
    const target = peer ? peerTarget(peer, now) : undefined;
    if (!target || !isTarget(target)) {
      candidate.skipped = {
        code: target?.code === 'NO_ENDPOINT' ? 'no-endpoint' : 'untrusted',
        reason: target?.reason ?? `${node.nodeId} is not trusted by this node`,
      };
      continue;
    }
    candidate.target = target;
    if (refusing) {
      candidate.skipped = circuitOpen(candidate);
      continue;
    }
    const cached = options.refresh
      ? undefined
      : store.read((db) => cachedListing(db, node.nodeId, now));
    if (cached) {
      candidate.catalog = 'cache';
      candidate.latencyMs ??= cached.latencyMs;
      judge(candidate, cached.resources.get(options.resource), options);
    } else {
      toFetch.push(candidate);
    }
  }

  await Promise.all(toFetch.map((candidate) => fetchInto(candidate, options)));

  const usable = candidates.filter((candidate) => !candidate.skipped).sort(compareCandidates);
  usable.forEach((candidate, index) => (candidate.rank = index + 1));
  const skipped = candidates
    .filter((candidate) => candidate.skipped)
    .sort((a, b) => (a.local !== b.local ? (a.local ? -1 : 1) : a.nodeId.localeCompare(b.nodeId)));
  const result: RouteResult = {
    resource: options.resource,
    capability: options.capability ?? null,
    chosen: usable[0] ?? null,
    candidates: [...usable, ...skipped],
  };
  // For the daemon's federation_route_lookups_total (src/node/metrics.ts): this process ends soon.
  const outcome = result.chosen
    ? 'success'
    : noRouteError(result).kind === 'not-found'
      ? 'not_found'
      : 'no_route';
  store.write((db) => incrementCounter(db, 'federation_route_lookups_total', { outcome }));
  return result;
}

function circuitOpen(candidate: RouteCandidate): NonNullable<RouteCandidate['skipped']> {
  return {
    code: 'circuit-open',
    reason: `its circuit is ${circuitRefusal(
      candidate.circuit === 'half_open' ? 'half_open' : 'open',
      candidate.circuitRetryAt,
    )}`,
  };
}

function judge(
  candidate: RouteCandidate,
  resource: CatalogResource | undefined,
  options: RouteOptions,
): void {
  if (!resource) {
    candidate.skipped = {
      code: 'no-resource',
      reason: `it offers no resource ${options.resource} to this node`,
    };
    return;
  }
  offers(candidate, resource, options);
}

function offers(candidate: RouteCandidate, resource: CatalogResource, options: RouteOptions): void {
  if (options.capability === undefined) return;
  const capability = resource.capabilities.find((item) => item.id === options.capability);
  if (!capability) {
    candidate.skipped = {
      code: 'no-capability',
      reason: `its ${options.resource} has no capability ${options.capability}`,
    };
    return;
  }
  candidate.idempotent = capability.idempotent;
}

/** Asks one peer for its catalog through its circuit, caches the answer, and judges it. */
async function fetchInto(candidate: RouteCandidate, options: RouteOptions): Promise<void> {
  const target = candidate.target as CallTarget;
  if (options.deadline.expired) {
    candidate.skipped = { code: 'unreachable', reason: 'no time was left to ask it' };
    return;
  }
  const admission = options.breakers.admit(target.nodeId);
  if (!admission.admitted) {
    candidate.skipped = {
      code: 'circuit-open',
      reason: `its circuit is ${circuitRefusal(admission.state, admission.retryAt)}`,
    };
    return;
  }
  const timeoutMs = Math.min(
    options.catalogTimeoutMs ?? CATALOG_QUERY_TIMEOUT_MS,
    options.deadline.remaining(),
    admission.trial === null ? Infinity : options.breakers.trialDeadline(),
  );
  const started = performance.now();
  const outcome = await fetchCatalog(options.transport, target, timeoutMs, options.deadline);
  if (outcome.circuitFailure !== null) {
    options.breakers.recordFailure(target.nodeId, outcome.circuitFailure, admission.trial);
  } else {
    options.breakers.recordSuccess(target.nodeId, admission.trial);
  }
  if ('skip' in outcome) {
    candidate.skipped = outcome.skip;
    return;
  }
  const fetchMs = Math.round((performance.now() - started) * 10) / 10;
  candidate.latencyMs ??= fetchMs;
  candidate.catalog = 'fetched';
  options.store.write((db) =>
    saveListing(db, target.nodeId, outcome.resources, options.now(), options.catalogTtlMs, fetchMs),
  );
  judge(
    candidate,
    outcome.resources.find((resource) => resource.id === options.resource),
    options,
  );
}

type CatalogOutcome =
  | { resources: CatalogResource[]; circuitFailure: null }
  | { skip: { code: SkipCode; reason: string }; circuitFailure: string | null };

async function fetchCatalog(
  transport: PeerTransport,
  target: CallTarget,
  timeoutMs: number,
  deadline: Deadline,
): Promise<CatalogOutcome> {
  try {
    const answer = await transport.request(target, {
      method: 'GET',
      path: PATHS.resources,
      correlationId: newCorrelationId(),
      signal: deadline.within(timeoutMs),
      timeoutMs,
    });
    if (answer.status === 401 || answer.status === 403) {
      const code = (answer.body as { error?: { code?: string } } | undefined)?.error?.code;
      return {
        skip: { code: 'refused', reason: `it refuses this node (${code ?? answer.status})` },
        circuitFailure: null,
      };
    }
    if (answer.status !== 200) {
      return {
        skip: { code: 'unreachable', reason: `its catalog query answered ${answer.status}` },
        circuitFailure: answer.status >= 500 ? `HTTP ${answer.status}` : null,
      };
    }
    const listing = readResourceListing(answer.body);
    if (!listing || listing.nodeId !== target.nodeId) {
      return {
        skip: { code: 'unreachable', reason: 'it answered with a malformed catalog' },
        circuitFailure: null,
      };
    }
    return { resources: listing.resources, circuitFailure: null };
  } catch (error) {
    if (error instanceof NotSentError && error.reason instanceof TrustError) {
      return {
        skip: { code: 'untrusted', reason: error.reason.message },
        circuitFailure: error.reason.code,
      };
    }
    const reason =
      error instanceof NotSentError
        ? `${(error.reason as { code?: string }).code ?? messageOf(error.reason)}`
        : isTimeout(error)
          ? `no catalog within ${timeoutMs} ms`
          : messageOf(error);
    return {
      skip: { code: 'unreachable', reason: `unreachable (${reason})` },
      circuitFailure: isTimeout(error) ? 'TIMEOUT' : reason,
    };
  }
}

function isTimeout(error: unknown): boolean {
  return isPeerTimeout(error);
}

/**
 * The error a route without any usable candidate stands for: a trust refusal (exit 3) when every
 * node that could be asked refuses this node; not found (exit 4) when every node that could be
 * asked answered that it does not offer the resource or capability; unavailable (exit 5) when
 * some node that might offer it could not be asked.
 */
export function noRouteError(
  result: RouteResult,
  /** `route` has just printed every candidate: its hint does not send the operator there. */
  command: 'route' | 'invoke' = 'invoke',
): NotFoundError | UnavailableError | TrustError {
  const what =
    result.capability === null ? result.resource : `${result.resource}/${result.capability}`;
  const trusted = result.candidates.filter((candidate) => candidate.skipped?.code !== 'untrusted');
  const answered = trusted.filter(
    (candidate) =>
      candidate.skipped?.code === 'no-resource' || candidate.skipped?.code === 'no-capability',
  );
  const peersAsked = answered.some((candidate) => !candidate.local);
  // Every node that could serve it refuses this node (pending its approval, revoked it, another
  // pin): a trust problem to fix on their side or in this node's trust (exit 3), as `--node`
  // gets for the same refusal, not a node out of reach (exit 5).
  const refusing = trusted.filter((candidate) => candidate.skipped?.code === 'refused');
  const mightServe = trusted.filter(
    (candidate) =>
      !(
        candidate.local &&
        (candidate.skipped?.code === 'no-resource' || candidate.skipped?.code === 'no-capability')
      ),
  );
  if (refusing.length > 0 && refusing.length === mightServe.length) {
    return new TrustError(
      'REFUSED_BY_PEERS',
      `no route to ${what}: ${refusing.map((candidate) => `${candidate.nodeId} ${candidate.skipped?.reason.replace(/^it /, '')}`).join('; ')}`,
      {
        hint:
          refusing.length === 1
            ? `ask the operator of ${refusing[0]?.nodeId} to accept this node (\`sark-fed trust approve\` if it is pending there), or establish trust again: sark-fed trust establish ${refusing[0]?.nodeId}`
            : 'ask their operators to accept this node (`sark-fed trust approve` where it is pending), or establish trust again',
      },
    );
  }
  if (answered.length === trusted.length && peersAsked) {
    const capabilityMissing = answered.some(
      (candidate) => candidate.skipped?.code === 'no-capability',
    );
    // A peer that restarted with new resources, or whose policy now lets this node in, is not
    // asked again until its cached catalog expires: say so, with the way to ask it now (`route`
    // has --refresh; `invoke` uses the catalogs that refreshed).
    const cached = answered.filter(
      (candidate) => !candidate.local && candidate.catalog === 'cache',
    );
    const refresh = `sark-fed route ${result.resource} --refresh`;
    const fromCache =
      cached.length === 0
        ? ''
        : `${cached.length === 1 ? `${(cached[0] as RouteCandidate).nodeId}'s catalog` : 'the catalogs of ' + cached.map((candidate) => candidate.nodeId).join(', ')} came from the cache (kept ${CATALOG_TTL_MS / 1000} s): \`${refresh}\` asks again; `;
    return capabilityMissing
      ? new NotFoundError(
          'UNKNOWN_CAPABILITY',
          `no node offers capability ${result.capability} of ${result.resource} to this node`,
          {
            hint: fromCache
              ? `${fromCache}else check the capability ID`
              : `see what is offered with \`${refresh}\``,
          },
        )
      : new NotFoundError('UNKNOWN_RESOURCE', `no node offers ${result.resource} to this node`, {
          hint: `${fromCache}${fromCache ? 'else check' : 'check'} the resource ID, or ask its owners to allow this node in their policy`,
        });
  }
  // Nodes never trusted (every node discovery ever saw) would drown the message; one whose trust
  // was revoked, is pending or expired is named, since it may be the very node expected.
  const reasons = result.candidates
    .filter(
      (candidate) =>
        candidate.skipped &&
        !(candidate.skipped.code === 'untrusted' && candidate.trust === 'untrusted'),
    )
    .map((candidate) => `${candidate.nodeId}: ${candidate.skipped?.reason}`);
  return new UnavailableError(
    'NO_ROUTE',
    `no route to ${what}${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}`,
    {
      hint:
        trusted.length <= 1
          ? 'establish trust with a node that serves it: sark-fed trust establish <node>'
          : command === 'route'
            ? 'see `sark-fed circuit list`; check peers with `sark-fed nodes health`'
            : `see \`sark-fed route ${result.resource}\` and \`sark-fed circuit list\`; check peers with \`sark-fed nodes health\``,
    },
  );
}
