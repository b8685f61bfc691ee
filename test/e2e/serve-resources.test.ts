import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyReceipt, type Receipt } from '../../src/core/audit/receipts.js';
import { PATHS } from '../../src/core/protocol/constants.js';
import { InvokeResponse, ResourcesResponse } from '../../src/core/protocol/schemas.js';
import { expectRefusal, expectSuccess, tempDir } from '../helpers/cli.js';
import {
  addAnchor,
  makeNode,
  nodeCopy,
  opensslFingerprint,
  startServe,
  stateRows,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { send, type Answer, type Credentials } from '../helpers/mtls-request.js';
import { createCa } from '../helpers/pki.js';

/**
 * `sark-fed serve --resources --policy` as operators run it (issue 5): real daemon processes,
 * trust set up with the CLI, invocations over mutual TLS with the caller's own certificate.
 * The many refusals and backends are covered in-process by test/integration/invoke-serving.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';

const RESOURCES_YAML = `# what node-b serves
resources:
  - id: echo
    description: returns its arguments
    capabilities:
      - id: echo
        backend: { type: echo }
  - id: inventory
    capabilities:
      - id: lookup
        backend:
          type: http
          method: POST
          url: http://127.0.0.1:9/lookup
          timeout: 5s
          idempotent: true
      - id: list
        backend: { type: http, method: GET, url: "http://127.0.0.1:9/items" }
`;

const POLICY_JSON = JSON.stringify({
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
    {
      effect: 'allow',
      nodes: ['node-b'],
      principals: ['*'],
      resources: ['*'],
      capabilities: ['*'],
    },
  ],
});

const RESOURCES_JSON = JSON.stringify({
  resources: [{ id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] }],
});

const POLICY_YAML = `rules:
  - effect: allow
    nodes: [node-b]
    principals: ["*"]
    resources: [echo]
    capabilities: ["*"]
`;

let dir: string;
let a: TestNode;
let b: TestNode;
let stranger: TestNode;
let daemonB: RunningServe;
const credentials = (node: TestNode): Credentials => ({
  certPem: readFileSync(node.certPath, 'utf8'),
  keyPem: readFileSync(node.keyPath, 'utf8'),
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function invoke(
  who: TestNode,
  port: number,
  call: { resource: string; capability: string; principal: string; args?: unknown },
  correlationId = randomUUID(),
): Promise<Answer> {
  return send(
    credentials(who),
    port,
    PATHS.invoke,
    {
      resource_id: call.resource,
      capability_id: call.capability,
      principal_id: call.principal,
      arguments: call.args ?? null,
    },
    { headers: { 'x-sark-correlation-id': correlationId } },
  );
}

function receiptOf(answer: Answer, status: number): InvokeResponse & { receipt: Receipt } {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  const body = InvokeResponse.parse(answer.body) as InvokeResponse & { receipt: Receipt };
  expect(verifyReceipt(body.receipt, readFileSync(b.certPath))).toBe(true);
  return body;
}

function auditRows(node: TestNode, correlationId: string): Array<Record<string, unknown>> {
  return (stateRows(node.state).audit_events as Array<Record<string, unknown>>).filter(
    (row) => row.correlation_id === correlationId,
  );
}

beforeAll(async () => {
  dir = tempDir('sark-fed-serve-resources-');
  const [caA, caB] = await Promise.all([
    createCa(join(dir, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(dir, 'ca-b'), ['--trust-domain', TD_B]),
  ]);
  [a, b, stranger] = await Promise.all([
    makeNode(dir, caA.dir, 'node-a', TD_A),
    makeNode(dir, caB.dir, 'node-b', TD_B),
    makeNode(dir, caA.dir, 'node-s', TD_A),
  ]);
  await Promise.all([addAnchor(a, caB.certPath), addAnchor(b, caA.certPath)]);
  daemonB = await startServe(b, [
    '--resources',
    file('resources.yaml', RESOURCES_YAML),
    '--policy',
    file('policy.json', POLICY_JSON),
  ]);
  expectSuccess(
    await a.cli([
      'trust',
      'establish',
      b.endpoint,
      '--fingerprint',
      opensslFingerprint(b.certPath),
    ]),
  );
}, 60_000);

describe('serve --resources --policy', () => {
  it('loads YAML resources and a JSON policy, and says what it serves', async () => {
    const line = await daemonB.waitForLog((entry) => entry.msg === 'serving resources');
    expect(line.resources).toEqual([
      { id: 'echo', capabilities: ['echo'] },
      { id: 'inventory', capabilities: ['lookup', 'list'] },
    ]);
    // node-b may use everything on itself: the CLI's `route` finds it in local_catalog.
    const local = stateRows(b.state).local_catalog as Array<{ resource_id: string }>;
    expect(local.map((row) => row.resource_id)).toEqual(['echo', 'inventory']);
  });

  it('invokes echo for a trusted peer: result, signed receipt, and the same correlation ID in the audit trail', async () => {
    const correlationId = randomUUID();
    const marker = `MARKER-${randomUUID()}`;
    const answer = await invoke(
      a,
      b.port,
      { resource: 'echo', capability: 'echo', principal: 'alice@org-a.example', args: { marker } },
      correlationId,
    );
    const body = receiptOf(answer, 200);
    expect(body).toMatchObject({
      correlation_id: correlationId,
      success: true,
      result: { marker },
    });
    expect(body.receipt).toMatchObject({
      source: 'spiffe://org-a.example/sark/node/node-a',
      target: 'spiffe://org-b.example/sark/node/node-b',
      outcome: 'success',
    });
    expect(verifyReceipt({ ...body.receipt, outcome: 'error' }, readFileSync(b.certPath))).toBe(
      false,
    );
    const rows = auditRows(b, correlationId);
    expect(rows).toEqual([
      expect.objectContaining({
        direction: 'inbound',
        source_node: 'node-a',
        target_node: 'node-b',
        principal: 'alice@org-a.example',
        outcome: 'success',
        status_code: 200,
      }),
    ]);
    expect(JSON.stringify(stateRows(b.state))).not.toContain(marker);
  });

  it('lists to node-a only what its rules allow', async () => {
    const answer = await send(credentials(a), b.port, PATHS.resources);
    expect(answer.status).toBe(200);
    expect(ResourcesResponse.parse(answer.body).resources.map((r) => r.id)).toEqual(['echo']);
  });

  it('denies what the policy refuses (403 POLICY_DENIED, deny winning), with a receipt and an audit row', async () => {
    const correlationId = randomUUID();
    const body = receiptOf(
      await invoke(
        a,
        b.port,
        { resource: 'echo', capability: 'echo', principal: 'mallory@org-a.example' },
        correlationId,
      ),
      403,
    );
    expect(body.error?.code).toBe('POLICY_DENIED');
    expect(body.receipt.outcome).toBe('denied');
    expect(auditRows(b, correlationId)).toEqual([
      expect.objectContaining({ outcome: 'denied', status_code: 403, error_code: 'POLICY_DENIED' }),
    ]);
  });

  it('refuses an untrusted node with 403 before anything else, recording nothing', async () => {
    const correlationId = randomUUID();
    const answer = await invoke(
      stranger,
      b.port,
      { resource: 'echo', capability: 'echo', principal: 'alice@org-a.example' },
      correlationId,
    );
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({
      error: { code: 'NOT_TRUSTED', message: expect.any(String), correlation_id: correlationId },
    });
    expect(auditRows(b, correlationId)).toEqual([]);
  });

  it('refuses a body over the default 1 MiB cap with 413', async () => {
    const answer = await invoke(a, b.port, {
      resource: 'echo',
      capability: 'echo',
      principal: 'alice@org-a.example',
      args: 'x'.repeat(1024 * 1024 + 1),
    });
    expect(receiptOf(answer, 413).error?.code).toBe('BODY_TOO_LARGE');
  });

  it('hints what the caller can act on when the peer refuses the arguments or its backend fails (exit 1)', async () => {
    // node-b calls itself: the CLI sees the peer's answers as any caller would.
    const refused = await b.cli([
      'invoke',
      'inventory',
      'list',
      '--node',
      'node-b',
      '--args',
      '[1]',
      '--retries',
      '0',
    ]);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(
      /^error: node-b answered 400 INVALID_ARGUMENTS: this capability calls its upstream with GET: /m,
    );
    expect(refused.stderr).toMatch(
      /^hint: change --args to what the capability takes, e\.g\. --args '\{"name":"value"\}'$/m,
    );
    const failed = await b.cli([
      'invoke',
      'inventory',
      'lookup',
      '--node',
      'node-b',
      '--retries',
      '0',
    ]);
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stderr).toMatch(/^error: node-b answered 502 BACKEND_ERROR: /m);
    expect(failed.stderr).toMatch(
      /^hint: the peer's operator can find why in its log, by the correlation ID$/m,
    );
  });

  it('takes rate limits from FEDERATION_RATE_LIMIT_*, answering 429 with Retry-After; JSON resources and a YAML policy load too', async (context) => {
    // node-b's daemon of the other tests runs: this one serves a copy of its state file.
    const limited = await startServe(
      nodeCopy(b),
      [
        '--listen',
        '127.0.0.1:0',
        '--resources',
        file('resources.json', RESOURCES_JSON),
        '--policy',
        file('policy.yaml', POLICY_YAML),
      ],
      { FEDERATION_RATE_LIMIT_PER_HOUR: '1', FEDERATION_RATE_LIMIT_BURST: '2' },
    );
    context.onTestFinished(async () => {
      await limited.stop();
    });
    const port = Number((await limited.waitForLog((entry) => entry.msg === 'listening')).port);
    // node-b calls its own daemon with its own certificate, as its CLI does.
    const call = () =>
      invoke(b, port, { resource: 'echo', capability: 'echo', principal: 'ops@org-b.example' });
    receiptOf(await call(), 200);
    receiptOf(await call(), 200);
    const refused = await call();
    expect(receiptOf(refused, 429).error?.code).toBe('RATE_LIMITED');
    expect(refused.headers['retry-after']).toBe('3600');
  });
});

describe.concurrent('serve: announcement options without the announcement', () => {
  it.each([
    [
      ['--consul-url', 'http://127.0.0.1:8500'],
      /--consul-url only says where to register/,
      /--announce consul/,
    ],
    [['--interface', '127.0.0.1'], /--interface only says where to announce/, /--announce mdns/],
    [
      ['--announce', 'consul', '--interface', '127.0.0.1'],
      /--interface only says where to announce/,
      /--announce mdns/,
    ],
  ])('%j: exit 2 with a hint, nothing served', async (flags, message, hint) => {
    const result = await b.cli(['serve', '--listen', '127.0.0.1:0', ...flags]);
    expect(result.code, result.stderr).toBe(2);
    const [error, hintLine] = result.stderr.trim().split('\n');
    expect(error).toMatch(message);
    expect(hintLine).toMatch(hint);
    expect(result.stderr).not.toMatch(/"msg":"listening"/);
  });
});

describe.concurrent('serve: bad files', () => {
  const SEE_RESOURCES = /^see docs\/resources\.md#the-resources-file$/;
  const SEE_POLICY = /^see docs\/resources\.md#the-policy-file$/;
  it.each([
    [
      '--resources',
      'bad.yaml',
      'resources: [\n',
      /resources file .*bad\.yaml is not valid YAML: .* at line 2, column 1$/,
      /^a file not named \*\.json is read as YAML/,
    ],
    [
      '--resources',
      'bad.json',
      '{"resources": [',
      /resources file .*bad\.json is not valid JSON: Unexpected end of JSON input$/,
      /^a file named \*\.json is read as JSON/,
    ],
    [
      '--resources',
      'wrong.yaml',
      'resources:\n  - id: r\n    capabilities:\n      - id: c\n        backend: { type: http, url: "ftp://x" }\n',
      /invalid resources file .*wrong\.yaml: resources\[0\]\.capabilities\[0\]\.backend\.url: expected an http/,
      SEE_RESOURCES,
    ],
    [
      '--resources',
      'misspelt.yaml',
      'resources:\n  - id: r\n    capabilites:\n      - { id: c, backend: { type: echo } }\n',
      /invalid resources file .*misspelt\.yaml: resources\[0\]: unknown key "capabilites" \(did you mean "capabilities"\?\)$/,
      /^the keys of resources\[0\] are id, description, capabilities; see docs\/resources\.md/,
    ],
    [
      '--resources',
      'folder',
      'folder',
      /cannot read the resources file .*folder \(EISDIR\)$/,
      /^give the path of the resources file, not of a folder$/,
    ],
    [
      '--policy',
      'wrong-policy.json',
      '{"rules":[{"effect":"allow","nodes":["*"]}]}',
      /invalid policy file .*wrong-policy\.json: rules\[0\]\.principals: missing \(expected array\)$/,
      SEE_POLICY,
    ],
    [
      '--policy',
      'misspelt-policy.yaml',
      'rules:\n  - { effect: allow, node: [node-a], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /invalid policy file .*misspelt-policy\.yaml: rules\[0\]: unknown key "node" \(did you mean "nodes"\?\)$/,
      /^the keys of rules\[0\] are effect, description, nodes, principals, resources, capabilities; see docs\/resources\.md#the-policy-file$/,
    ],
    [
      '--resources',
      'empty.yaml',
      '',
      /invalid resources file .*empty\.yaml: it is empty$/,
      /^a resources file is a mapping with the key "resources"; see docs\/resources\.md#the-resources-file$/,
    ],
    [
      '--policy',
      'list-policy.yaml',
      '- effect: allow\n',
      /invalid policy file .*list-policy\.yaml: expected a mapping of keys, found a list$/,
      /^a policy file is a mapping with the keys "rules", "rate_limits"; see docs\/resources\.md#the-policy-file$/,
    ],
    [
      '--policy',
      'bad-effect.yaml',
      'rules:\n  - { effect: alow, nodes: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /invalid policy file .*bad-effect\.yaml: rules\[0\]\.effect: expected "allow" or "deny", found "alow" \(did you mean "allow"\?\)$/,
      SEE_POLICY,
    ],
    [
      '--policy',
      'not-a-list.yaml',
      'rules:\n  - { effect: allow, nodes: node-a, principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      /invalid policy file .*not-a-list\.yaml: rules\[0\]\.nodes: expected a list, found "node-a"$/,
      SEE_POLICY,
    ],
    [
      '--policy',
      'missing.yaml',
      null,
      /cannot read the policy file .*missing\.yaml \(ENOENT\)$/,
      /^check the path: no such file$/,
    ],
  ])(
    '%s %s: exit 2, one line naming the file and the place, and a hint',
    async (flag, name, text, message, hint) => {
      const path = join(dir, name);
      if (text === 'folder') mkdirSync(path);
      else if (text !== null) file(name, text);
      const result = await b.cli(['serve', '--listen', '127.0.0.1:0', flag, path]);
      expectRefusal(result, 2, { message, hint });

      // --json: the same hint, not null.
      const json = await b.cli(['--json', 'serve', '--listen', '127.0.0.1:0', flag, path]);
      expect(json.code, json.stderr).toBe(2);
      const { error } = JSON.parse(json.stderr) as { error: { message: string; hint: string } };
      expect(error.message).toMatch(message);
      expect(error.hint).toMatch(hint);
    },
  );
});

describe('serve: the warning when nothing may be invoked', () => {
  it.each([
    [
      'without --policy',
      null,
      'no policy given: every invocation will be denied',
      /^pass serve --policy <file> with allow rules/,
    ],
    [
      'with a policy of no rules',
      '{"rules": []}',
      'the policy has no allow rule: every invocation will be denied',
      /^add an allow rule to the policy file and save it: serve re-reads it/,
    ],
    [
      'with a policy of deny rules only',
      'rules:\n  - { effect: deny, nodes: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      'the policy has no allow rule: every invocation will be denied',
      /^add an allow rule to the policy file/,
    ],
  ])('%s: says which', async (name, policy, msg, hint) => {
    const policyPath =
      policy === null ? undefined : file(`nothing-${name.replaceAll(' ', '-')}.yaml`, policy);
    // node-s's own state: node-b's daemon serves the other tests meanwhile.
    const daemon = await startServe(stranger, [
      '--listen',
      '127.0.0.1:0',
      '--resources',
      file('resources-nothing.json', RESOURCES_JSON),
      ...(policyPath === undefined ? [] : ['--policy', policyPath]),
    ]);
    try {
      const warning = await daemon.waitForLog((entry) => entry.level === 'warn');
      expect(warning).toMatchObject({ msg, hint: expect.stringMatching(hint) });
      if (policyPath !== undefined) expect(warning.policy).toBe(policyPath);
      expect(daemon.logs.filter((entry) => entry.level === 'warn')).toHaveLength(1);
    } finally {
      await daemon.stop();
    }
  });

  it('names the resources and capabilities a policy names but the node does not serve, with a "did you mean"; globs that match something are fine', async () => {
    const policyPath = file(
      'policy-typos.yaml',
      [
        'rules:',
        '  - { effect: allow, nodes: [node-a], principals: ["*"], resources: [ehco, "ech*"], capabilities: ["*"] }',
        '  - { effect: allow, nodes: [node-a], principals: ["*"], resources: [echo], capabilities: [ecoh, "*"] }',
        '  - { effect: deny, nodes: ["*"], principals: ["*"], resources: ["inv-*"], capabilities: ["*"] }',
        '',
      ].join('\n'),
    );
    const daemon = await startServe(stranger, [
      '--listen',
      '127.0.0.1:0',
      '--resources',
      file('resources-typos.json', RESOURCES_JSON),
      '--policy',
      policyPath,
    ]);
    try {
      const warning = await daemon.waitForLog((entry) => entry.level === 'warn');
      expect(warning).toMatchObject({
        msg: 'the policy names resources or capabilities this node does not serve',
        policy: policyPath,
        unknown: [
          { at: 'rules[0].resources[0]', id: 'ehco', did_you_mean: 'echo' },
          { at: 'rules[1].capabilities[0]', id: 'ecoh', did_you_mean: 'echo' },
          { at: 'rules[2].resources[0]', id: 'inv-*', did_you_mean: null },
        ],
        hint: expect.stringMatching(
          /^did you mean "echo" for "ehco", "echo" for "ecoh"\? rules never match through those IDs: .*docs\/resources\.md#the-policy-file\)$/,
        ),
      });
      // It warns once, and serves all the same.
      await daemon.waitForLog((entry) => entry.msg === 'serving resources');
      expect(daemon.logs.filter((entry) => entry.level === 'warn')).toHaveLength(1);
    } finally {
      await daemon.stop();
    }
  });
});

describe('serve: re-reads --resources and --policy when they change', () => {
  it('takes a saved policy and resources file without a restart, keeps serving the previous one when a file does not load, and says so in its log and metrics', async () => {
    const resourcesPath = file('reload-resources.json', RESOURCES_JSON);
    const policyPath = file('reload-policy.yaml', '{"rules": []}');
    // node-s calls its own daemon with its own certificate (a node always trusts itself).
    const daemon = await startServe(stranger, [
      '--listen',
      '127.0.0.1:0',
      '--resources',
      resourcesPath,
      '--policy',
      policyPath,
      '--metrics',
      '127.0.0.1:0',
    ]);
    try {
      const port = Number((await daemon.waitForLog((entry) => entry.msg === 'listening')).port);
      const metricsPort = Number(
        (await daemon.waitForLog((entry) => entry.msg === 'metrics listening')).port,
      );
      const call = (resource: string) =>
        invoke(stranger, port, { resource, capability: 'echo', principal: 'ops@org-a.example' });
      const reloadGauge = async (kind: string) => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const line = text
          .split('\n')
          .find((l) => l.startsWith(`federation_config_last_reload_successful{file="${kind}"}`));
        return line?.split(' ').at(-1);
      };
      const logsNow = () => daemon.logs.length;
      const nextLog = (after: number, match: (entry: Record<string, unknown>) => boolean) =>
        daemon.waitForLog((entry) => daemon.logs.indexOf(entry) >= after && match(entry), 8_000);

      expect((await call('echo')).status).toBe(403);
      expect(await reloadGauge('policy')).toBe('1');

      // The operator lets node-s in and saves the file: taken within a couple of seconds.
      let mark = logsNow();
      writeFileSync(
        policyPath,
        'rules:\n  - { effect: allow, nodes: [node-s], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
      );
      expect(await nextLog(mark, (entry) => entry.msg === 'reloaded')).toMatchObject({
        files: [policyPath],
      });
      expect((await call('echo')).status).toBe(200);

      // A typo: refused with the loader's own words and hint, the previous policy still serves.
      mark = logsNow();
      writeFileSync(policyPath, 'rules:\n  - { efect: allow }\n');
      const refused = await nextLog(mark, (entry) => entry.level === 'error');
      expect(refused).toMatchObject({
        msg: 'policy file not reloaded: still serving the previous one',
        file: policyPath,
        error: expect.stringMatching(/^invalid policy file /),
        hint: expect.any(String),
      });
      expect((await call('echo')).status).toBe(200);
      expect(await reloadGauge('policy')).toBe('0');

      // A new resource, saved the way editors do (a new file renamed over the old one): served,
      // and offered to this node's own `route` through the state file.
      mark = logsNow();
      const twoResources = {
        resources: [
          { id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] },
          { id: 'echo-2', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] },
        ],
      };
      writeFileSync(`${resourcesPath}.tmp`, JSON.stringify(twoResources));
      renameSync(`${resourcesPath}.tmp`, resourcesPath);
      expect(await nextLog(mark, (entry) => entry.msg === 'reloaded')).toMatchObject({
        files: [resourcesPath],
      });
      const answer = await call('echo-2');
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(
        (stateRows(stranger.state).local_catalog as Array<{ resource_id: string }>).map(
          (row) => row.resource_id,
        ),
      ).toEqual(['echo', 'echo-2']);

      // Gone: said once, and nothing changes.
      mark = logsNow();
      rmSync(resourcesPath);
      expect(await nextLog(mark, (entry) => entry.level === 'error')).toMatchObject({
        msg: 'resources file not reloaded: still serving the previous one',
        file: resourcesPath,
        error: expect.stringMatching(/ENOENT/),
      });
      expect((await call('echo-2')).status).toBe(200);
      expect(await reloadGauge('resources')).toBe('0');
      expect(daemon.logs.filter((entry) => entry.level === 'error')).toHaveLength(2);
    } finally {
      await daemon.stop();
    }
  });
});

describe('serve --check', () => {
  const typoPolicy =
    'rules:\n  - { effect: allow, nodes: [node-a], principals: ["*"], resources: [ehco], capabilities: ["*"] }\n  - { effect: deny, nodes: ["*"], principals: ["mallory@*"], resources: ["*"], capabilities: ["*"] }\nrate_limits:\n  - { nodes: ["*"], rate_limit_per_hour: 60 }\n';

  it('prints what would be served and the warnings, and exits 0 without listening or writing', async () => {
    const resourcesPath = file('check-resources.yaml', RESOURCES_YAML);
    const policyPath = file('check-policy.yaml', typoPolicy);
    const before = stateRows(stranger.state);
    // node-s's init endpoint is a real free port: nothing may be bound there.
    const result = await stranger.cli([
      'serve',
      '--resources',
      resourcesPath,
      '--policy',
      policyPath,
      '--check',
    ]);
    expectSuccess(result);
    expect(result.stdout.split('\n')).toEqual([
      'node\tnode-s',
      expect.stringMatching(/^certificate\tvalid until \S+ \(\d+ days left\)$/),
      `resources\t${resourcesPath}: echo (echo), inventory (lookup, list)`,
      `policy\t${policyPath}: 1 allow rule, 1 deny rule, 1 rate limit`,
      '',
    ]);
    expect(result.stderr.split('\n')).toEqual([
      'warning: the policy names resources or capabilities this node does not serve',
      expect.stringMatching(/^hint: did you mean "echo" for "ehco"\? rules never match/),
      '✓ serve would start with these files (1 warning)',
      '',
    ]);
    expect(stateRows(stranger.state)).toEqual(before);

    const json = await stranger.cli([
      '--json',
      'serve',
      '--resources',
      resourcesPath,
      '--policy',
      policyPath,
      '--check',
    ]);
    expectSuccess(json);
    expect(JSON.parse(json.stdout)).toEqual({
      ok: true,
      nodeId: 'node-s',
      notAfter: expect.any(String),
      expiresInDays: expect.any(Number),
      resources: {
        file: resourcesPath,
        served: [
          { id: 'echo', capabilities: ['echo'] },
          { id: 'inventory', capabilities: ['lookup', 'list'] },
        ],
      },
      policy: { file: policyPath, allowRules: 1, denyRules: 1, rateLimits: 1 },
      warnings: [
        {
          code: 'POLICY_UNKNOWN_IDS',
          message: 'the policy names resources or capabilities this node does not serve',
          hint: expect.stringMatching(/^did you mean "echo" for "ehco"\?/),
          unknown: [{ at: 'rules[0].resources[0]', id: 'ehco', didYouMean: 'echo' }],
        },
      ],
    });
    expect(json.stderr).toBe('');
  });

  it('says when nothing would be invoked, and runs beside the daemon serving the same state file', async () => {
    const result = await b.cli([
      'serve',
      '--resources',
      file('check-only.json', RESOURCES_JSON),
      '--check',
    ]);
    expectSuccess(result);
    expect(result.stdout).toContain('policy\tnone (no --policy: every invocation denied)');
    expect(result.stderr).toMatch(
      /^warning: no policy given: every invocation will be denied\nhint: pass serve --policy/,
    );
  });

  it('refuses a bad file as serve does: exit 2, one error line and a hint', async () => {
    const result = await stranger.cli([
      'serve',
      '--policy',
      file('check-bad.yaml', 'rules:\n  - { efect: allow }\n'),
      '--check',
    ]);
    expectRefusal(result, 2, {
      message: /^invalid policy file .*check-bad\.yaml: rules\[0\]: unknown key "efect"/,
      hint: /^the keys of rules\[0\] are /,
    });
  });
});
