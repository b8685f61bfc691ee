import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import {
  NO_CONTEXT,
  TLS_BINDING_LABEL,
  TLS_BINDING_LENGTH,
} from '../../src/core/protocol/constants.js';

export interface Reply {
  status: number;
  /** The parsed JSON body (an error reply is `{ error: { code, message, correlation_id } }`). */
  body: Record<string, unknown> & { error?: { code: string; message: string } };
  /** The TLS connection that carried the request. */
  socket: TLSSocket;
}

export interface SendOptions {
  /** Sent as is instead of JSON.stringify(body). */
  raw?: string;
  contentType?: string;
  /** Sent with chunked transfer encoding, without a content-length. */
  chunked?: boolean;
}

/**
 * One mutual-TLS connection to a daemon, kept alive across requests, over which a test writes
 * exactly the bodies it wants. A body may be built from the connection's TLS exporter value, as a
 * real initiator signs it; `binding()` gives that value for use on another connection.
 */
export class MtlsConnection {
  private readonly agent: Agent;
  socket: TLSSocket | undefined;

  constructor(
    private readonly port: number,
    credentials?: { certPem: string; keyPem: string },
  ) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      rejectUnauthorized: false,
      ...(credentials ? { cert: credentials.certPem, key: credentials.keyPem } : {}),
    });
  }

  send(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown | ((binding: string) => unknown),
    options: SendOptions = {},
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      let carrier: TLSSocket | undefined;
      const outgoing = request(
        { agent: this.agent, host: '127.0.0.1', port: this.port, method, path },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({
                status: response.statusCode ?? 0,
                body: text ? JSON.parse(text) : {},
                socket: carrier as TLSSocket,
              });
            } catch (error) {
              reject(new Error(`not JSON (${response.statusCode}): ${text}`, { cause: error }));
            }
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.on('socket', (raw) => {
        const socket = raw as TLSSocket;
        carrier = socket;
        const proceed = () => {
          this.socket = socket;
          try {
            const value = typeof body === 'function' ? body(exporterOf(socket)) : body;
            const payload = options.raw ?? (value === undefined ? '' : JSON.stringify(value));
            if (payload) {
              outgoing.setHeader('content-type', options.contentType ?? 'application/json');
              if (!options.chunked)
                outgoing.setHeader('content-length', Buffer.byteLength(payload));
            }
            if (options.chunked) {
              for (let at = 0; at < payload.length; at += 4096) {
                outgoing.write(payload.slice(at, at + 4096));
              }
              outgoing.end();
            } else {
              outgoing.end(payload);
            }
          } catch (error) {
            outgoing.destroy();
            reject(error);
          }
        };
        // A reused keep-alive socket finished its handshake long ago; a new one has not yet.
        if (socket.getPeerCertificate?.()?.raw) proceed();
        else socket.once('secureConnect', proceed);
      });
    });
  }

  /** The TLS exporter value (base64url) of the connection's current socket. */
  binding(): string {
    if (!this.socket) throw new Error('the connection has not been opened yet');
    return exporterOf(this.socket);
  }

  close(): void {
    this.agent.destroy();
  }
}

function exporterOf(socket: TLSSocket): string {
  return socket
    .exportKeyingMaterial(TLS_BINDING_LENGTH, TLS_BINDING_LABEL, NO_CONTEXT)
    .toString('base64url');
}
