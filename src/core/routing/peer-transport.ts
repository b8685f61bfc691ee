import type { KeyObject } from 'node:crypto';
import { Agent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TrustError, messageOf } from '../errors.js';
import { certificateFingerprint } from '../identity/fingerprint.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { CORRELATION_HEADER, TLS_CIPHERS, TLS_MIN_VERSION } from '../protocol/constants.js';
import { authenticateChain, isChainFailure, type TrustMaterial } from '../trust/authenticate.js';
import { hasPeerCertificate, presentedChain } from '../trust/tls-chain.js';
import type { CallTarget } from './target.js';

/** Timeouts of every connection, explicit rather than Node's defaults (none for connecting). */
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

/** The answer's headers, or the next chunk of its body, did not come within the call's timeout. */
export class PeerTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/** Whether a call failed by a timeout or the command's deadline rather than by the peer. */
export function isPeerTimeout(error: unknown): boolean {
  const name = error instanceof Error ? error.name : '';
  return error instanceof PeerTimeoutError || name === 'AbortError' || name === 'TimeoutError';
}

/**
 * Mutual-TLS HTTP/1.1 to peers: one keep-alive pool (a node:https Agent) per peer, this node's
 * certificate and key, explicit timeouts, and the server's chain checked by our own validator
 * (per-trust-domain anchors, node ID, pinned fingerprint) as soon as the handshake completes and
 * before any byte of the request is written: the request is ended (which writes its headers)
 * only once the check has passed.
 *
 * Why node:https rather than undici (DESIGN §6 names undici): a one-shot `invoke` spent ~25 ms
 * of its start loading undici's pool, and undici ignores an abort signal until it has a
 * connection, so a peer that accepted TCP but never finished TLS held a call past its deadline.
 * Node's Agent pools keep-alive connections per peer as well; the daemon's HTTP backends, which
 * talk plain HTTP to upstreams, keep undici.
 */
export class PeerTransport {
  private readonly agents = new Map<string, Agent>();
  /** Sockets whose server passed checkServer: a kept-alive one is not checked again. */
  private readonly checked = new WeakSet<TLSSocket>();
  private readonly key: string;
  private readonly timeouts: TransportTimeouts;

  constructor(private readonly options: TransportOptions) {
    this.key = options.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  }

  request(target: CallTarget, call: PeerCall): Promise<PeerAnswer> {
    const url = new URL(target.endpoint);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const headers: Record<string, string | number> = {
      accept: 'application/json',
      [CORRELATION_HEADER]: call.correlationId,
    };
    if (call.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(call.body);
    }
    const timeoutMs = Math.max(1, Math.ceil(call.timeoutMs));
    return new Promise<PeerAnswer>((resolve, reject) => {
      let sent = false;
      let timer: NodeJS.Timeout | undefined;
      const arm = (ms: number, message: string) => {
        clearTimeout(timer);
        timer = setTimeout(() => request.destroy(new PeerTimeoutError(message)), ms);
      };
      const settle = (error: Error | undefined, answer?: PeerAnswer) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(answer as PeerAnswer);
      };
      const request = httpsRequest(
        {
          agent: this.agentFor(target),
          host,
          port: url.port || 443,
          method: call.method,
          path: call.path,
          headers,
          signal: call.signal,
          ...(isIP(host) === 0 ? { servername: host } : {}),
        },
        (response) => {
          arm(timeoutMs, `no part of the answer within ${timeoutMs} ms`);
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) {
              request.destroy();
              settle(new AnswerTooLarge(size));
              return;
            }
            chunks.push(chunk);
            arm(timeoutMs, `no part of the answer within ${timeoutMs} ms`);
          });
          response.on('error', (error) => settle(error));
          response.on('end', () => {
            const text = Buffer.concat(chunks, size).toString('utf8');
            let body: unknown;
            try {
              body = text === '' ? undefined : JSON.parse(text);
            } catch {
              body = undefined;
            }
            const correlation = response.headers[CORRELATION_HEADER];
            settle(undefined, {
              status: response.statusCode ?? 0,
              body,
              size,
              retryAfterMs: retryAfter(response.headers['retry-after'], this.options.now()),
              correlationId: typeof correlation === 'string' ? correlation : null,
            });
          });
        },
      );
      request.on('error', (error) => {
        // Before the request was ended nothing of it left this process, whatever failed, except
        // when the deadline ran out: that is a timeout, however far the call had come.
        settle(sent || isPeerTimeout(error) ? error : new NotSentError(error));
      });
      request.on('socket', (rawSocket) => {
        const socket = rawSocket as TLSSocket;
        const proceed = () => {
          if (!this.checked.has(socket)) {
            const refusal = this.checkServer(target, socket);
            if (refusal) {
              request.destroy(refusal);
              return;
            }
            this.checked.add(socket);
          }
          sent = true;
          arm(timeoutMs, `no answer within ${timeoutMs} ms`);
          request.end(call.body);
        };
        // A kept-alive socket finished its handshake long ago; a new one has yet to.
        if (this.checked.has(socket) || hasPeerCertificate(socket)) {
          proceed();
          return;
        }
        clearTimeout(timer);
        timer = setTimeout(() => {
          // Not sent: a connect timeout is a failure to reach the peer, like a refused connect.
          const error = Object.assign(
            new Error(`not connected within ${this.timeouts.connectMs} ms`),
            { code: 'CONNECT_TIMEOUT' },
          );
          request.destroy(error);
        }, this.timeouts.connectMs);
        socket.once('secureConnect', proceed);
      });
    });
  }

  /** Closes every pool (keep-alive connections would otherwise hold the process briefly). */
  close(): Promise<void> {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    return Promise.resolve();
  }

  private agentFor(target: CallTarget): Agent {
    const id = `${target.nodeId}|${target.endpoint}|${target.pinnedFingerprint}`;
    let agent = this.agents.get(id);
    if (agent) return agent;
    agent = new Agent({
      keepAlive: true,
      maxSockets: 8,
      // An idle pooled connection is closed after this long (the Agent's socket timeout).
      timeout: this.timeouts.keepAliveMs,
      cert: this.options.identity.certChainPem,
      key: this.key,
      // Node's verification knows nothing of per-domain anchors or pins: ours runs in request().
      rejectUnauthorized: false,
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERS,
      // A resumed TLS session carries no peer certificate to check: every connection does a
      // full handshake, and keep-alive makes them few.
      maxCachedSessions: 0,
    });
    this.agents.set(id, agent);
    return agent;
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
}

export class AnswerTooLarge extends Error {
  constructor(readonly size: number) {
    super(`more than ${MAX_ANSWER_BYTES / (1024 * 1024)} MiB`);
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
