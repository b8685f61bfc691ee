import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { messageOf } from '../core/errors.js';
import type { Logger } from './logger.js';

/** The ways a daemon can make itself found (`serve --announce mdns,consul`). */
export const ANNOUNCE_KINDS = ['mdns', 'consul'] as const;
export type AnnounceKind = (typeof ANNOUNCE_KINDS)[number];

/** What every announcer needs to know about the running daemon. */
export interface AnnounceInfo {
  nodeId: string;
  trustDomain: string;
  fingerprint: string;
  /** The address the daemon listens on (maybe a wildcard: see advertisedHost). */
  listenHost: string;
  port: number;
  /** `--interface`: the IPv4 address or interface name to announce on. */
  interface?: string | undefined;
  /** The endpoint recorded by init: what peers are told to use, when there is one. */
  endpoint?: string | null | undefined;
  /** `--consul-url`; else CONSUL_HTTP_ADDR, read from `env` as Consul's own tools read it. */
  consulUrl?: string | undefined;
  /** Where CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and the like are read from. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

export interface Announcers {
  /** Withdraws every announcement (mDNS goodbye, Consul deregistration); never throws. */
  close(): Promise<void>;
}

interface Running {
  kind: AnnounceKind;
  close(): Promise<void>;
}

/**
 * Starts the requested announcers, in order. If one cannot start, those already started are
 * withdrawn and the error is thrown: a daemon asked to be findable should not run unfindable.
 */
export async function startAnnouncers(
  kinds: readonly AnnounceKind[],
  info: AnnounceInfo,
  logger: Logger,
): Promise<Announcers> {
  const running: Running[] = [];
  try {
    for (const kind of new Set(kinds)) {
      switch (kind) {
        case 'mdns': {
          const { announceMdns } = await import('../core/discovery/mdns.js');
          const announcement = await announceMdns({
            nodeId: info.nodeId,
            trustDomain: info.trustDomain,
            fingerprint: info.fingerprint,
            host: advertisedHost(info.listenHost, info.interface),
            port: info.port,
            interface: info.interface,
            logger,
          });
          running.push({ kind, close: () => announcement.close() });
          break;
        }
        case 'consul': {
          const withdraw = await announceConsul(info, logger);
          running.push({ kind, close: withdraw });
          break;
        }
      }
    }
  } catch (error) {
    await closeAll(running, logger);
    throw error;
  }
  return { close: () => closeAll(running, logger) };
}

/** In reverse order of starting; one announcer's failure does not keep the others up. */
async function closeAll(running: Running[], logger: Logger): Promise<void> {
  for (const announcer of running.splice(0).reverse()) {
    try {
      await announcer.close();
    } catch (error) {
      logger.warn('announcement not withdrawn', {
        announce: announcer.kind,
        error: messageOf(error),
      });
    }
  }
}

/**
 * The address peers should connect to. A daemon listening on one address announces that one; on a
 * wildcard (0.0.0.0, ::), the --interface address if given, else the machine's first external
 * IPv4 address, else loopback (a machine with no network has only peers on itself).
 */
export function advertisedHost(listenHost: string, interfaceOption?: string): string {
  const wildcard = listenHost === '' || listenHost === '0.0.0.0' || listenHost === '::';
  if (!wildcard) return listenHost;
  const interfaces = networkInterfaces();
  if (interfaceOption !== undefined) {
    if (isIPv4(interfaceOption)) return interfaceOption;
    const named = interfaces[interfaceOption]?.find((entry) => entry.family === 'IPv4');
    if (named) return named.address;
  }
  for (const entries of Object.values(interfaces)) {
    const external = entries?.find((entry) => entry.family === 'IPv4' && !entry.internal);
    if (external) return external.address;
  }
  return '127.0.0.1';
}

/**
 * Registers the node with the Consul agent (service `sark`, ID `sark-<node-id>`, a TCP check:
 * see serviceDefinition) and returns the deregistration. Peers are told the endpoint recorded by
 * init when the daemon listens on its port, else the listen address; a wildcard listen address
 * registers an empty address, which Consul reads as "this agent's node address".
 */
async function announceConsul(info: AnnounceInfo, logger: Logger): Promise<() => Promise<void>> {
  const { consulTarget, registerConsul } = await import('../core/discovery/consul.js');
  const target = consulTarget({ url: info.consulUrl, env: info.env ?? {} });
  let address = isWildcard(info.listenHost) ? '' : info.listenHost;
  let port = info.port;
  if (info.endpoint) {
    const url = new URL(info.endpoint);
    const endpointPort = Number(url.port || 443);
    // The recorded endpoint names the host peers should use (it may be a name, or an address
    // behind NAT), but only while the daemon listens on its port: a --listen elsewhere means the
    // record is stale, and registering it would point the health check at nothing.
    if (endpointPort === info.port) {
      address = url.hostname.replace(/^\[(.*)\]$/, '$1');
      port = endpointPort;
    } else {
      logger.warn(
        'the recorded endpoint is not where this daemon listens; registering the listen address',
        {
          endpoint: info.endpoint,
          port: info.port,
        },
      );
    }
  }
  const registration = await registerConsul(target, {
    nodeId: info.nodeId,
    trustDomain: info.trustDomain,
    fingerprint: info.fingerprint,
    address,
    port,
  });
  const fields = {
    consul: target.baseUrl.origin,
    service_id: registration.serviceId,
    address,
    port,
    check: (registration.definition.Check as { TCP: string }).TCP,
  };
  logger.info('registered with consul', fields);
  return async () => {
    await registration.deregister();
    logger.info('deregistered from consul', {
      consul: fields.consul,
      service_id: fields.service_id,
    });
  };
}

function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::';
}
