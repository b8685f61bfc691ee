import { InvalidArgumentError, Option, type Command } from 'commander';
import { NotFoundError, OperationError, UsageError } from '../../core/errors.js';
import { action } from '../action.js';
import { completeWith } from '../completion/values.js';
import { withExamples } from '../help-text.js';
import { hostPort, integerIn, listenAddress } from '../options.js';
import type { CliIo } from '../output/output.js';
import { ANNOUNCE_KINDS, type AnnounceKind } from '../../node/announce.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_CONCURRENT_PER_NODE,
  DEFAULT_RATE_LIMIT_BURST,
  DEFAULT_RATE_LIMIT_PER_HOUR,
} from '../../node/invocation-defaults.js';
import { packageVersion } from '../version.js';
import type { BindError } from '../../node/daemon.js';
import type { WatchedFile } from '../../node/served-files.js';

interface ServeOptions {
  listen?: { host: string; port: number };
  requireApproval?: boolean;
  announce?: AnnounceKind[];
  interface?: string;
  consulUrl?: string;
  resources?: string;
  policy?: string;
  maxBody: number;
  rateLimitPerHour: number;
  rateLimitBurst: number;
  maxConcurrentPerNode: number;
  metrics?: { host: string; port: number };
  logFormat?: 'text' | 'json';
  check?: boolean;
}

