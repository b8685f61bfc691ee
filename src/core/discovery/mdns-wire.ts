import { createSocket, type RemoteInfo } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import makeMdns from 'multicast-dns';
import { messageOf, UnavailableError, UsageError } from '../errors.js';
import { MDNS_DOMAIN, SERVICE_TYPE } from './types.js';

/** RFC 6762 §3: the mDNS port; responses from any other source port are not mDNS (§6). */
export const MDNS_PORT = 5353;
export const MDNS_GROUP = '224.0.0.251';
/** `_sark._tcp.local`: the name browsed, and the suffix of every instance name. */
export const SERVICE_NAME = `${SERVICE_TYPE}.${MDNS_DOMAIN}`;
/** RFC 6763 §9: service type enumeration, so generic browsers (avahi-browse -a) list us. */
export const SERVICES_ENUMERATION_NAME = `_services._dns-sd._udp.${MDNS_DOMAIN}`;
/**
 * Keep each packet under a typical Ethernet MTU (RFC 6762 §17): a query with many follow-up
 * questions or known answers is split rather than sent as one IP-fragmented datagram.
 */
export const MAX_PACKET_BYTES = 1200;

export type { RemoteInfo };

/**
 * What the mDNS code needs of the network: raw datagrams in (the decoding is ours, so that a
 * packet cut short is recognised as such rather than half-read), packets out. The real one is a
 * multicast-dns instance; tests may give a fake one.
 */
export interface MdnsTransport {
  onMessage(listener: (message: Buffer, from: RemoteInfo) => void): void;
  /** To the mDNS group, or (legacy unicast replies, RFC 6762 §6.7) to one address and port. */
  send(packet: Packet, to?: { address: string; port: number }): Promise<void>;
  close(): Promise<void>;
}

export interface MdnsTransportOptions {
  /** An IPv4 address or interface name; undefined lets multicast-dns use every interface. */
  interface?: string | undefined;
}

export type MdnsTransportFactory = (options: MdnsTransportOptions) => Promise<MdnsTransport>;

/**
 * Opens a multicast-dns socket on port 5353, shared with any other mDNS stack on the machine
 * (SO_REUSEADDR, which multicast-dns sets, lets every socket on the port receive the group's
 * datagrams: several announcers and a browser may live in one process).
 */
export const openMdnsTransport: MdnsTransportFactory = async (options) => {
  const address = options.interface === undefined ? undefined : interfaceAddress(options.interface);
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  // bind '0.0.0.0' whatever the interface: a socket bound to a unicast address never receives
  // datagrams sent to the multicast group (DESIGN §8). `interface` still chooses where the group
  // is joined and where our packets go out.
  const mdns = makeMdns({ socket, bind: '0.0.0.0', interface: address, reuseAddr: true });
  const membershipErrors: string[] = [];
  const listeners: Array<(message: Buffer, from: RemoteInfo) => void> = [];
  let closed = false;

  // Failures to join the group on one interface arrive as warnings while binding; so do
  // datagrams multicast-dns cannot decode, which are ours to judge through onMessage.
  mdns.on('warning', (error: NodeJS.ErrnoException) => {
    if (error.syscall === 'addMembership') membershipErrors.push(error.message);
  });
  const ready = new Promise<void>((resolve, reject) => {
    mdns.once('ready', resolve);
    mdns.once('error', reject);
  });
  // Later errors (a send to an unreachable network) are reported by send()'s callback; an
  // 'error' event without a listener would end the process.
  mdns.on('error', () => {});
  socket.on('message', (message: Buffer, from: RemoteInfo) => {
    for (const listener of listeners) listener(message, from);
  });

  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      mdns.destroy(() => resolve());
    });

  try {
    await ready;
  } catch (error) {
    await close();
    throw bindError(error);
  }
  if (address !== undefined && membershipErrors.length > 0) {
    await close();
    throw new UnavailableError(
      'MDNS_INTERFACE',
      `cannot join the mDNS group on ${address}: ${membershipErrors[0]}`,
      { hint: 'pass --interface with the address of a multicast-capable interface' },
    );
  }

  return {
    onMessage: (listener) => listeners.push(listener),
    send: (packet, to) =>
      new Promise<void>((resolve, reject) => {
        if (closed) return resolve();
        const callback = (error: Error | null) => (error ? reject(sendError(error)) : resolve());
        const target = to === undefined ? undefined : { address: to.address, port: to.port };
        if (packet.type === 'query') mdns.query(packet as Required<Packet>, target, callback);
        else mdns.respond(packet as Required<Packet>, target, callback);
      }),
    close,
  };
};

/** The IPv4 address to join the group on: an address of this machine, or an interface name. */
export function interfaceAddress(value: string): string {
  const interfaces = networkInterfaces();
  if (isIPv4(value)) {
    const known = Object.values(interfaces).some((entries) =>
      (entries ?? []).some((entry) => entry.address === value),
    );
    if (!known) {
      throw new UsageError(
        'BAD_INTERFACE',
        `no interface of this machine has the address ${value}`,
        {
          hint: 'pass --interface with one of its IPv4 addresses or an interface name (see `ip addr`)',
        },
      );
    }
    return value;
  }
  if (isIPv6(value)) {
    throw new UsageError('BAD_INTERFACE', `mDNS runs over IPv4 here; ${value} is an IPv6 address`, {
      hint: 'pass --interface with an IPv4 address or an interface name',
    });
  }
  const entry = interfaces[value]?.find((candidate) => candidate.family === 'IPv4');
  if (!entry) {
    throw new UsageError('BAD_INTERFACE', `no interface "${value}" with an IPv4 address`, {
      hint: 'pass --interface with one of its IPv4 addresses or an interface name (see `ip addr`)',
    });
  }
  return entry.address;
}

