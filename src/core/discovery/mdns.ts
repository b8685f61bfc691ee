import { isIPv4, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Answer, Question } from 'dns-packet';
import {
  canonicalName,
  decodeDatagram,
  isUsableName,
  MDNS_PORT,
  openMdnsTransport,
  queryPackets,
  SERVICE_NAME,
  ttlOf,
  type MdnsTransport,
  type MdnsTransportFactory,
  type RemoteInfo,
} from './mdns-wire.js';
import type { MethodRunner } from './scanner.js';
import { parseSarkTxt, type SarkTxt } from './txt.js';
import { endpointOf, type DiscoveredNode } from './types.js';

export { announceMdns, type MdnsAnnouncement, type MdnsAnnounceOptions } from './mdns-responder.js';
export {
  interfaceAddress,
  openMdnsTransport,
  type MdnsTransport,
  type MdnsTransportFactory,
} from './mdns-wire.js';

export interface MdnsBrowseOptions {
  /** IPv4 address or interface name to browse on; by default every interface. */
  interface?: string | undefined;
  /** The network; tests give a fake one. */
  transportFactory?: MdnsTransportFactory | undefined;
  /**
   * When to send the browse query, in milliseconds from the start: RFC 6762 §5.2 continuous
   * querying, the first at once, then at least a second apart, doubling (to at most an hour).
   */
  querySchedule?: ((index: number) => number) | undefined;
}

export interface MdnsWatchEvent {
  /** `+`: a node was resolved, or its endpoint or TXT changed; `-`: it is gone. */
  type: '+' | '-';
  node: DiscoveredNode;
  /** Why a node went: a goodbye (TTL 0), its records expired, or its instance now names another. */
  reason?: 'goodbye' | 'expired' | 'replaced';
}

/** At most this many instances and host names are cached: a flood cannot exhaust memory. */
const MAX_INSTANCES = 1024;
const MAX_HOSTS = 1024;
const MAX_ADDRESSES_PER_HOST = 16;
/** Distinct skipped-record reports per browse; beyond this, one line says more were dropped. */
const MAX_SKIPPED_REPORTS = 100;
/** RFC 6762 §10.1: a goodbye (TTL 0) ends a record one second later, not at once. */
const GOODBYE_GRACE_MS = 1000;
/**
 * A follow-up question is not asked again within a second (RFC 6762 §5.2), and one that keeps
 * going unanswered (an SRV target with no address) is asked ever less often, up to once a minute.
 */
const FOLLOW_UP_INTERVAL_MS = 1000;
const FOLLOW_UP_MAX_INTERVAL_MS = 60_000;
/** Follow-up questions are gathered this long, so fifty PTR-only answers make one query. */
const FOLLOW_UP_BATCH_MS = 15;
const MAINTENANCE_INTERVAL_MS = 250;

/** Intervals of 1 s, 2 s, 4 s… up to an hour between browse queries: 0, 1 s, 3 s, 7 s… */
function defaultSchedule(index: number): number {
  let at = 0;
  for (let step = 0; step < index; step++) at += Math.min(1000 * 2 ** step, 3_600_000);
  return at;
}

/**
 * mDNS (RFC 6762/6763) as a discovery method: browses `_sark._tcp.local` until the scan's signal
 * aborts and reports each node once its SRV, TXT and address are known. Instances seen but never
 * resolved are listed as skipped at the end.
 */
export function mdnsRunner(options: MdnsBrowseOptions = {}): MethodRunner {
  return {
    method: 'mdns',
    async run(context, found) {
      if (context.signal.aborted) return;
      const browser = await MdnsBrowser.open(options, {
        onEvent: (event) => {
          if (event.type === '+') found(event.node);
        },
        onSkipped: (detail) => context.skipped(detail),
      });
      await browser.runUntil(context.signal);
      for (const detail of browser.unresolved()) context.skipped(detail);
    },
  };
}

/**
 * `discover --watch`: streams `+` for each node as it is resolved (or changes) and `-` when it
 * says goodbye or its records expire, until the signal aborts. Skipped records go to onSkipped.
 */
