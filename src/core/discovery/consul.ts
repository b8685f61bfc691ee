import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { UnavailableError, UsageError, errnoOf, messageOf } from '../errors.js';
import { abortError, printable } from './method-support.js';
import type { MethodRunner } from './scanner.js';
import {
  FINGERPRINT_PATTERN,
  endpointOf,
  isNodeId,
  isTrustDomain,
  type DiscoveredNode,
} from './types.js';

/**
 * Consul (DESIGN §4): the health endpoint's passing instances of service `sark`, and a node's own
 * registration with a health check.
 *
 * Service Meta keys a node registers (and a reader accepts):
 *   node_id       the node ID (also accepted as `node`, the TXT key)      required
 *   trust_domain  its trust domain (also `td`)                             optional
 *   fingerprint   SHA-256 of its certificate, hex (also `fp`; colons ok)   optional
 *   api           protocol version, `v2`                                   informational
 * Consul allows Meta keys of letters, digits, `-` and `_` only, and reserves the `consul-`
 * prefix, so the keys are plain words. A malformed optional value is dropped, as with TXT.
 *
 * The address is Service.Address, or Node.Address when that is empty (Consul's own rule: an
 * empty service address means "the node's"). The catalog carries no TTL; a sighting is given
 * CONSUL_TTL_SECONDS, a few health-check intervals.
 *
 * Where Consul is, as Consul's own tools read it: `--consul-url`, else CONSUL_HTTP_ADDR (host:port
 * or a URL; http unless `https://` or CONSUL_HTTP_SSL=true), else 127.0.0.1:8500, the local agent.
 * The token: CONSUL_HTTP_TOKEN_FILE (wins, as in Consul's Go client) or CONSUL_HTTP_TOKEN, sent as
 * X-Consul-Token. CONSUL_CACERT is the CA that verifies an https Consul.
 */

export const CONSUL_SERVICE_NAME = 'sark';
export const CONSUL_TTL_SECONDS = 30;
const DEFAULT_ADDRESS = '127.0.0.1:8500';
/**
 * A request's whole budget. Under the scan's default 3 s deadline, so that a Consul that hangs
 * is reported as such rather than silently cut off by the deadline.
 */
export const DEFAULT_CONSUL_TIMEOUT_MS = 2_000;
/** Far above any sane list of sark instances (each entry is ~1-2 KiB), far below memory trouble. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const MAX_ENTRIES = 10_000;

/** Where a Consul agent is, and how to talk to it. */
export interface ConsulTarget {
  /** Base URL, with a trailing slash: API paths are resolved against it. */
  baseUrl: URL;
  token: string | undefined;
  /** PEM CA bundle for an https agent (CONSUL_CACERT); the system's CAs otherwise. */
  ca: Buffer | undefined;
}

export interface ConsulTargetOptions {
  /** `--consul-url` (or a setting that stands for it); wins over the environment. */
  url?: string | undefined;
  /** A token given explicitly; wins over the environment. */
  token?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
}

/** Reads where Consul is and the token, as Consul's tools do (see the module comment). */
export function consulTarget(options: ConsulTargetOptions): ConsulTarget {
  const { env } = options;
  const given = nonEmpty(options.url) ?? nonEmpty(env.CONSUL_HTTP_ADDR) ?? DEFAULT_ADDRESS;
  const from = nonEmpty(options.url) ? '--consul-url' : 'CONSUL_HTTP_ADDR';
  const sslDefault = parseBool(env.CONSUL_HTTP_SSL) === true;
  const baseUrl = parseConsulAddress(given, sslDefault, from);

  let token = nonEmpty(options.token);
  if (token === undefined) {
    const tokenFile = nonEmpty(env.CONSUL_HTTP_TOKEN_FILE);
    if (tokenFile !== undefined) token = nonEmpty(readSetting(tokenFile, 'CONSUL_HTTP_TOKEN_FILE'));
    token ??= nonEmpty(env.CONSUL_HTTP_TOKEN);
  }
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(
      'BAD_CONSUL_TOKEN',
      'the Consul token has characters a header cannot carry',
      {
        hint: 'check CONSUL_HTTP_TOKEN (a token is printable ASCII, usually a UUID)',
      },
    );
  }
  const caFile = nonEmpty(env.CONSUL_CACERT);
  const ca =
    baseUrl.protocol === 'https:' && caFile !== undefined
      ? Buffer.from(readSetting(caFile, 'CONSUL_CACERT'), 'utf8')
      : undefined;
  return { baseUrl, token, ca };
}

