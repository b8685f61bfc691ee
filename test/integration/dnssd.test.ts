import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsSdRunner } from '../../src/core/discovery/dnssd.js';
import { scan, type MethodRunner, type ScanResult } from '../../src/core/discovery/scanner.js';
import { startDnsmasq, type RunningDnsmasq } from '../helpers/dnsmasq.js';

/**
 * DNS-SD over unicast DNS against a real dnsmasq on a loopback port, configured with the zone
 * records an operator would write: PTR for the service list, SRV (priority/weight), TXT and the
 * targets' A/AAAA. Also the failures a real network gives: NXDOMAIN, REFUSED, a server that
 * answers with something that is not DNS, one that does not answer, and nothing listening.
 */

const FP_A = 'a'.repeat(64);
const FP_B = 'b'.repeat(64);
const service = (instance: string, domain: string) => `${instance}._sark._tcp.${domain}`;
const ptr = (domain: string, instance: string) =>
  `ptr-record=_sark._tcp.${domain},${service(instance, domain)}`;
const txt = (instance: string, domain: string, ...strings: string[]) =>
  `txt-record=${service(instance, domain)},${strings.map((item) => `"${item}"`).join(',')}`;
const srv = (instance: string, domain: string, target: string, port: number, prio = 0, w = 0) =>
  `srv-host=${service(instance, domain)},${target},${port},${prio},${w}`;
const goodTxt = (node: string, td: string, fp: string) => [
  'txtvers=1',
  `node=${node}`,
  `td=${td}`,
  `fp=${fp}`,
  'api=v2',
];

