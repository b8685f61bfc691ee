import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSarkError } from '../../../src/core/errors.js';
import { Policy, globMatcher, loadPolicyFile, type PolicyFile } from '../../../src/node/policy.js';
import { tempDir } from '../../helpers/cli.js';

const nodeA = { nodeId: 'node-a', spiffeId: 'spiffe://org-a.example/sark/node/node-a' };
const nodeB = { nodeId: 'node-b', spiffeId: 'spiffe://org-b.example/sark/node/node-b' };

function call(
  node: { nodeId: string; spiffeId: string },
  principal: string,
  resource = 'echo',
  capability = 'echo',
) {
  return { ...node, principal, resource, capability };
}

type Rule = PolicyFile['rules'][number];

function rule(effect: 'allow' | 'deny', fields: Partial<Omit<Rule, 'effect'>> = {}): Rule {
  return {
    effect,
    nodes: ['*'],
    principals: ['*'],
    resources: ['*'],
    capabilities: ['*'],
    ...fields,
  };
}

describe('globMatcher', () => {
  it.each([
    ['*', '', true],
    ['*', 'anything@at.all', true],
    ['alice@org-a.example', 'alice@org-a.example', true],
    ['alice@org-a.example', 'Alice@org-a.example', false],
    ['alice@org-a.example', 'alice@org-a.example.evil', false],
    ['*@org-a.example', 'alice@org-a.example', true],
    ['*@org-a.example', '@org-a.example', true],
    ['*@org-a.example', 'alice@org-a.example.evil', false],
    ['*@org-a.example', 'alice@org-aXexample', false],
    ['mallory@*', 'mallory@org-b.example', true],
    ['mallory@*', 'mallory', false],
    ['mallory@*', 'xmallory@org-b.example', false],
    ['inventory-*', 'inventory-eu', true],
    ['inventory-*', 'inventory', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'a-x-b-y-c', true],
    ['a*b*c', 'a-x-c-y-b', false],
    ['node.a', 'nodeXa', false],
    ['(x)+', '(x)+', true],
    ['*', 'line\nbreak', true],
  ])('%j matches %j: %s', (pattern, value, expected) => {
    expect(globMatcher(pattern)(value)).toBe(expected);
  });
});

describe('Policy.decide', () => {
  it('denies everything without rules (deny by default)', () => {
    const policy = new Policy();
    expect(policy.allowsNothing).toBe(true);
    expect(policy.decide(call(nodeA, 'alice@org-a.example'))).toEqual({
      allowed: false,
      rule: null,
      reason: 'no-allow-rule',
    });
  });

  it('allows only what an allow rule matches on all four of node, principal, resource and capability', () => {
    const policy = new Policy({
      rules: [
        rule('allow', {
          nodes: ['node-a'],
          principals: ['*@org-a.example'],
          resources: ['echo'],
          capabilities: ['echo'],
        }),
      ],
    });
    expect(policy.decide(call(nodeA, 'alice@org-a.example')).allowed).toBe(true);
    expect(policy.decide(call(nodeB, 'alice@org-a.example')).allowed).toBe(false);
    expect(policy.decide(call(nodeA, 'bob@org-b.example')).allowed).toBe(false);
    expect(policy.decide(call(nodeA, 'alice@org-a.example', 'inventory')).allowed).toBe(false);
    expect(policy.decide(call(nodeA, 'alice@org-a.example', 'echo', 'shout')).allowed).toBe(false);
  });

  it('lets a deny rule win over an allow rule for the same call, whichever comes first', () => {
    const allow = rule('allow', { nodes: ['node-a'], principals: ['*@org-a.example'] });
    const deny = rule('deny', { principals: ['mallory@*'] });
    for (const rules of [
      [allow, deny],
      [deny, allow],
    ]) {
      const policy = new Policy({ rules });
      expect(policy.decide(call(nodeA, 'alice@org-a.example'))).toMatchObject({ allowed: true });
      expect(policy.decide(call(nodeA, 'mallory@org-a.example'))).toEqual({
        allowed: false,
        rule: rules.indexOf(deny),
        reason: 'deny-rule',
      });
    }
  });

  it('reports the first allow rule that matched', () => {
    const policy = new Policy({
      rules: [rule('allow', { resources: ['other'] }), rule('allow'), rule('allow')],
    });
    expect(policy.decide(call(nodeA, 'p'))).toEqual({ allowed: true, rule: 1 });
  });

  it('matches a spiffe:// node pattern against the SPIFFE ID, any other against the node ID', () => {
    const policy = new Policy({
      rules: [rule('allow', { nodes: ['spiffe://org-b.example/*'] })],
    });
    expect(policy.decide(call(nodeB, 'p')).allowed).toBe(true);
    expect(policy.decide(call(nodeA, 'p')).allowed).toBe(false);
    // A node ID that looks like the pattern does not match it: only the SPIFFE ID is read.
    const byId = new Policy({ rules: [rule('allow', { nodes: ['org-b*'] })] });
    expect(byId.decide(call(nodeB, 'p')).allowed).toBe(false);
  });

  it('matches any of several patterns in one field', () => {
    const policy = new Policy({
      rules: [rule('allow', { nodes: ['node-x', 'node-b'], capabilities: ['read', 'list-*'] })],
    });
    expect(policy.decide(call(nodeB, 'p', 'r', 'list-all')).allowed).toBe(true);
    expect(policy.decide(call(nodeB, 'p', 'r', 'read')).allowed).toBe(true);
    expect(policy.decide(call(nodeB, 'p', 'r', 'write')).allowed).toBe(false);
  });
});