/**
 * CONSUL_HTTP_ADDR's forms: `host:port`, `http://host:port`, `https://host:port`; a path is kept
 * as a prefix (a Consul behind a reverse proxy). `unix://` sockets are not supported here.
 */
export function parseConsulAddress(value: string, https: boolean, from: string): URL {
  const text = value.trim();
  const bad = (why: string) =>
    new UsageError('BAD_CONSUL_URL', `invalid Consul address "${value}" (${from}): ${why}`, {
      hint: 'give host:port or a URL such as http://127.0.0.1:8500',
    });
  if (/^unix:/i.test(text)) throw bad('unix sockets are not supported');
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text);
  let url: URL;
  try {
    url = new URL(hasScheme ? text : `${https ? 'https' : 'http'}://${text}`);
  } catch {
    throw bad('not a host:port or URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('only http and https');
  if (url.username !== '' || url.password !== '') throw bad('credentials belong in the token');
  if (url.search !== '' || url.hash !== '') throw bad('no query or fragment');
  if (url.hostname === '') throw bad('no host');
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url;
}

/** One Consul HTTP exchange, bounded in time and size. */
interface ConsulResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface ConsulRequestOptions {
  /** A whole request's budget, connection to last byte. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** undici dispatcher to send through (tests); an Agent built for the target otherwise. */
  dispatcher?: Dispatcher | undefined;
}

async function consulRequest(
  target: ConsulTarget,
  method: 'GET' | 'PUT',
  path: string,
  options: ConsulRequestOptions & { body?: string },
): Promise<ConsulResponse> {
  const url = new URL(path, target.baseUrl);
  const where = `Consul at ${consulWhere(target.baseUrl)}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONSUL_TIMEOUT_MS;
  // Our own timer bounds the whole exchange: undici's headersTimeout/bodyTimeout bound only the
  // wait for headers and the gaps between body chunks, which a slow trickle never exceeds.
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(), timeoutMs);
  const onOuterAbort = () => budget.abort();
  // An already aborted signal fires no more 'abort' events: abort the budget now instead.
  if (options.signal?.aborted) budget.abort();
  else options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const owned =
    options.dispatcher === undefined && target.ca !== undefined
      ? new Agent({ connect: { ca: target.ca } })
      : undefined;
  try {
    if (options.signal?.aborted) throw abortError(options.signal);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (target.token !== undefined) headers['x-consul-token'] = target.token;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await request(url, {
      method,
      headers,
      body: options.body ?? null,
      signal: budget.signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      dispatcher: options.dispatcher ?? owned,
    });
    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_RESPONSE_BYTES) {
      response.body.destroy();
      throw tooLarge(where);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        response.body.destroy();
        throw tooLarge(where);
      }
      chunks.push(chunk);
    }
    return {
      status: response.statusCode,
      headers: response.headers,
      body: Buffer.concat(chunks),
    };
  } catch (error) {
    if (options.signal?.aborted) throw abortError(options.signal);
    if (error instanceof UsageError || error instanceof UnavailableError) throw error;
    if (budget.signal.aborted || isTimeout(error)) {
      throw new UnavailableError(
        'CONSUL_TIMEOUT',
        `no answer from ${where} within ${timeoutMs} ms (${method} ${url.pathname})`,
        { hint: 'check that the Consul agent is up and healthy', cause: error },
      );
    }
    throw new UnavailableError(
      'CONSUL_UNREACHABLE',
      `cannot reach ${where} (${errorCode(error)})`,
      {
        hint: 'set CONSUL_HTTP_ADDR or pass --consul-url with the address of a Consul agent',
        cause: error,
      },
    );
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onOuterAbort);
    if (owned) void owned.close();
  }
}

/** A non-2xx answer, as an operator can act on it. */
function httpError(
  target: ConsulTarget,
  response: ConsulResponse,
  action: string,
): UnavailableError {
  const where = `Consul at ${consulWhere(target.baseUrl)}`;
  const said = excerpt(response.body);
  const detail = said === '' ? '' : `: ${said}`;
  if (response.status === 403 || response.status === 401) {
    return new UnavailableError(
      'CONSUL_FORBIDDEN',
      `${where} refused to ${action} (HTTP ${response.status}${detail})`,
      {
        hint:
          target.token === undefined
            ? 'set CONSUL_HTTP_TOKEN to an ACL token allowed to do this'
            : `check the ACL token's policy (service:${action.startsWith('list') ? 'read' : 'write'} on "${CONSUL_SERVICE_NAME}")`,
      },
    );
  }
  return new UnavailableError(
    'CONSUL_HTTP_ERROR',
    `${where} failed to ${action} (HTTP ${response.status}${detail})`,
    { hint: 'check the Consul agent and its logs' },
  );
}