const ZONES = [
  // good.test: three nodes resolved three ways (A, AAAA only, lower-priority SRV after a dead
  // target), and one whose SRV target is an IP literal.
  'local=/good.test/',
  'local-ttl=60',
  ptr('good.test', 'node-a'),
  ptr('good.test', 'node-b'),
  ptr('good.test', 'node-c'),
  ptr('good.test', 'node-d'),
  srv('node-a', 'good.test', 'host-a.good.test', 8443),
  txt('node-a', 'good.test', ...goodTxt('node-a', 'org-a.test', FP_A)),
  'host-record=host-a.good.test,127.0.0.11',
  srv('node-b', 'good.test', 'host-b.good.test', 9443),
  txt('node-b', 'good.test', ...goodTxt('node-b', 'org-b.test', FP_B)),
  'host-record=host-b.good.test,::1',
  srv('node-c', 'good.test', 'dead.good.test', 7000, 0, 10),
  srv('node-c', 'good.test', 'host-c.good.test', 7443, 10, 10),
  txt('node-c', 'good.test', 'txtvers=1', 'node=node-c', 'td=org-a.test'),
  'host-record=host-c.good.test,127.0.0.13',
  srv('node-d', 'good.test', '127.0.0.14', 8443),
  txt('node-d', 'good.test', 'node=node-d'),

  // weights.test: one node with three SRV records, to see RFC 2782's order.
  'local=/weights.test/',
  ptr('weights.test', 'node-w'),
  txt('node-w', 'weights.test', 'node=node-w'),
  srv('node-w', 'weights.test', 'w0.weights.test', 8000, 0, 0),
  srv('node-w', 'weights.test', 'w100.weights.test', 8100, 0, 100),
  srv('node-w', 'weights.test', 'p1.weights.test', 8200, 1, 100),
  'host-record=w0.weights.test,127.0.0.20',
  'host-record=w100.weights.test,127.0.0.21',
  'host-record=p1.weights.test,127.0.0.22',

  // bad.test: one good node among everything that must be skipped.
  'local=/bad.test/',
  ptr('bad.test', 'ok'),
  srv('ok', 'bad.test', 'host-ok.bad.test', 8443),
  txt('ok', 'bad.test', 'node=ok'),
  'host-record=host-ok.bad.test,127.0.0.40',
  // SRV target "." (dnsmasq writes one for an srv-host without target): decidedly not here.
  ptr('bad.test', 'nowhere'),
  `srv-host=${service('nowhere', 'bad.test')}`,
  txt('nowhere', 'bad.test', 'node=nowhere'),
  // SRV target that has no address at all.
  ptr('bad.test', 'noaddr'),
  srv('noaddr', 'bad.test', 'missing.bad.test', 8443),
  txt('noaddr', 'bad.test', 'node=noaddr'),
  // TXT without node=.
  ptr('bad.test', 'nokey'),
  srv('nokey', 'bad.test', 'host-ok.bad.test', 8443),
  txt('nokey', 'bad.test', 'txtvers=1', 'td=org-a.test'),
  // Duplicate node= keys: the first wins (RFC 6763 §6.4), so it differs from the instance name.
  ptr('bad.test', 'dup'),
  srv('dup', 'bad.test', 'host-ok.bad.test', 8443),
  txt('dup', 'bad.test', 'node=ok', 'node=dup'),
  // Unknown txtvers.
  ptr('bad.test', 'vers'),
  srv('vers', 'bad.test', 'host-ok.bad.test', 8443),
  txt('vers', 'bad.test', 'txtvers=2', 'node=vers'),
  // Instance name and TXT node= disagree.
  ptr('bad.test', 'liar'),
  srv('liar', 'bad.test', 'host-ok.bad.test', 8443),
  txt('liar', 'bad.test', 'node=node-a'),
  // Wrong record types: the instance name has only an A record, or is a CNAME to a host.
  ptr('bad.test', 'onlya'),
  `host-record=${service('onlya', 'bad.test')},127.0.0.30`,
  ptr('bad.test', 'alias'),
  'host-record=host-x.bad.test,127.0.0.31',
  `cname=${service('alias', 'bad.test')},host-x.bad.test`,
  // A PTR that leaves the service type's tree.
  'ptr-record=_sark._tcp.bad.test,node-z.elsewhere.test',
  // Oversized TXT: given on the command line (longer than a configuration line may be).
  ptr('bad.test', 'big'),
  srv('big', 'bad.test', 'host-ok.bad.test', 8443),

  // nx.test is dnsmasq's own domain, with nothing in it: NXDOMAIN.
  'local=/nx.test/',
  // empty.test has the service name, but only a TXT record there: NODATA for PTR.
  'local=/empty.test/',
  'txt-record=_sark._tcp.empty.test,"nothing here"',
  // Anything else (refused.test) has no upstream to go to: dnsmasq answers REFUSED.
];

const BIG_TXT = `--txt-record=${service('big', 'bad.test')},node=big,${[
  'a',
  'b',
  'c',
  'd',
  'e',
  'f',
]
  .map((char) => char.repeat(250))
  .join(',')}`;

let dnsmasq: RunningDnsmasq;

beforeAll(async () => {
  dnsmasq = await startDnsmasq(ZONES, [BIG_TXT]);
});

afterAll(async () => {
  await dnsmasq?.stop();
});

async function scanDomain(
  domain: string,
  options: {
    random?: () => number;
    nameserver?: string;
    timeoutMs?: number;
    scanTimeoutMs?: number;
  } = {},
): Promise<ScanResult> {
  return scan({
    runners: [
      dnsSdRunner({
        domain,
        nameserver: options.nameserver ?? dnsmasq.nameserver,
        random: options.random,
        timeoutMs: options.timeoutMs,
      }),
    ],
    timeoutMs: options.scanTimeoutMs ?? 4_000,
  });
}

