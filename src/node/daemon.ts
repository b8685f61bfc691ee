import type { KeyObject } from 'node:crypto';
import { newCorrelationId } from '../core/protocol/ids.js';
import { createServer, type Server } from 'node:https';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { NotFoundError, TrustError } from '../core/errors.js';
import { loadNodeKey } from '../core/identity/keys.js';
import type { NodeIdentity } from '../core/identity/node-identity.js';
import { CORRELATION_HEADER, TLS_CIPHERS, TLS_MIN_VERSION } from '../core/protocol/constants.js';
import { openState, type StateStore } from '../core/state/database.js';
import { UUID_PATTERN } from '../core/routing/identifiers.js';
import { loadIdentity } from '../core/state/identity-repository.js';
import {
  authenticateChain,
  isChainFailure,
  type ChainFailure,
} from '../core/trust/authenticate.js';
import type { ClaimedIdentity } from '../core/trust/peer-identity.js';
import { authorizePeer } from '../core/trust/peer-trust.js';
import { ChallengeStore } from './challenges.js';
import { HttpError, sendError } from './http-io.js';
import type { Logger } from './logger.js';
import { routeFor, type HandlerContext } from './routes.js';
import { TrustView } from './trust-view.js';
import { presentedChain } from '../core/trust/tls-chain.js';
import { AuditWriter, type AuditSink } from '../core/audit/events.js';
import { WalSync } from '../core/state/wal-sync.js';
import { pemBlocks } from '../core/identity/pem.js';
import { claimedIdentity } from '../core/trust/peer-identity.js';
import { Backends } from './backends.js';
import { ConcurrencyLimiter } from './concurrency.js';
import {
  DEFAULT_INVOCATION_SETTINGS,
  InvocationService,
  type InvocationSettings,
} from './invoke.js';
import { clearLocalCatalog, replaceLocalCatalog } from './local-catalog.js';
import {
  claimDaemon,
  recordListening,
  releaseDaemon,
  whileClaimed,
  type DaemonClaim,
} from '../core/state/daemon-claim.js';
import type { Policy } from './policy.js';
import { RateLimiter } from './rate-limit.js';
import type { ResourceCatalog } from './resources.js';
import {
  DEFAULT_RELOAD_INTERVAL_MS,
  ServedConfig,
  servedSummary,
  servedWarnings,
  watchServedFiles,
  type ServedFileKind,
  type WatchedFile,
} from './served-files.js';
import { DaemonMetrics, serveMetrics, type MetricsServer } from './metrics.js';

export interface DaemonOptions {
  statePath: string;
  host: string;
  port: number;
  /** New peers wait as `pending` until `trust approve`. */
  requireApproval: boolean;
  version: string;
  logger: Logger;
  now?: () => Date;
  /** Milliseconds; every timeout is explicit rather than Node's defaults. */
  timeouts?: { headers: number; request: number; keepAlive: number; shutdownGrace: number };
  /** What `serve --resources` declared; nothing is served without it. */
  resources?: ResourceCatalog;
  /** What `serve --policy` declared; without it every invocation is denied. */
  policy?: Policy;
  /**
   * The files `resources` and `policy` were read from, re-read when they change
   * (served-files.ts); without it they are kept as given.
   */
  reload?: {
    files: Partial<Record<ServedFileKind, WatchedFile>>;
    env: NodeJS.ProcessEnv;
    intervalMs?: number;
  };
  /** Body cap, default rate limit and concurrency cap of invocations. */
  invocation?: Partial<InvocationSettings>;
  /** `serve --metrics host:port`: Prometheus metrics over plain HTTP. */
  metrics?: { host: string; port: number };
}

