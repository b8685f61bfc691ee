import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { NodeIdentity } from '../core/identity/node-identity.js';
import type { StateStore } from '../core/state/database.js';
import { readCounters } from '../core/state/metric-counters.js';
import type { Logger } from './logger.js';
import type { ServedConfig } from './served-files.js';

/** The metric names of the original design, which dashboards and alerts already use. */
export const METRIC_NAMES = {
  invocations: 'federation_invocation_requests_total',
  invocationDuration: 'federation_invocation_duration_seconds',
  circuitState: 'federation_circuit_breaker_state',
  nodeHealth: 'federation_node_health_status',
  trustEstablishment: 'federation_trust_establishment_total',
  routeLookups: 'federation_route_lookups_total',
  discoveryRequests: 'federation_discovery_requests_total',
  certificateExpiry: 'federation_certificate_expiry_days',
} as const;

/**
 * The resource or capability label of an invocation that names no ID this node serves (an
 * unknown ID, or a body that could not be read). The IDs come from the peer: labelled as sent, a
 * peer could add a time series per request it makes up. Parentheses are not allowed in resource
 * or capability IDs, so no served ID can be mistaken for it.
 */
export const UNSERVED_LABEL = '(unknown)';

const CIRCUIT_VALUES = { closed: 0, half_open: 1, open: 2 } as const;
const HEALTH_VALUES = { offline: 0, degraded: 1, online: 2 } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The daemon's Prometheus metrics (prom-client). What the daemon does itself is counted in
 * memory; what lives in the state file (circuit breakers, node health, certificate expiry, and
 * the counters CLI processes keep there) is read at scrape time, so the figures are those of the
 * node as a whole, not of this process alone.
 */
export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly invocations: Counter<'node' | 'resource' | 'capability' | 'outcome'>;
  private readonly invocationDuration: Histogram<'outcome'>;
  private readonly establishments: Counter<'outcome'>;
  private readonly reloadSuccessful: Gauge<'file'>;
  private readonly reloadSucceededAt: Gauge<'file'>;

  constructor(
    store: StateStore,
    identity: NodeIdentity,
    /** What `serve --resources` declares (reloaded): the only IDs invocations are labelled with. */
    private readonly served: Pick<ServedConfig, 'catalog'>,
    now: () => Date = () => new Date(),
  ) {
    const registers = [this.registry];
    this.invocations = new Counter({
      name: METRIC_NAMES.invocations,
      help: `Invocations this node answered, by calling node, resource, capability and outcome (${UNSERVED_LABEL} for an ID this node does not serve).`,
      labelNames: ['node', 'resource', 'capability', 'outcome'],
      registers,
    });
    this.invocationDuration = new Histogram({
      name: METRIC_NAMES.invocationDuration,
      help: 'Time to answer an invocation, backend included, in seconds.',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.establishments = new Counter({
      name: METRIC_NAMES.trustEstablishment,
      help: 'Trust establishments peers asked of this node, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    // Not among the original design's names: what an alert on a policy edit that did not take
    // effect watches (the daemon keeps serving the previous file and says so only in its log).
    this.reloadSuccessful = new Gauge({
      name: 'federation_config_last_reload_successful',
      help: 'Whether the last load of a served file (resources, policy) succeeded: 1 yes, 0 no (the previous one is still served).',
      labelNames: ['file'],
      registers,
    });
    this.reloadSucceededAt = new Gauge({
      name: 'federation_config_last_reload_success_timestamp_seconds',
      help: 'When a served file (resources, policy) was last loaded successfully, in Unix seconds.',
      labelNames: ['file'],
      registers,
    });
    // Arrow functions keep this instance at hand inside prom-client's collect(), whose `this`
    // is the metric being collected.
    const readRows = <T>(sql: string): T[] => store.read((db) => db.prepare(sql).all() as T[]);
    const readStoredCounters = (name: string) => store.read((db) => readCounters(db, name));
    new Gauge({
      name: METRIC_NAMES.circuitState,
      help: 'Circuit breaker per peer: 0 closed, 1 half-open, 2 open.',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const row of readRows<{ node_id: string; state: keyof typeof CIRCUIT_VALUES }>(
          'SELECT node_id, state FROM circuit_breakers',
        )) {
          this.set({ node: row.node_id }, CIRCUIT_VALUES[row.state]);
        }
      },
    });
    new Gauge({
      name: METRIC_NAMES.nodeHealth,
      help: 'Last health check per node: 0 offline, 1 degraded, 2 online.',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const row of readRows<{ node_id: string; status: keyof typeof HEALTH_VALUES }>(
          'SELECT node_id, status FROM node_health',
        )) {
          this.set({ node: row.node_id }, HEALTH_VALUES[row.status]);
        }
      },
    });
    new Gauge({
      name: METRIC_NAMES.certificateExpiry,
      help: "Days until a certificate expires: this node's, and each trusted peer's pinned one.",
      labelNames: ['node', 'role'],
      registers,
      collect() {
        this.reset();
        const days = (notAfter: string) =>
          Math.floor((new Date(notAfter).getTime() - now().getTime()) / DAY_MS);
        this.set({ node: identity.nodeId, role: 'self' }, days(identity.notAfter));
        for (const row of readRows<{ node_id: string; trust_expires_at: string }>(
          "SELECT node_id, trust_expires_at FROM peers WHERE trust_level = 'trusted' AND trust_expires_at IS NOT NULL",
        )) {
          this.set({ node: row.node_id, role: 'peer' }, days(row.trust_expires_at));
        }
      },
    });
    for (const [name, help, labelNames] of [
      [METRIC_NAMES.routeLookups, 'Route lookups made on this node, by outcome.', ['outcome']],
      [
        METRIC_NAMES.discoveryRequests,
        'Discovery requests made on this node, by method and outcome.',
        ['method', 'outcome'],
      ],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: [...labelNames],
        registers,
        collect() {
          this.reset();
          for (const { labels, value } of readStoredCounters(name)) this.inc(labels, value);
        },
      });
    }
  }

  /**
   * Counts one answered invocation. `node` is an authenticated, trusted peer (or this node), and
   * `outcome` one of a few values; the resource and capability are what the peer asked for, so
   * only those this node serves are kept as they are (see UNSERVED_LABEL).
   */
  recordInvocation(
    labels: { node: string; resource: string; capability: string; outcome: string },
    seconds: number,
  ): void {
    const { catalog } = this.served;
    const resource = catalog.resource(labels.resource);
    const capability = resource && catalog.capability(resource, labels.capability);
    this.invocations.inc({
      node: labels.node,
      resource: resource ? resource.id : UNSERVED_LABEL,
      capability: capability ? capability.id : UNSERVED_LABEL,
      outcome: labels.outcome,
    });
    this.invocationDuration.observe({ outcome: labels.outcome }, seconds);
  }

  /** A served file loaded (at start, or reloaded) or refused. */
  recordFileLoad(file: 'resources' | 'policy', ok: boolean, at: Date): void {
    this.reloadSuccessful.set({ file }, ok ? 1 : 0);
    if (ok) this.reloadSucceededAt.set({ file }, Math.floor(at.getTime() / 1000));
  }

  recordEstablishment(outcome: 'trusted' | 'pending' | 'refused'): void {
    this.establishments.inc({ outcome });
  }
}

