import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

/**
 * A STAND-IN for a Consul agent, not Consul: no Consul binary can be had here. It answers the
 * shapes of Consul's documented HTTP API for the few endpoints sark-fed uses, modelled on
 * HashiCorp's own API double (@hashicorp/consul-api-double, `v1/health/service/_`):
 *
 * - GET /v1/health/service/:name — `[{Node, Service, Checks}]`, `passing` filter (Go ParseBool
 *   of the value, a bare `?passing` meaning true), `X-Consul-Index`, `X-Consul-KnownLeader`,
 *   `X-Consul-LastContact`, and blocking queries (`?index=N&wait=10s`: held until the index
 *   moves past N or the wait ends).
 * - PUT /v1/agent/service/register — an agent service definition with one `Check`; a TCP check
 *   is really run (connect to its host:port, loopback only), others stay critical.
 * - PUT /v1/agent/service/deregister/:id — 404 "Unknown service ID" when unknown.
 * - ACLs when `token` is set: X-Consul-Token (or `Authorization: Bearer`); an unknown token is
 *   403 "ACL not found"; no token is anonymous: health lists come back empty with
 *   `X-Consul-Results-Filtered-By-ACLs: true`, writes are 403 "Permission denied".
 *
 * Tests add instances directly (other agents' registrations) and can make it misbehave: answer
 * garbage, fail with 500, or hang without answering.
 */

export type CheckStatus = 'passing' | 'warning' | 'critical' | 'maintenance';