/** What the health endpoint answered: the entries, still unchecked, and its blocking index. */
export interface HealthAnswer {
  entries: unknown[];
  /** X-Consul-Index: pass it back as `index` to wait for the next change. */
  index: string | null;
  /** Consul hid entries the token may not read (X-Consul-Results-Filtered-By-ACLs). */
  filteredByAcls: boolean;
}

export interface HealthQuery extends ConsulRequestOptions {
  service?: string;
  /** A blocking query: answer when the result changes after this index, or after `waitMs`. */
  index?: string | undefined;
  waitMs?: number | undefined;
}

/** GET /v1/health/service/<service>?passing=1, optionally as a blocking query. */
export async function queryHealthService(
  target: ConsulTarget,
  query: HealthQuery = {},
): Promise<HealthAnswer> {
  const service = query.service ?? CONSUL_SERVICE_NAME;
  const params = new URLSearchParams({ passing: '1' });
  let timeoutMs = query.timeoutMs ?? DEFAULT_CONSUL_TIMEOUT_MS;
  if (query.index !== undefined) {
    const waitMs = query.waitMs ?? 60_000;
    params.set('index', query.index);
    params.set('wait', `${Math.max(1, Math.round(waitMs / 1000))}s`);
    // Consul adds up to wait/16 of jitter before answering an unchanged blocking query.
    timeoutMs += waitMs + Math.ceil(waitMs / 16);
  }
  const response = await consulRequest(
    target,
    'GET',
    `v1/health/service/${encodeURIComponent(service)}?${params.toString()}`,
    { ...query, timeoutMs },
  );
  if (response.status !== 200) throw httpError(target, response, `list service "${service}"`);
  const where = `Consul at ${consulWhere(target.baseUrl)}`;
  let document: unknown;
  try {
    document = JSON.parse(response.body.toString('utf8'));
  } catch {
    throw new UnavailableError(
      'CONSUL_BAD_RESPONSE',
      `${where} answered with something that is not JSON (${excerpt(response.body) || 'empty'})`,
      { hint: 'check that --consul-url or CONSUL_HTTP_ADDR names a Consul agent' },
    );
  }
  if (!Array.isArray(document)) {
    throw new UnavailableError(
      'CONSUL_BAD_RESPONSE',
      `${where} answered with JSON that is not a list of service entries`,
      { hint: 'check that --consul-url or CONSUL_HTTP_ADDR names a Consul agent' },
    );
  }
  const index = headerValue(response.headers['x-consul-index']);
  return {
    entries: document.slice(0, MAX_ENTRIES),
    index: index !== undefined && /^\d{1,20}$/.test(index) ? index : null,
    filteredByAcls: headerValue(response.headers['x-consul-results-filtered-by-acls']) === 'true',
  };
}

/** The parts of a health entry this module reads; the rest of Consul's shape passes untouched. */
const HealthEntry = z.object({
  Node: z.object({
    Node: z.string().max(256).optional(),
    Address: z.string().max(256),
  }),
  Service: z.object({
    ID: z.string().max(256).optional(),
    Service: z.string().max(256),
    Address: z.string().max(256).nullish(),
    Port: z.number().int().min(1).max(65535),
    Meta: z.record(z.string().max(128), z.string().max(512)).nullish(),
  }),
  Checks: z
    .array(z.object({ Status: z.string().max(32), CheckID: z.string().max(256).optional() }))
    .max(1024)
    .nullish(),
});

/**
 * One health entry as a sighting, or why it is not one. Never half a node: a missing node ID, a
 * bad address or port, or a check that is not passing, and the entry is not used.
 */