describe('Policy.mayList', () => {
  const policy = new Policy({
    rules: [
      rule('allow', {
        nodes: ['node-a'],
        principals: ['*@org-a.example'],
        resources: ['echo', 'inventory'],
      }),
      rule('deny', { principals: ['mallory@*'] }),
      rule('deny', { resources: ['inventory'], capabilities: ['delete'] }),
      rule('allow', { nodes: ['node-b'], principals: ['bob@org-b.example'], resources: ['echo'] }),
    ],
  });

  it('shows what some allow rule admits the node to, whichever principal it names', () => {
    expect(policy.mayList(nodeA, 'echo', 'echo')).toBe(true);
    expect(policy.mayList(nodeA, 'inventory', 'lookup')).toBe(true);
    expect(policy.mayList(nodeB, 'echo', 'echo')).toBe(true);
  });

  it('hides what no allow rule admits the node to', () => {
    expect(policy.mayList(nodeB, 'inventory', 'lookup')).toBe(false);
    expect(policy.mayList(nodeA, 'secret', 'read')).toBe(false);
  });

  it('hides what a deny rule refuses to every principal, but not what it refuses to some', () => {
    expect(policy.mayList(nodeA, 'inventory', 'delete')).toBe(false);
    // mallory@* is denied everywhere, yet node-a's other principals may still use echo.
    expect(policy.mayList(nodeA, 'echo', 'echo')).toBe(true);
  });
});

describe('Policy.unmatchedPatterns', () => {
  const served = [
    { id: 'echo', capabilities: [{ id: 'echo' }] },
    { id: 'inventory', capabilities: [{ id: 'lookup' }, { id: 'list' }] },
  ];

  it('names resource patterns that match no served resource, guessing the ID meant', () => {
    const policy = new Policy({
      rules: [rule('allow', { resources: ['ehco', 'inventroy', 'inv*', 'inventory-*', 'zzz'] })],
    });
    expect(policy.unmatchedPatterns(served)).toEqual([
      { at: 'rules[0].resources[0]', pattern: 'ehco', didYouMean: 'echo' },
      { at: 'rules[0].resources[1]', pattern: 'inventroy', didYouMean: 'inventory' },
      // A glob that matches nothing is named, but never "corrected".
      { at: 'rules[0].resources[3]', pattern: 'inventory-*', didYouMean: null },
      { at: 'rules[0].resources[4]', pattern: 'zzz', didYouMean: null },
    ]);
  });

  it('checks capability patterns against the resources their rule matches, and only when it matches some', () => {
    const policy = new Policy({
      rules: [
        // lookup is a capability of inventory, not of echo.
        rule('allow', { resources: ['echo'], capabilities: ['lookup', 'ech'] }),
        rule('deny', { resources: ['*'], capabilities: ['list', 'lst*', '*'] }),
        rule('allow', { resources: ['nothing'], capabilities: ['anything'] }),
      ],
    });
    expect(policy.unmatchedPatterns(served)).toEqual([
      { at: 'rules[0].capabilities[0]', pattern: 'lookup', didYouMean: null },
      { at: 'rules[0].capabilities[1]', pattern: 'ech', didYouMean: 'echo' },
      { at: 'rules[1].capabilities[1]', pattern: 'lst*', didYouMean: null },
      { at: 'rules[2].resources[0]', pattern: 'nothing', didYouMean: null },
    ]);
  });

  it('is empty for a policy of globs and served IDs', () => {
    expect(new Policy({ rules: [rule('allow'), rule('deny')] }).unmatchedPatterns(served)).toEqual(
      [],
    );
  });
});

describe('Policy.rateLimitFor', () => {
  it('gives the first matching entry, or nothing', () => {
    const policy = new Policy({
      rules: [],
      rate_limits: [
        { nodes: ['node-a'], rate_limit_per_hour: 10, burst: 2 },
        { nodes: ['spiffe://org-b.example/*'], rate_limit_per_hour: 20 },
        { nodes: ['*'], rate_limit_per_hour: 30, burst: 3 },
      ],
    });
    expect(policy.rateLimitFor(nodeA)).toEqual({ perHour: 10, burst: 2 });
    expect(policy.rateLimitFor(nodeB)).toEqual({ perHour: 20 });
    expect(new Policy().rateLimitFor(nodeA)).toBeUndefined();
  });
});

