import { NODE_ID_PATTERN, TRUST_DOMAIN_PATTERN } from '../identity/spiffe.js';

/** The four ways of finding nodes (DESIGN §4), in the order results are listed under VIA. */
export const DISCOVERY_METHODS = ['mdns', 'dns-sd', 'consul', 'manual'] as const;
export type DiscoveryMethod = (typeof DISCOVERY_METHODS)[number];

/**
 * Where a sighting came from: one per method, except that the manual method has two kinds, kept
 * apart in the state file (one row per node and source): `manual`, recorded by hand with
 * `nodes add`, and `file`, an entry of a nodes file (`--file`) or of FEDERATION_NODES. Listed in
 * order of precedence: for a node seen by several, each field comes from the first that has a
 * value, so what the operator recorded by hand wins over a file's entry.
 */
export const SIGHTING_SOURCES = ['mdns', 'dns-sd', 'consul', 'manual', 'file'] as const;
export type SightingSource = (typeof SIGHTING_SOURCES)[number];

/** The discovery method that reports sightings of this source (`file` is the manual method's). */
export function methodOf(source: SightingSource): DiscoveryMethod {
  return source === 'file' ? 'manual' : source;
}

/** The methods of these sightings, once each, in DISCOVERY_METHODS order (VIA). */
export function methodsOf(sources: readonly SightingSource[]): DiscoveryMethod[] {
  const methods = new Set(sources.map(methodOf));
  return DISCOVERY_METHODS.filter((method) => methods.has(method));
}

/** Sorts sightings by precedence (SIGHTING_SOURCES order), stable within one source. */
export function byPrecedence<T extends { source: SightingSource }>(sightings: readonly T[]): T[] {
  return [...sightings].sort(
    (a, b) => SIGHTING_SOURCES.indexOf(a.source) - SIGHTING_SOURCES.indexOf(b.source),
  );
}

/** DNS-SD service type of sark-fed nodes; the instance name is the node ID. */
export const SERVICE_TYPE = '_sark._tcp';
export const MDNS_DOMAIN = 'local';

/**
 * One sighting of a node by one method. Methods return these; the scanner merges them by node
 * ID, keeping every source. Only what the method saw is set: an mDNS TXT record may lack `fp`.
 */
export interface DiscoveredNode {
  nodeId: string;
  /** https://host:port, as the node's SRV/A records, Consul entry or manual entry give it. */
  endpoint: string;
  trustDomain: string | null;
  /** The SHA-256 fingerprint the node advertises (lowercase hex); never a trust decision. */
  fingerprint: string | null;
  /** The method that saw it; for the manual method, `manual` (nodes add) or `file`. */
  source: SightingSource;
  /** How long this sighting may be reused without asking again (the record's TTL). */
  ttlSeconds: number;
  /**
   * Only for an entry the manual method read back from the state file (`nodes add`'s, or one an
   * earlier scan saved from a nodes file): when it was recorded. Saving it again keeps that time:
   * reading the state file's own rows is not seeing the node.
   */
  seenAt?: string | undefined;
}

/** What went wrong with one method: reported on stderr, never fatal to the scan by itself. */
export interface MethodProblem {
  method: DiscoveryMethod;
  code: string;
  message: string;
  hint?: string | undefined;
}

/** A result or event sink given to every method: it reports sightings as they arrive. */
export interface MethodContext {
  /** Aborted at the scan's deadline (or `--expect` reached, or Ctrl-C). */
  signal: AbortSignal;
  /** Records and packets a method skipped (malformed TXT, SRV pointing nowhere, non-DNS). */
  skipped(detail: string): void;
  /**
   * Something the operator should know that is neither a skipped record nor a failure (Consul
   * hid entries from this token): shown as a warning, not counted among the skipped.
   */
  notice(detail: string): void;
  now(): Date;
}

export const FINGERPRINT_PATTERN = /^[0-9a-f]{64}$/;

export function isNodeId(value: string): boolean {
  return NODE_ID_PATTERN.test(value);
}

export function isTrustDomain(value: string): boolean {
  return TRUST_DOMAIN_PATTERN.test(value);
}

/** https://host:port for a host name or address and port, with IPv6 in brackets. */
export function endpointOf(host: string, port: number): string {
  const bare = host.replace(/\.$/, '');
  return bare.includes(':') ? `https://[${bare}]:${port}` : `https://${bare}:${port}`;
}