export interface RunningDaemon {
  host: string;
  port: number;
  identity: NodeIdentity;
  /** The port /metrics listens on, when `metrics` was given. */
  metricsPort: number | undefined;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes the state. */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUTS = {
  headers: 10_000,
  request: 30_000,
  keepAlive: 5_000,
  shutdownGrace: 10_000,
};

interface SocketAuthentication {
  generation: number;
  result: ClaimedIdentity | ChainFailure;
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const now = options.now ?? (() => new Date());
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const store = openState(options.statePath, { create: false });
  let server: Server | undefined;
  let audit: AuditSink | undefined;
  let backends: Backends | undefined;
  let metricsServer: MetricsServer | undefined;
  let claim: DaemonClaim | undefined;
  let watcher: { close(): void } | undefined;
  try {
    const identity = store.read(loadIdentity);
    if (!identity) {
      throw new NotFoundError('NO_IDENTITY', `no node identity in ${options.statePath}`, {
        hint: 'run `sark-fed init` before `sark-fed serve`',
      });
    }
    if (now() > new Date(identity.notAfter)) {
      throw new TrustError(
        'CERT_EXPIRED',
        `this node's certificate expired at ${identity.notAfter}`,
        {
          hint: 'issue a new certificate and run `sark-fed init` again',
        },
      );
    }
    const privateKey = loadNodeKey(identity);
    const claimed = claimDaemon(store, now());
    claim = claimed.claim;
    if (claimed.tookOver) {
      options.logger.warn('took over the state file from a daemon that could not be checked', {
        pid: claimed.tookOver.pid,
        host: claimed.tookOver.host,
        since: claimed.tookOver.since,
        hint: 'it ran on another machine or in another PID namespace (a container); if it still runs, stop one of the two',
      });
    }
    const settings: InvocationSettings = {
      ...DEFAULT_INVOCATION_SETTINGS,
      ...options.invocation,
    };
    const served = new ServedConfig(options.resources, options.policy);
    audit = openAuditWriter(options.statePath);
    backends = new Backends();
    const metrics = new DaemonMetrics(store, identity, served, now);
    const invocation = new InvocationService({
      metrics,
      identity,
      privateKey,
      served,
      backends,
      audit,
      rateLimiter: new RateLimiter(() => now().getTime()),
      concurrency: new ConcurrencyLimiter(settings.maxConcurrentPerNode),
      settings,
      logger: options.logger,
      now,
    });
    const context: HandlerContext = {
      identity,
      privateKey,
      store,
      trust: new TrustView(store),
      challenges: new ChallengeStore(() => now().getTime()),
      requireApproval: options.requireApproval,
      version: options.version,
      logger: options.logger,
      now,
      invocation,
      metrics,
      ownLeafDer: ownLeafOf(identity),
    };
    const https = createHttpsServer(identity, privateKey, context, timeouts);
    server = https;
    await bind('listen', options.host, options.port, () =>
      listen(https, options.host, options.port),
    );
    const address = https.address() as AddressInfo;
    const wanted = options.metrics;
    metricsServer = wanted
      ? await bind('metrics', wanted.host, wanted.port, () =>
          serveMetrics(metrics, wanted.host, wanted.port, options.logger),
        )
      : undefined;
    // Written once the address is bound, so that a daemon that failed to start never leaves the
    // CLI's `route` a local candidate that does not answer.
    store.write((db) => replaceLocalCatalog(db, invocation.localCatalog(), now()));
    recordListening(store, claimed.claim, loopbackEndpoint(address));
    // Said only now that every socket is bound: a supervisor or test that waits for "listening"
    // must not be told so by a daemon that is about to fail on its metrics address.
    options.logger.info('listening', {
      address: address.address,
      port: address.port,
      node_id: identity.nodeId,
      spiffe_id: identity.spiffeId,
    });
    if (metricsServer) {
      options.logger.info('metrics listening', {
        address: metricsServer.address,
        port: metricsServer.port,
        path: '/metrics',
      });
    }
    logServedCatalog(options.logger, served);
    const reload = options.reload;
    if (reload) {
      for (const kind of Object.keys(reload.files) as ServedFileKind[]) {
        metrics.recordFileLoad(kind, true, now());
      }
      watcher = watchServedFiles({
        served,
        files: reload.files,
        env: reload.env,
        logger: options.logger,
        intervalMs: reload.intervalMs ?? DEFAULT_RELOAD_INTERVAL_MS,
        onOutcome: (kind, ok) => metrics.recordFileLoad(kind, ok, now()),
        onReloaded: (kinds) => {
          options.logger.info('reloaded', {
            files: kinds.map((kind) => reload.files[kind]?.path),
          });
          logServedCatalog(options.logger, served);
          backends?.retainOnly(served.catalog.httpBackends());
          // The CLI's `route` offers this node from what it may use on itself, which the new
          // files may have changed.
          whileClaimed(store, claimed.claim, (db) =>
            replaceLocalCatalog(db, invocation.localCatalog(), now()),
          );
        },
      });
    }
    const running = { server: https, audit, backends };
    return {
      host: address.address,
      port: address.port,
      identity,
      metricsPort: metricsServer?.port,
      close: async () => {
        watcher?.close();
        await metricsServer?.close();
        await shutdown(
          running.server,
          store,
          context,
          running.audit,
          running.backends,
          timeouts.shutdownGrace,
          claim as DaemonClaim,
        );
      },
    };
  } catch (error) {
    watcher?.close();
    // Both sockets are released before the error reaches the caller, whichever bind failed.
    await metricsServer?.close();
    if (server) await closeServer(server);
    await backends?.close();
    await audit?.close().catch(() => undefined);
    try {
      if (claim) releaseDaemon(store, claim);
    } finally {
      store.close();
    }
    throw error;
  }
}

function createHttpsServer(
  identity: NodeIdentity,
  privateKey: KeyObject,
  context: HandlerContext,
  timeouts: typeof DEFAULT_TIMEOUTS,
): Server {
  const authentications = new WeakMap<TLSSocket, SocketAuthentication>();
  const server = createServer(
    {
      cert: identity.certChainPem,
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      // Ask every client for a certificate but decide in the application: Node's
      // rejectUnauthorized would only hang up, and it knows nothing of per-domain anchors.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERS,
      honorCipherOrder: true,
      // Node checks header and request timeouts on this interval (30 s by default), which made a
      // 10 s header timeout fire after up to 40 s.
      connectionsCheckingInterval: 1_000,
    },
    (request, response) => {
      handleRequest(request, response, context, authentications).catch((error: unknown) => {
        // handleRequest answers every failure itself; this is the last line before a crash.
        context.logger.error('request handling failed', { error: String(error) });
        response.destroy();
      });
    },
  );
  // A TLS 1.2 renegotiation could present another client certificate on a connection that was
  // already authenticated (and is cached as such): refuse it, as most TLS servers do.
  server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());
  server.headersTimeout = timeouts.headers;
  server.requestTimeout = timeouts.request;
  server.keepAliveTimeout = timeouts.keepAlive;
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    // A connection closed before or during the handshake without a TLS alert: a TCP health check
    // (Consul's, every 10 s), a port scan, a client giving up. Nothing an operator can act on,
    // and at one line per check it buried the warnings that matter.
    if (error.code === 'ECONNRESET') return;
    context.logger.warn('tls handshake failed', {
      error: opensslReason(error.message),
      code: error.code ?? null,
      remote: remoteOf(socket),
    });
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) =>
    refuseConnection(error, socket, context),
  );
  return server;
}

