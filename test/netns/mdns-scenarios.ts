/**
 * mDNS scenarios, run INSIDE a private network namespace (test/helpers/netns.ts bundles this file
 * and starts it under `unshare -rn`): real multicast on an isolated loopback, real `sark-fed
 * serve` processes, raw responders written with multicast-dns, and python-zeroconf. Each
 * scenario prints one JSON document on stdout for test/integration/mdns.test.ts to judge.
 *
 *   node program.mjs <scenario> '<config json>'
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import makeMdns from 'multicast-dns';
import { announceMdns, mdnsRunner, watchMdns } from '../../src/core/discovery/mdns.js';
import { scan, type MethodRunner, type ScanResult } from '../../src/core/discovery/scanner.js';
import { sarkTxtStrings } from '../../src/core/discovery/txt.js';

const SERVICE = '_sark._tcp.local';
const FINGERPRINT = 'ab'.repeat(32);
/** The whole scenario, children included, ends by this deadline whatever happens. */
const DEADLINE_MS = 40_000;

const children = new Set<ChildProcess>();

function stopChildren(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
}

const deadline = setTimeout(() => {
  process.stderr.write('scenario deadline reached\n');
  stopChildren();
  process.exit(3);
}, DEADLINE_MS);
deadline.unref();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Tracked {
  child: ChildProcess;
  logs: Array<Record<string, unknown>>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function track(command: string, args: string[], env?: NodeJS.ProcessEnv): Tracked {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  children.add(child);
  const logs: Array<Record<string, unknown>> = [];
  let out = '';
  let err = '';
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line; kept in stderr.
      }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, logs, stdout: () => out, stderr: () => err, exited };
}

function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' };
}

function summarize(result: ScanResult) {
  return {
    nodes: result.nodes.map(({ sightings: _sightings, ...node }) => node),
    skipped: result.skipped.map((entry) => entry.detail),
    problems: result.problems,
    elapsedMs: Math.round(result.elapsedMs),
    expectMet: result.expectMet,
  };
}

