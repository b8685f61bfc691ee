import { describe, expect, it } from 'vitest';
import {
  assertNodeId,
  assertTrustDomain,
  nodeIdOf,
  nodeSpiffeId,
  parseSpiffeId,
} from '../../src/core/identity/spiffe.js';

describe('parseSpiffeId', () => {
  it.each([
    ['spiffe://org-a.example/sark/node/node-a', 'org-a.example', '/sark/node/node-a'],
    ['spiffe://org-a.example', 'org-a.example', ''],
    ['spiffe://example_1.test/a/b.c/d-e/F_9', 'example_1.test', '/a/b.c/d-e/F_9'],
    ['spiffe://td/...', 'td', '/...'],
  ])('parses %s', (uri, trustDomain, path) => {
    expect(parseSpiffeId(uri)).toEqual({ trustDomain, path });
  });

  it.each([
    ['https://org-a.example/sark/node/a', 'scheme is not spiffe'],
    ['SPIFFE://org-a.example/x', 'scheme is not spiffe'],
    ['spiffe:/org-a.example/x', 'scheme is not spiffe'],
    ['spiffe://org-a.example:8443/x', 'invalid trust domain'],
    ['spiffe://user@org-a.example/x', 'invalid trust domain'],
    ['spiffe://Org-A.example/x', 'invalid trust domain'],
    ['spiffe:///sark/node/a', 'invalid trust domain'],
    ['spiffe://org-a.example/', 'empty path segment'],
    ['spiffe://org-a.example//node', 'empty path segment'],
    ['spiffe://org-a.example/sark/node/', 'empty path segment'],
    ['spiffe://org-a.example/sark/./node', 'dot path segment'],
    ['spiffe://org-a.example/sark/../node', 'dot path segment'],
    ['spiffe://org-a.example/sark/node/a?x=1', 'query or fragment present'],
    ['spiffe://org-a.example/sark/node/a#frag', 'query or fragment present'],
    ['spiffe://org-a.example/sark/nöde', 'invalid path character'],
    ['spiffe://org-a.example/sark/node%20a', 'invalid path character'],
    [`spiffe://org-a.example/${'a'.repeat(2040)}`, 'longer than 2048 bytes'],
  ])('refuses %s: %s', (uri, error) => {
    expect(parseSpiffeId(uri)).toEqual({ error });
  });
});

describe('node SPIFFE IDs', () => {
  it('round-trips a node ID through nodeSpiffeId, parseSpiffeId and nodeIdOf', () => {
    const uri = nodeSpiffeId('org-a.example', 'node-a');
    expect(uri).toBe('spiffe://org-a.example/sark/node/node-a');
    const parsed = parseSpiffeId(uri);
    if ('error' in parsed) throw new Error(parsed.error);
    expect(nodeIdOf(parsed)).toBe('node-a');
  });

  it.each(['/sark/nodes/node-a', '/sark/node/Node_A', '/sark/node/a/b', '/other'])(
    'nodeIdOf finds no node ID in %s',
    (path) => {
      expect(nodeIdOf({ trustDomain: 'org-a.example', path })).toBeUndefined();
    },
  );

  it.each(['node-a', 'a', '0', 'n.1-x', 'a'.repeat(63)])('accepts node ID %s', (id) => {
    expect(() => assertNodeId(id)).not.toThrow();
  });

  it.each(['', 'Node-a', '-a', '.a', 'a_b', 'a b', 'a'.repeat(64)])(
    'refuses node ID "%s" as a usage error',
    (id) => {
      expect(() => assertNodeId(id)).toThrow(expect.objectContaining({ code: 'BAD_NODE_ID' }));
    },
  );

  it.each(['org-a.example', 'localhost', 'a_b.c'])('accepts trust domain %s', (domain) => {
    expect(() => assertTrustDomain(domain)).not.toThrow();
  });

  it.each(['', 'Org.example', 'a..b', '.a', 'a:1', 'a/b'])(
    'refuses trust domain "%s"',
    (domain) => {
      expect(() => assertTrustDomain(domain)).toThrow(
        expect.objectContaining({ kind: 'usage', code: 'BAD_TRUST_DOMAIN' }),
      );
    },
  );
});