describe('DNS-SD against dnsmasq', () => {
  it('resolves every node of a domain with its endpoint, trust domain, fingerprint and TTL', async () => {
    const result = await scanDomain('good.test');
    expect(result.problems, dnsmasq.log()).toEqual([]);
    expect(result.skipped).toEqual([]);
    expect(result.succeeded).toEqual(['dns-sd']);
    const nodes = result.nodes.map(({ nodeId, endpoint, trustDomain, fingerprint, via }) => ({
      nodeId,
      endpoint,
      trustDomain,
      fingerprint,
      via,
    }));
    expect(nodes).toEqual([
      {
        nodeId: 'node-a',
        endpoint: 'https://127.0.0.11:8443',
        trustDomain: 'org-a.test',
        fingerprint: FP_A,
        via: ['dns-sd'],
      },
      {
        nodeId: 'node-b',
        endpoint: 'https://[::1]:9443',
        trustDomain: 'org-b.test',
        fingerprint: FP_B,
        via: ['dns-sd'],
      },
      {
        // The priority-0 target has no address: the priority-10 one is used.
        nodeId: 'node-c',
        endpoint: 'https://127.0.0.13:7443',
        trustDomain: 'org-a.test',
        fingerprint: null,
        via: ['dns-sd'],
      },
      {
        nodeId: 'node-d',
        endpoint: 'https://127.0.0.14:8443',
        trustDomain: null,
        fingerprint: null,
        via: ['dns-sd'],
      },
    ]);
    // The address record's TTL (dnsmasq's local-ttl); an IP literal target has the default.
    expect(result.nodes.map((node) => node.ttlSeconds)).toEqual([60, 60, 60, 120]);
  });

  it('takes SRV records in RFC 2782 order: priority first, then weighted choice', async () => {
    // Uniform pick in [0, 100]: 0 selects the weight-0 record (placed first), 50 the weight-100.
    const low = await scanDomain('weights.test', { random: () => 0 });
    expect(low.nodes.map((node) => node.endpoint)).toEqual(['https://127.0.0.20:8000']);
    const high = await scanDomain('weights.test', { random: () => 0.5 });
    expect(high.nodes.map((node) => node.endpoint)).toEqual(['https://127.0.0.21:8100']);
  });

  it('skips bad records one by one and still finds the good node beside them', async () => {
    const result = await scanDomain('bad.test');
    expect(result.problems).toEqual([]);
    expect(result.nodes.map((node) => [node.nodeId, node.endpoint])).toEqual([
      ['ok', 'https://127.0.0.40:8443'],
    ]);
    const details = result.skipped.map((item) => item.detail).sort();
    const expected: Array<[string, RegExp]> = [
      ['nowhere', /points nowhere/],
      ['noaddr', /no address: missing\.bad\.test \(ENOTFOUND\)/],
      ['nokey', /TXT refused: no valid node= key/],
      ['dup', /instance name "dup" differs from the TXT node=ok/],
      ['vers', /TXT refused: unsupported txtvers 2/],
      ['liar', /instance name "liar" differs from the TXT node=node-a/],
      ['onlya', /no SRV record \(ENODATA\)$/],
      ['alias', /no SRV record$/],
      ['big', /TXT refused: the TXT record is \d+ bytes, over 1300/],
    ];
    for (const [instance, pattern] of expected) {
      const line = details.find((detail) => detail.startsWith(`${service(instance, 'bad.test')}:`));
      expect(line, `${instance} in ${JSON.stringify(details)}`).toMatch(pattern);
    }
    expect(details).toContainEqual(
      expect.stringMatching(/PTR node-z\.elsewhere\.test is not an instance/),
    );
    expect(details).toHaveLength(expected.length + 1);
    expect(result.skipped.every((item) => item.method === 'dns-sd')).toBe(true);
  });

  it('reports NXDOMAIN as the method problem, naming the domain and the nameserver', async () => {
    const result = await scanDomain('nx.test');
    expect(result.nodes).toEqual([]);
    expect(result.succeeded).toEqual([]);
    expect(result.problems).toEqual([
      {
        method: 'dns-sd',
        code: 'DNSSD_NXDOMAIN',
        message: `_sark._tcp.nx.test does not exist (NXDOMAIN from nameserver ${dnsmasq.nameserver})`,
        hint: expect.stringContaining('check --domain nx.test'),
      },
    ]);
  });

  it('reports REFUSED as the method problem', async () => {
    const result = await scanDomain('refused.test');
    expect(result.problems).toMatchObject([
      {
        method: 'dns-sd',
        code: 'DNSSD_REFUSED',
        message: expect.stringContaining(`nameserver ${dnsmasq.nameserver} refused`),
      },
    ]);
  });

  it('treats a service name without PTR records (NODATA) as an empty domain', async () => {
    const result = await scanDomain('empty.test');
    expect(result.problems).toEqual([]);
    expect(result.succeeded).toEqual(['dns-sd']);
    expect(result.nodes).toEqual([]);
    expect(result.skipped.map((item) => item.detail)).toEqual([
      '_sark._tcp.empty.test: no PTR records (the name holds other record types)',
    ]);
  });

  it('does not stop the other methods when it fails', async () => {
    const other: MethodRunner = {
      method: 'manual',
      async run(_context, found) {
        found({
          nodeId: 'node-m',
          endpoint: 'https://127.0.0.50:8443',
          trustDomain: null,
          fingerprint: null,
          source: 'manual',
          ttlSeconds: 60,
        });
      },
    };
    const result = await scan({
      runners: [dnsSdRunner({ domain: 'nx.test', nameserver: dnsmasq.nameserver }), other],
      timeoutMs: 4_000,
    });
    expect(result.problems.map((problem) => problem.code)).toEqual(['DNSSD_NXDOMAIN']);
    expect(result.succeeded).toEqual(['manual']);
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-m']);
  });
});