export async function watchMdns(
  options: MdnsBrowseOptions & {
    signal: AbortSignal;
    onEvent: (event: MdnsWatchEvent) => void;
    onSkipped?: (detail: string) => void;
  },
): Promise<void> {
  if (options.signal.aborted) return;
  const browser = await MdnsBrowser.open(options, {
    onEvent: options.onEvent,
    onSkipped: options.onSkipped ?? (() => {}),
  });
  await browser.runUntil(options.signal);
}

interface CachedRecord {
  ttl: number;
  receivedAt: number;
  expiresAt: number;
  /** Cache refresh queries sent for it so far (at 80, 85, 90 and 95% of its TTL). */
  refreshes: number;
}

interface InstanceState {
  name: string;
  ptr?: CachedRecord;
  srv?: CachedRecord & { target: string; port: number };
  txt?: CachedRecord & { key: string; parsed: { txt: SarkTxt } | { error: string } };
  reported?: DiscoveredNode;
  /** When a goodbye for one of its records (or its host's address) arrived: the `-` reason. */
  goodbyeAt?: number;
}

type HostState = Map<string, CachedRecord & { family: 4 | 6 }>;

interface BrowserSinks {
  onEvent(event: MdnsWatchEvent): void;
  onSkipped(detail: string): void;
}

/**
 * The browse state machine: a cache of the records that matter (PTR of the service, SRV and TXT
 * of its instances, addresses of their targets) fed by every response on the link, whichever
 * querier caused it. After each packet and on a timer it re-evaluates every instance: resolved
 * ones are reported, missing records are asked for, expired ones are dropped.
 */
