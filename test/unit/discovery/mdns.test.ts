import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { SarkError } from '../../../src/core/errors.js';
import {
  announceMdns,
  mdnsRunner,
  watchMdns,
  type MdnsWatchEvent,
} from '../../../src/core/discovery/mdns.js';
import {
  decodeDatagram,
  interfaceAddress,
  MAX_PACKET_BYTES,
  questionClass,
  queryPackets,
} from '../../../src/core/discovery/mdns-wire.js';
import { scan } from '../../../src/core/discovery/scanner.js';
import { sarkTxtStrings } from '../../../src/core/discovery/txt.js';
import { advertisedHost } from '../../../src/node/announce.js';
import { FakeLink } from '../../helpers/fake-mdns.js';

/**
 * The mDNS browser and responder over an in-memory link (test/helpers/fake-mdns.ts): real DNS
 * bytes, no socket. Real multicast is tested in test/integration/mdns.test.ts, inside a network
 * namespace.
 */

const SERVICE = '_sark._tcp.local';
const FP = 'cd'.repeat(32);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

function recordsOf(nodeId: string, port: number, ttl = 120) {
  const instance = `${nodeId}.${SERVICE}`;
  const host = `${nodeId}.local`;
  return {
    instance,
    host,
    ptr: { name: SERVICE, type: 'PTR', ttl, data: instance } as Answer,
    srv: { name: instance, type: 'SRV', ttl, flush: true, data: { port, target: host } } as Answer,
    txt: {
      name: instance,
      type: 'TXT',
      ttl,
      flush: true,
      data: sarkTxtStrings({ nodeId, trustDomain: 'unit.example', fingerprint: FP }),
    } as Answer,
    a: { name: host, type: 'A', ttl, flush: true, data: '127.0.0.1' } as Answer,
  };
}

