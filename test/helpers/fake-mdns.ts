import dnsPacket from 'dns-packet';
import type { DecodedPacket, Packet } from 'dns-packet';
import type { RemoteInfo } from 'node:dgram';
import type { MdnsTransport, MdnsTransportFactory } from '../../src/core/discovery/mdns-wire.js';

/**
 * An in-memory link for unit tests of the mDNS code: every transport opened on it receives every
 * multicast packet (its own included, as with IP_MULTICAST_LOOP), unicast packets reach the
 * transport with that port. Packets are encoded and decoded for real, asynchronously, so the code
 * under test sees exactly the bytes it would on a network. No socket is ever opened.
 */
export class FakeLink {
  readonly sent: Array<{ from: number; to: number | 'group'; packet: DecodedPacket }> = [];
  private readonly members = new Map<number, Set<(message: Buffer, from: RemoteInfo) => void>>();
  private nextPort = 40_000;

  /** A factory for mdnsRunner/watchMdns/announceMdns: each transport on port 5353. */
  readonly factory: MdnsTransportFactory = async () => this.open(5353);

  open(port = 5353): MdnsTransport {
    const listeners = new Set<(message: Buffer, from: RemoteInfo) => void>();
    const all = this.members.get(port) ?? new Set();
    this.members.set(port, all);
    let closed = false;
    const deliver = (message: Buffer, from: RemoteInfo) => {
      if (!closed) for (const listener of listeners) listener(message, from);
    };
    all.add(deliver);
    return {
      onMessage: (listener) => listeners.add(listener),
      send: async (packet: Packet, to?: { address: string; port: number }) => {
        if (closed) return;
        const message = dnsPacket.encode({
          ...packet,
          flags:
            (packet.flags ?? 0) | (packet.type === 'response' ? dnsPacket.AUTHORITATIVE_ANSWER : 0),
        });
        this.sent.push({ from: port, to: to?.port ?? 'group', packet: dnsPacket.decode(message) });
        this.inject(message, { address: '127.0.0.1', port }, to?.port);
      },
      close: async () => {
        closed = true;
        all.delete(deliver);
      },
    };
  }

  /** A one-shot querier's port (not 5353), for legacy unicast tests. */
  ephemeralPort(): number {
    return this.nextPort++;
  }

  /** Delivers raw bytes as if sent from `from`, to the group or to one port. */
  inject(message: Buffer, from: { address: string; port: number }, toPort?: number): void {
    const info: RemoteInfo = {
      address: from.address,
      port: from.port,
      family: 'IPv4',
      size: message.length,
    };
    const targets =
      toPort === undefined
        ? [...this.members.values()].flatMap((set) => [...set])
        : [...(this.members.get(toPort) ?? [])];
    setImmediate(() => {
      for (const deliver of targets) deliver(message, info);
    });
  }

  /** Encodes and injects a packet from a responder on 5353 (or the given port). */
  respond(packet: Packet, fromPort = 5353): void {
    this.inject(
      dnsPacket.encode({ type: 'response', flags: dnsPacket.AUTHORITATIVE_ANSWER, ...packet }),
      { address: '127.0.0.1', port: fromPort },
    );
  }

  queries(): DecodedPacket[] {
    return this.sent.filter((entry) => entry.packet.type === 'query').map((entry) => entry.packet);
  }

  responses(): Array<{ from: number; to: number | 'group'; packet: DecodedPacket }> {
    return this.sent.filter((entry) => entry.packet.type === 'response');
  }
}