/**
 * Limits of the /metrics server, in milliseconds. Each is set rather than left to Node (DESIGN §6:
 * timeouts are explicit): the port is plain HTTP that anyone who can reach it may open, and Node's
 * defaults (60 s for headers, 300 s for a request, no limit on an idle socket) would let a few
 * slow clients hold connections for minutes. A scrape is one small GET answered from memory and
 * the state file, so seconds are plenty.
 */
export const METRICS_TIMEOUTS = {
  /** The request line and headers must arrive within this. */
  headers: 5_000,
  /** The whole request, headers included. */
  request: 10_000,
  /**
   * An idle kept-alive connection is closed after this (Node closes it a second later than the
   * Keep-Alive header says, so that clients give up first). Scrapers come back every 15 s or
   * more, so a longer wait would only hold sockets; two seconds lets a quick retry reuse it.
   */
  keepAlive: 2_000,
  /** A socket on which nothing moves (a client that stopped reading the answer). */
  inactivity: 10_000,
  /**
   * How often Node checks the headers and request limits (30 s by default, which would let a
   * 5 s header limit fire after up to 35 s).
   */
  checkInterval: 1_000,
} as const;

export interface MetricsServer {
  /** The address and port it is bound to (the port chosen by the system for port 0). */
  address: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics over plain HTTP on the given address (keep it on loopback or a private
 * net). It logs nothing on success: the daemon says what it listens on once every socket is bound.
 */
export async function serveMetrics(
  metrics: DaemonMetrics,
  host: string,
  port: number,
  logger: Logger,
): Promise<MetricsServer> {
  const server: Server = createServer(
    { connectionsCheckingInterval: METRICS_TIMEOUTS.checkInterval },
    (request, response) => {
      if (request.method !== 'GET' || (request.url ?? '/').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
        return;
      }
      metrics.registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
        },
        (error: unknown) => {
          logger.error('metrics failed', { error: String(error) });
          response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
        },
      );
    },
  );
  server.headersTimeout = METRICS_TIMEOUTS.headers;
  server.requestTimeout = METRICS_TIMEOUTS.request;
  server.keepAliveTimeout = METRICS_TIMEOUTS.keepAlive;
  server.timeout = METRICS_TIMEOUTS.inactivity;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: bound.address,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
