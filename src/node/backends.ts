import { Pool } from 'undici';
import type { BackendSpec, HttpBackendSpec } from './resources.js';
import type { UpstreamTls } from './upstream-tls.js';

/**
 * Runs a capability's backend: `echo` answers its arguments; `http` calls the upstream with
 * undici, over a keep-alive pool per origin, with every timeout set from the capability's own.
 */

export type BackendOutcome =
  | { ok: true; result: unknown }
  | {
      ok: false;
      kind: 'timeout' | 'error' | 'bad-arguments';
      /** Told to the caller: never the upstream's address or its own words. */
      message: string;
      /** For this node's log only. */
      detail?: string;
    };

/** Who asked, passed to an HTTP upstream as headers (it sees neither the TLS peer nor the caller). */
export interface CallMetadata {
  correlationId: string;
  principal: string;
  sourceNode: string;
  sourceSpiffeId: string;
  resource: string;
  capability: string;
  traceparent?: string | undefined;
}

/** An upstream answer larger than this is refused rather than relayed. */
export const MAX_UPSTREAM_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Idle upstream connections are kept this long (explicit: undici's default is 4 s anyway). */
const UPSTREAM_KEEP_ALIVE_MS = 4_000;
const UPSTREAM_CONNECTIONS_PER_ORIGIN = 64;

export class Backends {
  private readonly pools = new Map<string, Pool>();

  async run(
    backend: BackendSpec,
    args: unknown,
    meta: CallMetadata,
    /** The backend's `tls`, read when the resources file loaded (upstream-tls.ts). */
    tls?: UpstreamTls,
  ): Promise<BackendOutcome> {
    if (backend.type === 'echo') return { ok: true, result: args };
    return this.callHttp(backend, args, meta, tls);
  }

  /**
   * Closes the pools no backend of the current files uses any more (a reload changed a URL, a
   * timeout or the TLS files): calls still running on them finish first.
   */
  retainOnly(
    used: ReadonlyArray<{ backend: HttpBackendSpec; tls: UpstreamTls | undefined }>,
  ): void {
    const keep = new Set(
      used.map(({ backend, tls }) => poolKey(new URL(backend.url).origin, backend.timeout, tls)),
    );
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      void pool.close().catch(() => undefined);
    }
  }

  /** Closes every upstream pool; calls still running are aborted. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => undefined)));
  }

  private async callHttp(
    backend: HttpBackendSpec,
    args: unknown,
    meta: CallMetadata,
    tls: UpstreamTls | undefined,
  ): Promise<BackendOutcome> {
    const url = new URL(backend.url);
    const sendsBody = backend.method !== 'GET' && backend.method !== 'DELETE';
    if (!sendsBody) {
      const query = queryOf(args);
      if (query === undefined) {
        return {
          ok: false,
          kind: 'bad-arguments',
          message: `this capability calls its upstream with ${backend.method}: its arguments must be null or an object of strings, numbers and booleans`,
        };
      }
      for (const [name, value] of query) url.searchParams.append(name, value);
    }
    const headers: Record<string, string> = {
      ...backend.headers,
      accept: 'application/json',
      'x-sark-correlation-id': meta.correlationId,
      'x-sark-principal': headerSafe(meta.principal),
      'x-sark-source-node': meta.sourceNode,
      'x-sark-source-spiffe-id': meta.sourceSpiffeId,
      'x-sark-resource': meta.resource,
      'x-sark-capability': meta.capability,
      ...(meta.traceparent ? { traceparent: meta.traceparent } : {}),
      ...(sendsBody ? { 'content-type': 'application/json' } : {}),
    };
    // One deadline over the whole exchange; the per-phase timeouts below only make sure that no
    // phase ever falls back to undici's 300 s defaults.
    const deadline = AbortSignal.timeout(backend.timeout);
    try {
      const response = await this.pool(url.origin, backend.timeout, tls).request({
        path: `${url.pathname}${url.search}`,
        method: backend.method,
        headers,
        body: sendsBody ? JSON.stringify(args) : null,
        signal: deadline,
        headersTimeout: backend.timeout,
        bodyTimeout: backend.timeout,
      });
      const body = await readLimited(response.body, MAX_UPSTREAM_RESPONSE_BYTES);
      if (body === undefined) {
        return {
          ok: false,
          kind: 'error',
          message: `the backend answered more than ${MAX_UPSTREAM_RESPONSE_BYTES} bytes`,
        };
      }
      if (response.statusCode < 200 || response.statusCode > 299) {
        return {
          ok: false,
          kind: 'error',
          message: `the backend answered HTTP ${response.statusCode}`,
        };
      }
      return resultOf(body, String(response.headers['content-type'] ?? ''));
    } catch (error) {
      if (deadline.aborted || isTimeout(error)) {
        return {
          ok: false,
          kind: 'timeout',
          message: `the backend did not answer within ${backend.timeout} ms`,
        };
      }
      return {
        ok: false,
        kind: 'error',
        message: 'the backend could not be reached or failed',
        detail: describe(error),
      };
    }
  }

  private pool(origin: string, timeoutMs: number, tls: UpstreamTls | undefined): Pool {
    const key = poolKey(origin, timeoutMs, tls);
    let pool = this.pools.get(key);
    if (!pool) {
      const { id: _id, ...material } = tls ?? { id: '' };
      pool = new Pool(origin, {
        connections: UPSTREAM_CONNECTIONS_PER_ORIGIN,
        // Certificates are always checked: there is no way to turn that off from the file.
        connect: { timeout: timeoutMs, ...material, rejectUnauthorized: true },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        keepAliveTimeout: UPSTREAM_KEEP_ALIVE_MS,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }
}

function poolKey(origin: string, timeoutMs: number, tls: UpstreamTls | undefined): string {
  return `${origin} ${timeoutMs} ${tls?.id ?? 'system'}`;
}

/**
 * A principal is any string the calling node chose; header values may only be printable ASCII,
 * so anything else is sent percent-encoded (UTF-8) rather than failing the call.
 */
function headerSafe(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}

/** Arguments of a GET or DELETE call as query parameters, or undefined when they cannot be. */
function queryOf(args: unknown): Array<[string, string]> | undefined {
  if (args === null || args === undefined) return [];
  if (typeof args !== 'object' || Array.isArray(args)) return undefined;
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(args as Record<string, unknown>)) {
    const values = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (typeof item !== 'string' && typeof item !== 'number' && typeof item !== 'boolean') {
        return undefined;
      }
      pairs.push([name, String(item)]);
    }
  }
  return pairs;
}

async function readLimited(
  body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown },
  limit: number,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** JSON upstreams answer JSON values; anything else is relayed as a string. */
function resultOf(body: Buffer, contentType: string): BackendOutcome {
  if (body.length === 0) return { ok: true, result: null };
  const text = body.toString('utf8');
  if (!/^application\/(?:[\w.+-]*\+)?json\b/i.test(contentType.trim())) {
    return { ok: true, result: text };
  }
  try {
    return { ok: true, result: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, kind: 'error', message: 'the backend answered invalid JSON' };
  }
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  return (typeof code === 'string' && TIMEOUT_CODES.has(code)) || name === 'TimeoutError';
}

/** An upstream failure in a few words: its code when it has one (ECONNREFUSED), else its message. */
function describe(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${code} ${message}` : message;
}