class MdnsBrowser {
  private readonly instances = new Map<string, InstanceState>();
  private readonly hosts = new Map<string, HostState>();
  private readonly asked = new Map<string, { at: number; interval: number }>();
  private readonly pendingQuestions = new Map<string, Question>();
  private readonly skippedDetails = new Set<string>();
  private followUpTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly transport: MdnsTransport,
    private readonly sinks: BrowserSinks,
    private readonly schedule: (index: number) => number,
  ) {
    transport.onMessage((message, from) => this.receive(message, from));
  }

  static async open(options: MdnsBrowseOptions, sinks: BrowserSinks): Promise<MdnsBrowser> {
    const factory = options.transportFactory ?? openMdnsTransport;
    const transport = await factory({ interface: options.interface });
    return new MdnsBrowser(transport, sinks, options.querySchedule ?? defaultSchedule);
  }

  /** Queries on schedule and keeps the cache until the signal aborts; then closes the socket. */
  async runUntil(signal: AbortSignal): Promise<void> {
    const started = performance.now();
    let index = 0;
    let browseTimer: NodeJS.Timeout | undefined;
    const maintenance = setInterval(() => this.maintain(), MAINTENANCE_INTERVAL_MS);
    try {
      // The first query must go out: if it cannot, the method failed (no route, no interface).
      if (!signal.aborted) await this.browse();
      index++;
      await new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
        const next = () => {
          const delay = Math.max(0, started + this.schedule(index) - performance.now());
          browseTimer = setTimeout(() => {
            index++;
            this.browse().catch(() => {});
            next();
          }, delay);
        };
        next();
      });
    } finally {
      clearInterval(maintenance);
      clearTimeout(browseTimer);
      clearTimeout(this.followUpTimer);
      this.closed = true;
      await this.transport.close();
    }
  }

  /** Instances announced but never resolved, with what they lacked: reported as skipped. */
  unresolved(): string[] {
    const now = performance.now();
    const details: string[] = [];
    for (const instance of this.instances.values()) {
      if (instance.reported || !live(instance.ptr, now)) continue;
      const state = this.evaluate(instance, now);
      if ('missing' in state) details.push(`${instance.name}: ${state.missing}`);
    }
    return details;
  }

  /** The PTR question, with the answers already known and fresh (RFC 6762 §7.1). */
  private async browse(): Promise<void> {
    const now = performance.now();
    const known: Answer[] = [];
    for (const instance of this.instances.values()) {
      const ptr = instance.ptr;
      // Only resolved instances: one still missing records must answer in full again.
      if (!instance.reported || !ptr || !live(ptr, now)) continue;
      const remaining = Math.round((ptr.expiresAt - now) / 1000);
      if (remaining * 2 <= ptr.ttl) continue;
      known.push({ name: SERVICE_NAME, type: 'PTR', ttl: remaining, data: instance.name });
    }
    this.asked.set(questionKey({ name: SERVICE_NAME, type: 'PTR' }), {
      at: now,
      interval: FOLLOW_UP_INTERVAL_MS,
    });
    for (const packet of queryPackets([{ name: SERVICE_NAME, type: 'PTR' }], known)) {
      await this.transport.send(packet);
    }
  }

  private receive(message: Buffer, from: RemoteInfo): void {
    if (this.closed) return;
    const decoded = decodeDatagram(message);
    if ('error' in decoded) {
      this.skip(`${decoded.error} from ${from.address}:${from.port}`);
      return;
    }
    const { packet } = decoded;
    // Queries (ours and other browsers') carry nothing to learn.
    if (packet.type !== 'response') return;
    if (from.port !== MDNS_PORT) {
      this.skip(`a response from port ${from.port} of ${from.address} (RFC 6762 §6 wants 5353)`);
      return;
    }
    const { opcode, rcode } = packet as { opcode?: string; rcode?: string };
    if ((opcode ?? 'QUERY') !== 'QUERY' || (rcode ?? 'NOERROR') !== 'NOERROR') {
      this.skip(`a response with opcode ${opcode} and rcode ${rcode} from ${from.address}`);
      return;
    }
    // RFC 6762 §18.5: the TC bit means more known answers follow in a query; in a response it
    // is ignored. Records of the authority section are probe tie-breakers, not answers.
    const now = performance.now();
    const flushed = new Set<string>();
    for (const record of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      this.absorb(record, now, flushed, from);
    }
    this.reconcile(now);
  }

  private absorb(record: Answer, now: number, flushed: Set<string>, from: RemoteInfo): void {
    if (typeof record.name !== 'string' || (record as { class?: string }).class !== 'IN') return;
    const name = canonicalName(record.name);
    const inService = name.endsWith(`.${SERVICE_NAME}`);
    const ttl = ttlOf(record);
    const fresh = (): CachedRecord => ({
      ttl,
      receivedAt: now,
      expiresAt: now + ttl * 1000,
      refreshes: 0,
    });
    const source = `from ${from.address}`;

    switch (record.type) {
      case 'PTR': {
        // Subtype PTRs (_x._sub._sark._tcp.local) and other services are not ours to read.
        if (name !== SERVICE_NAME) return;
        const target = typeof record.data === 'string' ? canonicalName(record.data) : '';
        if (!target.endsWith(`.${SERVICE_NAME}`) || !isUsableName(target)) {
          this.skip(`a PTR for ${SERVICE_NAME} pointing to "${String(record.data)}" ${source}`);
          return;
        }
        if (ttl === 0) return this.goodbye(this.instances.get(target), 'ptr', now);
        const instance = this.instance(target, record.data as string);
        if (instance) {
          instance.ptr = fresh();
          delete instance.goodbyeAt;
        }
        return;
      }
      case 'SRV': {
        if (!inService) return this.wrongType(name, record.type, source);
        const data = record.data as { port?: unknown; target?: unknown } | undefined;
        const port = data?.port;
        const target = typeof data?.target === 'string' ? canonicalName(data.target) : '';
        if (ttl === 0) {
          const known = this.instances.get(name);
          if (known?.srv?.target === target && known.srv.port === port)
            this.goodbye(known, 'srv', now);
          return;
        }
        if (target === '') {
          // RFC 2782: a target of "." says the service is decidedly not available there.
          this.skip(`${name}: its SRV record points nowhere ${source}`);
          return;
        }
        if (!isUsableName(target) || !isPort(port)) {
          this.skip(`${name}: a malformed SRV record ${source}`);
          return;
        }
        const instance = this.instance(name, record.name);
        if (instance) {
          instance.srv = { ...fresh(), target, port };
          delete instance.goodbyeAt;
        }
        return;
      }
      case 'TXT': {
        if (!inService) return this.wrongType(name, record.type, source);
        const data = record.data;
        const strings = (Array.isArray(data) ? data : [data]).filter(
          (entry): entry is Buffer | string => Buffer.isBuffer(entry) || typeof entry === 'string',
        );
        const key = strings.map((entry) => Buffer.from(entry).toString('hex')).join(',');
        if (ttl === 0) {
          const known = this.instances.get(name);
          if (known?.txt?.key === key) this.goodbye(known, 'txt', now);
          return;
        }
        const instance = this.instance(name, record.name);
        if (!instance) return;
        let parsed = instance.txt?.key === key ? instance.txt.parsed : undefined;
        if (parsed === undefined) {
          const read = parseSarkTxt(strings);
          // A malformed td= or fp= leaves the node without it: said (once, when the record is
          // new), so that a typo is found.
          if ('txt' in read) {
            for (const part of read.ignored) {
              this.skip(`${name}: TXT ${part}; the node is kept without it ${source}`);
            }
          }
          parsed = read;
        }
        if ('error' in parsed) this.skip(`${name}: TXT record ${parsed.error} ${source}`);
        const duplicates = duplicateKeys(strings);
        if (duplicates.length > 0) {
          this.skip(
            `${name}: TXT record repeats ${duplicates.join(', ')}; the first occurrence is used (RFC 6763 §6.4)`,
          );
        }
        instance.txt = { ...fresh(), key, parsed };
        delete instance.goodbyeAt;
        return;
      }
      case 'A':
      case 'AAAA': {
        const address = typeof record.data === 'string' ? record.data : '';
        const family = record.type === 'A' ? 4 : 6;
        if (!(family === 4 ? isIPv4(address) : isIPv6(address))) {
          if (inService || this.isTarget(name))
            this.skip(`${name}: a malformed ${record.type} record ${source}`);
          return;
        }
        if (!isUsableName(name)) return;
        if (ttl === 0) {
          const cached = this.hosts.get(name)?.get(address);
          if (!cached) return;
          cached.expiresAt = Math.min(cached.expiresAt, now + GOODBYE_GRACE_MS);
          for (const instance of this.instances.values())
            if (instance.srv?.target === name) instance.goodbyeAt = now;
          return;
        }
        let host = this.hosts.get(name);
        if (!host) {
          if (this.hosts.size >= MAX_HOSTS) return this.skip('too many host names; some ignored');
          host = new Map();
          this.hosts.set(name, host);
        }
        // RFC 6762 §10.2: the cache-flush bit retires what was learnt over a second ago.
        const flushKey = `${name}|${record.type}`;
        if ((record as { flush?: boolean }).flush && !flushed.has(flushKey)) {
          flushed.add(flushKey);
          for (const [known, cached] of host) {
            if (cached.family === family && known !== address && now - cached.receivedAt > 1000)
              cached.expiresAt = Math.min(cached.expiresAt, now + 1000);
          }
        }
        if (!host.has(address) && host.size >= MAX_ADDRESSES_PER_HOST) return;
        host.set(address, { ...fresh(), family });
        for (const instance of this.instances.values())
          if (instance.srv?.target === name) delete instance.goodbyeAt;
        return;
      }
      case 'NSEC':
      case 'OPT':
        return;
      default:
        this.wrongType(name, record.type, source);
    }
  }

  /**
   * RFC 6762 §10.1: a record received with TTL 0 is kept one more second (another responder may
   * still assert it) and then dropped; the instance remembers why it went.
   */
  private goodbye(
    instance: InstanceState | undefined,
    field: 'ptr' | 'srv' | 'txt',
    now: number,
  ): void {
    const record = instance?.[field];
    if (!instance || !record) return;
    record.expiresAt = Math.min(record.expiresAt, now + GOODBYE_GRACE_MS);
    instance.goodbyeAt = now;
  }

  private wrongType(name: string, type: string, source: string): void {
    if (name === SERVICE_NAME || name.endsWith(`.${SERVICE_NAME}`))
      this.skip(`${name}: a record of the wrong type ${type} ${source}`);
  }

  private isTarget(host: string): boolean {
    for (const instance of this.instances.values()) if (instance.srv?.target === host) return true;
    return false;
  }

  private instance(key: string, name: string): InstanceState | undefined {
    let instance = this.instances.get(key);
    if (!instance) {
      if (this.instances.size >= MAX_INSTANCES) {
        this.skip('too many service instances; some ignored');
        return undefined;
      }
      instance = { name: name.replace(/\.$/, '') };
      this.instances.set(key, instance);
    }
    return instance;
  }

  /** What an instance resolves to now, or what it lacks (and which questions would get it). */
  private evaluate(
    instance: InstanceState,
    now: number,
  ): { node: DiscoveredNode } | { missing: string; questions: Question[] } | { invalid: string } {
    const questions: Question[] = [];
    const lacks: string[] = [];
    const { ptr, srv, txt } = instance;
    if (!live(srv, now)) {
      questions.push({ name: instance.name, type: 'SRV' });
      lacks.push('no SRV record');
    }
    if (!live(txt, now)) {
      questions.push({ name: instance.name, type: 'TXT' });
      lacks.push('no TXT record');
    } else if ('error' in txt.parsed) {
      return { invalid: txt.parsed.error };
    }
    let address: string | undefined;
    if (live(srv, now)) {
      address = pickAddress(this.hosts.get(srv.target), now);
      if (address === undefined) {
        questions.push({ name: srv.target, type: 'A' }, { name: srv.target, type: 'AAAA' });
        lacks.push(`SRV target ${srv.target} has no address`);
      }
    }
    if (lacks.length > 0 || !live(srv, now) || !live(txt, now) || !ptr || address === undefined)
      return { missing: lacks.join(', '), questions };
    const { txt: advertised } = txt.parsed as { txt: SarkTxt };
    return {
      node: {
        nodeId: advertised.nodeId,
        endpoint: endpointOf(address, srv.port),
        trustDomain: advertised.trustDomain,
        fingerprint: advertised.fingerprint,
        source: 'mdns',
        ttlSeconds: Math.min(ptr.ttl, srv.ttl),
      },
    };
  }

  /** Reports what changed, removes what ended, and asks for what is missing. */
  private reconcile(now: number): void {
    for (const [key, instance] of this.instances) {
      const state = live(instance.ptr, now) ? this.evaluate(instance, now) : undefined;
      if (state && 'node' in state) {
        const previous = instance.reported;
        if (previous && previous.nodeId !== state.node.nodeId) {
          this.emit({ type: '-', node: previous, reason: 'replaced' });
        }
        if (!previous || !sameNode(previous, state.node)) {
          instance.reported = state.node;
          this.emit({ type: '+', node: state.node });
        }
        continue;
      }
      if (instance.reported) {
        const node = instance.reported;
        delete instance.reported;
        const reason = instance.goodbyeAt === undefined ? 'expired' : 'goodbye';
        delete instance.goodbyeAt;
        this.emit({ type: '-', node, reason });
      }
      if (state && 'missing' in state) {
        for (const question of state.questions)
          this.pendingQuestions.set(questionKey(question), question);
      }
      if (!instance.ptr && !instance.srv && !instance.txt) this.instances.delete(key);
    }
    this.scheduleFollowUp();
  }

  /** Expires records, refreshes those near the end of their TTL (RFC 6762 §5.2), re-evaluates. */
  private maintain(): void {
    if (this.closed) return;
    const now = performance.now();
    const ask = (question: Question) => this.pendingQuestions.set(questionKey(question), question);
    for (const instance of this.instances.values()) {
      for (const field of ['ptr', 'srv', 'txt'] as const) {
        const record = instance[field];
        if (record && record.expiresAt <= now) delete instance[field];
      }
      // Only what a reported node rests on is kept fresh; the rest may lapse.
      if (!instance.reported) continue;
      if (dueForRefresh(instance.ptr, now)) ask({ name: SERVICE_NAME, type: 'PTR' });
      if (dueForRefresh(instance.srv, now)) ask({ name: instance.name, type: 'SRV' });
      if (dueForRefresh(instance.txt, now)) ask({ name: instance.name, type: 'TXT' });
      const target = instance.srv?.target;
      const host = target === undefined ? undefined : this.hosts.get(target);
      for (const record of host?.values() ?? []) {
        if (dueForRefresh(record, now))
          ask({ name: target as string, type: record.family === 4 ? 'A' : 'AAAA' });
      }
    }
    for (const [name, host] of this.hosts) {
      for (const [address, record] of host) if (record.expiresAt <= now) host.delete(address);
      if (host.size === 0) this.hosts.delete(name);
    }
    this.reconcile(now);
  }

  private scheduleFollowUp(): void {
    if (this.pendingQuestions.size === 0 || this.followUpTimer !== undefined || this.closed) return;
    this.followUpTimer = setTimeout(() => {
      this.followUpTimer = undefined;
      this.sendFollowUps();
    }, FOLLOW_UP_BATCH_MS);
  }

  private sendFollowUps(): void {
    if (this.closed) return;
    const now = performance.now();
    const questions: Question[] = [];
    for (const [key, question] of this.pendingQuestions) {
      const last = this.asked.get(key);
      if (last && now - last.at < last.interval) continue;
      // Asked again right after its interval: still unanswered, so wait twice as long next time.
      // Asked after a long pause: a new need (a refresh), so start again at a second.
      const unanswered = last !== undefined && now - last.at < 2 * last.interval;
      const interval = unanswered
        ? Math.min(last.interval * 2, FOLLOW_UP_MAX_INTERVAL_MS)
        : FOLLOW_UP_INTERVAL_MS;
      this.asked.set(key, { at: now, interval });
      questions.push(question);
    }
    this.pendingQuestions.clear();
    if (this.asked.size > 4 * MAX_INSTANCES) {
      for (const [key, last] of this.asked)
        if (now - last.at > 2 * last.interval) this.asked.delete(key);
    }
    for (const packet of queryPackets(questions)) {
      // A follow-up that cannot be sent is retried by the next maintenance pass.
      this.transport.send(packet).catch(() => {});
    }
  }

  private emit(event: MdnsWatchEvent): void {
    try {
      this.sinks.onEvent(event);
    } catch {
      // A consumer's failure must not stop the browse; it is the consumer's to report.
    }
  }

  private skip(detail: string): void {
    if (this.skippedDetails.has(detail)) return;
    if (this.skippedDetails.size === MAX_SKIPPED_REPORTS) {
      this.skippedDetails.add(detail);
      this.sinks.onSkipped('more skipped mDNS packets and records not listed');
      return;
    }
    if (this.skippedDetails.size > MAX_SKIPPED_REPORTS) return;
    this.skippedDetails.add(detail);
    this.sinks.onSkipped(detail);
  }
}