describe('loadPolicyFile', () => {
  const dir = tempDir('sark-fed-policy-');
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('reads the JSON of DESIGN §5', async () => {
    const path = write(
      'policy.json',
      JSON.stringify({
        rules: [
          {
            effect: 'allow',
            nodes: ['node-a'],
            principals: ['*@org-a.example'],
            resources: ['echo'],
            capabilities: ['*'],
          },
          {
            effect: 'deny',
            nodes: ['*'],
            principals: ['mallory@*'],
            resources: ['*'],
            capabilities: ['*'],
          },
        ],
      }),
    );
    const policy = await loadPolicyFile(path);
    expect(policy.decide(call(nodeA, 'alice@org-a.example')).allowed).toBe(true);
    expect(policy.decide(call(nodeA, 'mallory@org-a.example')).allowed).toBe(false);
  });

  it('reads the same policy in YAML', async () => {
    const path = write(
      'policy.yaml',
      [
        'rules:',
        '  - effect: allow',
        '    description: org A people from node-a',
        '    nodes: [node-a]',
        '    principals: ["*@org-a.example"]',
        '    resources: [echo]',
        '    capabilities: ["*"]',
        'rate_limits:',
        '  - nodes: [node-a]',
        '    rate_limit_per_hour: 600',
        '    burst: 20',
        '',
      ].join('\n'),
    );
    const policy = await loadPolicyFile(path);
    expect(policy.decide(call(nodeA, 'alice@org-a.example')).allowed).toBe(true);
    expect(policy.rateLimitFor(nodeA)).toEqual({ perHour: 600, burst: 20 });
  });

  it.each([
    [
      'a rule without principals',
      'rules:\n  - { effect: allow, nodes: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /rules\[0\]\.principals/,
    ],
    [
      'an unknown effect',
      'rules:\n  - { effect: maybe, nodes: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /rules\[0\]\.effect/,
    ],
    [
      'an empty pattern list',
      'rules:\n  - { effect: allow, nodes: [], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /rules\[0\]\.nodes: list at least one pattern/,
    ],
    [
      'a key misspelt as another one it has too',
      'rules:\n  - { effect: allow, node: ["*"], nodes: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /rules\[0\]: unknown key "node"$/,
    ],
    // The review's case: "nodes" is then missing too, and zod reports that first.
    [
      'a misspelt key, the key it meant missing',
      'rules:\n  - { effect: allow, node: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /rules\[0\]: unknown key "node" \(did you mean "nodes"\?\)$/,
    ],
    [
      'a misspelt top-level key',
      'rule: []\n',
      /policy file \S+: unknown key "rule" \(did you mean "rules"\?\)$/,
    ],
    [
      'a misspelt optional key',
      'rules: []\nrate_limits:\n  - { nodes: [a], rate_limit_per_hour: 5, brust: 2 }\n',
      /rate_limits\[0\]: unknown key "brust" \(did you mean "burst"\?\)$/,
    ],
    ['an unknown key like no known one', 'rules: []\ncomment: hello\n', /: unknown key "comment"$/],
    ['YAML that does not parse', 'rules: [\n', /is not valid YAML/],
  ])('refuses %s with the file and the place in it (usage error)', async (_name, text, message) => {
    const path = write(`bad-${Math.random().toString(36).slice(2)}.yaml`, text);
    const error = await loadPolicyFile(path).catch((caught: unknown) => caught);
    expect(isSarkError(error) && error.kind).toBe('usage');
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
    expect(isSarkError(error) && error.hint).toMatch(/\S/);
  });

  it('says a required key is missing, and hints at the keys a place takes', async () => {
    const missing = await loadPolicyFile(
      write(
        'missing.yaml',
        'rules:\n  - { effect: allow, nodes: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      ),
    ).catch((caught: unknown) => caught);
    expect((missing as Error).message).toMatch(
      /rules\[0\]\.principals: missing \(expected array\)$/,
    );
    expect(isSarkError(missing) && missing.hint).toBe('see docs/resources.md#the-policy-file');

    const misspelt = await loadPolicyFile(
      write(
        'misspelt.yaml',
        'rules:\n  - { effect: allow, node: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      ),
    ).catch((caught: unknown) => caught);
    expect(isSarkError(misspelt) && misspelt.hint).toBe(
      'the keys of rules[0] are effect, description, nodes, principals, resources, capabilities; ' +
        'see docs/resources.md#the-policy-file',
    );
  });

  it('remembers the file it was read from, for the daemon to name', async () => {
    const path = write('source.yaml', 'rules: []\n');
    expect((await loadPolicyFile(path)).source).toBe(path);
    expect(new Policy().source).toBeUndefined();
  });

  it('refuses JSON that does not parse, and a missing file, each with a hint', async () => {
    const bad = write('bad.json', '{"rules": [}');
    await expect(loadPolicyFile(bad)).rejects.toThrow(/bad\.json is not valid JSON/);
    await expect(loadPolicyFile(bad)).rejects.toMatchObject({
      hint: expect.stringMatching(/JSON/),
    });
    await expect(loadPolicyFile(join(dir, 'nope.yaml'))).rejects.toThrow(
      /cannot read the policy file .*nope\.yaml \(ENOENT\)/,
    );
    await expect(loadPolicyFile(join(dir, 'nope.yaml'))).rejects.toMatchObject({
      hint: 'check the path: no such file',
    });
  });
});
