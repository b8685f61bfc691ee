import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { NotFoundError, UnavailableError, UsageError, errnoOf } from '../errors.js';
import { abortError, endedByDeadline, printable } from './method-support.js';
import type { MethodRunner } from './scanner.js';
import { parseSarkTxt } from './txt.js';
import { SERVICE_TYPE, endpointOf, type DiscoveredNode, type MethodContext } from './types.js';

/**
 * DNS-SD over unicast DNS (RFC 6763 §4): PTR `_sark._tcp.<domain>` lists the instances, each
 * instance's SRV gives host and port (RFC 2782 order), its TXT the node's keys (DESIGN §4), and
 * the SRV target's A/AAAA the address.
 *
 * Rules this module follows, beyond the RFCs:
 * - The instance label must be the node ID (DESIGN §4) and the TXT `node=` key is authoritative.
 *   When they disagree the instance is skipped: in a unicast zone nobody renames instances
 *   (unlike mDNS conflict resolution), so a mismatch is a stale or copied record, and taking
 *   either name would attach one node's endpoint to another node's ID.
 * - TTL: node's resolver gives TTLs for A/AAAA answers only (`{ ttl: true }`), not for PTR, SRV
 *   or TXT. A sighting's TTL is that of the address record used; when the SRV target is an IP
 *   literal (no address lookup), DEFAULT_TTL_SECONDS.
 * - A node appears whole or not at all: a missing SRV, a target with no address, a TXT that
 *   parseSarkTxt refuses or more than one TXT record skip the instance (`context.skipped`).
 */

/** The subset of node:dns/promises `Resolver` this module uses; tests may inject their own. */
export interface DnsResolver {
  resolvePtr(name: string): Promise<string[]>;
  resolveSrv(
    name: string,
  ): Promise<Array<{ name: string; port: number; priority: number; weight: number }>>;
  resolveTxt(name: string): Promise<string[][]>;
  resolve4(name: string, options: { ttl: true }): Promise<Array<{ address: string; ttl: number }>>;
  resolve6(name: string, options: { ttl: true }): Promise<Array<{ address: string; ttl: number }>>;
  cancel(): void;
}

export interface DnsSdOptions {
  /** The DNS domain browsed: `_sark._tcp.<domain>`. */
  domain: string;
  /** host[:port] or [v6]:port; the system resolver (resolv.conf) when absent. */
  nameserver?: string | undefined;
  /** Replaces the resolver built from `nameserver` (tests). */
  resolver?: DnsResolver | undefined;
  /**
   * Milliseconds for the first try of each query; c-ares doubles it on each retry, so a
   * nameserver that never answers fails after about timeoutMs * (2^tries - 1).
   */
  timeoutMs?: number | undefined;
  tries?: number | undefined;
  /** Uniform in [0, 1): the weighted choice among SRV records of one priority (RFC 2782). */
  random?: (() => number) | undefined;
}

/** Messages name the server asked; this one when no --nameserver was given. */
const SYSTEM_RESOLVER = 'the system resolver';
/** When no address record gave a TTL (SRV target written as an IP literal). */
export const DEFAULT_TTL_SECONDS = 120;
/**
 * Defaults chosen so that a silent nameserver is reported within the scan's default 3 s
 * deadline (500 ms, then 1000 ms): once the scan is aborted, a pending query is no problem.
 */
const DEFAULT_TIMEOUT_MS = 500;
const DEFAULT_TRIES = 2;
/** Instances resolved at once: enough for speed, few enough not to flood a small server. */
const CONCURRENCY = 8;
/** A PTR answer listing more instances than this is cut (DNS-SD lists are meant to be short). */
const MAX_INSTANCES = 1000;
const MAX_SRV_TARGETS = 8;

