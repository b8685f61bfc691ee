import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ZodType } from 'zod';
import { CORRELATION_HEADER } from '../core/protocol/constants.js';

/** An error answered to a peer as `{ "error": { code, message, correlation_id } }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Reads a JSON body, refusing it by its declared length before reading, and by its real length
 * while reading, so an oversized body is never buffered whole.
 */
export async function readJsonBody(request: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const body = await readBody(request, limit);
  if (body.length === 0) return {};
  const contentType = request.headers['content-type'] ?? '';
  if (!contentType.startsWith('application/json')) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'MALFORMED_JSON', 'the body is not valid JSON');
  }
}

/** A JSON body checked against its schema: 400 INVALID_BODY naming the first bad field. */
export async function parseJsonBody<T>(
  request: IncomingMessage,
  schema: ZodType<T>,
  limit: number,
): Promise<T> {
  const parsed = schema.safeParse(await readJsonBody(request, limit));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new HttpError(
      400,
      'INVALID_BODY',
      `invalid request body${where}: ${issue?.message ?? 'malformed'}`,
    );
  }
  return parsed.data;
}

/**
 * The body's bytes, by 'data' events rather than `for await`: the async iterator costs several
 * promises and an end-of-stream watcher per request on the daemon's hot path. It stops reading
 * when the body runs over the limit, and fails on a premature close.
 */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: Error | undefined) => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', finish);
      request.off('close', onClose);
      if (error) reject(error);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        finish(tooLarge(limit));
        // Read no further; the answer (413) closes the connection rather than draining it.
        request.pause();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onClose = () => finish(new Error('the request closed before its body ended'));
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', finish);
    request.on('close', onClose);
  });
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (response.headersSent || response.destroyed) return;
  const payload = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...headers,
  });
  response.end(payload);
}

export function sendError(response: ServerResponse, error: HttpError, correlationId: string): void {
  sendJson(
    response,
    error.status,
    { error: { code: error.code, message: error.message, correlation_id: correlationId } },
    { [CORRELATION_HEADER]: correlationId, ...error.headers },
  );
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, 'BODY_TOO_LARGE', `the body exceeds ${limit} bytes`);
}
