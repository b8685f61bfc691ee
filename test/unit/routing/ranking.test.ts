import { describe, expect, it } from 'vitest';
import {
  compareCandidates,
  noRouteError,
  type RouteCandidate,
  type RouteResult,
} from '../../../src/core/routing/router.js';

/** Route ranking (DESIGN §6) and what a route without candidates stands for (exit 4 or 5). */

function candidate(nodeId: string, extra: Partial<RouteCandidate> = {}): RouteCandidate {
  return {
    nodeId,
    local: false,
    trust: 'trusted',
    endpoint: `https://${nodeId}.test:8443`,
    health: 'unknown',
    latencyMs: null,
    circuit: 'closed',
    circuitRetryAt: null,
    catalog: 'cache',
    idempotent: null,
    rank: null,
    skipped: null,
    target: null,
    ...extra,
  };
}

const rank = (list: RouteCandidate[]) => [...list].sort(compareCandidates).map((c) => c.nodeId);

describe('compareCandidates', () => {
  it('puts this node first, whatever the health and latency of the others', () => {
    expect(
      rank([
        candidate('node-b', { health: 'online', latencyMs: 1 }),
        candidate('node-z', { local: true, health: 'unknown' }),
      ]),
    ).toEqual(['node-z', 'node-b']);
  });

  it('orders by health: online, degraded, never checked, offline', () => {
    expect(
      rank([
        candidate('node-off', { health: 'offline', latencyMs: 1 }),
        candidate('node-unk', { health: 'unknown' }),
        candidate('node-deg', { health: 'degraded', latencyMs: 1 }),
        candidate('node-on', { health: 'online', latencyMs: 900 }),
      ]),
    ).toEqual(['node-on', 'node-deg', 'node-unk', 'node-off']);
  });

  it('then by measured latency, unknown latency last', () => {
    expect(
      rank([
        candidate('node-c', { health: 'online', latencyMs: null }),
        candidate('node-b', { health: 'online', latencyMs: 40 }),
        candidate('node-d', { health: 'online', latencyMs: 3.5 }),
      ]),
    ).toEqual(['node-d', 'node-b', 'node-c']);
  });

  it('then by node ID, so that equal nodes always rank the same way', () => {
    expect(rank([candidate('node-c'), candidate('node-a'), candidate('node-b')])).toEqual([
      'node-a',
      'node-b',
      'node-c',
    ]);
  });
});

function route(candidates: RouteCandidate[], capability: string | null = null): RouteResult {
  return { resource: 'echo', capability, chosen: null, candidates };
}

const skip = (code: NonNullable<RouteCandidate['skipped']>['code']) => ({ code, reason: code });

describe('noRouteError', () => {
  it('is "not found" (exit 4) when every node that could be asked lacks the resource', () => {
    const error = noRouteError(
      route([
        candidate('node-a', { local: true, skipped: skip('no-resource') }),
        candidate('node-b', { skipped: skip('no-resource') }),
        candidate('node-s', { trust: 'untrusted', skipped: skip('untrusted') }),
      ]),
    );
    expect(error).toMatchObject({ kind: 'not-found', code: 'UNKNOWN_RESOURCE' });
  });

  it('names the capability when nodes offer the resource but not it', () => {
    const error = noRouteError(
      route(
        [
          candidate('node-a', { local: true, skipped: skip('no-resource') }),
          candidate('node-b', { skipped: skip('no-capability') }),
        ],
        'missing',
      ),
    );
    expect(error).toMatchObject({ kind: 'not-found', code: 'UNKNOWN_CAPABILITY' });
  });

  it('says when the peers that lack it answered from the catalog cache, and how to ask them again', () => {
    const cached = noRouteError(
      route([
        candidate('node-a', { local: true, catalog: 'local', skipped: skip('no-resource') }),
        candidate('node-b', { catalog: 'cache', skipped: skip('no-resource') }),
        candidate('node-c', { catalog: 'fetched', skipped: skip('no-resource') }),
      ]),
    );
    expect(cached).toMatchObject({ kind: 'not-found', code: 'UNKNOWN_RESOURCE' });
    expect(cached.hint).toBe(
      "node-b's catalog came from the cache (kept 60 s): `sark-fed route echo --refresh` asks again; else check the resource ID, or ask its owners to allow this node in their policy",
    );
    const fetched = noRouteError(
      route([candidate('node-b', { catalog: 'fetched', skipped: skip('no-resource') })]),
    );
    expect(fetched.hint).toBe(
      'check the resource ID, or ask its owners to allow this node in their policy',
    );
    const capability = noRouteError(
      route(
        [
          candidate('node-b', { catalog: 'cache', skipped: skip('no-capability') }),
          candidate('node-c', { catalog: 'cache', skipped: skip('no-resource') }),
        ],
        'missing',
      ),
    );
    expect(capability.hint).toBe(
      'the catalogs of node-b, node-c came from the cache (kept 60 s): `sark-fed route echo --refresh` asks again; else check the capability ID',
    );
  });

  it('is "unavailable" (exit 5) when a node that might offer it could not be asked', () => {
    const error = noRouteError(
      route([
        candidate('node-a', { local: true, skipped: skip('no-resource') }),
        candidate('node-b', { skipped: skip('no-resource') }),
        candidate('node-c', { skipped: skip('circuit-open') }),
      ]),
    );
    expect(error).toMatchObject({ kind: 'unavailable', code: 'NO_ROUTE' });
    expect(error.message).toContain('node-c: circuit-open');
  });

  it('names a peer whose trust was revoked or awaits approval, not nodes never trusted', () => {
    const error = noRouteError(
      route([
        candidate('node-a', { local: true, skipped: skip('no-resource') }),
        candidate('node-b', { trust: 'revoked', skipped: skip('untrusted') }),
        candidate('node-p', { trust: 'pending', skipped: skip('untrusted') }),
        candidate('node-c', { skipped: skip('circuit-open') }),
        candidate('node-s', { trust: 'untrusted', skipped: skip('untrusted') }),
      ]),
    );
    expect(error.message).toContain('node-b: untrusted');
    expect(error.message).toContain('node-p: untrusted');
    expect(error.message).not.toContain('node-s');
  });

  it('sends the operator to route from invoke, not from route itself', () => {
    const result = route([
      candidate('node-a', { local: true, skipped: skip('no-resource') }),
      candidate('node-b', { skipped: skip('circuit-open') }),
      candidate('node-c', { skipped: skip('circuit-open') }),
    ]);
    expect(noRouteError(result).hint).toMatch(/`sark-fed route echo`/);
    expect(noRouteError(result, 'route').hint).not.toMatch(/sark-fed route/);
    expect(noRouteError(result, 'route').hint).toMatch(/sark-fed circuit list/);
  });

  it('is "unavailable" with a trust hint when this node trusts no peer at all', () => {
    const error = noRouteError(
      route([
        candidate('node-a', { local: true, skipped: skip('no-resource') }),
        candidate('node-s', { trust: 'untrusted', skipped: skip('untrusted') }),
      ]),
    );
    expect(error).toMatchObject({ kind: 'unavailable', code: 'NO_ROUTE' });
    expect(error.hint).toMatch(/trust establish/);
  });
});