export function registerServe(program: Command, io: CliIo): void {
  const command = program
    .command('serve')
    .description(
      'run the node daemon that answers peers over mutual TLS (logs on stderr: text on a terminal, else JSON lines)',
    )
    .addOption(
      new Option(
        '--listen <host:port>',
        'address to listen on (default: the endpoint given to init)',
      )
        .env('FEDERATION_LISTEN_ADDRESS')
        .argParser(listenAddress),
    )
    .option('--require-approval', 'record new peers as pending until `sark-fed trust approve`')
    .option(
      '--resources <file>',
      'resources, capabilities and backends to serve (JSON or YAML, re-read when saved; docs/resources.md)',
    )
    .option(
      '--policy <file>',
      'who may use what (JSON or YAML, re-read when saved); without it every invocation is denied',
    )
    .addOption(
      new Option('--max-body <size>', 'largest invoke body accepted (bytes, or 512KiB, 1MiB)')
        .argParser(byteSize)
        .default(DEFAULT_MAX_BODY_BYTES, `${DEFAULT_MAX_BODY_BYTES / 1024 / 1024}MiB`),
    )
    .addOption(
      new Option(
        '--rate-limit-per-hour <n>',
        'invocations a calling node earns an hour (per-node token bucket)',
      )
        .env('FEDERATION_RATE_LIMIT_PER_HOUR')
        .argParser(integerIn(1, 1_000_000_000))
        .default(DEFAULT_RATE_LIMIT_PER_HOUR),
    )
    .addOption(
      new Option('--rate-limit-burst <n>', 'invocations a calling node may make at once')
        .env('FEDERATION_RATE_LIMIT_BURST')
        .argParser(integerIn(1, 1_000_000))
        .default(DEFAULT_RATE_LIMIT_BURST),
    )
    .addOption(
      new Option(
        '--max-concurrent-per-node <n>',
        'invocations one calling node may have in progress at once',
      )
        .argParser(integerIn(1, 100_000))
        .default(DEFAULT_MAX_CONCURRENT_PER_NODE),
    )
    .addOption(
      completeWith(
        new Option(
          '--announce <methods>',
          `make this node findable: a comma-separated list of ${ANNOUNCE_KINDS.join(', ')}`,
        ).argParser(announceKinds),
        { kind: 'words', words: ANNOUNCE_KINDS },
      ),
    )
    .addOption(
      new Option(
        '--metrics <host:port>',
        'serve Prometheus metrics over plain HTTP at http://host:port/metrics (keep it private; docs/metrics.md)',
      ).argParser(hostPort('127.0.0.1:9464')),
    )
    .option('--interface <addr>', 'IPv4 address or interface name to announce on over mDNS')
    .addOption(
      new Option(
        '--consul-url <url>',
        'Consul agent to register with for --announce consul (default: CONSUL_HTTP_ADDR, else 127.0.0.1:8500; token from CONSUL_HTTP_TOKEN)',
      ).env('FEDERATION_CONSUL_URL'),
    )
    .option(
      '--check',
      'check the identity, key and --resources/--policy files, print what would be served and the warnings, and exit (0 fine, 2 a bad file) without listening',
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'log lines as text (default on a terminal) or json (default otherwise, and with --json)',
      ).choices(['text', 'json']),
    )
    .action(
      action<ServeOptions>(io, async (context, options) => {
        // Flags that only configure an announcement do nothing without it: say so rather than
        // serve unannounced (FEDERATION_CONSUL_URL set for other commands is not a mistake).
        const announced = new Set(options.announce ?? []);
        if (command.getOptionValueSource('consulUrl') === 'cli' && !announced.has('consul')) {
          throw new UsageError(
            'ANNOUNCE_OPTION_UNUSED',
            '--consul-url only says where to register with --announce consul',
            { hint: 'add --announce consul, or leave out --consul-url' },
          );
        }
        if (options.interface !== undefined && !announced.has('mdns')) {
          throw new UsageError(
            'ANNOUNCE_OPTION_UNUSED',
            '--interface only says where to announce with --announce mdns',
            { hint: 'add --announce mdns, or leave out --interface' },
          );
        }
        const { startDaemon } = await import('../../node/daemon.js');
        const { jsonLogger, textLogger } = await import('../../node/logger.js');
        const { openState } = await import('../../core/state/database.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');

        // The identity comes first: without one there is nothing to serve, whatever the address.
        const store = openState(context.statePath, { create: false });
        const identity = (() => {
          try {
            return store.read(loadIdentity);
          } finally {
            store.close();
          }
        })();
        if (!identity) {
          throw new NotFoundError('NO_IDENTITY', `no node identity in ${context.statePath}`, {
            hint: 'run `sark-fed init` before `sark-fed serve`',
          });
        }

        let address = options.listen;
        if (!address) {
          const { endpoint } = identity;
          if (!endpoint) {
            throw new UsageError('NO_LISTEN_ADDRESS', 'no address to listen on', {
              hint: 'pass --listen host:port, set FEDERATION_LISTEN_ADDRESS, or give init an --endpoint',
            });
          }
          const url = new URL(endpoint);
          address = {
            host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
            port: Number(url.port || 443),
          };
        }

        // Read before anything listens: a bad file is the operator's words (exit 2), and a daemon
        // serving half of what was meant is worse than one that does not start.
        const { loadResourcesFile } = await import('../../node/resources.js');
        const { loadPolicyFile } = await import('../../node/policy.js');
        const { fileSignature } = await import('../../node/served-files.js');
        // Each file's version is noted before it is read, so that a save while it is being
        // read is seen as a change and re-read once the daemon runs.
        const reloadFiles: Partial<Record<'resources' | 'policy', WatchedFile>> = {};
        for (const kind of ['resources', 'policy'] as const) {
          const path = options[kind];
          if (path !== undefined)
            reloadFiles[kind] = { path, signature: await fileSignature(path) };
        }
        const resources =
          options.resources === undefined
            ? undefined
            : await loadResourcesFile(options.resources, io.env);
        const policy =
          options.policy === undefined ? undefined : await loadPolicyFile(options.policy);

        if (options.check) {
          const { checkServe } = await import('./serve-check.js');
          checkServe(context, identity, {
            resources: resources &&
              reloadFiles.resources && {
                path: reloadFiles.resources.path,
                catalog: resources,
              },
            policy: policy && reloadFiles.policy && { path: reloadFiles.policy.path, policy },
          });
          return;
        }

        // A person watching a terminal reads text; a supervisor, a file or a collector gets JSON.
        const logFormat =
          options.logFormat ?? (context.output.json || io.stderr.isTTY !== true ? 'json' : 'text');
        const logger =
          logFormat === 'json'
            ? jsonLogger(io.stderr, { quiet: context.output.quiet })
            : textLogger(io.stderr, { quiet: context.output.quiet, styles: context.output.err });
        // Listen for signals before the daemon says it listens: a supervisor that stops it as
        // soon as it logged "listening" must get a clean shutdown, not Node's default death.
        const signals = nextSignal();
        let daemon;
        try {
          daemon = await startDaemon({
            statePath: context.statePath,
            host: address.host,
            port: address.port,
            requireApproval: options.requireApproval === true,
            version: packageVersion(),
            logger,
            ...(resources ? { resources } : {}),
            ...(policy ? { policy } : {}),
            invocation: {
              maxBodyBytes: options.maxBody,
              rateLimit: { perHour: options.rateLimitPerHour, burst: options.rateLimitBurst },
              maxConcurrentPerNode: options.maxConcurrentPerNode,
            },
            ...(options.metrics ? { metrics: options.metrics } : {}),
            reload: { files: reloadFiles, env: io.env },
          }).catch(async (error: unknown) => {
            const { BindError } = await import('../../node/daemon.js');
            throw error instanceof BindError ? bindError(error, address) : error;
          });
        } catch (error) {
          signals.dispose();
          throw error;
        }
        const { startAnnouncers } = await import('../../node/announce.js');
        let announcers;
        try {
          announcers = await startAnnouncers(
            options.announce ?? [],
            {
              nodeId: identity.nodeId,
              trustDomain: identity.trustDomain,
              fingerprint: identity.fingerprint,
              listenHost: daemon.host,
              port: daemon.port,
              interface: options.interface,
              endpoint: identity.endpoint,
              consulUrl: options.consulUrl,
              env: io.env,
            },
            logger,
          );
        } catch (error) {
          signals.dispose();
          await daemon.close();
          throw error;
        }
        const signal = await signals.received;
        // A second signal now ends the process at once, as operators expect of a second Ctrl-C.
        signals.dispose();
        logger.info('signal received', { signal });
        // Withdraw the announcements first (mDNS goodbye, Consul deregistration), so peers stop
        // being sent here before the daemon stops answering.
        await announcers.close();
        await daemon.close();
      }),
    );
  withExamples(command, [
    ['Serve on the endpoint recorded by init', 'sark-fed serve'],
    [
      'Serve on a given address, approving new peers by hand',
      'sark-fed serve --listen 127.0.0.1:8443 --require-approval',
    ],
    [
      'Be found by `sark-fed discover` on the local network (mDNS)',
      'sark-fed serve --listen 0.0.0.0:8443 --announce mdns --interface 192.168.1.20',
    ],
    [
      'Serve resources to the peers the policy names',
      'sark-fed serve --resources resources.yaml --policy policy.yaml',
    ],
    [
      'Allow each calling node 600 invocations an hour, 20 at once',
      'sark-fed serve --resources resources.yaml --policy policy.yaml --rate-limit-per-hour 600 --rate-limit-burst 20',
    ],
    [
      'Serve Prometheus metrics on loopback, read with: curl http://127.0.0.1:9464/metrics',
      'sark-fed serve --resources resources.yaml --policy policy.yaml --metrics 127.0.0.1:9464',
    ],
    [
      'Register with the local Consul agent (deregistered on shutdown)',
      'CONSUL_HTTP_TOKEN=... sark-fed serve --announce consul',
    ],
    [
      'Check the files before (re)starting, or before saving them over the served ones',
      'sark-fed serve --resources resources.yaml --policy policy.yaml --check',
    ],
    [
      'JSON log lines on a terminal too, the warnings only',
      'sark-fed serve --log-format json --quiet',
    ],
    [
      'Check it with curl',
      'curl --cert node-b/cert.pem --key node-b/key.pem --cacert ca-a/ca.pem https://127.0.0.1:8443/api/v2/federation/info',
    ],
  ]);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 * 1024,
  mb: 1024 * 1024,
  mib: 1024 * 1024,
};

