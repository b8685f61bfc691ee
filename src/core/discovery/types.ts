import { NODE_ID_PATTERN, TRUST_DOMAIN_PATTERN } from '../identity/spiffe.js';

/** The four ways of finding nodes (DESIGN §4), in the order results are listed under VIA. */
export const DISCOVERY_METHODS = ['mdns', 'dns-sd', 'consul', 'manual'] as const;
export type DiscoveryMethod = (typeof DISCOVERY_METHODS)[number];

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
  source: DiscoveryMethod;
  /** How long this sighting may be reused without asking again (the record's TTL). */
  ttlSeconds: number;
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
