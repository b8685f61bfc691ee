import { describe, expect, it } from 'vitest';
import {
  dnsSdRunner,
  instanceLabel,
  orderSrv,
  parseNameserver,
  type DnsResolver,
} from '../../../src/core/discovery/dnssd.js';
import { scan } from '../../../src/core/discovery/scanner.js';
import { UsageError } from '../../../src/core/errors.js';

/** A deterministic RNG (mulberry32), so that the weighted choice can be counted. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const record = (name: string, priority: number, weight: number) => ({
  name,
  port: 1,
  priority,
  weight,
});

describe('orderSrv (RFC 2782)', () => {
  it('puts lower priorities first whatever the weights', () => {
    const ordered = orderSrv(
      [record('c', 20, 90), record('a', 0, 1), record('b', 10, 50), record('a2', 0, 0)],
      seeded(1),
    );
    expect(ordered.map((item) => item.priority)).toEqual([0, 0, 10, 20]);
  });

  it('chooses within a priority in proportion to the weights', () => {
    const random = seeded(42);
    const firsts = new Map<string, number>();
    const records = [record('heavy', 0, 60), record('light', 0, 30), record('tiny', 0, 10)];
    for (let run = 0; run < 10_000; run++) {
      const first = (orderSrv(records, random)[0] as { name: string }).name;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    // Expected 6000 / 3000 / 1000, give or take a few standard deviations.
    expect(firsts.get('heavy')).toBeGreaterThan(5_700);
    expect(firsts.get('heavy')).toBeLessThan(6_300);
    expect(firsts.get('light')).toBeGreaterThan(2_700);
    expect(firsts.get('light')).toBeLessThan(3_300);
    expect(firsts.get('tiny')).toBeGreaterThan(800);
    expect(firsts.get('tiny')).toBeLessThan(1_200);
  });

  it('gives a weight-0 record a chance only at a pick of 0, and keeps every record', () => {
    const records = [record('zero', 0, 0), record('some', 0, 5)];
    expect(orderSrv(records, () => 0).map((item) => item.name)).toEqual(['zero', 'some']);
    expect(orderSrv(records, () => 0.5).map((item) => item.name)).toEqual(['some', 'zero']);
    // All weights 0: the order is still a permutation of all of them.
    const zeros = [record('x', 0, 0), record('y', 0, 0), record('z', 0, 0)];
    expect(
      orderSrv(zeros, seeded(3))
        .map((item) => item.name)
        .sort(),
    ).toEqual(['x', 'y', 'z']);
  });

  it('copes with an RNG that returns its upper bound', () => {
    const ordered = orderSrv([record('a', 0, 1), record('b', 0, 1)], () => 0.9999999999);
    expect(ordered).toHaveLength(2);
  });
});

describe('instanceLabel', () => {
  it('reads c-ares escapes and refuses names of more than one label', () => {
    expect(instanceLabel('node-a')).toBe('node-a');
    expect(instanceLabel('Node-A')).toBe('node-a');
    expect(instanceLabel('node\\.a')).toBe('node.a');
    expect(instanceLabel('node\\032a')).toBe('node a');
    expect(instanceLabel('node\\\\')).toBe('node\\');
    expect(instanceLabel('sub.node-a')).toBeNull();
    expect(instanceLabel('')).toBeNull();
  });
});

describe('parseNameserver', () => {
  it('accepts host, host:port, v6, [v6] and [v6]:port', () => {
    expect(parseNameserver('192.0.2.53')).toEqual({ host: '192.0.2.53', port: 53 });
    expect(parseNameserver('192.0.2.53:5353')).toEqual({ host: '192.0.2.53', port: 5353 });
    expect(parseNameserver('ns.example.org')).toEqual({ host: 'ns.example.org', port: 53 });
    expect(parseNameserver('2001:db8::53')).toEqual({ host: '2001:db8::53', port: 53 });
    expect(parseNameserver('[2001:db8::53]')).toEqual({ host: '2001:db8::53', port: 53 });
    expect(parseNameserver('[::1]:5300')).toEqual({ host: '::1', port: 5300 });
  });

  it('refuses the rest as a usage error', () => {
    for (const bad of ['', '1.2.3.4:0', '1.2.3.4:70000', 'a b', '[zz::1]:53', 'x:y', 'h:53:1']) {
      expect(() => parseNameserver(bad), bad).toThrow(UsageError);
    }
  });
});

describe('dnsSdRunner', () => {
  it('refuses a domain DNS cannot carry before any query', () => {
    for (const domain of ['', 'a..b', 'white space.org', `${'x'.repeat(64)}.org`]) {
      expect(() => dnsSdRunner({ domain }), domain).toThrow(UsageError);
    }
    expect(() => dnsSdRunner({ domain: 'x', nameserver: 'bad name' })).toThrow(UsageError);
  });

  it('skips an instance with several TXT records and takes the A record first', async () => {
    const resolver = fakeResolver({
      ptr: {
        '_sark._tcp.example.test': ['one._sark._tcp.example.test.', 'two._sark._tcp.example.test'],
      },
      srv: {
        'one._sark._tcp.example.test': [
          { name: 'h.example.test', port: 443, priority: 0, weight: 0 },
        ],
        'two._sark._tcp.example.test': [
          { name: 'h.example.test', port: 443, priority: 0, weight: 0 },
        ],
      },
      txt: {
        'one._sark._tcp.example.test': [['node=one'], ['node=other']],
        'two._sark._tcp.example.test': [['node=two']],
      },
      a: { 'h.example.test': [{ address: '192.0.2.1', ttl: 30 }] },
      aaaa: { 'h.example.test': [{ address: '2001:db8::1', ttl: 90 }] },
    });
    const result = await scan({
      runners: [dnsSdRunner({ domain: 'Example.Test.', resolver })],
      timeoutMs: 1_000,
    });
    expect(result.nodes.map((node) => [node.nodeId, node.endpoint, node.ttlSeconds])).toEqual([
      ['two', 'https://192.0.2.1:443', 30],
    ]);
    expect(result.skipped.map((item) => item.detail)).toEqual([
      'one._sark._tcp.example.test: several TXT records',
    ]);
  });

  it('lets a resolver failure on one instance skip that instance only', async () => {
    const resolver = fakeResolver({
      ptr: {
        '_sark._tcp.example.test': ['bad._sark._tcp.example.test', 'ok._sark._tcp.example.test'],
      },
      srv: {
        'ok._sark._tcp.example.test': [{ name: '192.0.2.7', port: 8443, priority: 0, weight: 0 }],
      },
      txt: { 'ok._sark._tcp.example.test': [['node=ok']] },
    });
    const result = await scan({
      runners: [dnsSdRunner({ domain: 'example.test', resolver })],
      timeoutMs: 1_000,
    });
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['ok']);
    expect(result.skipped.map((item) => item.detail)).toEqual([
      'bad._sark._tcp.example.test: no SRV record (ESERVFAIL)',
    ]);
  });

  it('cancels its queries when the scan is aborted', async () => {
    let cancelled = false;
    const pending: Array<(error: Error) => void> = [];
    const resolver: DnsResolver = {
      ...fakeResolver({}),
      resolvePtr: () =>
        new Promise((_resolve, reject) => {
          pending.push(reject);
        }),
      cancel() {
        cancelled = true;
        for (const reject of pending) reject(Object.assign(new Error('x'), { code: 'ECANCELLED' }));
      },
    };
    const outer = new AbortController();
    setTimeout(() => outer.abort(), 50);
    const result = await scan({
      runners: [dnsSdRunner({ domain: 'example.test', resolver })],
      timeoutMs: 5_000,
      signal: outer.signal,
    });
    expect(cancelled).toBe(true);
    expect(result.problems).toEqual([]);
  });
});

type Table<T> = Record<string, T>;

/** A resolver answering from tables; a name it does not know fails as a SERVFAIL would. */
function fakeResolver(tables: {
  ptr?: Table<string[]>;
  srv?: Table<Array<{ name: string; port: number; priority: number; weight: number }>>;
  txt?: Table<string[][]>;
  a?: Table<Array<{ address: string; ttl: number }>>;
  aaaa?: Table<Array<{ address: string; ttl: number }>>;
}): DnsResolver {
  const answer = <T>(table: Table<T> | undefined, name: string): Promise<T> => {
    const value = table?.[name];
    if (value === undefined) {
      return Promise.reject(Object.assign(new Error(`no ${name}`), { code: 'ESERVFAIL' }));
    }
    return Promise.resolve(value);
  };
  return {
    resolvePtr: (name) => answer(tables.ptr, name),
    resolveSrv: (name) => answer(tables.srv, name),
    resolveTxt: (name) => answer(tables.txt, name),
    resolve4: (name) => answer(tables.a, name),
    resolve6: (name) => answer(tables.aaaa, name),
    cancel: () => {},
  };
}