/** A watcher on the link, collecting events and skipped details until stop(). */
function watcher(link: FakeLink, querySchedule?: (index: number) => number) {
  const events: MdnsWatchEvent[] = [];
  const skipped: string[] = [];
  const controller = new AbortController();
  const done = watchMdns({
    transportFactory: link.factory,
    signal: controller.signal,
    onEvent: (event) => events.push(event),
    onSkipped: (detail) => skipped.push(detail),
    querySchedule,
  });
  return {
    events,
    skipped,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

/** A responder on the link that answers each question with exactly that record, one per packet. */
function separateResponder(link: FakeLink, records: ReturnType<typeof recordsOf>) {
  const transport = link.open(5353);
  transport.onMessage((message) => {
    const decoded = decodeDatagram(message);
    if ('error' in decoded || decoded.packet.type !== 'query') return;
    for (const question of decoded.packet.questions ?? []) {
      const all = [records.ptr, records.srv, records.txt, records.a];
      for (const record of all) {
        if (record.name === question.name && record.type === question.type)
          void transport.send({ type: 'response', answers: [record] });
      }
    }
  });
  return transport;
}

function questionsOf(packets: DecodedPacket[]): Question[] {
  return packets.flatMap((packet) => packet.questions ?? []);
}

describe('decodeDatagram', () => {
  const whole = dnsPacket.encode({
    type: 'response',
    answers: [recordsOf('node-a', 8443).ptr],
    additionals: [
      recordsOf('node-a', 8443).srv,
      recordsOf('node-a', 8443).txt,
      recordsOf('node-a', 8443).a,
    ],
  });

  it('accepts a whole response', () => {
    expect(decodeDatagram(whole)).toHaveProperty('packet');
  });

  it('rejects the same response cut at every length', () => {
    for (let length = 0; length < whole.length; length++) {
      expect(decodeDatagram(whole.subarray(0, length)), `cut at ${length}`).toHaveProperty('error');
    }
  });

  it('rejects bytes that are not DNS', () => {
    expect(decodeDatagram(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toHaveProperty('error');
    expect(decodeDatagram(Buffer.alloc(0))).toHaveProperty('error');
  });
});

describe('questionClass', () => {
  it('reads the unicast-response bit that dns-packet leaves in the class (RFC 6762 §5.4)', () => {
    const query = dnsPacket.encode({ type: 'query', questions: [{ name: SERVICE, type: 'PTR' }] });
    query.writeUInt16BE(0x8001, query.length - 2);
    const decoded = decodeDatagram(query);
    if ('error' in decoded) throw new Error(decoded.error);
    expect(questionClass(decoded.packet.questions?.[0] as Question)).toEqual({
      cls: 'IN',
      unicast: true,
    });
    expect(questionClass({ name: SERVICE, type: 'PTR', class: 'ANY' })).toEqual({
      cls: 'ANY',
      unicast: false,
    });
    expect(questionClass({ name: SERVICE, type: 'PTR', class: 'CH' })).toMatchObject({ cls: null });
  });
});

describe('queryPackets', () => {
  it(`splits questions into packets of at most ${MAX_PACKET_BYTES} bytes, known answers as they fit`, () => {
    const questions: Question[] = Array.from({ length: 100 }, (_, index) => ({
      name: `node-${index}.${SERVICE}`,
      type: 'SRV',
    }));
    const known = Array.from({ length: 100 }, (_, index) => recordsOf(`node-${index}`, 1).ptr);
    const packets = queryPackets(questions, known);
    expect(packets.length).toBeGreaterThan(1);
    for (const packet of packets) {
      expect(dnsPacket.encode(packet).length).toBeLessThanOrEqual(MAX_PACKET_BYTES);
    }
    expect(packets.flatMap((packet) => packet.questions)).toHaveLength(100);
    expect(packets.at(-1)?.answers?.length).toBeGreaterThan(0);
  });
});

describe.concurrent('mDNS browser and announcer on an in-memory link', () => {
  it('resolves an announced node from its announcement, and sees its goodbye', async () => {
    const link = new FakeLink();
    const watch = watcher(link);
    const announcement = await announceMdns({
      nodeId: 'node-a',
      trustDomain: 'unit.example',
      fingerprint: FP,
      host: '192.0.2.10',
      port: 8443,
      transportFactory: link.factory,
    });
    await until(() => watch.events.length === 1);
    expect(watch.events[0]).toEqual({
      type: '+',
      node: {
        nodeId: 'node-a',
        endpoint: 'https://192.0.2.10:8443',
        trustDomain: 'unit.example',
        fingerprint: FP,
        source: 'mdns',
        ttlSeconds: 120,
      },
    });
    expect(announcement).toMatchObject({
      instance: `node-a.${SERVICE}`,
      hostName: 'node-a.local',
    });

    await announcement.close();
    // RFC 6762 §10.1: gone one second after the goodbye, not at once.
    await until(() => watch.events.length === 2, 3000);
    expect(watch.events[1]).toMatchObject({
      type: '-',
      reason: 'goodbye',
      node: { nodeId: 'node-a' },
    });
    const goodbye = link.responses().at(-1)?.packet;
    expect(
      goodbye?.answers?.map((record) => [record.type, (record as { ttl: number }).ttl]),
    ).toEqual([
      ['PTR', 0],
      ['SRV', 0],
      ['TXT', 0],
      ['A', 0],
    ]);
    await watch.stop();
    expect(watch.skipped).toEqual([]);
  });

  it('asks for SRV and TXT, then the address, when a responder answers only what it is asked', async () => {
    const link = new FakeLink();
    const records = recordsOf('node-b', 9443);
    const responder = separateResponder(link, records);
    const watch = watcher(link);
    await until(() => watch.events.length === 1);
    expect(watch.events[0]?.node.endpoint).toBe('https://127.0.0.1:9443');
    const asked = questionsOf(link.queries()).map(
      (question) => `${question.type} ${question.name}`,
    );
    expect(asked).toEqual(
      expect.arrayContaining([
        `PTR ${SERVICE}`,
        `SRV ${records.instance}`,
        `TXT ${records.instance}`,
        `A ${records.host}`,
      ]),
    );
    await watch.stop();
    await responder.close();
  });

  it('asks ever less often for an address nobody gives, and never reports the node', async () => {
    const link = new FakeLink();
    const records = recordsOf('node-g', 4443);
    const watch = watcher(link, (index) => (index === 0 ? 0 : 60_000));
    await until(() => link.queries().length >= 1);
    link.respond({
      answers: [records.ptr],
      additionals: [
        records.srv,
        records.txt,
        // An address for another name: not the SRV target's.
        { ...records.a, name: 'elsewhere.local' } as Answer,
      ],
    });
    await sleep(3300);
    await watch.stop();
    const asked = questionsOf(link.queries()).filter(
      (question) => question.type === 'A' && question.name === records.host,
    );
    // At about 0 s, 1 s and 3 s: not every maintenance pass.
    expect(asked.length).toBeGreaterThanOrEqual(2);
    expect(asked.length).toBeLessThanOrEqual(3);
    expect(watch.events).toEqual([]);
  });

  it('lists known answers in later browse queries (RFC 6762 §7.1)', async () => {
    const link = new FakeLink();
    const records = recordsOf('node-c', 7443);
    const watch = watcher(link, (index) => index * 100);
    await until(() => link.queries().length >= 1);
    link.respond({ answers: [records.ptr], additionals: [records.srv, records.txt, records.a] });
    await until(() => watch.events.length === 1);
    await until(() => link.queries().length >= 3);
    await watch.stop();
    const later = link.queries().filter((query) => (query.answers ?? []).length > 0);
    expect(later.length).toBeGreaterThan(0);
    expect(later[0]?.answers?.[0]).toMatchObject({ type: 'PTR', data: records.instance });
  });

  it('refreshes records at 80% of their TTL and reports them expired when nobody answers', async () => {
    const link = new FakeLink();
    const records = recordsOf('node-d', 6443, 2);
    const watch = watcher(link, (index) => (index === 0 ? 0 : 60_000));
    link.respond({ answers: [records.ptr], additionals: [records.srv, records.txt, records.a] });
    await until(() => watch.events.length === 1);
    await until(() => watch.events.length === 2, 4000);
    expect(watch.events[1]).toMatchObject({
      type: '-',
      reason: 'expired',
      node: { nodeId: 'node-d' },
    });
    const refreshed = questionsOf(link.queries()).map(
      (question) => `${question.type} ${question.name}`,
    );
    expect(refreshed).toEqual(
      expect.arrayContaining([`SRV ${records.instance}`, `A ${records.host}`]),
    );
    await watch.stop();
  });

  it('reports a changed TXT as `+` again, and an instance that names another node as `-` replaced', async () => {
    const link = new FakeLink();
    const records = recordsOf('node-e', 5443);
    const watch = watcher(link);
    link.respond({ answers: [records.ptr], additionals: [records.srv, records.txt, records.a] });
    await until(() => watch.events.length === 1);
    link.respond({
      answers: [
        {
          ...records.txt,
          data: sarkTxtStrings({ nodeId: 'node-e', trustDomain: 'moved.example', fingerprint: FP }),
        } as Answer,
      ],
    });
    await until(() => watch.events.length === 2);
    expect(watch.events[1]).toMatchObject({ type: '+', node: { trustDomain: 'moved.example' } });
    link.respond({
      answers: [
        {
          ...records.txt,
          data: sarkTxtStrings({ nodeId: 'node-x', trustDomain: 'moved.example', fingerprint: FP }),
        } as Answer,
      ],
    });
    await until(() => watch.events.length === 4);
    expect(watch.events.slice(2)).toMatchObject([
      { type: '-', reason: 'replaced', node: { nodeId: 'node-e' } },
      { type: '+', node: { nodeId: 'node-x' } },
    ]);
    await watch.stop();
  });

  it('keeps a node whose TXT has a malformed td= or fp= without them, and says so once', async () => {
    const link = new FakeLink();
    const records = recordsOf('node-t', 6443);
    const txt = {
      ...records.txt,
      data: ['txtvers=1', 'node=node-t', 'td=Org-T.test', 'fp=abc'],
    } as Answer;
    const watch = watcher(link);
    link.respond({ answers: [records.ptr], additionals: [records.srv, txt, records.a] });
    await until(() => watch.events.length === 1);
    expect(watch.events[0]).toMatchObject({
      type: '+',
      node: { nodeId: 'node-t', trustDomain: null, fingerprint: null },
    });
    // The same record again: nothing new to say.
    link.respond({ answers: [txt] });
    await watch.stop();
    expect(watch.skipped).toEqual([
      expect.stringMatching(
        /^node-t\._sark\._tcp\.local: TXT td=Org-T\.test is not a trust domain; the node is kept without it /,
      ),
      expect.stringMatching(
        /^node-t\._sark\._tcp\.local: TXT fp=abc is not a SHA-256 fingerprint \(64 hex digits\); the node is kept without it /,
      ),
    ]);
  });

  it('bounds what a flood of instances can make it hold', async () => {
    const link = new FakeLink();
    const watch = watcher(link);
    const ptrs = Array.from({ length: 1100 }, (_, index) => recordsOf(`flood-${index}`, 1).ptr);
    for (let start = 0; start < ptrs.length; start += 20) {
      link.respond({ answers: ptrs.slice(start, start + 20) });
    }
    await until(() =>
      watch.skipped.some((detail) => detail.includes('too many service instances')),
    );
    // Instances without SRV/TXT are asked about, in packets that fit the MTU.
    await until(() => link.queries().length > 2);
    for (const entry of link.sent) {
      expect(dnsPacket.encode(entry.packet).length).toBeLessThanOrEqual(MAX_PACKET_BYTES);
    }
    await watch.stop();
    expect(watch.events).toEqual([]);
  });
});

describe.concurrent('mDNS responder', () => {
  async function settledAnnouncer(
    link: FakeLink,
    logger?: { info(): void; warn(m: string, f?: Record<string, unknown>): void },
  ) {
    const announcement = await announceMdns({
      nodeId: 'node-r',
      trustDomain: 'unit.example',
      fingerprint: FP,
      host: '192.0.2.20',
      port: 8443,
      transportFactory: link.factory,
      logger,
    });
    // Past the second announcement and its one-second rate limit (RFC 6762 §6, §8.3), counted
    // from when it was seen: on a loaded machine it comes later than the one second it waits.
    await until(() => link.responses().length >= 2, 10_000);
    await sleep(1100);
    return announcement;
  }

  it('answers queries by the rules of RFC 6762 and 6763', { timeout: 15_000 }, async () => {
    const link = new FakeLink();
    const warnings: Array<{ message: string; fields?: Record<string, unknown> }> = [];
    const announcement = await settledAnnouncer(link, {
      info: () => {},
      warn: (message, fields) => warnings.push({ message, fields }),
    });
    const querier = link.open(5353);
    const responsesAfter = (count: number) => link.responses().slice(count);

    // Two announcements a second apart, with every record.
    expect(link.responses()).toHaveLength(2);
    expect(link.responses()[0]?.packet.answers?.map((record) => record.type)).toEqual([
      'PTR',
      'PTR',
      'SRV',
      'TXT',
      'A',
    ]);

    // A PTR query: the PTR, with SRV, TXT and A as additional records (RFC 6763 §12.1).
    let before = link.responses().length;
    await querier.send({ type: 'query', questions: [{ name: SERVICE, type: 'PTR' }] });
    await until(() => link.responses().length > before);
    const [answer] = responsesAfter(before);
    expect(answer?.to).toBe('group');
    expect(answer?.packet.answers?.map((record) => record.type)).toEqual(['PTR']);
    expect(answer?.packet.additionals?.map((record) => record.type)).toEqual(['SRV', 'TXT', 'A']);

    // Asked again within the second: not multicast again (RFC 6762 §6).
    before = link.responses().length;
    await querier.send({ type: 'query', questions: [{ name: SERVICE, type: 'PTR' }] });
    await sleep(200);
    expect(responsesAfter(before)).toEqual([]);
    await sleep(1000);

    // A querier that already holds the PTR is not told again (known-answer suppression).
    before = link.responses().length;
    await querier.send({
      type: 'query',
      questions: [{ name: SERVICE, type: 'PTR' }],
      answers: [{ name: SERVICE, type: 'PTR', ttl: 4000, data: announcement.instance }],
    });
    await sleep(200);
    expect(responsesAfter(before)).toEqual([]);

    // ANY for the instance: SRV and TXT, with the address as additional record.
    before = link.responses().length;
    await querier.send({
      type: 'query',
      questions: [{ name: announcement.instance.toUpperCase(), type: 'ANY' as never }],
    });
    await until(() => link.responses().length > before);
    expect(responsesAfter(before)[0]?.packet.answers?.map((record) => record.type)).toEqual([
      'SRV',
      'TXT',
    ]);
    expect(responsesAfter(before)[0]?.packet.additionals?.map((record) => record.type)).toEqual([
      'A',
    ]);

    // A legacy one-shot querier on another port gets a unicast DNS answer: its ID, its
    // question, no cache-flush bit, TTL at most 10 s (RFC 6762 §6.7).
    const port = link.ephemeralPort();
    const oneShot = link.open(port);
    before = link.responses().length;
    await oneShot.send({
      type: 'query',
      id: 4242,
      questions: [{ name: announcement.hostName, type: 'A' }],
    });
    await until(() => link.responses().length > before);
    const legacy = responsesAfter(before)[0];
    expect(legacy?.to).toBe(port);
    expect(legacy?.packet).toMatchObject({
      id: 4242,
      questions: [{ name: announcement.hostName, type: 'A' }],
      answers: [
        { name: announcement.hostName, type: 'A', ttl: 10, flush: false, data: '192.0.2.20' },
      ],
    });

    // Someone else claiming our host name with another address is logged once.
    link.respond({
      answers: [
        { name: announcement.hostName, type: 'A', ttl: 120, flush: true, data: '192.0.2.99' },
      ],
    });
    link.respond({
      answers: [
        { name: announcement.hostName, type: 'A', ttl: 120, flush: true, data: '192.0.2.99' },
      ],
    });
    await until(() => warnings.length > 0);
    await sleep(50);
    expect(warnings).toEqual([
      {
        message: 'mdns name conflict',
        fields: { record: 'A', name: announcement.hostName, theirs: '192.0.2.99' },
      },
    ]);

    // Garbage is ignored: the responder still answers afterwards.
    link.inject(Buffer.from('not dns'), { address: '127.0.0.1', port: 5353 });
    await sleep(1100);
    before = link.responses().length;
    await querier.send({
      type: 'query',
      questions: [{ name: announcement.instance, type: 'SRV' }],
    });
    await until(() => link.responses().length > before);

    await announcement.close();
    await announcement.close();
    await querier.close();
    await oneShot.close();
  });

  it('refuses what it cannot announce, before opening a socket', async () => {
    let opened = 0;
    const factory = async () => {
      opened++;
      return new FakeLink().open();
    };
    const base = { nodeId: 'node-a', trustDomain: 'unit.example', fingerprint: FP, port: 8443 };
    for (const [options, code] of [
      [{ ...base, host: '0.0.0.0' }, 'BAD_ANNOUNCE_HOST'],
      [{ ...base, host: 'example.org' }, 'BAD_ANNOUNCE_HOST'],
      [{ ...base, host: '192.0.2.1', port: 0 }, 'BAD_ANNOUNCE_PORT'],
      [{ ...base, host: '192.0.2.1', nodeId: 'Not An ID' }, 'BAD_NODE_ID'],
    ] as const) {
      await expect(announceMdns({ ...options, transportFactory: factory })).rejects.toMatchObject({
        code,
      });
    }
    expect(opened).toBe(0);
  });
});

describe('mdnsRunner in the scanner', () => {
  it('ends the scan at --expect, long before the deadline', async () => {
    const link = new FakeLink();
    for (const [nodeId, port] of [
      ['node-1', 1001],
      ['node-2', 1002],
    ] as const) {
      const records = recordsOf(nodeId, port);
      const responder = link.open(5353);
      responder.onMessage((message) => {
        const decoded = decodeDatagram(message);
        if ('error' in decoded || decoded.packet.type !== 'query') return;
        void responder.send({
          type: 'response',
          answers: [records.ptr],
          additionals: [records.srv, records.txt, records.a],
        });
      });
    }
    const result = await scan({
      runners: [mdnsRunner({ transportFactory: link.factory })],
      timeoutMs: 20_000,
      expect: 2,
    });
    // Ended by --expect: mDNS listens until the scan ends, so only the deadline (20 s) would
    // end it otherwise.
    expect(result.expectMet).toBe(true);
    expect(result.elapsedMs).toBeLessThan(10_000);
    expect(result.nodes.map((node) => [node.nodeId, node.endpoint])).toEqual([
      ['node-1', 'https://127.0.0.1:1001'],
      ['node-2', 'https://127.0.0.1:1002'],
    ]);
    expect(result.succeeded).toEqual(['mdns']);
  });

  it('reports a method problem when mDNS cannot start, without failing the scan', async () => {
    const result = await scan({
      runners: [
        mdnsRunner({
          transportFactory: async () => {
            throw new SarkError('unavailable', 'MDNS_PORT_UNAVAILABLE', 'port 5353 is taken');
          },
        }),
      ],
      timeoutMs: 1000,
    });
    expect(result.problems).toEqual([
      {
        method: 'mdns',
        code: 'MDNS_PORT_UNAVAILABLE',
        message: 'port 5353 is taken',
        hint: undefined,
      },
    ]);
  });

  it('fails the method when its first query cannot be sent', async () => {
    const link = new FakeLink();
    const result = await scan({
      runners: [
        mdnsRunner({
          transportFactory: async () => ({
            ...link.open(),
            send: async () => {
              throw new SarkError('unavailable', 'MDNS_SEND_FAILED', 'network unreachable');
            },
          }),
        }),
      ],
      timeoutMs: 1000,
    });
    expect(result.problems.map((problem) => problem.code)).toEqual(['MDNS_SEND_FAILED']);
  });
});

describe('interfaces and announced addresses', () => {
  it('accepts an address or a name of this machine, and nothing else', () => {
    expect(interfaceAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(interfaceAddress('lo')).toBe('127.0.0.1');
    for (const value of ['203.0.113.77', '::1', 'no-such-interface0']) {
      expect(() => interfaceAddress(value), value).toThrow(
        expect.objectContaining({ code: 'BAD_INTERFACE', kind: 'usage' }),
      );
    }
  });

  it('announces the listen address, or for a wildcard the --interface or an external address', () => {
    expect(advertisedHost('192.0.2.5')).toBe('192.0.2.5');
    expect(advertisedHost('0.0.0.0', '192.0.2.6')).toBe('192.0.2.6');
    expect(advertisedHost('::', 'lo')).toBe('127.0.0.1');
    expect(advertisedHost('0.0.0.0')).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });
});