/**
 * OpenSSL's error text as an operator reads it: "unsupported protocol" rather than
 * "800CAEDB…:error:0A000102:SSL routines:tls_early_post_process_client_hello:unsupported
 * protocol:../deps/openssl/openssl/ssl/statem/statem_srvr.c:1664:\n".
 */
function opensslReason(message: string): string {
  const match = /:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(message);
  return (match?.[1] ?? message).trim();
}

/**
 * Where this machine's own commands reach the daemon: the address it is bound to, or loopback
 * when bound to every address (0.0.0.0, ::). The name does not matter: the node's commands pin
 * its certificate, they do not check a host name.
 */
function loopbackEndpoint(address: AddressInfo): string {
  if (address.address === '0.0.0.0') return `https://127.0.0.1:${address.port}`;
  if (address.address === '::') return `https://[::1]:${address.port}`;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `https://${host}:${address.port}`;
}

function remoteOf(socket: TLSSocket | undefined): string | null {
  const address = socket?.remoteAddress;
  if (address === undefined) return null;
  return address.includes(':')
    ? `[${address}]:${socket?.remotePort}`
    : `${address}:${socket?.remotePort}`;
}

/**
 * A connection that failed below the request handler: unparsable HTTP, a request that took too
 * long, or a TLS renegotiation attempt. Answered with the JSON error document where HTTP still
 * can be spoken, and closed in every case (Node's default leaves a refused renegotiation hanging).
 */
