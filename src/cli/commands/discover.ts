import { InvalidArgumentError, Option, type Command } from 'commander';
import type { MethodRunner, ScannedNode, ScanResult } from '../../core/discovery/scanner.js';
import type { DiscoveryMethod } from '../../core/discovery/types.js';
import type { StateStore } from '../../core/state/database.js';
import type { Peer } from '../../core/state/trust-repository.js';
import { StreamStopped, action } from '../action.js';
import type { CommandContext } from '../context.js';
import { withExamples } from '../help-text.js';
import { durationOption, integerIn } from '../options.js';
import type { CliIo } from '../output/output.js';
import { levelCell, shortOnTty, withStore } from './shared.js';
import { count as countOf } from '../../core/plural.js';

interface DiscoverOptions {
  method?: DiscoveryMethod[];
  timeout: number;
  expect?: number;
  domain?: string;
  nameserver?: string;
  consulUrl?: string;
  file?: string;
  interface?: string;
  save: boolean;
  watch?: boolean;
}

const METHOD_NAMES = ['mdns', 'dns-sd', 'consul', 'manual'] as const;

export function registerDiscover(program: Command, io: CliIo): void {
  const command = program
    .command('discover')
    .description('find nodes by mDNS, DNS-SD, Consul and manual lists, concurrently')
    .addOption(
      new Option('--method <method>', 'a method to use (repeatable; default: every configured one)')
        .choices(METHOD_NAMES)
        .argParser(collectMethod),
    )
    .addOption(durationOption('--timeout <duration>', 'deadline for the whole scan', '3s'))
    .option('--expect <n>', 'stop as soon as this many nodes are resolved', integerIn(1, 100_000))
    .option('--domain <dns-domain>', 'DNS-SD: the domain to browse, _sark._tcp.<domain>')
    .addOption(
      new Option(
        '--nameserver <host[:port]>',
        'DNS-SD: ask this server, not the system resolver',
      ).env('FEDERATION_DNS_NAMESERVER'),
    )
    .option('--consul-url <url>', 'Consul: the agent (default: CONSUL_HTTP_ADDR)')
    .option('--file <nodes.json>', 'manual: a file of nodes (see docs/guide.md)')
    .option('--interface <addr>', 'mDNS: the interface address to browse on')
    .option('--no-save', 'do not record the results in the state file')
    .option('--watch', 'mDNS: stream nodes appearing (+) and leaving (-) until interrupted')
    .action(
      action<DiscoverOptions>(io, async (context, options) => {
        const timeoutGiven = command.getOptionValueSource('timeout') === 'cli';
        const methods = chooseMethods(context, options);
        if (options.watch) {
          await watch(context, options, methods, timeoutGiven);
          return;
        }
        await discover(context, options, methods);
      }),
    );
  withExamples(command, [
    ['Scan the local network (mDNS) and every configured source', 'sark-fed discover'],
    [
      'Wait only until three nodes answer on the LAN',
      'sark-fed discover --method mdns --expect 3 --timeout 5s',
    ],
    [
      'DNS-SD against a given nameserver',
      'sark-fed discover --method dns-sd --domain example.org --nameserver 10.0.0.53',
    ],
    [
      'Consul, as its own tools find it',
      'CONSUL_HTTP_ADDR=127.0.0.1:8500 sark-fed discover --method consul',
    ],
    [
      'A list kept by hand, without saving',
      'sark-fed discover --method manual --file nodes.json --no-save',
    ],
    ['Watch nodes come and go, as NDJSON', 'sark-fed discover --watch --json'],
  ]);
}