export function dnsSdRunner(options: DnsSdOptions): MethodRunner {
  const domain = normalizeDomain(options.domain);
  const nameserver = options.nameserver === undefined ? undefined : options.nameserver.trim();
  const server = nameserver === undefined ? undefined : parseNameserver(nameserver);
  const random = options.random ?? Math.random;
  return {
    method: 'dns-sd',
    async run(context, found) {
      if (context.signal.aborted) throw abortError(context.signal);
      const resolver =
        options.resolver ??
        (await systemOrGivenResolver(
          server,
          nameserver,
          {
            timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
            tries: options.tries ?? DEFAULT_TRIES,
          },
          context.signal,
        ));
      // The scan may have ended while the resolver was made (another method met --expect): an
      // abort listener added now would never fire, and the query would outlive the scan.
      if (context.signal.aborted) throw abortError(context.signal);
      const where = nameserver === undefined ? SYSTEM_RESOLVER : `nameserver ${nameserver}`;
      // Cancelling makes every pending query fail with ECANCELLED at once: the scan's deadline
      // then ends this method immediately instead of after the resolver's own timeouts.
      const onAbort = () => resolver.cancel();
      context.signal.addEventListener('abort', onAbort, { once: true });
      // Skipped details quote names and TXT contents from the network.
      const safe = { ...context, skipped: (detail: string) => context.skipped(printable(detail)) };
      const progress = { ptrAnswered: false };
      try {
        await browse(resolver, domain, where, random, safe, found, progress);
      } catch (error) {
        // Still waiting for the first answer when time ran out: the nameserver is silent (its
        // own timeouts are longer than a scan), which is a failure to report, not "no nodes".
        if (endedByDeadline(context.signal) && !progress.ptrAnswered) {
          throw new UnavailableError(
            'DNSSD_NO_ANSWER',
            `no answer from ${where} for ${SERVICE_TYPE}.${domain} before the scan's deadline`,
            {
              hint: 'check that the nameserver runs and is reachable, or give --timeout more time',
            },
          );
        }
        if (context.signal.aborted) throw abortError(context.signal);
        throw error;
      } finally {
        context.signal.removeEventListener('abort', onAbort);
      }
    },
  };
}

async function browse(
  resolver: DnsResolver,
  domain: string,
  where: string,
  random: () => number,
  context: MethodContext,
  found: (node: DiscoveredNode) => void,
  progress: { ptrAnswered: boolean },
): Promise<void> {
  const serviceName = `${SERVICE_TYPE}.${domain}`;
  let targets: string[];
  try {
    targets = await resolver.resolvePtr(serviceName);
    progress.ptrAnswered = true;
  } catch (error) {
    // Any answer, even an error code, shows the nameserver is there.
    if (!context.signal.aborted) progress.ptrAnswered = true;
    if (context.signal.aborted) throw abortError(context.signal);
    const code = errnoOf(error);
    // NODATA: the name exists with other records only; no node registered is an empty result.
    if (code === 'ENODATA') {
      context.skipped(`${serviceName}: no PTR records (the name holds other record types)`);
      return;
    }
    throw ptrError(code, serviceName, domain, where, error);
  }

  const suffix = `.${serviceName}`.toLowerCase();
  const seen = new Set<string>();
  const instances: Array<{ name: string; label: string }> = [];
  for (const target of targets) {
    const name = target.replace(/\.$/, '');
    const lower = name.toLowerCase();
    if (seen.has(lower)) continue;
    seen.add(lower);
    const label = lower.endsWith(suffix) ? instanceLabel(name.slice(0, -suffix.length)) : null;
    if (label === null) {
      context.skipped(`${serviceName}: PTR ${name} is not an instance of ${serviceName}`);
      continue;
    }
    if (instances.length >= MAX_INSTANCES) {
      context.skipped(`${serviceName}: more than ${MAX_INSTANCES} instances; the rest ignored`);
      break;
    }
    instances.push({ name, label });
  }

  let next = 0;
  const worker = async () => {
    while (next < instances.length && !context.signal.aborted) {
      const instance = instances[next++] as { name: string; label: string };
      const outcome = await resolveInstance(resolver, instance.name, instance.label, random);
      if (context.signal.aborted) return;
      if ('skip' in outcome) {
        context.skipped(`${instance.name}: ${outcome.skip}`);
        continue;
      }
      for (const part of outcome.ignored) {
        context.skipped(`${instance.name}: TXT ${part}; the node is kept without it`);
      }
      found(outcome.node);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, instances.length) }, worker));
  if (context.signal.aborted) throw abortError(context.signal);
}

/** `ignored`: parts of the TXT record the node is kept without (a malformed td= or fp=). */
type InstanceOutcome = { node: DiscoveredNode; ignored: string[] } | { skip: string };