/** `65536`, `512KiB`, `1MiB` (k and M are binary units here, as body caps usually are). */
function byteSize(value: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase()];
  const bytes = match && unit !== undefined ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024 || bytes > 256 * 1024 * 1024) {
    throw new InvalidArgumentError(
      'expected a size from 1KiB to 256MiB, e.g. 65536, 512KiB or 1MiB',
    );
  }
  return bytes;
}

/** `--announce mdns,consul`: each kind once, in the order given. */
function announceKinds(value: string): AnnounceKind[] {
  const kinds = value
    .split(',')
    .map((kind) => kind.trim())
    .filter((kind) => kind !== '');
  const known = (kind: string): kind is AnnounceKind =>
    (ANNOUNCE_KINDS as readonly string[]).includes(kind);
  if (kinds.length === 0 || !kinds.every(known)) {
    throw new InvalidArgumentError(
      `expected a comma-separated list of ${ANNOUNCE_KINDS.join(', ')}`,
    );
  }
  return [...new Set(kinds)];
}

/**
 * The first SIGTERM, SIGINT or SIGHUP from now on; dispose() restores the default handling.
 * SIGHUP is a stop too: it is what a foreground daemon gets when its terminal closes, and by
 * default it would end the process without the goodbye, the deregistration and the release of
 * the state file that a clean stop does (the daemon re-reads what could change by itself: the
 * state file, and its --resources and --policy files when they change, so there is nothing for
 * SIGHUP to reload).
 */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