export interface StandinInstance {
  node: string;
  nodeAddress: string;
  serviceId: string;
  service?: string;
  address?: string;
  port: number;
  meta?: Record<string, string>;
  tags?: string[];
  /** Service check statuses (the node's serfHealth check is always passing). */
  checks?: CheckStatus[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export type StandinMode = 'normal' | 'garbage' | 'error500' | 'hang' | 'wrong-shape' | 'huge';

export interface ConsulStandin {
  url: string;
  /** host:port, the CONSUL_HTTP_ADDR form. */
  address: string;
  requests: RecordedRequest[];
  mode: StandinMode;
  /** Registrations made through the agent API, by service ID (the definition as sent). */
  registered: Map<string, Record<string, unknown>>;
  /** Entries appended as they are to every health list: what a broken or hostile Consul sends. */
  rawEntries: unknown[];
  add(instance: StandinInstance): void;
  setChecks(serviceId: string, checks: CheckStatus[]): void;
  /** The raft-like index X-Consul-Index reports; every change moves it. */
  index(): number;
  /** Resolves when a request matching `match` has arrived (bounded). */
  waitForRequest(
    match: (request: RecordedRequest) => boolean,
    timeoutMs?: number,
  ): Promise<RecordedRequest>;
  close(): Promise<void>;
}

const AGENT_NODE = 'standin-agent';
const AGENT_ADDRESS = '127.0.0.1';
const MAX_WAIT_MS = 10 * 60_000;

interface StoredService {
  instance: StandinInstance;
  checks: Array<{ id: string; name: string; type: string; status: CheckStatus; output: string }>;
  createIndex: number;
  modifyIndex: number;
  timers: NodeJS.Timeout[];
}

export async function startConsulStandin(
  options: { token?: string; mode?: StandinMode } = {},
): Promise<ConsulStandin> {
  const services = new Map<string, StoredService>();
  const requests: RecordedRequest[] = [];
  const requestWaiters = new Set<(request: RecordedRequest) => void>();
  const registered = new Map<string, Record<string, unknown>>();
  let index = 10;
  const changeWaiters = new Set<() => void>();
  const hanging = new Set<ServerResponse>();

  const bump = () => {
    index += 1;
    for (const waiter of [...changeWaiters]) waiter();
  };

  const store = (instance: StandinInstance, checkTypes?: string[]) => {
    const previous = services.get(instance.serviceId);
    for (const timer of previous?.timers ?? []) clearInterval(timer);
    const statuses = instance.checks ?? ['passing'];
    services.set(instance.serviceId, {
      instance,
      checks: statuses.map((status, position) => ({
        id: `service:${instance.serviceId}${statuses.length > 1 ? `:${position + 1}` : ''}`,
        name: `Service '${instance.service ?? 'sark'}' check`,
        type: checkTypes?.[position] ?? 'ttl',
        status,
        output: '',
      })),
      createIndex: previous?.createIndex ?? index + 1,
      modifyIndex: index + 1,
      timers: [],
    });
    bump();
  };

  const authorize = (
    request: IncomingMessage,
  ): 'ok' | 'anonymous' | { status: number; text: string } => {
    if (options.token === undefined) return 'ok';
    const header = request.headers['x-consul-token'];
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    const given = (Array.isArray(header) ? header[0] : header) ?? bearer;
    if (given === undefined || given === '') return 'anonymous';
    if (given !== options.token) return { status: 403, text: 'ACL not found' };
    return 'ok';
  };

  const healthEntries = (name: string, passingOnly: boolean) =>
    [...services.values()]
      .filter((stored) => (stored.instance.service ?? 'sark') === name)
      .filter(
        (stored) => !passingOnly || stored.checks.every((check) => check.status === 'passing'),
      )
      .sort((a, b) => a.instance.node.localeCompare(b.instance.node))
      .map((stored) => entryOf(stored));

  const entryOf = (stored: StoredService) => {
    const { instance } = stored;
    return {
      Node: {
        ID: '7037e928-d9e8-3b58-4712-6f5ded209002',
        Node: instance.node,
        Address: instance.nodeAddress,
        Datacenter: 'dc1',
        TaggedAddresses: { lan: instance.nodeAddress, wan: instance.nodeAddress },
        Meta: { 'consul-network-segment': '' },
        CreateIndex: 5,
        ModifyIndex: 6,
      },
      Service: {
        ID: instance.serviceId,
        Service: instance.service ?? 'sark',
        Tags: instance.tags ?? [],
        Address: instance.address ?? '',
        Meta: instance.meta ?? {},
        Port: instance.port,
        Weights: { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
        Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
        Connect: {},
        CreateIndex: stored.createIndex,
        ModifyIndex: stored.modifyIndex,
      },
      Checks: [
        {
          Node: instance.node,
          CheckID: 'serfHealth',
          Name: 'Serf Health Status',
          Status: 'passing',
          Notes: '',
          Output: 'Agent alive and reachable',
          ServiceID: '',
          ServiceName: '',
          ServiceTags: [],
          Type: '',
          Definition: {},
          CreateIndex: 5,
          ModifyIndex: 5,
        },
        ...stored.checks.map((check) => ({
          Node: instance.node,
          CheckID: check.id,
          Name: check.name,
          Status: check.status,
          Notes: '',
          Output: check.output,
          ServiceID: instance.serviceId,
          ServiceName: instance.service ?? 'sark',
          ServiceTags: instance.tags ?? [],
          Type: check.type,
          Definition: {},
          CreateIndex: stored.createIndex,
          ModifyIndex: stored.modifyIndex,
        })),
      ],
    };
  };

  const send = (
    response: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    const text =
      typeof body === 'string' ? body : body === undefined ? '' : `${JSON.stringify(body)}\n`;
    response.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    response.end(text);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const url = new URL(request.url ?? '/', 'http://standin');
    const recorded: RecordedRequest = {
      method: request.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: request.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    requests.push(recorded);
    for (const waiter of requestWaiters) waiter(recorded);

    switch (standin.mode) {
      case 'hang':
        // Headers never come; the client's timeout must end this.
        hanging.add(response);
        return;
      case 'garbage':
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('[{"Node": {"Node": "x", "Address": "1.2.3.4"}, "Service": <html>oops');
        return;
      case 'error500':
        send(response, 500, 'rpc error making call: No cluster leader');
        return;
      case 'huge': {
        // 9 MiB of a JSON list, streamed without a length: the client must stop reading.
        response.writeHead(200, { 'content-type': 'application/json' });
        const block = Buffer.alloc(1024 * 1024, ' ');
        response.write('[');
        for (let count = 0; count < 9 && !response.destroyed; count++) {
          if (response.write(block)) continue;
          await new Promise((resolve) => {
            response.once('drain', resolve);
            response.once('close', resolve);
          });
        }
        response.end(']');
        return;
      }
      case 'wrong-shape':
        send(response, 200, { Node: 'not a list' }, { 'x-consul-index': String(index) });
        return;
      default:
        break;
    }

    const access = authorize(request);
    if (typeof access === 'object') {
      send(response, access.status, access.text);
      return;
    }

    const health = /^\/v1\/health\/service\/([^/]+)$/.exec(url.pathname);
    if (health) {
      if (request.method !== 'GET') {
        send(response, 405, 'method not allowed');
        return;
      }
      const passingParam = url.searchParams.get('passing');
      const passing = passingParam === null ? false : passingParam === '' || goBool(passingParam);
      if (passing === undefined) {
        send(response, 400, 'Invalid value for ?passing');
        return;
      }
      const wanted = url.searchParams.get('index');
      if (wanted !== null) {
        if (!/^\d+$/.test(wanted)) {
          send(response, 400, 'Invalid index');
          return;
        }
        const waitMs = Math.min(parseGoDuration(url.searchParams.get('wait') ?? '5m'), MAX_WAIT_MS);
        if (Number.isNaN(waitMs)) {
          send(response, 400, 'Invalid wait time');
          return;
        }
        if (Number(wanted) >= index) await waitForChange(waitMs, response);
      }
      if (response.destroyed) return;
      const name = decodeURIComponent(health[1] as string);
      const headers: Record<string, string> = {
        'x-consul-index': String(index),
        'x-consul-knownleader': 'true',
        'x-consul-lastcontact': '0',
        'x-consul-effective-consistency': 'leader',
      };
      if (access === 'anonymous') {
        headers['x-consul-results-filtered-by-acls'] = 'true';
        send(response, 200, [], headers);
        return;
      }
      send(response, 200, [...healthEntries(name, passing), ...standin.rawEntries], headers);
      return;
    }

    if (url.pathname === '/v1/agent/service/register') {
      if (request.method !== 'PUT') {
        send(response, 405, 'method not allowed');
        return;
      }
      if (access === 'anonymous') {
        send(response, 403, `Permission denied: anonymous token lacks permission 'service:write'`);
        return;
      }
      let definition: Record<string, unknown>;
      try {
        definition = JSON.parse(recorded.body) as Record<string, unknown>;
      } catch (error) {
        send(response, 400, `Request decode failed: ${String(error)}`);
        return;
      }
      const name = definition.Name;
      const port = definition.Port;
      if (typeof name !== 'string' || name === '') {
        send(response, 400, 'Invalid Service Meta: missing service name');
        return;
      }
      const id = typeof definition.ID === 'string' && definition.ID !== '' ? definition.ID : name;
      const check = definition.Check as Record<string, unknown> | undefined;
      registered.set(id, definition);
      store(
        {
          node: AGENT_NODE,
          nodeAddress: AGENT_ADDRESS,
          serviceId: id,
          service: name,
          address: typeof definition.Address === 'string' ? definition.Address : '',
          port: typeof port === 'number' ? port : 0,
          meta: (definition.Meta as Record<string, string> | undefined) ?? {},
          tags: (definition.Tags as string[] | undefined) ?? [],
          // Consul starts a service's checks critical until they first pass.
          checks: check ? ['critical'] : [],
        },
        check ? [typeof check.TCP === 'string' ? 'tcp' : 'http'] : [],
      );
      if (check && typeof check.TCP === 'string') runTcpCheck(id, check.TCP, check.Interval);
      send(response, 200, '');
      return;
    }

    const deregister = /^\/v1\/agent\/service\/deregister\/([^/]+)$/.exec(url.pathname);
    if (deregister) {
      if (request.method !== 'PUT') {
        send(response, 405, 'method not allowed');
        return;
      }
      if (access === 'anonymous') {
        send(response, 403, `Permission denied: anonymous token lacks permission 'service:write'`);
        return;
      }
      const id = decodeURIComponent(deregister[1] as string);
      const stored = services.get(id);
      if (!stored) {
        send(
          response,
          404,
          `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`,
        );
        return;
      }
      for (const timer of stored.timers) clearInterval(timer);
      services.delete(id);
      registered.delete(id);
      bump();
      send(response, 200, '');
      return;
    }

    send(response, 404, `Invalid URL path: not a recognized HTTP API endpoint`);
  };

  /** A blocking query's hold: until the index moves, the wait ends, or the client leaves. */
  const waitForChange = (waitMs: number, response: ServerResponse) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        changeWaiters.delete(done);
        response.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      changeWaiters.add(done);
      response.on('close', done);
    });

  /** Consul's TCP check: passing when a connection opens within the timeout. Loopback only. */
  const runTcpCheck = (serviceId: string, target: string, interval: unknown) => {
    const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target);
    const host = match?.[1] ?? match?.[2];
    const port = Number(match?.[3]);
    const probe = () => {
      const stored = services.get(serviceId);
      if (!stored) return;
      const set = (status: CheckStatus, output: string) => {
        const check = stored.checks[0];
        if (!check || (check.status === status && check.output === output)) return;
        check.status = status;
        check.output = output;
        stored.modifyIndex = index + 1;
        bump();
      };
      if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
        set('critical', `stand-in checks loopback only, not ${target}`);
        return;
      }
      const socket = connect({ host, port });
      socket.setTimeout(1_000, () => socket.destroy(new Error('timeout')));
      socket.once('connect', () => {
        socket.destroy();
        set('passing', `TCP connect ${target}: Success`);
      });
      socket.once('error', (error) => set('critical', `dial tcp ${target}: ${error.message}`));
    };
    probe();
    // Checks run every interval; a test needs no more than a few, so at most every 500 ms.
    const every = Math.max(500, parseGoDuration(typeof interval === 'string' ? interval : '10s'));
    const timer = setInterval(probe, every);
    timer.unref();
    services.get(serviceId)?.timers.push(timer);
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const standin: ConsulStandin = {
    url: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    requests,
    mode: options.mode ?? 'normal',
    registered,
    rawEntries: [],
    add: (instance) => store(instance),
    setChecks(serviceId, checks) {
      const stored = services.get(serviceId);
      if (!stored) throw new Error(`no service ${serviceId}`);
      store({ ...stored.instance, checks });
    },
    index: () => index,
    waitForRequest(match, timeoutMs = 5_000) {
      const existing = requests.find(match);
      if (existing) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const waiter = (request: RecordedRequest) => {
          if (!match(request)) return;
          clearTimeout(timer);
          requestWaiters.delete(waiter);
          resolve(request);
        };
        const timer = setTimeout(() => {
          requestWaiters.delete(waiter);
          reject(
            new Error(
              `no such request within ${timeoutMs} ms; got ${requests.map((r) => `${r.method} ${r.path}`).join(', ')}`,
            ),
          );
        }, timeoutMs);
        requestWaiters.add(waiter);
      });
    },
    async close() {
      for (const stored of services.values())
        for (const timer of stored.timers) clearInterval(timer);
      for (const waiter of [...changeWaiters]) waiter();
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return standin;
}

/** Go's strconv.ParseBool. */
function goBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/** Go durations as Consul takes them for `wait` and check intervals: 500ms, 10s, 5m, 1h30m. */
export function parseGoDuration(value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(value)) return Number.NaN;
  let total = 0;
  for (const part of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(part[1]) * (units[part[2] as string] as number);
  }
  return total;
}