/** One instance, whole or not at all: SRV and TXT together, then the SRV targets' addresses. */
async function resolveInstance(
  resolver: DnsResolver,
  name: string,
  label: string,
  random: () => number,
): Promise<InstanceOutcome> {
  const [srv, txt] = await Promise.allSettled([
    resolver.resolveSrv(name),
    resolver.resolveTxt(name),
  ]);
  if (srv.status === 'rejected') return { skip: `no SRV record (${errnoOf(srv.reason)})` };
  // An empty answer: c-ares drops records of other types (a CNAME, say) from what it returns.
  if (srv.value.length === 0) return { skip: 'no SRV record' };
  if (txt.status === 'rejected') return { skip: `no TXT record (${errnoOf(txt.reason)})` };
  // RFC 6763 §6.8: one TXT record per instance; with several, none is more right than another.
  if (txt.value.length !== 1) {
    return { skip: txt.value.length === 0 ? 'no TXT record' : 'several TXT records' };
  }
  const parsed = parseSarkTxt(txt.value[0] as string[]);
  if ('error' in parsed) return { skip: `TXT refused: ${parsed.error}` };
  if (parsed.txt.nodeId !== label) {
    return {
      skip: `instance name "${label}" differs from the TXT node=${parsed.txt.nodeId}`,
    };
  }

  const usable = srv.value.filter((record) => record.port > 0 && !isRootTarget(record.name));
  if (usable.length === 0) return { skip: 'the SRV record points nowhere (target "." or port 0)' };
  const ordered = orderSrv(usable, random).slice(0, MAX_SRV_TARGETS);
  const failures: string[] = [];
  for (const record of ordered) {
    const address = await addressOf(resolver, record.name);
    if ('error' in address) {
      failures.push(`${record.name} (${address.error})`);
      continue;
    }
    return {
      node: {
        nodeId: parsed.txt.nodeId,
        endpoint: endpointOf(address.address, record.port),
        trustDomain: parsed.txt.trustDomain,
        fingerprint: parsed.txt.fingerprint,
        source: 'dns-sd',
        ttlSeconds: address.ttl,
      },
      ignored: parsed.ignored,
    };
  }
  return { skip: `the SRV target has no address: ${failures.join(', ')}` };
}

/** RFC 2782: target "." means "decidedly not available"; c-ares returns it as an empty name. */
function isRootTarget(name: string): boolean {
  return name === '' || name === '.';
}

/**
 * The address an SRV target names: A first (IPv4 reaches more networks), AAAA otherwise. An IP
 * literal is used as it is. Both queries go out together; AAAA's failure matters only without A.
 */
async function addressOf(
  resolver: DnsResolver,
  target: string,
): Promise<{ address: string; ttl: number } | { error: string }> {
  const host = target.replace(/\.$/, '');
  if (isIP(host) !== 0) return { address: host, ttl: DEFAULT_TTL_SECONDS };
  const [v4, v6] = await Promise.allSettled([
    resolver.resolve4(host, { ttl: true }),
    resolver.resolve6(host, { ttl: true }),
  ]);
  for (const result of [v4, v6]) {
    if (result.status === 'fulfilled' && result.value.length > 0) {
      const first = result.value[0] as { address: string; ttl: number };
      return { address: first.address, ttl: first.ttl };
    }
  }
  const reason = v4.status === 'rejected' ? errnoOf(v4.reason) : 'no address records';
  return { error: reason };
}

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/**
 * RFC 2782's selection order: priorities ascending; within one priority, repeatedly pick a record
 * with probability proportional to its weight, records of weight 0 placed first so that they are
 * picked only when the running sum is 0 (i.e. rarely, when others have weight).
 */
export function orderSrv<T extends SrvRecord>(records: readonly T[], random: () => number): T[] {
  const priorities = [...new Set(records.map((record) => record.priority))].sort((a, b) => a - b);
  const ordered: T[] = [];
  for (const priority of priorities) {
    const group = records.filter((record) => record.priority === priority);
    const remaining = [
      ...group.filter((record) => record.weight === 0),
      ...group.filter((record) => record.weight !== 0),
    ];
    while (remaining.length > 0) {
      const total = remaining.reduce((sum, record) => sum + record.weight, 0);
      // A uniform integer in [0, total], as the RFC says ("between 0 and the sum, inclusive").
      const pick = Math.min(total, Math.floor(random() * (total + 1)));
      let running = 0;
      let index = remaining.findIndex((record) => {
        running += record.weight;
        return running >= pick;
      });
      if (index === -1) index = remaining.length - 1;
      ordered.push(...remaining.splice(index, 1));
    }
  }
  return ordered;
}

/**
 * The node ID an instance name's first label spells, or null when the name has more than one
 * label before the service type. c-ares writes '.' and '\' inside a label as '\.' and '\\', and
 * other bytes as '\DDD'.
 */
export function instanceLabel(escaped: string): string | null {
  let label = '';
  for (let index = 0; index < escaped.length; index++) {
    const char = escaped[index] as string;
    if (char === '.') return null;
    if (char !== '\\') {
      label += char;
      continue;
    }
    const digits = /^\d{3}/.exec(escaped.slice(index + 1));
    if (digits) {
      label += String.fromCharCode(Number(digits[0]));
      index += 3;
    } else {
      label += escaped[index + 1] ?? '';
      index += 1;
    }
  }
  return label.length === 0 ? null : label.toLowerCase();
}