function refuseConnection(
  error: NodeJS.ErrnoException,
  socket: Duplex,
  context: HandlerContext,
): void {
  const code = error.code ?? 'UNKNOWN';
  // A hang-up; or an OpenSSL error, which tlsClientError has just logged for this connection.
  if (code === 'ECONNRESET' || code.startsWith('ERR_SSL_')) {
    socket.destroy();
    return;
  }
  context.logger.warn('connection refused', { error: error.message, code });
  const inFlight = ((socket as { _httpMessage?: unknown })._httpMessage ?? null) !== null;
  if (code.startsWith('ERR_TLS_') || !socket.writable || inFlight) {
    socket.destroy();
    return;
  }
  const status =
    code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const payload = JSON.stringify({
    error: {
      code: status === 408 ? 'REQUEST_TIMEOUT' : 'MALFORMED_REQUEST',
      message: status === 408 ? 'the request took too long' : 'the request is not valid HTTP/1.1',
      correlation_id: null,
    },
  });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`,
  );
}

async function handleRequest(
  request: IncomingMessage,
  response: ServerResponse,
  context: HandlerContext,
  authentications: WeakMap<TLSSocket, SocketAuthentication>,
): Promise<void> {
  const started = process.hrtime.bigint();
  const correlationId = correlationIdOf(request);
  const socket = request.socket as TLSSocket;
  const path = (request.url ?? '/').split('?')[0] as string;
  let peer: ClaimedIdentity | undefined;
  let status = 500;
  /** The code of an error answer, for the log line. */
  let errorCode: string | undefined;
  response.setHeader(CORRELATION_HEADER, correlationId);
  try {
    // With TLS 1.3 a request can arrive on a socket that is already being torn down.
    if (socket.destroyed || !socket.encrypted)
      throw new HttpError(400, 'CONNECTION_CLOSED', 'the connection is closed');
    // Authenticate before routing, so that a client without an acceptable certificate learns
    // nothing, not even which paths exist.
    peer = authenticate(socket, context, authentications);
    const route = routeFor(request.method ?? 'GET', path);
    if (route.access === 'trusted' && !isSelf(peer, context)) {
      const failure = authorizePeer(context.trust.peer(peer.nodeId), peer, context.now());
      if (failure) throw new HttpError(403, failure.code, failure.reason);
    }
    const result = await route.handler(
      { request, socket, peer, correlationId, params: route.params },
      context,
    );
    status = result.status;
    if (status >= 400) errorCode = errorCodeOf(result.body);
    if (!response.headersSent) {
      const payload = JSON.stringify(result.body);
      // An invoke body over the cap is answered without being read: close rather than drain it.
      if (result.status === 413) response.shouldKeepAlive = false;
      response.writeHead(result.status, {
        ...result.headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        'cache-control': 'no-store',
      });
      response.end(payload);
    }
  } catch (error) {
    const httpError =
      error instanceof HttpError
        ? error
        : new HttpError(500, 'INTERNAL', 'the node failed to answer');
    if (!(error instanceof HttpError)) {
      context.logger.error('request failed', {
        correlation_id: correlationId,
        error: String(error),
      });
    }
    status = httpError.status;
    errorCode = httpError.code;
    // A client that sent more than the cap is not read to the end: close rather than drain it.
    // (request.socket may already be detached here, so let the response close the connection.)
    if (httpError.status === 413) response.shouldKeepAlive = false;
    sendError(response, httpError, correlationId);
  } finally {
    const fields: Record<string, unknown> = {
      correlation_id: correlationId,
      method: request.method,
      path,
      status,
      peer: peer?.spiffeId ?? null,
      duration_ms: Number((process.hrtime.bigint() - started) / 1_000n) / 1000,
    };
    // Only an error answer says why (and, refused before authentication, whom the certificate
    // named): a successful request, the daemon's hot path, costs nothing more.
    if (status >= 400) {
      fields.code = errorCode ?? null;
      if (!peer) {
        const presented = authentications.get(socket)?.result.spiffeId;
        if (presented !== undefined) fields.presented_spiffe_id = presented;
      }
    }
    context.logger.info('request', fields);
  }
}

/** The code of a handler's error answer: `{ "error": { "code" } }`, as every route words it. */
function errorCodeOf(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Validates the client's chain once per connection and trust-state generation. */
function authenticate(
  socket: TLSSocket,
  context: HandlerContext,
  authentications: WeakMap<TLSSocket, SocketAuthentication>,
): ClaimedIdentity {
  const generation = context.trust.refresh();
  let cached = authentications.get(socket);
  if (!cached || cached.generation !== generation) {
    const chain = presentedChain(socket);
    cached = {
      generation,
      result: ownLeaf(chain, context) ?? authenticateChain(chain, context.trust, context.now()),
    };
    authentications.set(socket, cached);
  }
  const result = cached.result;
  if (isChainFailure(result)) {
    const status = result.code === 'NO_CLIENT_CERTIFICATE' ? 401 : 403;
    throw new HttpError(status, result.code, `client certificate refused: ${result.reason}`);
  }
  if (context.now() > result.notAfter) {
    throw new HttpError(403, 'CERT_EXPIRED', 'client certificate refused: it has expired');
  }
  return result;
}

/**
 * The local CLI calls its own daemon with the node's own certificate, which need not chain to
 * any anchor this node holds (its own CA is often not one). The TLS handshake proved that the
 * client holds the key of exactly that certificate, byte for byte this node's: it is this node.
 */
function ownLeaf(chain: readonly Buffer[], context: HandlerContext): ClaimedIdentity | undefined {
  const [leaf] = chain;
  if (!leaf || !leaf.equals(context.ownLeafDer)) return undefined;
  const claimed = claimedIdentity(leaf);
  return 'error' in claimed ? undefined : claimed;
}

function ownLeafOf(identity: NodeIdentity): Buffer {
  const [leaf] = pemBlocks(identity.certChainPem);
  if (!leaf) throw new Error('the node identity has no certificate');
  return leaf.der;
}

/** A self-call passes as trusted: this node is not in its own peers table. */
function isSelf(peer: ClaimedIdentity, context: HandlerContext): boolean {
  return (
    peer.spiffeId === context.identity.spiffeId && peer.fingerprint === context.identity.fingerprint
  );
}

/** One line that says what is served, and the warnings about the files (servedWarnings). */
function logServedCatalog(logger: Logger, served: ServedConfig): void {
  logger.info('serving resources', { resources: servedSummary(served.catalog) });
  for (const warning of servedWarnings(served)) {
    logger.warn(warning.message, warning.fields);
  }
}

/**
 * The writer of the inbound audit trail, on a connection of its own: synchronous=NORMAL there,
 * with the log synced by WalSync off the event loop, while every other write keeps FULL.
 */
function openAuditWriter(statePath: string): AuditSink {
  const auditStore = openState(statePath, { create: false, synchronous: 'NORMAL' });
  const wal = new WalSync(statePath);
  const writer = new AuditWriter(auditStore, wal);
  return {
    append: (event) => writer.append(event),
    close: async () => {
      try {
        await writer.close();
      } finally {
        wal.close();
        auditStore.close();
      }
    },
  };
}

function correlationIdOf(request: IncomingMessage): string {
  const given = request.headers[CORRELATION_HEADER];
  return typeof given === 'string' && UUID_PATTERN.test(given)
    ? given.toLowerCase()
    : newCorrelationId();
}

/**
 * A socket the daemon could not bind. It says which one, so that the CLI names the address and
 * the option that gave it (`--listen` or `--metrics`) rather than guess.
 */
export class BindError extends Error {
  constructor(
    readonly socket: 'listen' | 'metrics',
    readonly host: string,
    readonly port: number,
    cause: unknown,
  ) {
    super(`cannot bind the ${socket} address ${host}:${port}: ${String(cause)}`, { cause });
    this.name = 'BindError';
  }

  /** The system's reason (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...), when there is one. */
  get code(): string | undefined {
    return (this.cause as NodeJS.ErrnoException | null)?.code;
  }
}

async function bind<T>(
  socket: BindError['socket'],
  host: string,
  port: number,
  start: () => Promise<T>,
): Promise<T> {
  try {
    return await start();
  } catch (error) {
    throw new BindError(socket, host, port, error);
  }
}

/** Closes a server that may or may not be listening, with whatever connections it has. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function shutdown(
  server: Server,
  store: StateStore,
  context: HandlerContext,
  audit: AuditSink,
  backends: Backends,
  graceMs: number,
  claim: DaemonClaim,
): Promise<void> {
  context.logger.info('shutting down');
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // Calls still waiting on an upstream when the grace period ends are cut off with it.
  const grace = setTimeout(() => {
    server.closeAllConnections();
    void backends.close();
  }, graceMs);
  await closed;
  clearTimeout(grace);
  await backends.close();
  try {
    await audit.close();
    // What this node serves is cleared with the claim, and only while the claim is still this
    // daemon's: another that took the file over keeps its catalog.
    releaseDaemon(store, claim, (db) => clearLocalCatalog(db));
  } finally {
    store.close();
  }
  context.logger.info('stopped');
}