function bindError(error: unknown): Error {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES') {
    return new UnavailableError(
      'MDNS_PORT_UNAVAILABLE',
      `cannot open UDP port ${MDNS_PORT} for mDNS: ${messageOf(error)}`,
      { hint: 'another program holds the mDNS port without sharing it', cause: error },
    );
  }
  return new UnavailableError('MDNS_UNAVAILABLE', `cannot start mDNS: ${messageOf(error)}`, {
    cause: error,
  });
}

function sendError(error: Error): Error {
  return new UnavailableError('MDNS_SEND_FAILED', `cannot send an mDNS packet: ${error.message}`, {
    hint: 'the network may have no multicast route; pass --interface <addr> to choose one',
    cause: error,
  });
}

/** A decoded packet, or why the datagram is not one. */
export function decodeDatagram(message: Buffer): { packet: DecodedPacket } | { error: string } {
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(message);
  } catch (error) {
    return { error: `not a DNS packet (${messageOf(error)})` };
  }
  // dns-packet reads a record cut short by slicing past the end without complaint: the bytes it
  // says it consumed (more than there are, or NaN once it read a length byte that was not there)
  // tell a truncated datagram from a whole one.
  const consumed = dnsPacket.decode.bytes;
  if (!Number.isInteger(consumed) || consumed > message.length) {
    return { error: `a truncated packet (${message.length} bytes, records claim more)` };
  }
  return { packet };
}

/** The RFC 6762 §5.4 unicast-response bit and the class, as dns-packet leaves them in `class`. */
export function questionClass(question: Question): { cls: 'IN' | 'ANY' | null; unicast: boolean } {
  // dns-packet names a class with the top bit set UNKNOWN_<n> instead of clearing the bit.
  const raw = String(question.class ?? 'IN');
  const match = /^UNKNOWN_(\d+)$/.exec(raw);
  const value = match ? Number(match[1]) : raw === 'IN' ? 1 : raw === 'ANY' ? 255 : -1;
  const unicast = value >= 0 && (value & 0x8000) !== 0;
  const cls = value & 0x7fff;
  return { cls: cls === 1 ? 'IN' : cls === 255 ? 'ANY' : null, unicast };
}

/** DNS names compare case-insensitively (RFC 1035 §2.3.3), without the root's trailing dot. */
export function canonicalName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/**
 * A name we may use as a host or instance name: 1-63 bytes per label, 255 in all, no control
 * characters (mDNS names are UTF-8, RFC 6762 §16, so anything printable goes).
 */
export function isUsableName(name: string): boolean {
  const bare = name.replace(/\.$/, '');
  if (bare.length === 0 || Buffer.byteLength(bare) > 253) return false;
  if (/[\x00-\x1f\x7f]/.test(bare)) return false;
  return bare.split('.').every((label) => label.length > 0 && Buffer.byteLength(label) <= 63);
}

/**
 * RFC 2181 §8: a TTL with the top bit set is read as 0. Whole seconds otherwise; dns-packet
 * always gives a number, but a fake transport's packet might not.
 */
export function ttlOf(record: object): number {
  const ttl = (record as { ttl?: unknown }).ttl ?? 0;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) return 0;
  return ttl;
}

/** Splits questions (and known answers) into queries that each fit MAX_PACKET_BYTES. */
export function queryPackets(questions: Question[], knownAnswers: Answer[] = []): Packet[] {
  const packets: Packet[] = [];
  let current: Required<Pick<Packet, 'questions' | 'answers'>> = { questions: [], answers: [] };
  const size = (packet: typeof current) =>
    dnsPacket.encodingLength({ ...packet, authorities: [], additionals: [] });
  const flush = () => {
    if (current.questions.length > 0) packets.push({ type: 'query', id: 0, flags: 0, ...current });
    current = { questions: [], answers: [] };
  };
  for (const question of questions) {
    current.questions.push(question);
    if (current.questions.length > 1 && size(current) > MAX_PACKET_BYTES) {
      current.questions.pop();
      flush();
      current.questions.push(question);
    }
  }
  // Known answers go with the last packet, as many as fit: a responder answers what is not
  // listed, so leaving some out costs a redundant answer, never a missed one.
  for (const answer of knownAnswers) {
    current.answers.push(answer);
    if (size(current) > MAX_PACKET_BYTES) {
      current.answers.pop();
      break;
    }
  }
  flush();
  return packets;
}

/** Same record (name, type, data): for known-answer suppression and duplicate detection. */
export function sameRecord(a: Answer, b: Answer): boolean {
  if (a.type !== b.type || canonicalName(a.name) !== canonicalName(b.name)) return false;
  return recordDataKey(a) === recordDataKey(b);
}

export function recordDataKey(record: Answer): string {
  const data = (record as { data?: unknown }).data;
  switch (record.type) {
    case 'PTR':
      return canonicalName(String(data));
    case 'SRV': {
      const srv = data as { port?: number; target?: string; priority?: number; weight?: number };
      return `${srv.priority ?? 0} ${srv.weight ?? 0} ${srv.port ?? 0} ${canonicalName(String(srv.target))}`;
    }
    case 'TXT': {
      const strings = Array.isArray(data) ? data : [data];
      return strings
        .map((entry) => Buffer.from(entry as Buffer | string).toString('hex'))
        .join(',');
    }
    default:
      return String(data);
  }
}