export function nodeFromEntry(
  entry: unknown,
): { node: DiscoveredNode; ignored: string[] } | { skip: string } {
  const parsed = HealthEntry.safeParse(entry);
  const label = describeEntry(entry);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    return { skip: `${label}: malformed entry${at}: ${issue?.message ?? 'invalid'}` };
  }
  const { Node, Service, Checks } = parsed.data;
  // The query asked for passing entries only; a Consul (or proxy) that ignored that is not
  // trusted to have done it.
  const failing = (Checks ?? []).find((check) => check.Status !== 'passing');
  if (failing) return { skip: `${label}: check ${failing.CheckID ?? '?'} is ${failing.Status}` };

  const meta = Service.Meta ?? {};
  const nodeId = meta.node_id ?? meta.node;
  if (nodeId === undefined || !isNodeId(nodeId)) {
    return { skip: `${label}: no valid node_id in Service.Meta` };
  }
  const trustDomain = meta.trust_domain ?? meta.td;
  const fingerprint = (meta.fingerprint ?? meta.fp)?.toLowerCase().replace(/:/g, '');
  const host =
    Service.Address !== undefined && Service.Address !== null && Service.Address !== ''
      ? Service.Address
      : Node.Address;
  if (!isHost(host)) return { skip: `${label}: no usable address ("${host}")` };
  const node: DiscoveredNode = {
    nodeId,
    endpoint: endpointOf(host, Service.Port),
    trustDomain: trustDomain !== undefined && isTrustDomain(trustDomain) ? trustDomain : null,
    fingerprint:
      fingerprint !== undefined && FINGERPRINT_PATTERN.test(fingerprint) ? fingerprint : null,
    source: 'consul',
    ttlSeconds: CONSUL_TTL_SECONDS,
  };
  // Kept without a malformed trust domain or fingerprint; said, so that a typo is found.
  const ignored: string[] = [];
  if (trustDomain !== undefined && node.trustDomain === null) {
    ignored.push(`${label}: Meta trust domain "${cut(trustDomain)}" is not a trust domain`);
  }
  if (fingerprint !== undefined && node.fingerprint === null) {
    ignored.push(
      `${label}: Meta fingerprint "${cut(meta.fingerprint ?? meta.fp ?? '')}" is not a SHA-256 fingerprint`,
    );
  }
  return { node, ignored };
}

export interface ConsulRunnerOptions extends ConsulTargetOptions, ConsulRequestOptions {}

/**
 * The discovery method: one (non-blocking) health query. The target is read when the runner is
 * made, so that a malformed address or token is a usage error before the scan starts.
 */
export function consulRunner(options: ConsulRunnerOptions): MethodRunner {
  const target = consulTarget(options);
  return {
    method: 'consul',
    async run(context, found) {
      const answer = await queryHealthService(target, {
        timeoutMs: options.timeoutMs,
        dispatcher: options.dispatcher,
        signal: context.signal,
      });
      if (answer.filteredByAcls) {
        context.notice(
          target.token === undefined
            ? 'Consul hid some entries from the anonymous token: set CONSUL_HTTP_TOKEN'
            : 'Consul hid some entries the token may not read',
        );
      }
      const seen = new Set<string>();
      for (const entry of answer.entries) {
        const outcome = nodeFromEntry(entry);
        if ('skip' in outcome) {
          // Entries are untrusted: their text may hold terminal escapes.
          context.skipped(printable(outcome.skip));
          continue;
        }
        // Two registrations claiming one node ID: the first (Consul sorts by node name) is used.
        if (seen.has(outcome.node.nodeId)) {
          context.skipped(
            `${describeEntry(entry)}: another entry already gave node ${outcome.node.nodeId}`,
          );
          continue;
        }
        for (const part of outcome.ignored) {
          context.skipped(printable(`${part}; the node is kept without it`));
        }
        seen.add(outcome.node.nodeId);
        found(outcome.node);
      }
    },
  };
}

export interface ConsulRegistration {
  nodeId: string;
  trustDomain: string;
  fingerprint: string;
  /** The address peers should use; '' lets Consul use the agent's node address. */
  address: string;
  port: number;
  /**
   * host:port the agent's TCP check connects to; by default address:port, or 127.0.0.1:port when
   * the address is '' (the agent then runs beside the node).
   */
  checkTarget?: string | undefined;
  /** Go durations, as Consul takes them. */
  checkInterval?: string | undefined;
  checkTimeout?: string | undefined;
  /** A node that died without deregistering is removed after its check was critical this long. */
  deregisterAfter?: string | undefined;
}

export interface ConsulServiceRegistration {
  serviceId: string;
  /** The request body sent to the agent (for logs and tests). */
  definition: Record<string, unknown>;
  /** PUT /v1/agent/service/deregister/<id>; an already-unknown service is not an error. */
  deregister(options?: ConsulRequestOptions): Promise<void>;
}

/** The service ID a node registers under: unique per node on an agent, stable across restarts. */
export function consulServiceId(nodeId: string): string {
  return `sark-${nodeId}`;
}