function ptrError(
  code: string,
  serviceName: string,
  domain: string,
  where: string,
  cause: unknown,
): Error {
  switch (code) {
    case 'ENOTFOUND':
      return new NotFoundError(
        'DNSSD_NXDOMAIN',
        `${serviceName} does not exist (NXDOMAIN from ${where})`,
        {
          hint: `check --domain ${domain}, and that its zone has PTR records ${serviceName} for the nodes`,
          cause,
        },
      );
    case 'EREFUSED':
      return new UnavailableError(
        'DNSSD_REFUSED',
        `${where} refused the query for ${serviceName}`,
        {
          hint: 'pass --nameserver with a server that serves or recurses for this domain',
          cause,
        },
      );
    case 'ESERVFAIL':
      return new UnavailableError(
        'DNSSD_SERVFAIL',
        `${where} failed to answer for ${serviceName} (SERVFAIL)`,
        { hint: `check the zone of ${domain} on its authoritative servers`, cause },
      );
    case 'ETIMEOUT':
    case 'ECONNREFUSED':
      return new UnavailableError(
        'DNSSD_NO_ANSWER',
        `no answer from ${where} for ${serviceName} (${code})`,
        {
          hint:
            where === SYSTEM_RESOLVER
              ? 'check the nameservers of /etc/resolv.conf, or pass --nameserver'
              : 'check that the nameserver runs and answers DNS at that address and port',
          cause,
        },
      );
    case 'EBADRESP':
    case 'EFORMERR':
      return new UnavailableError(
        'DNSSD_BAD_RESPONSE',
        `${where} answered with something that is not a valid DNS response`,
        {
          hint: 'check that --nameserver names a DNS server (host[:port], port 53 by default)',
          cause,
        },
      );
    default:
      return new UnavailableError(
        'DNSSD_FAILED',
        `the query for ${serviceName} to ${where} failed (${code})`,
        { hint: 'check --domain and --nameserver', cause },
      );
  }
}

/** A domain as given, without a trailing dot; what DNS cannot carry is a usage error. */
function normalizeDomain(value: string): string {
  const domain = value.trim().replace(/\.$/, '');
  const labels = domain.split('.');
  const valid =
    domain.length > 0 &&
    domain.length <= 240 &&
    labels.every((label) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label));
  if (!valid) {
    throw new UsageError('BAD_DOMAIN', `invalid DNS domain "${value}"`, {
      hint: 'pass --domain with a DNS name such as example.org',
    });
  }
  return domain.toLowerCase();
}

interface ParsedNameserver {
  host: string;
  port: number;
}

/** host, host:port, v6, [v6] or [v6]:port; the port defaults to 53. */
export function parseNameserver(value: string): ParsedNameserver {
  const bad = () =>
    new UsageError('BAD_NAMESERVER', `invalid nameserver "${value}"`, {
      hint: 'pass --nameserver host[:port], e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53',
    });
  const text = value.trim();
  let host: string;
  let port = 53;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] as string;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (isIP(text) === 6) {
    host = text;
  } else {
    const plain = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text);
    if (!plain) throw bad();
    host = plain[1] as string;
    if (plain[2] !== undefined) port = Number(plain[2]);
  }
  if (port < 1 || port > 65535) throw bad();
  if (host.includes(':') && isIP(host) !== 6) throw bad();
  return { host, port };
}

/**
 * A resolver for the given nameserver, or the system's. c-ares takes only IP addresses, so a
 * nameserver given by name is looked up first with the system resolver.
 */
async function systemOrGivenResolver(
  server: ParsedNameserver | undefined,
  nameserver: string | undefined,
  settings: { timeout: number; tries: number },
  signal: AbortSignal,
): Promise<DnsResolver> {
  const resolver = new Resolver(settings);
  if (server === undefined) return resolver;
  let address = server.host;
  if (isIP(address) === 0) {
    // getaddrinfo cannot be cancelled: the scan's end only stops waiting for it.
    let onAbort = () => {};
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      address = (await Promise.race([lookup(address), aborted])).address;
    } catch (error) {
      if (signal.aborted) throw abortError(signal);
      throw new UnavailableError(
        'DNSSD_NAMESERVER_UNKNOWN',
        `cannot find the address of nameserver ${nameserver ?? address} (${errnoOf(error)})`,
        { hint: 'pass --nameserver with an IP address', cause: error },
      );
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
  resolver.setServers([
    isIP(address) === 6 ? `[${address}]:${server.port}` : `${address}:${server.port}`,
  ]);
  return resolver;
}