/** Repeatable --method; checks the choice itself, since a custom parser replaces commander's. */
function collectMethod(value: string, previous: DiscoveryMethod[] | undefined): DiscoveryMethod[] {
  if (!(METHOD_NAMES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${METHOD_NAMES.join(', ')}`);
  }
  const list = previous ?? [];
  return list.includes(value as DiscoveryMethod) ? list : [...list, value as DiscoveryMethod];
}

/**
 * Without --method: mDNS always, and each other method when it is configured (a domain, a Consul
 * address, a nodes file or FEDERATION_NODES). FEDERATION_DISCOVERY_METHOD names them too.
 */
function chooseMethods(context: CommandContext, options: DiscoverOptions): DiscoveryMethod[] {
  const env = context.io.env;
  if (options.method && options.method.length > 0) return options.method;
  // The environment before any default, --watch's included: a deployment that names its methods
  // (consul,manual on a network without multicast) must not get mDNS traffic from a bare
  // --watch; watch() then refuses anything but mDNS.
  const named = (env.FEDERATION_DISCOVERY_METHOD ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  const fromEnv = named.filter((item): item is DiscoveryMethod =>
    (METHOD_NAMES as readonly string[]).includes(item),
  );
  const unknown = named.filter((item) => !(METHOD_NAMES as readonly string[]).includes(item));
  if (unknown.length > 0) {
    context.output.warn(
      `FEDERATION_DISCOVERY_METHOD: ignoring ${unknown.join(', ')} (known: ${METHOD_NAMES.join(', ')})`,
    );
  }
  if (fromEnv.length > 0) return fromEnv;
  // --watch streams mDNS events: without --method (or the variable), it means mDNS alone.
  if (options.watch) return ['mdns'];
  const methods: DiscoveryMethod[] = ['mdns'];
  if (options.domain) methods.push('dns-sd');
  if (options.consulUrl || env.CONSUL_HTTP_ADDR || env.FEDERATION_CONSUL_URL)
    methods.push('consul');
  methods.push('manual');
  return methods;
}

async function buildRunners(
  context: CommandContext,
  options: DiscoverOptions,
  methods: readonly DiscoveryMethod[],
  store: StateStore | undefined,
): Promise<MethodRunner[]> {
  const { UsageError } = await import('../../core/errors.js');
  const runners: MethodRunner[] = [];
  for (const method of methods) {
    if (method === 'mdns') {
      const { mdnsRunner, interfaceAddress } = await import('../../core/discovery/mdns.js');
      // A wrong --interface is the operator's mistake: exit 2 now, not a method failure later.
      if (options.interface !== undefined) interfaceAddress(options.interface);
      runners.push(mdnsRunner({ interface: options.interface }));
    } else if (method === 'dns-sd') {
      if (!options.domain) {
        throw new UsageError('MISSING_DOMAIN', 'DNS-SD needs the domain to browse', {
          hint: 'pass --domain <dns-domain>, e.g. --domain example.org',
        });
      }
      const { dnsSdRunner } = await import('../../core/discovery/dnssd.js');
      // A query's first try gets a quarter of the deadline and c-ares doubles it on the retry:
      // three quarters in all, so a silent nameserver is reported as this method's problem
      // before the deadline ends the scan.
      runners.push(
        dnsSdRunner({
          domain: options.domain,
          nameserver: options.nameserver,
          timeoutMs: Math.max(100, Math.floor(options.timeout / 4)),
        }),
      );
    } else if (method === 'consul') {
      runners.push(await consulMethod(context, options));
    } else {
      const { manualRunner, readNodesFile, parseFederationNodes } =
        await import('../../core/discovery/manual.js');
      // A --file (or FEDERATION_NODES) that cannot be read or is not a list of nodes is the
      // operator's mistake: exit 2 before scanning, rather than one failed method among others.
      if (options.file !== undefined) readNodesFile(options.file);
      if (context.io.env.FEDERATION_NODES) parseFederationNodes(context.io.env.FEDERATION_NODES);
      runners.push(
        manualRunner({
          file: options.file,
          federationNodes: context.io.env.FEDERATION_NODES,
          store,
        }),
      );
    }
  }
  return runners;
}

async function consulMethod(
  context: CommandContext,
  options: DiscoverOptions,
): Promise<MethodRunner> {
  const { consulRunner } = await import('../../core/discovery/consul.js');
  const env = context.io.env;
  // An empty variable is an unset one; an empty --consul-url was typed, and is refused as
  // --nameserver "" is, rather than quietly meaning the default agent.
  if (options.consulUrl !== undefined && options.consulUrl.trim() === '') {
    const { UsageError } = await import('../../core/errors.js');
    throw new UsageError('BAD_CONSUL_ADDRESS', '--consul-url is empty', {
      hint: 'give the agent as http://host:port, or leave --consul-url out for CONSUL_HTTP_ADDR',
    });
  }
  // --consul-url, then Consul's own CONSUL_HTTP_ADDR, then the original deployment's setting.
  return consulRunner({
    url: options.consulUrl ?? (env.CONSUL_HTTP_ADDR ? undefined : env.FEDERATION_CONSUL_URL),
    env,
    // Within the scan's deadline, so that a hanging Consul is reported, not silently cut off.
    timeoutMs: Math.max(100, Math.floor((options.timeout * 2) / 3)),
  });
}

async function discover(
  context: CommandContext,
  options: DiscoverOptions,
  methods: DiscoveryMethod[],
): Promise<void> {
  const { scan } = await import('../../core/discovery/scanner.js');
  const { recordSightings } = await import('../../core/state/discovery-repository.js');
  const { incrementCounter } = await import('../../core/state/metric-counters.js');
  const { listPeers } = await import('../../core/state/trust-repository.js');
  const { UnavailableError } = await import('../../core/errors.js');

  // The state file is needed for saving, for `nodes add` entries and for the TRUST column; a
  // scan with --no-save works without one.
  const { existsSync } = await import('node:fs');
  const haveState = options.save || existsSync(context.statePath);
  const run = async (store: StateStore | undefined) => {
    const runners = await buildRunners(context, options, methods, store);
    const spinner = await context.output.spinner(`discovering via ${methods.join(', ')}`);
    const interrupt = new AbortController();
    const onSignal = () => interrupt.abort();
    process.once('SIGINT', onSignal);
    let result: ScanResult;
    try {
      result = await scan({
        runners,
        timeoutMs: options.timeout,
        expect: options.expect,
        signal: interrupt.signal,
        now: context.now,
      });
    } finally {
      process.off('SIGINT', onSignal);
      spinner.stop();
    }
    const localNodeId = store?.read((db) =>
      db.prepare('SELECT node_id FROM identity').pluck().get(),
    ) as string | undefined;
    const nodes = result.nodes.filter((node) => node.nodeId !== localNodeId);
    let conflicts: Array<{ nodeId: string; known: string; seen: string }> = [];
    if (store && options.save) {
      const outcome = store.write((db) => {
        // For the daemon's federation_discovery_requests_total (src/node/metrics.ts).
        for (const method of methods) {
          const failed = result.problems.some((problem) => problem.method === method);
          incrementCounter(db, 'federation_discovery_requests_total', {
            method,
            outcome: failed ? 'error' : 'success',
          });
        }
        return recordSightings(
          db,
          nodes.flatMap((node) => node.sightings),
          context.now(),
        );
      });
      conflicts = outcome.conflicts;
    }
    const peers = new Map<string, Peer>(
      (store?.read((db) => listPeers(db)) ?? []).map((peer) => [peer.nodeId, peer]),
    );
    return { result, nodes, conflicts, peers };
  };
  const { result, nodes, conflicts, peers } = haveState
    ? await withStore(context, run, options.save)
    : await run(undefined);

  for (const problem of result.problems) {
    context.output.warn(
      `${problem.method}: ${problem.message}${problem.hint ? ` (${problem.hint})` : ''}`,
    );
  }
  for (const conflict of conflicts) {
    context.output.warn(
      `${conflict.nodeId} is known here as a node of ${conflict.known}; the sighting naming ${conflict.seen} was not recorded`,
    );
  }
  for (const item of result.notices) context.output.warn(`${item.method}: ${item.detail}`);
  const skippedByMethod = new Map<string, number>();
  for (const item of result.skipped) {
    skippedByMethod.set(item.method, (skippedByMethod.get(item.method) ?? 0) + 1);
    context.output.debug(`${item.method}: skipped ${item.detail}`);
  }
  for (const [method, count] of skippedByMethod) {
    // With -v the lines above already list them.
    const more = context.output.options.verbose ? '' : ' (-v lists them)';
    context.output.info(
      `${method}: skipped ${countOf(count, 'malformed or incomplete record')}${more}`,
    );
  }

  const rows = nodes.map((node) => scanReport(node, peers.get(node.nodeId)));
  if (context.output.json) context.output.writeJson(rows);
  else {
    context.output.table(
      ['node', 'trust domain', 'endpoint', 'fingerprint', 'via', 'trust'],
      rows.map((row) => [
        row.nodeId,
        row.trustDomain ?? '-',
        row.endpoint,
        shortOnTty(context, row.fingerprint),
        row.via.join(','),
        levelCell(row.trust),
      ]),
    );
    if (result.succeeded.length > 0) {
      const seconds = (result.elapsedMs / 1000).toFixed(1);
      const summary = `found ${countOf(rows.length, 'node')} via ${result.succeeded.join(', ')} in ${seconds} s`;
      const saved = options.save && haveState && rows.length > 0;
      context.output.info(saved ? `${summary}; recorded in the state file` : summary);
    }
  }
  if (result.succeeded.length === 0 && result.problems.length > 0) {
    throw new UnavailableError(
      'DISCOVERY_FAILED',
      `every discovery method failed (${methods.join(', ')})`,
      {
        hint: 'see the warnings above; check the nameserver, Consul address or network',
      },
    );
  }
  if (options.expect !== undefined && !result.expectMet) {
    // Said as it happened: the deadline came, or every method had answered all it would.
    const when =
      result.elapsedMs < options.timeout ? 'when every method had finished' : 'before the deadline';
    context.output.warn(
      `found ${rows.length} of the ${countOf(options.expect, 'node')} expected ${when}`,
    );
  }
}

/**
 * `--watch`: + and - events from mDNS until interrupted (exit 130, silently) or --timeout (exit 0).
 */
async function watch(
  context: CommandContext,
  options: DiscoverOptions,
  methods: DiscoveryMethod[],
  timeoutGiven: boolean,
): Promise<void> {
  const { UsageError } = await import('../../core/errors.js');
  if (methods.length !== 1 || methods[0] !== 'mdns') {
    const fromEnv = !options.method?.length;
    throw new UsageError(
      'WATCH_NEEDS_MDNS',
      fromEnv
        ? `--watch streams mDNS events only, and FEDERATION_DISCOVERY_METHOD names ${methods.join(',')}`
        : '--watch streams mDNS events only',
      { hint: 'run it as: sark-fed discover --method mdns --watch' },
    );
  }
  const { watchMdns, interfaceAddress } = await import('../../core/discovery/mdns.js');
  if (options.interface !== undefined) interfaceAddress(options.interface);
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const timer = timeoutGiven ? setTimeout(() => controller.abort(), options.timeout) : undefined;
  try {
    await watchMdns({
      interface: options.interface,
      signal: controller.signal,
      onEvent: (event) => {
        const time = context.now().toISOString();
        if (context.output.json) {
          context.output.writeJsonLine({
            event: event.type === '+' ? 'up' : 'down',
            time,
            nodeId: event.node.nodeId,
            trustDomain: event.node.trustDomain,
            endpoint: event.node.endpoint,
            fingerprint: event.node.fingerprint,
            ...(event.reason ? { reason: event.reason } : {}),
          });
        } else {
          context.output.line(
            [
              event.type,
              time,
              event.node.nodeId,
              event.node.trustDomain ?? '-',
              event.node.endpoint,
            ]
              .concat(event.reason ? [event.reason] : [])
              .join(context.output.stdoutIsTTY ? '  ' : '\t'),
          );
        }
      },
      onSkipped: (detail) => context.output.debug(`mdns: skipped ${detail}`),
    });
  } finally {
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Ctrl-C or SIGTERM: exit 130 with nothing on stderr (StreamStopped); --timeout: exit 0.
  if (interrupted) throw new StreamStopped();
}

/** The JSON shape of one row of `discover` (docs/json-output.md). */
function scanReport(node: ScannedNode, peer: Peer | undefined) {
  return {
    nodeId: node.nodeId,
    trustDomain: node.trustDomain,
    endpoint: node.endpoint,
    fingerprint: node.fingerprint,
    via: node.via,
    trust: peer?.trustLevel ?? 'untrusted',
    ttlSeconds: node.ttlSeconds,
    sightings: node.sightings.map((sighting) => ({
      source: sighting.source,
      endpoint: sighting.endpoint,
      trustDomain: sighting.trustDomain,
      fingerprint: sighting.fingerprint,
      ttlSeconds: sighting.ttlSeconds,
    })),
  };
}