function live<T extends CachedRecord>(record: T | undefined, now: number): record is T {
  return record !== undefined && record.expiresAt > now;
}

/**
 * RFC 6762 §5.2: a record still in use is queried again at 80, 85, 90 and 95% of its lifetime;
 * true when the next of those points has passed (and counts it as done).
 */
function dueForRefresh(record: CachedRecord | undefined, now: number): boolean {
  if (!record || record.ttl === 0 || record.refreshes >= 4) return false;
  if (now < record.receivedAt + record.ttl * 1000 * (0.8 + 0.05 * record.refreshes)) return false;
  record.refreshes++;
  return true;
}

/** IPv4 first (no scope needed); a link-local IPv6 address is useless without its interface. */
function pickAddress(host: HostState | undefined, now: number): string | undefined {
  if (!host) return undefined;
  let v6: string | undefined;
  for (const [address, record] of host) {
    if (!live(record, now)) continue;
    if (record.family === 4) return address;
    if (v6 === undefined && !/^fe[89ab]/i.test(address)) v6 = address;
  }
  return v6;
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

function sameNode(a: DiscoveredNode, b: DiscoveredNode): boolean {
  return (
    a.nodeId === b.nodeId &&
    a.endpoint === b.endpoint &&
    a.trustDomain === b.trustDomain &&
    a.fingerprint === b.fingerprint
  );
}

function questionKey(question: Question): string {
  return `${canonicalName(question.name)}|${question.type}`;
}

/** Keys given more than once in a TXT record (RFC 6763 §6.4: the first counts, the rest not). */
function duplicateKeys(strings: readonly (Buffer | string)[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const entry of strings) {
    const text = Buffer.from(entry).toString('utf8');
    if (text.length === 0) continue;
    const equals = text.indexOf('=');
    const key = (equals === -1 ? text : text.slice(0, equals)).toLowerCase();
    if (seen.has(key)) repeated.add(key);
    seen.add(key);
  }
  return [...repeated];
}