function nextSignal(): { received: Promise<NodeJS.Signals>; dispose(): void } {
  let deliver: (signal: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => {
    deliver = resolve;
  });
  const handlers = STOP_SIGNALS.map((signal) => [signal, () => deliver(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return {
    received,
    dispose() {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}

/**
 * A socket the daemon could not bind, as an operator reads it: the address, and the option to
 * change (`--listen` for the TLS address, which may come from init's endpoint; `--metrics`).
 */
export function bindError(error: BindError, listening: { host: string; port: number }): unknown {
  const where = addressText(error.host, error.port);
  const flag = `--${error.socket}`;
  const what = error.socket === 'metrics' ? 'serve metrics on' : 'listen on';
  const options = { cause: error.cause };
  switch (error.code) {
    case 'EADDRINUSE':
      return new OperationError('ADDRESS_IN_USE', `cannot ${what} ${where}: it is already in use`, {
        ...options,
        // The likeliest user of a metrics address in use is this daemon's own TLS listener.
        hint:
          error.socket === 'metrics' && sharesPort(error, listening)
            ? `the node itself listens there (${addressText(listening.host, listening.port)}): pass --metrics host:port with a port of its own`
            : `stop whatever uses it, or pass ${flag} host:port with another address`,
      });
    case 'EACCES':
      return new OperationError('ADDRESS_FORBIDDEN', `cannot ${what} ${where}: permission denied`, {
        ...options,
        hint: `ports below 1024 need privileges; pass ${flag} host:port with a higher port`,
      });
    case 'EADDRNOTAVAIL':
      return new OperationError(
        'ADDRESS_NOT_AVAILABLE',
        `cannot ${what} ${where}: no such address on this machine`,
        { ...options, hint: `pass ${flag} with an address of one of its interfaces` },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      // A host name (from the flag, or init's endpoint) that the resolver does not know, or
      // could not answer for: there is nothing to bind.
      return new OperationError(
        'ADDRESS_UNRESOLVED',
        `cannot ${what} ${where}: the host name ${error.host} does not resolve here`,
        { ...options, hint: `pass ${flag} with an IP address of this machine, e.g. 127.0.0.1` },
      );
    default:
      return error.cause;
  }
}

function addressText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Same port, and the same host or a wildcard one (0.0.0.0 or :: also holds every address). */
function sharesPort(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  const wildcard = (host: string) => host === '0.0.0.0' || host === '::';
  return (
    a.port === b.port && a.port !== 0 && (a.host === b.host || wildcard(a.host) || wildcard(b.host))
  );
}
