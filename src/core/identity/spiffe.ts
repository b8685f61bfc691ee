import { NotFoundError, UsageError } from '../errors.js';

/** DESIGN §2: node IDs are short lowercase DNS-label-like names. */
export const NODE_ID_PATTERN = /^[a-z0-9][a-z0-9.-]{0,62}$/;
/** A DNS-like trust domain name, as SPIFFE allows it: lowercase letters, digits, '.', '-', '_'. */
export const TRUST_DOMAIN_PATTERN = /^(?=.{1,255}$)[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;
const PATH_SEGMENT_PATTERN = /^[A-Za-z0-9._-]+$/;
const NODE_PATH_PREFIX = '/sark/node/';

export interface SpiffeId {
  trustDomain: string;
  path: string;
}

export function assertNodeId(nodeId: string): void {
  if (!NODE_ID_PATTERN.test(nodeId)) throw badNodeId(nodeId);
}

/**
 * The error for a node ID that names no node here: a usage error (exit 2) when it could not be
 * a node ID at all, so that a typo such as `node_b` is told apart from a node not known yet.
 */
export function unknownNodeError(nodeId: string, hint: string): UsageError | NotFoundError {
  if (!NODE_ID_PATTERN.test(nodeId)) return badNodeId(nodeId);
  return new NotFoundError('NO_SUCH_NODE', `no node ${nodeId} is known here`, { hint });
}

function badNodeId(nodeId: string): UsageError {
  return new UsageError('BAD_NODE_ID', `invalid node ID "${nodeId}"`, {
    hint: 'use 1-63 characters: lowercase letters, digits, "." and "-", starting with a letter or digit',
  });
}

export function assertTrustDomain(trustDomain: string): void {
  if (!TRUST_DOMAIN_PATTERN.test(trustDomain)) {
    throw new UsageError('BAD_TRUST_DOMAIN', `invalid trust domain "${trustDomain}"`, {
      hint: 'use a lowercase DNS-like name such as org-a.example',
    });
  }
}

export function nodeSpiffeId(trustDomain: string, nodeId: string): string {
  return `spiffe://${trustDomain}${NODE_PATH_PREFIX}${nodeId}`;
}

export function trustDomainSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}`;
}

/**
 * Parses a SPIFFE ID per the SPIFFE-ID specification §2: scheme, trust domain without port or
 * user info, and a path of non-empty segments other than "." and "..". Returns the reason on
 * failure instead of throwing, because callers report it in different ways.
 */
export function parseSpiffeId(uri: string): SpiffeId | { error: string } {
  if (uri.length > 2048) return { error: 'longer than 2048 bytes' };
  const scheme = 'spiffe://';
  if (!uri.startsWith(scheme)) return { error: 'scheme is not spiffe' };
  const rest = uri.slice(scheme.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (!TRUST_DOMAIN_PATTERN.test(trustDomain)) return { error: 'invalid trust domain' };
  if (/[?#]/.test(path)) return { error: 'query or fragment present' };
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const segment of segments) {
      if (segment === '') return { error: 'empty path segment' };
      if (segment === '.' || segment === '..') return { error: 'dot path segment' };
      if (!PATH_SEGMENT_PATTERN.test(segment)) return { error: 'invalid path character' };
    }
  }
  return { trustDomain, path };
}

/** The node ID a sark node SPIFFE ID names, or undefined when the path is not a node path. */
export function nodeIdOf(id: SpiffeId): string | undefined {
  if (!id.path.startsWith(NODE_PATH_PREFIX)) return undefined;
  const nodeId = id.path.slice(NODE_PATH_PREFIX.length);
  return NODE_ID_PATTERN.test(nodeId) ? nodeId : undefined;
}
