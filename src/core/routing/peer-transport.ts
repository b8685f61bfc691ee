import type { KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { TrustError, messageOf } from '../errors.js';
import { certificateFingerprint } from '../identity/fingerprint.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { CORRELATION_HEADER, TLS_CIPHERS, TLS_MIN_VERSION } from '../protocol/constants.js';
import { authenticateChain, isChainFailure, type TrustMaterial } from '../trust/authenticate.js';
import { presentedChain } from '../trust/tls-chain.js';
import { Pool, buildConnector, type Connector } from './undici-pool.js';
import type { CallTarget } from './target.js';

/** Timeouts of every connection, explicit: undici's own defaults are 300 s. */
export interface TransportTimeouts {
  /** TCP connect plus TLS handshake. */
  connectMs: number;
  /** How long an idle keep-alive connection stays open for the next request. */
  keepAliveMs: number;
}

export const DEFAULT_TIMEOUTS: TransportTimeouts = { connectMs: 5_000, keepAliveMs: 10_000 };

/** Answers larger than this are cut off: a peer cannot make this process buffer without end. */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

export interface TransportOptions {
  identity: NodeIdentity;
  privateKey: KeyObject;
  material: TrustMaterial;
  now: () => Date;
  timeouts?: TransportTimeouts;
}

export interface PeerAnswer {
  status: number;
  /** The parsed JSON body, or undefined when it was not JSON. */
  body: unknown;
  /** Size of the body in bytes. */
  size: number;
  retryAfterMs: number | null;
  correlationId: string | null;
}

export interface PeerCall {
  method: 'GET' | 'POST';
  path: string;
  correlationId: string;
  /** Serialized JSON body. */
  body?: string;
  /** Aborts the call: the command's deadline, or a shorter one for this call. */
  signal: AbortSignal;
  /** Bounds waiting for the answer's headers and for each chunk of its body. */
  timeoutMs: number;
}

/**
 * Failures of a call that happened before any byte of the request left this process: the
 * connection was refused or reset, TLS failed, or the server's chain was refused. Retrying these
 * can never run a capability twice.
 */
export class NotSentError extends Error {
  constructor(readonly reason: Error) {
    super(messageOf(reason), { cause: reason });
    this.name = 'NotSentError';
  }
}

/**
 * Mutual-TLS HTTP/1.1 to peers with undici: one keep-alive pool per peer, this node's
 * certificate and key, explicit timeouts, and the server's chain checked by our own validator
 * (per-trust-domain anchors, node ID, pinned fingerprint) as soon as the handshake completes and
 * before any request is written on the connection: undici writes a request only once the
 * connector has handed it the socket.
 */
export class PeerTransport {
  private readonly pools = new Map<string, Pool>();
  private readonly key: string;
  private readonly timeouts: TransportTimeouts;

  constructor(private readonly options: TransportOptions) {
    this.key = options.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  }

  async request(target: CallTarget, call: PeerCall): Promise<PeerAnswer> {
    const pool = this.poolFor(target);
    const headers: Record<string, string> = {
      accept: 'application/json',
      [CORRELATION_HEADER]: call.correlationId,
    };
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await pool.request({
        path: call.path,
        method: call.method,
        headers,
        body: call.body ?? null,
        signal: call.signal,
        headersTimeout: Math.max(1, Math.ceil(call.timeoutMs)),
        bodyTimeout: Math.max(1, Math.ceil(call.timeoutMs)),
      });
    } catch (error) {
      throw this.unwrap(error, target);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          response.body.destroy();
          throw new AnswerTooLarge(size);
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof AnswerTooLarge) throw error;
      throw this.unwrap(error, target);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    const correlation = response.headers[CORRELATION_HEADER];
    return {
      status: response.statusCode,
      body,
      size,
      retryAfterMs: retryAfter(response.headers['retry-after'], this.options.now()),
      correlationId: typeof correlation === 'string' ? correlation : null,
    };
  }

  /** Closes every pool (keep-alive connections would otherwise hold the process briefly). */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => {})));
  }

  private poolFor(target: CallTarget): Pool {
    const id = `${target.nodeId}|${target.endpoint}|${target.pinnedFingerprint}`;
    let pool = this.pools.get(id);
    if (pool) return pool;
    const base = buildConnector({
      cert: this.options.identity.certChainPem,
      key: this.key,
      // Node's verification knows nothing of per-domain anchors or pins: ours runs below.
      rejectUnauthorized: false,
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERS,
      timeout: this.timeouts.connectMs,
      keepAlive: true,
      // A resumed TLS session carries no peer certificate to check: every connection does a
      // full handshake, and keep-alive makes them few.
      maxCachedSessions: 0,
    });
    const connector: Connector = (connectOptions, callback) => {
      base(connectOptions, (error, socket) => {
        if (error) {
          callback(new NotSentError(error), null);
          return;
        }
        const refusal = this.checkServer(target, socket as TLSSocket);
        if (refusal) {
          (socket as TLSSocket).destroy();
          callback(new NotSentError(refusal), null);
          return;
        }
        callback(null, socket as TLSSocket);
      });
    };
    pool = new Pool(target.endpoint, {
      connect: connector,
      connections: 8,
      keepAliveTimeout: this.timeouts.keepAliveMs,
      keepAliveMaxTimeout: this.timeouts.keepAliveMs,
      headersTimeout: this.timeouts.connectMs,
      bodyTimeout: this.timeouts.connectMs,
    });
    this.pools.set(id, pool);
    return pool;
  }

  /**
   * The server must be the node we meant, presenting the certificate we pinned: for a peer, a
   * chain to an anchor of its own trust domain; for this node itself, its own certificate.
   */
  private checkServer(target: CallTarget, socket: TLSSocket): TrustError | undefined {
    const chain = presentedChain(socket);
    if (target.local) {
      const leaf = chain[0];
      if (leaf && certificateFingerprint(leaf) === target.pinnedFingerprint) return undefined;
      return new TrustError(
        'PIN_MISMATCH',
        `${target.endpoint} does not present this node's own certificate`,
        { hint: "check this node's recorded endpoint with `sark-fed status`" },
      );
    }
    const result = authenticateChain(chain, this.options.material, this.options.now());
    if (isChainFailure(result)) {
      return new TrustError(
        result.code,
        `${target.nodeId} (${target.endpoint}) presented a certificate this node does not accept: ${result.reason}`,
        { hint: "check the peer's certificate, or re-establish trust: sark-fed trust establish" },
      );
    }
    if (result.spiffeId !== target.spiffeId) {
      return new TrustError(
        'WRONG_NODE',
        `${target.endpoint} is ${result.spiffeId}, not ${target.spiffeId}`,
        { hint: `check the endpoint recorded for ${target.nodeId} with \`sark-fed trust show\`` },
      );
    }
    if (result.fingerprint !== target.pinnedFingerprint) {
      return new TrustError(
        'PIN_MISMATCH',
        `${target.nodeId} presented a certificate other than the pinned one`,
        {
          hint: `if the peer renewed its certificate, re-establish trust: sark-fed trust establish ${target.nodeId}`,
        },
      );
    }
    return undefined;
  }

  private unwrap(error: unknown, target: CallTarget): Error {
    if (error instanceof NotSentError) return error;
    // undici hands the connector's error to every request queued on that connection as is.
    if (error instanceof Error && error.cause instanceof NotSentError) return error.cause;
    return error instanceof Error ? error : new Error(`${target.endpoint}: ${String(error)}`);
  }
}

export class AnswerTooLarge extends Error {
  constructor(readonly size: number) {
    super(`the answer exceeds ${MAX_ANSWER_BYTES} bytes`);
    this.name = 'AnswerTooLarge';
  }
}

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3), in milliseconds from now. */
export function retryAfter(value: string | string[] | undefined, now: Date): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return null;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now.getTime());
}
