import { isIP, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { UsageError } from '../errors.js';
import {
  canonicalName,
  decodeDatagram,
  MDNS_PORT,
  openMdnsTransport,
  questionClass,
  recordDataKey,
  sameRecord,
  SERVICE_NAME,
  SERVICES_ENUMERATION_NAME,
  ttlOf,
  type MdnsTransport,
  type MdnsTransportFactory,
  type RemoteInfo,
} from './mdns-wire.js';
import { sarkTxtStrings } from './txt.js';
import { isNodeId, MDNS_DOMAIN } from './types.js';

/** What the announcer reports: structurally the daemon's logger, without core depending on it. */
export interface AnnounceLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface MdnsAnnounceOptions {
  nodeId: string;
  trustDomain: string;
  fingerprint: string;
  /** The IP address peers should connect to (not a wildcard such as 0.0.0.0). */
  host: string;
  port: number;
  /** IPv4 address or interface name to announce on; by default every interface. */
  interface?: string | undefined;
  logger?: AnnounceLogger | undefined;
  transportFactory?: MdnsTransportFactory | undefined;
}

export interface MdnsAnnouncement {
  /** `<node-id>._sark._tcp.local` */
  instance: string;
  /** `<node-id>.local`, the SRV target */
  hostName: string;
  /** Sends the goodbye (TTL 0) and closes the socket. */
  close(): Promise<void>;
}

/**
 * RFC 6762 §10: 120 s for records that carry a host name or address (they change when a
 * machine moves), 75 minutes for the others.
 */
const HOST_RECORD_TTL = 120;
const OTHER_RECORD_TTL = 4500;
/** RFC 6762 §8.3: at least two unsolicited announcements, one second apart. */
const ANNOUNCE_INTERVAL_MS = 1000;
/** RFC 6762 §6: a record is not multicast again within a second of the last time. */
const MULTICAST_INTERVAL_MS = 1000;
/** RFC 6762 §6: answers holding shared records (PTR) wait 20-120 ms, so responders spread out. */
const SHARED_DELAY_MIN_MS = 20;
const SHARED_DELAY_SPREAD_MS = 100;
/** RFC 6762 §6.7: legacy unicast answers carry TTLs of at most 10 s. */
const LEGACY_TTL = 10;
const GOODBYE_TIMEOUT_MS = 1000;

/**
 * Announces a node on mDNS: two unsolicited announcements a second apart, answers to queries for
 * the service type and for its own records, and a goodbye on close. Each announcer has its own
 * socket on port 5353 (shared through SO_REUSEADDR), so many may run in one process.
 *
 * No probing (RFC 6762 §8.1): the instance and host names are the node ID, which the
 * federation's certificates already make unique; a second responder for the same names is
 * logged as a conflict instead.
 */
export async function announceMdns(options: MdnsAnnounceOptions): Promise<MdnsAnnouncement> {
  if (!isNodeId(options.nodeId)) {
    throw new UsageError('BAD_NODE_ID', `cannot announce node ID "${options.nodeId}"`);
  }
  if (isIP(options.host) === 0 || /^(0\.0\.0\.0|::)$/.test(options.host)) {
    throw new UsageError('BAD_ANNOUNCE_HOST', `cannot announce "${options.host}" as an address`, {
      hint: 'listen on a specific address, or pass --interface with the address to announce',
    });
  }
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new UsageError('BAD_ANNOUNCE_PORT', `cannot announce port ${options.port}`);
  }
  const factory = options.transportFactory ?? openMdnsTransport;
  const transport = await factory({ interface: options.interface });
  const responder = new Responder(transport, options);
  try {
    await responder.announce();
  } catch (error) {
    await transport.close();
    throw error;
  }
  options.logger?.info('mdns announced', {
    instance: responder.records.srv.name,
    host: responder.records.address.data,
    port: options.port,
  });
  return {
    instance: responder.records.srv.name,
    hostName: responder.records.address.name,
    close: () => responder.close(),
  };
}

interface OwnRecords {
  ptr: Answer;
  enumeration: Answer;
  srv: Answer;
  txt: Answer;
  address: Answer & { data: string };
}