/** The runner, counting how often each node was reported (duplicates must not repeat it). */
function countingRunner(counts: Record<string, number>): MethodRunner {
  const inner = mdnsRunner();
  return {
    method: 'mdns',
    run: (context, found) =>
      inner.run(context, (node) => {
        counts[node.nodeId] = (counts[node.nodeId] ?? 0) + 1;
        found(node);
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// serve: real `sark-fed serve --announce mdns` processes, a watcher, a scan, goodbyes.

interface ServeConfig {
  cli: string;
  nodes: Array<{ nodeId: string; state: string }>;
  /** Also run `sark-fed discover` (once the command exists), with this state file. */
  discoverState?: string;
}

async function serveScenario(config: ServeConfig) {
  const watchEvents: Array<{ at: number; type: string; nodeId: string; reason?: string }> = [];
  const watchSkipped: string[] = [];
  const watchController = new AbortController();
  const started = performance.now();
  const watching = watchMdns({
    signal: watchController.signal,
    onEvent: (event) =>
      watchEvents.push({
        at: Math.round(performance.now() - started),
        type: event.type,
        nodeId: event.node.nodeId,
        ...(event.reason ? { reason: event.reason } : {}),
      }),
    onSkipped: (detail) => watchSkipped.push(detail),
  });

  // The CLI's own watchers too, once `discover` exists: NDJSON up/down lines, and the same as
  // tab-separated lines in a pipe without --json.
  const cliWatcher = (json: boolean) =>
    config.discoverState === undefined
      ? undefined
      : track(
          process.execPath,
          [
            config.cli,
            '--state',
            config.discoverState,
            'discover',
            '--method',
            'mdns',
            '--watch',
            ...(json ? ['--json'] : []),
          ],
          cleanEnv(),
        );
  const cliWatch = cliWatcher(true);
  const cliWatchTextRun = cliWatcher(false);

  const serves = config.nodes.map((node) =>
    track(
      process.execPath,
      [config.cli, '--state', node.state, 'serve', '--listen', '127.0.0.1:0', '--announce', 'mdns'],
      cleanEnv(),
    ),
  );
  try {
    await Promise.all(
      serves.map((serve) =>
        until(
          () => serve.logs.some((entry) => entry.msg === 'mdns announced'),
          15_000,
          `an announcement: ${serve.stderr()}`,
        ),
      ),
    );
    const ports = Object.fromEntries(
      config.nodes.map((node, index) => [
        node.nodeId,
        (serves[index] as Tracked).logs.find((entry) => entry.msg === 'listening')?.port,
      ]),
    );

    // The daemons announced a moment ago, so RFC 6762 §6 keeps them from answering this first
    // query within the second: the scan resolves them from their second announcement (or its
    // own second query), about a second in. --expect must end it then, not at the deadline.
    const scanned = await scan({
      runners: [mdnsRunner()],
      timeoutMs: 10_000,
      expect: config.nodes.length,
    });

    let discover: unknown = null;
    if (config.discoverState !== undefined) {
      const run = track(
        process.execPath,
        [
          config.cli,
          '--state',
          config.discoverState,
          'discover',
          '--method',
          'mdns',
          '--timeout',
          '3s',
          '--expect',
          String(config.nodes.length),
          '--json',
        ],
        cleanEnv(),
      );
      const started = performance.now();
      const code = await run.exited;
      discover = {
        code,
        elapsedMs: Math.round(performance.now() - started),
        stdout: run.stdout(),
        stderr: run.stderr(),
      };
    }

    // The watcher saw every node; now each leaves, by SIGTERM, then SIGINT.
    await until(
      () => config.nodes.every((node) => watchEvents.some((e) => e.nodeId === node.nodeId)),
      3000,
      'the watcher to see every node',
    );
    const stops: Array<{ nodeId: string; signal: string; code: number | null; goodbye: boolean }> =
      [];
    for (const [index, serve] of serves.entries()) {
      const signal = index % 2 === 0 ? 'SIGTERM' : 'SIGINT';
      const nodeId = (config.nodes[index] as { nodeId: string }).nodeId;
      serve.child.kill(signal);
      const code = await serve.exited;
      stops.push({
        nodeId,
        signal,
        code,
        goodbye: serve.logs.some((entry) => entry.msg === 'mdns goodbye sent'),
      });
      await until(
        () => watchEvents.some((e) => e.type === '-' && e.nodeId === nodeId),
        4000,
        `a "-" event for ${nodeId}`,
      ).catch(() => {});
    }
    let cliWatchLines: unknown[] | null = null;
    let cliWatchStop: { code: number | null; stderr: string } | null = null;
    let cliWatchText: { code: number | null; stderr: string; lines: string[] } | null = null;
    if (cliWatch && cliWatchTextRun) {
      // The CLI watchers are processes of their own and may print later than the in-process
      // one: let them print every node's "down" (bounded) before they are interrupted.
      const printedDown = (nodeId: string) =>
        cliWatch
          .stdout()
          .split('\n')
          .some((line) => line.includes('"event":"down"') && line.includes(`"nodeId":"${nodeId}"`));
      const printedDownText = (nodeId: string) =>
        cliWatchTextRun
          .stdout()
          .split('\n')
          .some((line) => line.startsWith('-\t') && line.split('\t')[2] === nodeId);
      await until(
        () =>
          config.nodes.every((node) => printedDown(node.nodeId) && printedDownText(node.nodeId)),
        6000,
        'the CLI watchers to print every goodbye',
      ).catch(() => {});
      // Ctrl-C, as an operator ends a watch.
      cliWatch.child.kill('SIGINT');
      cliWatchTextRun.child.kill('SIGINT');
      cliWatchStop = { code: await cliWatch.exited, stderr: cliWatch.stderr() };
      cliWatchLines = cliWatch
        .stdout()
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as unknown);
      cliWatchText = {
        code: await cliWatchTextRun.exited,
        stderr: cliWatchTextRun.stderr(),
        lines: cliWatchTextRun
          .stdout()
          .split('\n')
          .filter((line) => line !== ''),
      };
    }
    return {
      ports,
      scan: summarize(scanned),
      discover,
      cliWatchLines,
      cliWatchStop,
      cliWatchText,
      watchEvents,
      watchSkipped,
      stops,
    };
  } finally {
    watchController.abort();
    await watching;
    cliWatch?.child.kill('SIGKILL');
    cliWatchTextRun?.child.kill('SIGKILL');
    for (const serve of serves) serve.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------
// raw: responders written with multicast-dns that answer in every shape, and bad traffic.

type Mdns = ReturnType<typeof makeMdns>;

interface RawNode {
  nodeId: string;
  port: number;
  /** TXT strings (the node's valid ones by default). */
  txt?: Array<string | Buffer>;
  /** SRV target ("" is the root: "no service here"). */
  target?: string;
  /** Whether the target's A record is ever given. */
  address?: boolean;
}

function records(node: RawNode) {
  const instance = `${node.nodeId}.${SERVICE}`;
  const host = node.target ?? `${node.nodeId}.local`;
  const ptr: Answer = { name: SERVICE, type: 'PTR', ttl: 120, data: instance };
  const srv: Answer = {
    name: instance,
    type: 'SRV',
    ttl: 120,
    flush: true,
    data: { port: node.port, target: host },
  };
  const txt: Answer = {
    name: instance,
    type: 'TXT',
    ttl: 4500,
    flush: true,
    data:
      node.txt ??
      sarkTxtStrings({ nodeId: node.nodeId, trustDomain: 'raw.example', fingerprint: FINGERPRINT }),
  };
  const a: Answer[] =
    node.address === false
      ? []
      : [{ name: host, type: 'A', ttl: 120, flush: true, data: '127.0.0.1' }];
  return { instance, host, ptr, srv, txt, a };
}

function rawResponder(
  node: RawNode,
  style: 'additional' | 'separate' | 'trickle' | 'repeat',
): Mdns {
  const mdns = makeMdns({ bind: '0.0.0.0' });
  const r = records(node);
  mdns.on('warning', () => {});
  mdns.on('query', (query) => {
    for (const question of query.questions) {
      const name = question.name.toLowerCase();
      if (name === SERVICE && question.type === 'PTR') {
        if (style === 'additional') {
          mdns.respond({ answers: [r.ptr], additionals: [r.srv, r.txt, ...r.a] });
        } else if (style === 'repeat') {
          for (let copy = 0; copy < 3; copy++)
            mdns.respond({ answers: [r.ptr], additionals: [r.srv, r.txt, ...r.a] });
        } else if (style === 'trickle') {
          // Unasked, one record per packet, in the order a slow responder might send them.
          mdns.respond({ answers: [r.ptr] });
          setTimeout(() => mdns.respond({ answers: [r.srv] }), 40);
          setTimeout(() => mdns.respond({ answers: [r.txt] }), 80);
          if (r.a.length > 0) setTimeout(() => mdns.respond({ answers: r.a }), 120);
        } else {
          mdns.respond({ answers: [r.ptr] });
        }
      } else if (style === 'separate' || style === 'additional') {
        // Direct questions get exactly what they ask for, one packet each.
        if (name === r.instance.toLowerCase() && question.type === 'SRV')
          mdns.respond({ answers: [r.srv] });
        if (name === r.instance.toLowerCase() && question.type === 'TXT')
          mdns.respond({ answers: [r.txt] });
        if (name === r.host.toLowerCase() && question.type === 'A' && r.a.length > 0)
          mdns.respond({ answers: r.a });
      }
    }
  });
  return mdns;
}

/** Datagrams no responder should send: not DNS, cut short, from the wrong port, wrong types. */
async function badTraffic(): Promise<{ send(): void; close(): Promise<void> }> {
  const from5353 = createSocket({ type: 'udp4', reuseAddr: true });
  const fromOther = createSocket({ type: 'udp4' });
  await new Promise<void>((resolve) => from5353.bind(5353, '0.0.0.0', () => resolve()));
  await new Promise<void>((resolve) => fromOther.bind(0, '0.0.0.0', () => resolve()));
  const valid = (nodeId: string) => {
    const r = records({ nodeId, port: 4000 });
    return dnsPacket.encode({
      type: 'response',
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      answers: [r.ptr],
      additionals: [r.srv, r.txt, ...r.a],
    });
  };
  const truncated = valid('bad-truncated');
  const wrongTypes = dnsPacket.encode({
    type: 'response',
    answers: [
      { name: SERVICE, type: 'TXT', ttl: 120, data: ['node=bad-type'] },
      { name: `bad-type.${SERVICE}`, type: 'CNAME', ttl: 120, data: 'elsewhere.local' },
    ],
  });
  const header = Buffer.from([0, 0, 0x84, 0, 0, 0, 0, 50, 0, 0, 0, 0]);
  const datagrams = [
    Buffer.from('hello, this is not DNS at all'),
    Buffer.alloc(3),
    header,
    truncated.subarray(0, Math.floor(truncated.length * 0.6)),
    truncated.subarray(0, truncated.length - 3),
    wrongTypes,
  ];
  const sendOne = (socket: typeof from5353, datagram: Buffer) =>
    socket.send(datagram, 5353, '224.0.0.251', () => {});
  return {
    send() {
      for (const datagram of datagrams) sendOne(from5353, datagram);
      sendOne(fromOther, valid('bad-port'));
    },
    close: async () => {
      await new Promise<void>((resolve) => from5353.close(() => resolve()));
      await new Promise<void>((resolve) => fromOther.close(() => resolve()));
    },
  };
}

async function rawScenario(config: { many: number }) {
  const responders: Mdns[] = [
    rawResponder({ nodeId: 'raw-additional', port: 4001 }, 'additional'),
    rawResponder({ nodeId: 'raw-separate', port: 4002 }, 'separate'),
    rawResponder({ nodeId: 'raw-trickle', port: 4003 }, 'trickle'),
    rawResponder({ nodeId: 'raw-repeat', port: 4004 }, 'repeat'),
    rawResponder(
      {
        nodeId: 'bad-big',
        port: 4010,
        txt: [
          'txtvers=1',
          'node=bad-big',
          ...Array.from({ length: 6 }, () => `x=${'y'.repeat(240)}`),
        ],
      },
      'additional',
    ),
    rawResponder(
      {
        nodeId: 'bad-dupkey',
        port: 4011,
        txt: ['txtvers=1', 'node=dupkey-first', 'node=dupkey-second', 'td=raw.example'],
      },
      'additional',
    ),
    rawResponder(
      { nodeId: 'bad-nonode', port: 4012, txt: ['txtvers=1', 'td=raw.example'] },
      'additional',
    ),
    rawResponder({ nodeId: 'bad-nowhere', port: 4013, target: '.' }, 'additional'),
    rawResponder(
      { nodeId: 'bad-noaddr', port: 4014, target: 'ghost.local', address: false },
      'additional',
    ),
    ...Array.from({ length: config.many }, (_, index) =>
      rawResponder(
        { nodeId: `raw-many-${String(index).padStart(2, '0')}`, port: 5000 + index },
        'additional',
      ),
    ),
  ];
  const bad = await badTraffic();
  // Garbage before, during and after the scan; the announcer below must survive it too.
  const garbage = setInterval(() => bad.send(), 150);
  bad.send();
  const steady = await announceMdns({
    nodeId: 'steady',
    trustDomain: 'raw.example',
    fingerprint: FINGERPRINT,
    host: '127.0.0.1',
    port: 4444,
  });
  try {
    const counts: Record<string, number> = {};
    const scanned = await scan({ runners: [countingRunner(counts)], timeoutMs: 2500 });
    return { scan: summarize(scanned), counts };
  } finally {
    clearInterval(garbage);
    await steady.close();
    await bad.close();
    await Promise.all(
      responders.map((mdns) => new Promise<void>((resolve) => mdns.destroy(() => resolve()))),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// zeroconf: python-zeroconf publishes and we find it; we announce and python-zeroconf finds us.

async function zeroconfScenario(config: { python: string; peer: string }) {
  const properties = {
    txtvers: '1',
    node: 'zc-node',
    td: 'zeroconf.example',
    fp: FINGERPRINT,
    api: 'v2',
  };
  const registered = track(config.python, [
    config.peer,
    'register',
    'zc-node',
    '7443',
    JSON.stringify(properties),
  ]);
  let ours: Awaited<ReturnType<typeof announceMdns>> | undefined;
  try {
    await until(
      () => registered.stdout().includes('registered'),
      10_000,
      `python-zeroconf to register: ${registered.stderr()}`,
    );
    const scanned = await scan({ runners: [mdnsRunner()], timeoutMs: 4000, expect: 1 });

    ours = await announceMdns({
      nodeId: 'sark-node',
      trustDomain: 'sark.example',
      fingerprint: FINGERPRINT,
      host: '127.0.0.1',
      port: 8443,
    });
    const browser = track(config.python, [config.peer, 'browse', 'sark-node', '8']);
    const code = await browser.exited;
    const browsed = browser
      .stdout()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);

    // Our watcher sees python-zeroconf's goodbye when it unregisters.
    const events: Array<{ type: string; nodeId: string; reason?: string }> = [];
    const controller = new AbortController();
    const watching = watchMdns({
      signal: controller.signal,
      onEvent: (event) =>
        events.push({ type: event.type, nodeId: event.node.nodeId, reason: event.reason }),
    });
    // Every packet python-zeroconf sends, to see when it has gone quiet.
    const listener = makeMdns({ bind: '0.0.0.0' });
    listener.on('warning', () => {});
    let lastFromZeroconf = performance.now();
    listener.on('response', (response) => {
      const names = [...response.answers, ...(response.additionals ?? [])].map((record) =>
        record.name.toLowerCase(),
      );
      if (names.some((name) => name.startsWith('zc-node'))) lastFromZeroconf = performance.now();
    });
    await until(() => events.some((e) => e.nodeId === 'zc-node'), 4000, 'the watcher').catch(
      () => {},
    );
    // python-zeroconf delays and batches its answers (up to ~0.5 s): one to the watcher's queries
    // still queued when it unregisters goes out after its goodbye, and a fresh record within a
    // second of a goodbye rightly keeps the node (RFC 6762 §10.1). Unregister once it has been
    // quiet for 1.2 s (bounded: the watcher's queries come at 1, 2, 4 s... intervals).
    await until(
      () => performance.now() - lastFromZeroconf > 1200,
      8000,
      'python-zeroconf to go quiet',
    ).catch(() => {});
    listener.destroy();
    registered.child.stdin?.end();
    await registered.exited;
    // 10 s: on a loaded machine (CI's two cores running other test files) python-zeroconf's
    // goodbye has taken over the 4 s this waited before.
    await until(
      () => events.some((e) => e.type === '-' && e.nodeId === 'zc-node'),
      10_000,
      'the goodbye of python-zeroconf',
    ).catch(() => {});
    controller.abort();
    await watching;

    return {
      scan: summarize(scanned),
      zeroconfBrowse: { code, services: browsed, stderr: browser.stderr() },
      events,
    };
  } finally {
    await ours?.close();
    registered.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const [scenario, configText] = process.argv.slice(2);
  const config = JSON.parse(configText ?? '{}') as never;
  let result: unknown;
  switch (scenario) {
    case 'serve':
      result = await serveScenario(config);
      break;
    case 'raw':
      result = await rawScenario(config);
      break;
    case 'zeroconf':
      result = await zeroconfScenario(config);
      break;
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => {
    stopChildren();
    clearTimeout(deadline);
  },
  (error: unknown) => {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    stopChildren();
    process.exitCode = 1;
  },
);
