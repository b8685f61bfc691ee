import { request as httpsRequest, Agent, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import {
  RefusedError,
  TrustError,
  UnavailableError,
  OperationError,
  messageOf,
} from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import {
  CORRELATION_HEADER,
  TLS_BINDING_LABEL,
  TLS_BINDING_LENGTH,
  NO_CONTEXT,
  TLS_CIPHERS,
  TLS_MIN_VERSION,
} from '../protocol/constants.js';
import { hasPeerCertificate, presentedChain } from './tls-chain.js';

export interface PeerResponse {
  status: number;
  body: unknown;
  correlationId: string | undefined;
}

export interface PeerRequest {
  method: 'GET' | 'POST';
  path: string;
  correlationId: string;
  /** A JSON body, or one built from the TLS exporter value of the connection that carries it. */
  body?: unknown | ((tlsBinding: string) => unknown);
}

/** Called with the server's chain (leaf first) before anything is sent; throws to refuse it. */
export type ServerCheck = (chain: Buffer[], socket: TLSSocket) => void;

const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * One peer, spoken to over mutual TLS with this node's certificate. The server's chain is
 * checked by the caller's ServerCheck before any request body leaves this process, because
 * Node's own verification knows nothing of per-trust-domain anchors or pins.
 */
export class PeerClient {
  private readonly agent: Agent;
  private readonly url: URL;

  constructor(
    endpoint: string,
    identity: NodeIdentity,
    privateKey: KeyObject,
    private readonly checkServer: ServerCheck,
    private readonly timeoutMs: number,
  ) {
    this.url = new URL(endpoint);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      cert: identity.certChainPem,
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      rejectUnauthorized: false,
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERS,
      timeout: timeoutMs,
    });
  }

  async send(peerRequest: PeerRequest): Promise<PeerResponse> {
    const { hostname, port } = this.url;
    const host = hostname.replace(/^\[(.*)\]$/, '$1');
    const options: RequestOptions = {
      agent: this.agent,
      host,
      port: port || 443,
      method: peerRequest.method,
      path: peerRequest.path,
      headers: { accept: 'application/json', [CORRELATION_HEADER]: peerRequest.correlationId },
      signal: AbortSignal.timeout(this.timeoutMs),
      ...(isIP(host) === 0 ? { servername: host } : {}),
    };
    return new Promise<PeerResponse>((resolve, reject) => {
      const request = httpsRequest(options, (response) => {
        readResponse(response, this.url.origin).then(resolve, reject);
      });
      request.on('error', (error) => reject(connectionError(error, this.url.origin)));
      request.on('socket', (rawSocket) => {
        const socket = rawSocket as TLSSocket;
        const proceed = () => {
          try {
            this.checkServer(presentedChain(socket), socket);
            const binding = socket
              .exportKeyingMaterial(TLS_BINDING_LENGTH, TLS_BINDING_LABEL, NO_CONTEXT)
              .toString('base64url');
            const body =
              typeof peerRequest.body === 'function' ? peerRequest.body(binding) : peerRequest.body;
            if (body === undefined) {
              request.end();
              return;
            }
            const payload = JSON.stringify(body);
            request.setHeader('content-type', 'application/json');
            request.setHeader('content-length', Buffer.byteLength(payload));
            request.end(payload);
          } catch (error) {
            request.destroy();
            reject(error);
          }
        };
        // A reused keep-alive socket has finished its handshake already (the server's certificate
        // is known); a new one has not. getProtocol() is no test: it answers before the handshake.
        if (hasPeerCertificate(socket)) proceed();
        else socket.once('secureConnect', proceed);
      });
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Turns a peer's error answer into the typed error (and so the exit code) it stands for. */
export function peerError(response: PeerResponse, peerName: string): Error {
  const error = (response.body as { error?: { code?: string; message?: string } } | null)?.error;
  const code = error?.code ?? `HTTP_${response.status}`;
  const message = `${peerName} answered ${response.status} ${code}: ${error?.message ?? 'no details'}`;
  const correlation = response.correlationId ? ` (correlation ID ${response.correlationId})` : '';
  // 409 is the peer refusing an identity conflict (a node ID it knows under another trust
  // domain): a trust failure, as when this side detects the same conflict itself.
  if (response.status === 401 || response.status === 403 || response.status === 409) {
    return new TrustError(code, message, {
      hint: `the peer does not accept this node; check its anchors and trust decisions${correlation}`,
    });
  }
  if (response.status === 429) return new RefusedError(code, message, { hint: 'retry later' });
  if (response.status >= 500)
    return new UnavailableError(code, message, { hint: `retry later${correlation}` });
  return new OperationError(code, message, { hint: `see the peer's log${correlation}` });
}

/** What to check when an endpoint answers as no sark-fed node would. */
const NOT_A_NODE_HINT = 'check that the endpoint is a sark-fed node (`sark-fed serve`)';

function readResponse(response: IncomingMessage, origin: string): Promise<PeerResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        response.destroy();
        reject(
          new OperationError(
            'RESPONSE_TOO_LARGE',
            `${origin} answered with more than ${MAX_RESPONSE_BYTES / (1024 * 1024)} MiB`,
            {
              hint: NOT_A_NODE_HINT,
            },
          ),
        );
        return;
      }
      chunks.push(chunk);
    });
    response.on('error', reject);
    response.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        reject(
          new OperationError(
            'MALFORMED_RESPONSE',
            `${origin} answered with something other than JSON`,
            { hint: NOT_A_NODE_HINT },
          ),
        );
        return;
      }
      const header = response.headers[CORRELATION_HEADER];
      resolve({
        status: response.statusCode ?? 0,
        body,
        correlationId: typeof header === 'string' ? header : undefined,
      });
    });
  });
}

function connectionError(error: Error, origin: string): Error {
  if (error instanceof TrustError || error instanceof OperationError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? error.name;
  if (error.name === 'TimeoutError' || error.name === 'AbortError') {
    return new UnavailableError('TIMEOUT', `${origin} did not answer in time`, {
      cause: error,
      hint: 'check that the peer runs `sark-fed serve`, or raise --timeout',
    });
  }
  // Node's message for a socket error is mostly "<syscall> <code> <address>": the code and the
  // endpoint already say that. Another message (a TLS alert, say) is worth showing.
  const said = messageOf(error);
  const redundant = new RegExp(`^[a-z]+ ${code}( |$)`).test(said);
  return new UnavailableError(
    'UNREACHABLE',
    `cannot reach ${origin} (${redundant ? code : `${code}: ${said}`})`,
    {
      cause: error,
      hint: 'check the endpoint and that the peer runs `sark-fed serve`',
    },
  );
}
