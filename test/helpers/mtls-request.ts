import { request as httpsRequest, type RequestOptions } from 'node:https';

/** A node's certificate and key, PEM, as a caller presents them. */
export interface Credentials {
  certPem: string;
  keyPem: string;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

export interface SendOptions {
  method?: 'GET' | 'POST';
  raw?: string;
  contentType?: string;
  chunked?: boolean;
  headers?: Record<string, string>;
}

/**
 * One request to a daemon on 127.0.0.1 on its own mutual-TLS connection, presenting `who`'s
 * certificate, with exactly the body a test wants (raw, chunked, of another media type).
 */
export function send(
  who: Credentials,
  port: number,
  path: string,
  body?: unknown,
  options: SendOptions = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = options.raw ?? (body === undefined ? '' : JSON.stringify(body));
    const headers: Record<string, string | number> = { ...options.headers };
    if (payload) {
      headers['content-type'] = options.contentType ?? 'application/json';
      if (!options.chunked) headers['content-length'] = Buffer.byteLength(payload);
    }
    const requestOptions: RequestOptions = {
      host: '127.0.0.1',
      port,
      path,
      method: options.method ?? (body === undefined && !options.raw ? 'GET' : 'POST'),
      headers,
      cert: who.certPem,
      key: who.keyPem,
      rejectUnauthorized: false,
      agent: false,
    };
    const outgoing = httpsRequest(requestOptions, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: JSON.parse(text) as Record<string, unknown>,
          });
        } catch (error) {
          reject(new Error(`not JSON (${response.statusCode}): ${text}`, { cause: error }));
        }
      });
    });
    outgoing.on('error', reject);
    if (options.chunked) {
      for (let at = 0; at < payload.length; at += 512) outgoing.write(payload.slice(at, at + 512));
      outgoing.end();
    } else {
      outgoing.end(payload);
    }
  });
}