describe('DNS-SD against servers that are not DNS servers', () => {
  let garbage: Socket;
  let silent: Socket;
  let servfail: Socket;
  let notimp: Socket;
  let received = 0;

  beforeAll(async () => {
    garbage = await udpServer((message, reply) => {
      received++;
      // Something that is not DNS at all, then a reply with the query's ID but a broken body.
      reply(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
      reply(Buffer.concat([message.subarray(0, 2), Buffer.from([0x81, 0x80, 0xff, 0xff, 1])]));
    });
    silent = await udpServer(() => {});
    // A well-formed answer to the query with RCODE 2: what a recursor says when it cannot reach
    // the zone's authoritative servers.
    servfail = await udpServer((message, reply) => {
      const answer = Buffer.from(message);
      answer[2] = 0x81; // QR, RD
      answer[3] = 0x82; // RA, SERVFAIL
      reply(answer);
    });
    // RCODE 4, NOTIMP: an answer none of the named cases covers.
    notimp = await udpServer((message, reply) => {
      const answer = Buffer.from(message);
      answer[2] = 0x81; // QR, RD
      answer[3] = 0x84; // RA, NOTIMP
      reply(answer);
    });
  });

  afterAll(() => {
    garbage?.close();
    silent?.close();
    servfail?.close();
    notimp?.close();
  });

  it('reports SERVFAIL as the method problem', async () => {
    const nameserver = `127.0.0.1:${servfail.address().port}`;
    const result = await scanDomain('good.test', { nameserver });
    expect(result.problems).toMatchObject([
      {
        method: 'dns-sd',
        code: 'DNSSD_SERVFAIL',
        message: `nameserver ${nameserver} failed to answer for _sark._tcp.good.test (SERVFAIL)`,
      },
    ]);
  });

  it('reports any other failure with its code, naming the query and the nameserver', async () => {
    const nameserver = `127.0.0.1:${notimp.address().port}`;
    const result = await scanDomain('good.test', { nameserver });
    expect(result.problems).toEqual([
      {
        method: 'dns-sd',
        code: 'DNSSD_FAILED',
        message: `the query for _sark._tcp.good.test to nameserver ${nameserver} failed (ENOTIMP)`,
        hint: 'check --domain and --nameserver',
      },
    ]);
  });

  it('reports a server answering garbage as the method problem, without crashing', async () => {
    const nameserver = `127.0.0.1:${garbage.address().port}`;
    const result = await scanDomain('good.test', { nameserver });
    expect(received).toBeGreaterThan(0);
    expect(result.nodes).toEqual([]);
    expect(result.problems).toMatchObject([
      { method: 'dns-sd', code: 'DNSSD_BAD_RESPONSE', hint: expect.stringContaining('DNS server') },
    ]);
  });

  it('reports a server that never answers within its own timeout, before the deadline', async () => {
    const nameserver = `127.0.0.1:${silent.address().port}`;
    // Two tries, 200 ms then 400 ms, against a 10 s deadline.
    const result = await scanDomain('good.test', {
      nameserver,
      timeoutMs: 200,
      scanTimeoutMs: 10_000,
    });
    // Had the deadline come first, the method would have ended quietly (see the next test): the
    // problem itself says that the resolver's own timeout ended it.
    expect(result.problems).toMatchObject([{ method: 'dns-sd', code: 'DNSSD_NO_ANSWER' }]);
    expect(result.succeeded).toEqual([]);
  });

  it('reports a server still silent at the scan deadline, which comes before its own timeout', async () => {
    const nameserver = `127.0.0.1:${silent.address().port}`;
    // The resolver would wait 5 s for its first try alone (15 s for both): the scan's deadline
    // cancels the query, and a nameserver that never answered is a failure, not "no nodes".
    const result = await scan({
      runners: [dnsSdRunner({ domain: 'good.test', nameserver, timeoutMs: 5_000 })],
      timeoutMs: 300,
    });
    expect(result.problems).toMatchObject([
      {
        method: 'dns-sd',
        code: 'DNSSD_NO_ANSWER',
        message: `no answer from nameserver ${nameserver} for _sark._tcp.good.test before the scan's deadline`,
      },
    ]);
    expect(result.succeeded).toEqual([]);
  });

  it('ends quietly when the scan ends early because --expect was met by another method', async () => {
    const nameserver = `127.0.0.1:${silent.address().port}`;
    const other: MethodRunner = {
      method: 'manual',
      run: (_context, found) => {
        found({
          nodeId: 'node-m',
          source: 'manual',
          endpoint: 'https://10.0.0.5:8443',
          trustDomain: null,
          fingerprint: null,
          ttlSeconds: 60,
        });
        return Promise.resolve();
      },
    };
    const result = await scan({
      runners: [dnsSdRunner({ domain: 'good.test', nameserver, timeoutMs: 5_000 }), other],
      timeoutMs: 10_000,
      expect: 1,
    });
    expect(result.expectMet).toBe(true);
    expect(result.problems).toEqual([]);
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-m']);
  });

  it('reports a port with nothing listening', async () => {
    const port = silent.address().port;
    silent.close();
    silent = await udpServer(() => {});
    const result = await scanDomain('good.test', { nameserver: `127.0.0.1:${port}` });
    expect(result.problems).toMatchObject([
      {
        method: 'dns-sd',
        code: 'DNSSD_NO_ANSWER',
        message: expect.stringContaining(`127.0.0.1:${port}`),
        // The operator did pass --nameserver: no hint to pass one.
        hint: 'check that the nameserver runs and answers DNS at that address and port',
      },
    ]);
  });
});

/** A UDP server on 127.0.0.1 that hands each datagram to `handle` with a way to answer it. */
function udpServer(handle: (message: Buffer, reply: (data: Buffer) => void) => void) {
  return new Promise<Socket>((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.on('message', (message, peer) =>
      handle(message, (data) => socket.send(data, peer.port, peer.address)),
    );
    socket.bind(0, '127.0.0.1', () => resolve(socket));
  });
}
