import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { scan, type MethodRunner } from '../../../src/core/discovery/scanner.js';
import type { DiscoveredNode, DiscoveryMethod } from '../../../src/core/discovery/types.js';
import { UsageError } from '../../../src/core/errors.js';

/**
 * The unified scanner (issue 4, item 5). The methods here are hand-written MethodRunner objects:
 * stand-ins for mDNS, DNS-SD, Consul and manual that report what a test tells them to, when it
 * tells them to. What is under test is the scanner: concurrency, the deadline, merging, failures.
 */

const FP_1 = '11'.repeat(32);
const FP_2 = '22'.repeat(32);

function sighting(
  source: DiscoveryMethod,
  nodeId: string,
  extra: Partial<DiscoveredNode> = {},
): DiscoveredNode {
  return {
    nodeId,
    endpoint: `https://${source}.${nodeId}.test:8443`,
    trustDomain: null,
    fingerprint: null,
    source,
    ttlSeconds: 120,
    ...extra,
  };
}

/** Resolves after ms, or rejects with the signal's reason as soon as it is aborted. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal });
}

/** A method that reports its nodes, then answers nothing more until the scan ends (as mDNS). */
function listening(method: DiscoveryMethod, nodes: DiscoveredNode[], afterMs = 0): MethodRunner {
  return {
    method,
    async run(context, found) {
      if (afterMs > 0) await sleep(afterMs, context.signal);
      for (const node of nodes) found(node);
      await new Promise<void>((resolve) => {
        if (context.signal.aborted) resolve();
        context.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    },
  };
}

/** A method that reports its nodes after a while, then returns (as a DNS-SD lookup does). */
function oneShot(method: DiscoveryMethod, nodes: DiscoveredNode[], afterMs = 0): MethodRunner {
  return {
    method,
    async run(context, found) {
      if (afterMs > 0) await sleep(afterMs, context.signal);
      for (const node of nodes) found(node);
    },
  };
}

function failing(method: DiscoveryMethod, error: unknown, afterMs = 0): MethodRunner {
  return {
    method,
    async run(context) {
      if (afterMs > 0) await sleep(afterMs, context.signal);
      throw error;
    },
  };
}

describe('scan: concurrency and the deadline', () => {
  it('runs the methods concurrently: each starts before the other has finished', async () => {
    const events: string[] = [];
    const logged = (runner: MethodRunner): MethodRunner => ({
      method: runner.method,
      async run(context, found) {
        events.push(`start ${runner.method}`);
        try {
          await runner.run(context, found);
        } finally {
          events.push(`end ${runner.method}`);
        }
      },
    });
    const started = performance.now();
    const result = await scan({
      runners: [
        logged(oneShot('dns-sd', [sighting('dns-sd', 'node-a')], 300)),
        logged(oneShot('consul', [sighting('consul', 'node-b')], 300)),
      ],
      timeoutMs: 5_000,
    });
    const elapsed = performance.now() - started;
    // One after the other, consul would start only once dns-sd has ended.
    expect(events.slice(0, 2).sort()).toEqual(['start consul', 'start dns-sd']);
    expect(events.slice(2).sort()).toEqual(['end consul', 'end dns-sd']);
    // The scan waited for them (a timer does not fire early) and measured itself.
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(290);
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-a', 'node-b']);
    expect(result.succeeded).toEqual(['dns-sd', 'consul']);
    expect(result.problems).toEqual([]);
    expect(result.expectMet).toBe(false);
  });

  it('returns as soon as every method is done, well before the deadline', async () => {
    const result = await scan({
      runners: [oneShot('manual', [sighting('manual', 'node-a')])],
      timeoutMs: 10_000,
    });
    // Waiting for the deadline would take 10 s.
    expect(result.elapsedMs).toBeLessThan(5_000);
    expect(result.succeeded).toEqual(['manual']);
  });

  it('aborts every method at the deadline, keeps what was found and counts them as finished', async () => {
    const signals: AbortSignal[] = [];
    const slow: MethodRunner = {
      method: 'consul',
      async run(context, found) {
        signals.push(context.signal);
        found(sighting('consul', 'node-c'));
        // A blocking query that would last a minute: the deadline ends it.
        await sleep(60_000, context.signal);
        found(sighting('consul', 'node-late'));
      },
    };
    const started = performance.now();
    const result = await scan({
      runners: [listening('mdns', [sighting('mdns', 'node-m')]), slow],
      timeoutMs: 250,
    });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(240);
    // Without the deadline, consul would go on for a minute and mdns for ever.
    expect(elapsed).toBeLessThan(5_000);
    expect(signals[0]?.aborted).toBe(true);
    // The minute-long query was cut short: what it would report after it is missing.
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-c', 'node-m']);
    // Ending at the deadline (with an AbortError or by returning) is no failure.
    expect(result.succeeded).toEqual(['mdns', 'consul']);
    expect(result.problems).toEqual([]);
  });

  it('drops sightings a live method reports after the deadline', async () => {
    const late: MethodRunner = {
      method: 'mdns',
      async run(context, found) {
        await new Promise<void>((resolve) =>
          context.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        found(sighting('mdns', 'node-late'));
      },
    };
    const result = await scan({ runners: [late], timeoutMs: 50 });
    expect(result.nodes).toEqual([]);
    expect(result.succeeded).toEqual(['mdns']);
  });

  it('accepts manual sightings after the abort (they cost no wait) and merges them', async () => {
    const manualLate: MethodRunner = {
      method: 'manual',
      async run(context, found) {
        await new Promise<void>((resolve) =>
          context.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        found(sighting('manual', 'node-a', { trustDomain: 'org-a.example' }));
        found(sighting('manual', 'node-z'));
      },
    };
    const result = await scan({
      runners: [manualLate, oneShot('mdns', [sighting('mdns', 'node-a')])],
      timeoutMs: 5_000,
      expect: 1,
    });
    expect(result.expectMet).toBe(true);
    expect(result.nodes.map((node) => [node.nodeId, node.via])).toEqual([
      ['node-a', ['mdns', 'manual']],
      ['node-z', ['manual']],
    ]);
    expect(result.nodes[0]?.trustDomain).toBe('org-a.example');
  });

  it('ends a method that ignores the abort after a short grace, and says so', async () => {
    let stubbornReturned = false;
    const stubborn: MethodRunner = {
      method: 'consul',
      async run(_context, found) {
        found(sighting('consul', 'node-c'));
        // Not listening to the signal at all (unref'd, so the test process need not wait).
        await delay(30_000, undefined, { ref: false });
        stubbornReturned = true;
        found(sighting('consul', 'node-never'));
      },
    };
    const started = performance.now();
    const result = await scan({
      runners: [stubborn, oneShot('dns-sd', [sighting('dns-sd', 'node-d')])],
      timeoutMs: 100,
    });
    // The scan gave it the grace (500 ms after the 100 ms deadline; timers do not fire early),
    // then returned without it.
    expect(performance.now() - started).toBeGreaterThanOrEqual(590);
    expect(stubbornReturned).toBe(false);
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-c', 'node-d']);
    expect(result.succeeded).toEqual(['dns-sd']);
    expect(result.problems).toEqual([
      expect.objectContaining({ method: 'consul', code: 'METHOD_DID_NOT_STOP' }),
    ]);
  });
});

describe('scan: merging by node ID', () => {
  it('keeps one node per ID with every source, VIA in the order mdns, dns-sd, consul, manual', async () => {
    const result = await scan({
      runners: [
        // Reported in the reverse order, and with the slowest first.
        oneShot('manual', [sighting('manual', 'node-a')], 0),
        oneShot('consul', [sighting('consul', 'node-a'), sighting('consul', 'node-b')], 30),
        oneShot('dns-sd', [sighting('dns-sd', 'node-a')], 60),
        oneShot('mdns', [sighting('mdns', 'node-a'), sighting('mdns', 'node-b')], 90),
      ],
      timeoutMs: 5_000,
    });
    expect(result.nodes).toHaveLength(2);
    const [a, b] = result.nodes;
    expect(a?.via).toEqual(['mdns', 'dns-sd', 'consul', 'manual']);
    expect(a?.sightings.map((item) => item.source).sort()).toEqual([
      'consul',
      'dns-sd',
      'manual',
      'mdns',
    ]);
    expect(b?.via).toEqual(['mdns', 'consul']);
    expect(result.succeeded).toEqual(['mdns', 'dns-sd', 'consul', 'manual']);
  });

  it('prefers, field by field, the first method in VIA order that has a value', async () => {
    const result = await scan({
      runners: [
        oneShot('manual', [
          sighting('manual', 'node-a', {
            endpoint: 'https://manual.example:1',
            trustDomain: 'org-m.example',
            fingerprint: FP_2,
          }),
        ]),
        oneShot(
          'consul',
          [
            sighting('consul', 'node-a', {
              endpoint: 'https://consul.example:2',
              trustDomain: 'org-a.example',
            }),
          ],
          20,
        ),
        oneShot(
          'mdns',
          [sighting('mdns', 'node-a', { endpoint: 'https://mdns.example:3', fingerprint: FP_1 })],
          40,
        ),
      ],
      timeoutMs: 5_000,
    });
    const [node] = result.nodes;
    // mdns is first for the endpoint and the fingerprint; it has no trust domain, consul has.
    expect(node).toMatchObject({
      endpoint: 'https://mdns.example:3',
      trustDomain: 'org-a.example',
      fingerprint: FP_1,
    });
  });

  it('consults manual for the endpoint only when no live method saw the node', async () => {
    const result = await scan({
      runners: [
        oneShot('manual', [
          sighting('manual', 'node-a', {
            endpoint: 'https://by-hand.example:1',
            fingerprint: FP_2,
          }),
          sighting('manual', 'node-b', { endpoint: 'https://by-hand.example:2' }),
        ]),
        oneShot(
          'dns-sd',
          [sighting('dns-sd', 'node-a', { endpoint: 'https://dns.example:1' })],
          20,
        ),
      ],
      timeoutMs: 5_000,
    });
    expect(result.nodes.map((node) => [node.nodeId, node.endpoint, node.fingerprint])).toEqual([
      // dns-sd advertised no fingerprint: the one written by hand fills it.
      ['node-a', 'https://dns.example:1', FP_2],
      ['node-b', 'https://by-hand.example:2', null],
    ]);
  });

  it('caches the merged node for the shortest TTL among its sightings', async () => {
    const result = await scan({
      runners: [
        oneShot('manual', [sighting('manual', 'node-a', { ttlSeconds: 86_400 })]),
        oneShot('mdns', [sighting('mdns', 'node-a', { ttlSeconds: 4_500 })], 20),
        oneShot('dns-sd', [sighting('dns-sd', 'node-a', { ttlSeconds: 30 })], 40),
        oneShot('consul', [sighting('consul', 'node-a', { ttlSeconds: 600 })], 60),
      ],
      timeoutMs: 5_000,
    });
    expect(result.nodes[0]?.ttlSeconds).toBe(30);
  });

  it('keeps the latest sighting of a method that reports a node twice', async () => {
    const twice: MethodRunner = {
      method: 'mdns',
      async run(_context, found) {
        found(sighting('mdns', 'node-a', { endpoint: 'https://old.example:1', ttlSeconds: 10 }));
        found(sighting('mdns', 'node-a', { endpoint: 'https://new.example:1', ttlSeconds: 120 }));
      },
    };
    const result = await scan({ runners: [twice], timeoutMs: 5_000 });
    expect(result.nodes).toHaveLength(1);
    expect(result.nodes[0]).toMatchObject({
      endpoint: 'https://new.example:1',
      ttlSeconds: 120,
      via: ['mdns'],
    });
    expect(result.nodes[0]?.sightings).toHaveLength(1);
  });

  it('sorts the nodes by ID and calls onNode once per node, when first resolved', async () => {
    const seen: string[] = [];
    const result = await scan({
      runners: [
        oneShot('mdns', [sighting('mdns', 'node-c'), sighting('mdns', 'node-a')]),
        oneShot('consul', [sighting('consul', 'node-b'), sighting('consul', 'node-c')], 20),
      ],
      timeoutMs: 5_000,
      onNode: (node) => seen.push(node.nodeId),
    });
    expect(seen).toEqual(['node-c', 'node-a', 'node-b']);
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-a', 'node-b', 'node-c']);
  });
});

describe('scan: --expect', () => {
  it('stops as soon as N distinct nodes are resolved and aborts the other methods', async () => {
    const signals = new Map<DiscoveryMethod, AbortSignal>();
    const watch = (runner: MethodRunner): MethodRunner => ({
      method: runner.method,
      run(context, found) {
        signals.set(runner.method, context.signal);
        return runner.run(context, found);
      },
    });
    const started = performance.now();
    const result = await scan({
      runners: [
        watch(listening('mdns', [sighting('mdns', 'node-a'), sighting('mdns', 'node-b')], 50)),
        // The same node again does not count twice.
        watch(listening('consul', [sighting('consul', 'node-a')], 10)),
        watch(listening('dns-sd', [sighting('dns-sd', 'node-x')], 2_000)),
      ],
      timeoutMs: 10_000,
      expect: 2,
    });
    // Waiting for the deadline would take 10 s.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(result.expectMet).toBe(true);
    // dns-sd was aborted before its node-x was due.
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-a', 'node-b']);
    expect([...signals.values()].every((signal) => signal.aborted)).toBe(true);
    // Methods cut short by --expect finished; none failed.
    expect(result.succeeded).toEqual(['mdns', 'dns-sd', 'consul']);
    expect(result.problems).toEqual([]);
  });

  it('reports expectMet false when the deadline comes first', async () => {
    const result = await scan({
      runners: [listening('mdns', [sighting('mdns', 'node-a')])],
      timeoutMs: 100,
      expect: 2,
    });
    expect(result.expectMet).toBe(false);
    expect(result.nodes).toHaveLength(1);
  });
});

describe('scan: failing methods', () => {
  it('turns a throwing method into a problem while the others succeed', async () => {
    const result = await scan({
      runners: [
        failing(
          'dns-sd',
          new UsageError('NXDOMAIN', 'no _sark._tcp.example.org', { hint: 'check --domain' }),
          20,
        ),
        failing('consul', new TypeError('fetch failed')),
        oneShot('mdns', [sighting('mdns', 'node-a')], 50),
      ],
      timeoutMs: 5_000,
    });
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
    expect(result.succeeded).toEqual(['mdns']);
    expect(result.problems).toHaveLength(2);
    expect(result.problems).toContainEqual({
      method: 'dns-sd',
      code: 'NXDOMAIN',
      message: 'no _sark._tcp.example.org',
      hint: 'check --domain',
    });
    // A foreign error is wrapped, naming the method.
    expect(result.problems).toContainEqual({
      method: 'consul',
      code: 'METHOD_FAILED',
      message: 'consul: fetch failed',
    });
  });

  it('treats a method that throws synchronously like one that rejects', async () => {
    const result = await scan({
      runners: [
        {
          method: 'manual',
          run() {
            throw new Error('nodes.json vanished');
          },
        },
        oneShot('mdns', [sighting('mdns', 'node-a')]),
      ],
      timeoutMs: 5_000,
    });
    expect(result.succeeded).toEqual(['mdns']);
    expect(result.problems).toEqual([
      expect.objectContaining({ method: 'manual', message: 'manual: nodes.json vanished' }),
    ]);
  });

  it('keeps what a method found before it failed', async () => {
    const partial: MethodRunner = {
      method: 'consul',
      async run(_context, found) {
        found(sighting('consul', 'node-a'));
        throw new Error('connection reset');
      },
    };
    const result = await scan({ runners: [partial], timeoutMs: 5_000 });
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
    expect(result.succeeded).toEqual([]);
    expect(result.problems).toHaveLength(1);
  });

  it('with every method failing: succeeded is empty and each failure is a problem', async () => {
    const result = await scan({
      runners: [
        failing('mdns', new Error('no multicast interface')),
        failing('dns-sd', new Error('REFUSED'), 10),
        failing('consul', new Error('ECONNREFUSED'), 5),
      ],
      timeoutMs: 5_000,
    });
    expect(result.succeeded).toEqual([]);
    expect(result.nodes).toEqual([]);
    expect(result.problems.map((problem) => problem.method).sort()).toEqual([
      'consul',
      'dns-sd',
      'mdns',
    ]);
  });

  it('counts an abort error as a failure when the scan was not aborted', async () => {
    const error = new Error('the operation was aborted');
    error.name = 'AbortError';
    const result = await scan({ runners: [failing('consul', error)], timeoutMs: 5_000 });
    expect(result.succeeded).toEqual([]);
    expect(result.problems).toHaveLength(1);
  });

  it('counts a non-abort error thrown after the deadline as a failure', async () => {
    const result = await scan({
      runners: [
        {
          method: 'dns-sd',
          async run(context) {
            await new Promise<void>((resolve) =>
              context.signal.addEventListener('abort', () => resolve(), { once: true }),
            );
            throw new Error('SERVFAIL');
          },
        },
      ],
      timeoutMs: 50,
    });
    expect(result.succeeded).toEqual([]);
    expect(result.problems).toEqual([
      expect.objectContaining({ method: 'dns-sd', message: 'dns-sd: SERVFAIL' }),
    ]);
  });
});

describe('scan: skipped records', () => {
  it('collects every skipped detail with its method, without failing the method', async () => {
    const result = await scan({
      runners: [
        {
          method: 'mdns',
          async run(context, found) {
            context.skipped('a packet that is not DNS from 127.0.0.1:5353');
            found(sighting('mdns', 'node-a'));
            context.skipped('TXT of node-b: a TXT string exceeds 255 bytes');
          },
        },
        {
          method: 'dns-sd',
          async run(context) {
            context.skipped('SRV of node-c points nowhere');
          },
        },
      ],
      timeoutMs: 5_000,
    });
    expect(result.skipped).toEqual([
      { method: 'mdns', detail: 'a packet that is not DNS from 127.0.0.1:5353' },
      { method: 'mdns', detail: 'TXT of node-b: a TXT string exceeds 255 bytes' },
      { method: 'dns-sd', detail: 'SRV of node-c points nowhere' },
    ]);
    expect(result.succeeded).toEqual(['mdns', 'dns-sd']);
    expect(result.problems).toEqual([]);
  });

  it("gives every method the scan's clock", async () => {
    const fixed = new Date('2030-01-02T03:04:05Z');
    let seen: Date | undefined;
    await scan({
      runners: [
        {
          method: 'manual',
          async run(context) {
            seen = context.now();
          },
        },
      ],
      timeoutMs: 5_000,
      now: () => fixed,
    });
    expect(seen).toBe(fixed);
  });
});

describe('scan: the outer signal (Ctrl-C)', () => {
  it('ends the scan early with what was found so far', async () => {
    const outer = new AbortController();
    const signals: AbortSignal[] = [];
    const runner: MethodRunner = {
      method: 'mdns',
      async run(context, found) {
        signals.push(context.signal);
        found(sighting('mdns', 'node-a'));
        await sleep(60_000, context.signal);
      },
    };
    setTimeout(() => outer.abort(), 100);
    const started = performance.now();
    const result = await scan({ runners: [runner], timeoutMs: 30_000, signal: outer.signal });
    // The deadline (30 s) and the method's sleep (a minute) would take far longer.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(outer.signal.aborted).toBe(true);
    expect(signals[0]?.aborted).toBe(true);
    expect(result.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
    expect(result.succeeded).toEqual(['mdns']);
    expect(result.expectMet).toBe(false);
  });

  it('ends at once when the signal is already aborted', async () => {
    const outer = new AbortController();
    outer.abort();
    const abortedAtStart: boolean[] = [];
    const inner = listening('mdns', []);
    const started = performance.now();
    const result = await scan({
      runners: [
        {
          method: 'mdns',
          run(context, found) {
            abortedAtStart.push(context.signal.aborted);
            return inner.run(context, found);
          },
        },
      ],
      timeoutMs: 30_000,
      signal: outer.signal,
    });
    // The method was handed an already aborted signal, so it had nothing to wait for; the
    // deadline would take 30 s.
    expect(abortedAtStart).toEqual([true]);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(result.succeeded).toEqual(['mdns']);
  });
});