class Responder {
  readonly records: OwnRecords;
  private readonly all: Answer[];
  /** Records whose name is ours alone: another responder's different data is a conflict. */
  private readonly unique: Answer[];
  private readonly lastMulticast = new Map<Answer, number>();
  private readonly pending = new Set<Answer>();
  private pendingTimer: NodeJS.Timeout | undefined;
  private pendingAt = Infinity;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly conflicts = new Set<string>();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly transport: MdnsTransport,
    private readonly options: MdnsAnnounceOptions,
  ) {
    const instance = `${options.nodeId}.${SERVICE_NAME}`;
    const hostName = `${options.nodeId}.${MDNS_DOMAIN}`;
    this.records = {
      ptr: { name: SERVICE_NAME, type: 'PTR', ttl: OTHER_RECORD_TTL, data: instance },
      enumeration: {
        name: SERVICES_ENUMERATION_NAME,
        type: 'PTR',
        ttl: OTHER_RECORD_TTL,
        data: SERVICE_NAME,
      },
      srv: {
        name: instance,
        type: 'SRV',
        ttl: HOST_RECORD_TTL,
        flush: true,
        data: { priority: 0, weight: 0, port: options.port, target: hostName },
      },
      txt: {
        name: instance,
        type: 'TXT',
        ttl: OTHER_RECORD_TTL,
        flush: true,
        data: sarkTxtStrings(options),
      },
      address: {
        name: hostName,
        type: isIPv6(options.host) ? 'AAAA' : 'A',
        ttl: HOST_RECORD_TTL,
        flush: true,
        data: options.host,
      },
    };
    const { ptr, enumeration, srv, txt, address } = this.records;
    this.all = [ptr, enumeration, srv, txt, address];
    this.unique = [srv, txt, address];
    transport.onMessage((message, from) => this.receive(message, from));
  }

  /** The first announcement now (its failure is the caller's), the second a second later. */
  async announce(): Promise<void> {
    await this.multicast(this.all, []);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.multicast(this.all, []).catch((error: unknown) => this.sendFailed(error));
    }, ANNOUNCE_INTERVAL_MS);
    this.timers.add(timer);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    clearTimeout(this.pendingTimer);
    // RFC 6762 §10.1: the same records with TTL 0. Not the service enumeration PTR: other sark
    // nodes on the link still offer the service type.
    const { ptr, srv, txt, address } = this.records;
    const goodbye = [ptr, srv, txt, address].map((record) => ({ ...record, ttl: 0 }) as Answer);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.transport.send({
          type: 'response',
          flags: dnsPacket.AUTHORITATIVE_ANSWER,
          answers: goodbye,
        }),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, GOODBYE_TIMEOUT_MS);
        }),
      ]);
      this.options.logger?.info('mdns goodbye sent', { instance: srv.name });
    } catch (error) {
      this.sendFailed(error);
    } finally {
      clearTimeout(timer);
      await this.transport.close();
    }
  }

  private receive(message: Buffer, from: RemoteInfo): void {
    if (this.closed) return;
    const decoded = decodeDatagram(message);
    // Whatever is not DNS is not a question to us; the browser side reports such packets.
    if ('error' in decoded) return;
    const { packet } = decoded;
    if (packet.type === 'response') {
      this.checkConflicts(packet);
      return;
    }
    if (((packet as { opcode?: string }).opcode ?? 'QUERY') !== 'QUERY') return;
    this.answer(packet, from);
  }

  private answer(query: DecodedPacket, from: RemoteInfo): void {
    let answers: Answer[] = [];
    let unicastRequested = false;
    for (const question of query.questions ?? []) {
      const { cls, unicast } = questionClass(question);
      if (cls === null) continue;
      unicastRequested ||= unicast;
      const name = canonicalName(question.name);
      for (const record of this.all) {
        const matches =
          canonicalName(record.name) === name &&
          ((question.type as string) === 'ANY' || question.type === record.type);
        if (matches && !answers.includes(record)) answers.push(record);
      }
    }
    // RFC 6762 §7.1: known-answer suppression, for answers the querier holds with over half
    // their TTL left.
    answers = answers.filter(
      (record) =>
        !(query.answers ?? []).some(
          (known) => sameRecord(known, record) && ttlOf(known) * 2 >= (ttlOf(record) || 1),
        ),
    );
    if (answers.length === 0) return;

    if (from.port !== MDNS_PORT) {
      this.legacyAnswer(query, answers, from);
      return;
    }
    const now = performance.now();
    const fresh = answers.filter((record) => !this.multicastRecently(record, now));
    if (unicastRequested && fresh.length < answers.length) {
      // RFC 6762 §5.4: the querier asked for unicast and the group saw these a moment ago.
      const repeated = answers.filter((record) => !fresh.includes(record));
      this.send({ answers: repeated, additionals: this.additionalsFor(repeated) }, from);
    }
    if (fresh.length === 0) return;
    for (const record of fresh) this.pending.add(record);
    const shared = fresh.some((record) => record.type === 'PTR');
    const delay = shared ? SHARED_DELAY_MIN_MS + Math.random() * SHARED_DELAY_SPREAD_MS : 0;
    this.schedulePending(now + delay);
  }

  /** Answers gathered over the delay go out as one response (RFC 6762 §6.3 aggregation). */
  private schedulePending(at: number): void {
    if (at >= this.pendingAt) return;
    clearTimeout(this.pendingTimer);
    this.pendingAt = at;
    this.pendingTimer = setTimeout(
      () => {
        this.pendingTimer = undefined;
        this.pendingAt = Infinity;
        const now = performance.now();
        const answers = [...this.pending].filter((record) => !this.multicastRecently(record, now));
        this.pending.clear();
        if (answers.length === 0 || this.closed) return;
        this.multicast(answers, this.additionalsFor(answers)).catch((error: unknown) =>
          this.sendFailed(error),
        );
      },
      Math.max(0, at - performance.now()),
    );
  }

  /** RFC 6763 §12: with the PTR go SRV, TXT and address; with the SRV goes the address. */
  private additionalsFor(answers: Answer[]): Answer[] {
    const { ptr, srv, txt, address } = this.records;
    const extra = new Set<Answer>();
    if (answers.includes(ptr)) [srv, txt, address].forEach((record) => extra.add(record));
    if (answers.includes(srv)) extra.add(address);
    return [...extra].filter((record) => !answers.includes(record));
  }

  /** RFC 6762 §6.7: a one-shot querier on another port gets a plain DNS answer to its port. */
  private legacyAnswer(query: DecodedPacket, answers: Answer[], from: RemoteInfo): void {
    const plain = (record: Answer) =>
      ({ ...record, flush: false, ttl: Math.min(ttlOf(record), LEGACY_TTL) }) as Answer;
    this.send(
      {
        id: query.id,
        questions: query.questions,
        answers: answers.map(plain),
        additionals: this.additionalsFor(answers).map(plain),
      },
      from,
    );
  }

  private multicastRecently(record: Answer, now: number): boolean {
    const last = this.lastMulticast.get(record);
    return last !== undefined && now - last < MULTICAST_INTERVAL_MS;
  }

  private async multicast(answers: Answer[], additionals: Answer[]): Promise<void> {
    const now = performance.now();
    for (const record of [...answers, ...additionals]) this.lastMulticast.set(record, now);
    await this.transport.send({
      type: 'response',
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      answers,
      additionals,
    });
  }

  private send(packet: Packet, to: RemoteInfo): void {
    if (this.closed) return;
    this.transport
      .send(
        { type: 'response', flags: dnsPacket.AUTHORITATIVE_ANSWER, ...packet },
        { address: to.address, port: to.port },
      )
      .catch((error: unknown) => this.sendFailed(error));
  }

  /**
   * RFC 6762 §9: another responder asserting one of our unique names with other data. Without
   * probing there is no renaming; the operator is told once per name.
   */
  private checkConflicts(packet: DecodedPacket): void {
    for (const record of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      if (ttlOf(record) === 0) continue;
      for (const own of this.unique) {
        if (record.type !== own.type || canonicalName(record.name) !== canonicalName(own.name))
          continue;
        if (recordDataKey(record) === recordDataKey(own)) continue;
        const key = `${own.type} ${own.name}`;
        if (this.conflicts.has(key)) continue;
        this.conflicts.add(key);
        this.options.logger?.warn('mdns name conflict', {
          record: own.type,
          name: own.name,
          theirs: recordDataKey(record),
        });
      }
    }
  }

  private sendFailed(error: unknown): void {
    this.options.logger?.warn('mdns send failed', {
      error: error instanceof Error ? error.message : String(error),
    });
  }
}