/**
 * The agent service definition of a node. The health check is a TCP check: the daemon asks every
 * client for a certificate and answers its API (health included) only to a validated chain, so an
 * HTTP check would fail without a client certificate, and TLSSkipVerify would only skip checking
 * the daemon's certificate, not supply one. A TCP connect shows the daemon listens, which is what
 * an agent can know without being a federation member.
 */
export function serviceDefinition(registration: ConsulRegistration): Record<string, unknown> {
  const serviceId = consulServiceId(registration.nodeId);
  const checkTarget =
    registration.checkTarget ??
    hostPort(registration.address === '' ? '127.0.0.1' : registration.address, registration.port);
  return {
    ID: serviceId,
    Name: CONSUL_SERVICE_NAME,
    Tags: ['sark-fed', 'api-v2'],
    Address: registration.address,
    Port: registration.port,
    Meta: {
      node_id: registration.nodeId,
      trust_domain: registration.trustDomain,
      fingerprint: registration.fingerprint,
      api: 'v2',
    },
    Check: {
      CheckID: `${serviceId}:tcp`,
      Name: 'sark-fed listens',
      TCP: checkTarget,
      Interval: registration.checkInterval ?? '10s',
      Timeout: registration.checkTimeout ?? '3s',
      DeregisterCriticalServiceAfter: registration.deregisterAfter ?? '10m',
    },
  };
}

/**
 * Registers the node with the Consul agent (PUT /v1/agent/service/register, replacing any checks
 * of an earlier registration under the same ID).
 */
export async function registerConsul(
  target: ConsulTarget,
  registration: ConsulRegistration,
  options: ConsulRequestOptions = {},
): Promise<ConsulServiceRegistration> {
  const definition = serviceDefinition(registration);
  const serviceId = definition.ID as string;
  const response = await consulRequest(
    target,
    'PUT',
    'v1/agent/service/register?replace-existing-checks=true',
    { ...options, body: JSON.stringify(definition) },
  );
  if (response.status !== 200) throw httpError(target, response, `register ${serviceId}`);
  return {
    serviceId,
    definition,
    async deregister(deregisterOptions = {}) {
      const answer = await consulRequest(
        target,
        'PUT',
        `v1/agent/service/deregister/${encodeURIComponent(serviceId)}`,
        { dispatcher: options.dispatcher, ...deregisterOptions },
      );
      // 404: the agent no longer knows it (restarted without persistence): nothing to undo.
      if (answer.status !== 200 && answer.status !== 404) {
        throw httpError(target, answer, `deregister ${serviceId}`);
      }
    },
  };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An IP address or a DNS name; nothing with spaces, slashes, schemes or ports in it. */
function isHost(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  if (isIP(value) !== 0) return true;
  return /^(?=[A-Za-z0-9])[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*\.?$/.test(value);
}

function describeEntry(entry: unknown): string {
  const record = (value: unknown): Record<string, unknown> =>
    typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const service = record(record(entry).Service);
  const node = record(record(entry).Node);
  const text = (value: unknown) =>
    typeof value === 'string' ? value.slice(0, 80).replace(/[^\x20-\x7e]/g, '?') : '?';
  return `service ${text(service.ID)} on node ${text(node.Node)}`;
}

/** The first line of a body, printable and short, for error messages. */
function excerpt(body: Buffer): string {
  const line = body.subarray(0, 200).toString('utf8').split('\n')[0] ?? '';
  return line.replace(/[^\x20-\x7e]/g, '?').trim();
}

function cut(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function tooLarge(where: string): UnavailableError {
  return new UnavailableError(
    'CONSUL_RESPONSE_TOO_LARGE',
    `${where} answered with more than ${MAX_RESPONSE_BYTES / (1024 * 1024)} MiB`,
    { hint: 'check that --consul-url or CONSUL_HTTP_ADDR names a Consul agent' },
  );
}

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    (error instanceof Error && error.name === 'TimeoutError')
  );
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause === undefined ? messageOf(error) : errnoOf(cause);
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** Go's strconv.ParseBool, which Consul uses for CONSUL_HTTP_SSL. */
function parseBool(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

function readSetting(path: string, variable: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(
      'CONSUL_SETTING_UNREADABLE',
      `cannot read ${variable} ${path} (${errnoOf(error)})`,
      {
        hint: `check ${variable}`,
        cause: error,
      },
    );
  }
}

/** The agent as the operator gave it, path prefix included (a proxy's), without the last slash. */
function consulWhere(baseUrl: URL): string {
  return baseUrl.href.replace(/\/$/, '');
}
