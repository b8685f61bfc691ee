import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/core/audit/events.js';
import { openState } from '../../src/core/state/database.js';
import { inboundEvent } from '../helpers/audit-events.js';
import { expectRefusal, expectSuccess, runCli, tempDir } from '../helpers/cli.js';
import type { TestNode } from '../helpers/federation.js';
import {
  copyState,
  invoke,
  runOnTerminal,
  setUpFederation,
  type AuditFederation,
} from './audit-setup.js';

/**
 * `audit query` and `audit trace` end to end: real calls from node-a to node-b's daemon make the
 * events, and the CLI reads them back from both nodes' state files, locally and (--federated)
 * through the peers' daemons.
 */

const SLOW_TEST_MS = 60_000;

interface EventJson {
  origin: string | null;
  seq: number;
  eventId: string;
  correlationId: string;
  time: string;
  direction: string;
  sourceNode: string;
  targetNode: string;
  principal: string;
  resource: string;
  capability: string;
  outcome: string;
  statusCode: number | null;
  errorCode: string | null;
  durationUs: number;
  requestSha256: string | null;
  requestSize: number | null;
  resultSha256: string | null;
  resultSize: number | null;
  receipt: Record<string, unknown> | null;
  prevHash: string;
  hash: string;
}

interface QueryJson {
  federated: boolean;
  limit: number;
  count: number;
  total: number | null;
  truncated: boolean;
  events: EventJson[];
  problems: Array<{ nodeId: string; code: string; message: string }>;
}

interface ReceiptJson {
  status: string;
  signer: string | null;
  reason: string | null;
}

interface TraceJson {
  correlationId: string;
  startedAt: string;
  spanUs: number;
  nodes: string[];
  federated: boolean;
  problems: unknown[];
  hops: Array<{
    index: number;
    parent: number | null;
    depth: number;
    sourceNode: string;
    targetNode: string;
    principal: string;
    resource: string;
    capability: string;
    outcome: string;
    statusCode: number | null;
    errorCode: string | null;
    startUs: number;
    durationUs: number;
    receipt: ReceiptJson;
    events: Array<{
      origin: string;
      seq: number;
      eventId: string;
      direction: string;
      time: string;
      startUs: number;
      durationUs: number;
      outcome: string;
      statusCode: number | null;
      errorCode: string | null;
      receipt: ReceiptJson;
    }>;
  }>;
}

let fed: AuditFederation;
let a: TestNode;
let b: TestNode;
/** The calls made, oldest first. */
const calls = {
  success: randomUUID(),
  denied: '',
  error: '',
  second: '',
};

async function queryJson(node: TestNode, args: string[]): Promise<QueryJson> {
  const result = await node.cli(['audit', 'query', ...args, '--json']);
  expectSuccess(result);
  return JSON.parse(result.stdout) as QueryJson;
}

beforeAll(async () => {
  fed = await setUpFederation({ withDaemonOnA: true });
  ({ a, b } = fed);
  const success = await invoke(a, 'echo', 'echo', [
    '--args',
    '{"sku":42}',
    '--principal',
    'alice@org-a.example',
    '--correlation-id',
    calls.success,
  ]);
  expectSuccess(success.result);
  const denied = await invoke(a, 'echo', 'echo', ['--principal', 'mallory@org-a.example']);
  expect(denied.result.code).toBe(6);
  calls.denied = denied.correlationId;
  const error = await invoke(a, 'broken', 'call', ['--principal', 'alice@org-a.example']);
  expect(error.result.code).toBe(1);
  calls.error = error.correlationId;
  const second = await invoke(a, 'echo', 'echo', ['--principal', 'bob@org-a.example']);
  expectSuccess(second.result);
  calls.second = second.correlationId;
}, SLOW_TEST_MS);

describe('audit query', () => {
  it('prints one tab-separated row per event in a pipe, newest first, raw values', async () => {
    const result = await a.cli(['audit', 'query']);
    expectSuccess(result);
    expect(result.stderr).toBe('');
    const rows = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => line.split('\t'));
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      expect(row).toHaveLength(10);
      expect(row[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(row[2]).toBe('outbound');
      // Source and target in fields of their own, no arrow; the duration in bare µs.
      expect(row.slice(3, 5)).toEqual(['node-a', 'node-b']);
      expect(row[8]).toMatch(/^\d+$/);
    }
    expect(rows.map((row) => row[1])).toEqual([
      calls.second,
      calls.error,
      calls.denied,
      calls.success,
    ]);
    expect(rows.map((row) => row[7])).toEqual(['success', 'error', 'denied', 'success']);
    // Why each failed, last: `-` for none.
    expect(rows.map((row) => row[9])).toEqual(['-', 'BACKEND_ERROR', 'POLICY_DENIED', '-']);
    expect(rows[3]?.slice(5, 7)).toEqual(['alice@org-a.example', 'echo/echo']);
    expect(rows[1]?.[6]).toBe('broken/call');
    // The same µs as --json's durationUs (and `audit trace`'s pipe rows).
    const json = await queryJson(a, []);
    expect(rows.map((row) => Number(row[8]))).toEqual(json.events.map((event) => event.durationUs));
  });

  it('prints the events as one JSON document with --json, newest first, receipts included', async () => {
    const report = await queryJson(a, []);
    expect(report).toMatchObject({
      federated: false,
      limit: 100,
      count: 4,
      total: 4,
      truncated: false,
      problems: [],
    });
    const times = report.events.map((event) => event.time);
    expect([...times].sort().reverse()).toEqual(times);
    const success = report.events.find((event) => event.correlationId === calls.success);
    expect(success).toMatchObject({
      origin: 'node-a',
      direction: 'outbound',
      sourceNode: 'node-a',
      targetNode: 'node-b',
      principal: 'alice@org-a.example',
      resource: 'echo',
      capability: 'echo',
      outcome: 'success',
      statusCode: 200,
      errorCode: null,
      requestSize: 10,
      receipt: {
        correlation_id: calls.success,
        target: 'spiffe://org-b.example/sark/node/node-b',
        outcome: 'success',
      },
    });
    expect(Object.keys(success ?? {})).toEqual([
      'origin',
      'seq',
      'eventId',
      'correlationId',
      'time',
      'direction',
      'sourceNode',
      'targetNode',
      'principal',
      'resource',
      'capability',
      'outcome',
      'statusCode',
      'errorCode',
      'durationUs',
      'requestSha256',
      'requestSize',
      'resultSha256',
      'resultSize',
      'receipt',
      'prevHash',
      'hash',
    ]);
  });

  it('applies every filter, alone and together', async () => {
    const ids = async (args: string[]) =>
      (await queryJson(a, args)).events.map((event) => event.correlationId);
    expect(await ids(['--correlation-id', calls.denied])).toEqual([calls.denied]);
    expect(await ids(['--principal', 'alice@org-a.example'])).toEqual([calls.error, calls.success]);
    expect(await ids(['--resource', 'broken'])).toEqual([calls.error]);
    expect(await ids(['--capability', 'echo'])).toEqual([
      calls.second,
      calls.denied,
      calls.success,
    ]);
    expect(await ids(['--node', 'node-b'])).toHaveLength(4);
    expect(await ids(['--node', 'node-a'])).toHaveLength(4);
    expect(await ids(['--outcome', 'denied'])).toEqual([calls.denied]);
    expect(await ids(['--outcome', 'timeout'])).toEqual([]);
    expect(await ids(['--outcome', 'success', '--principal', 'bob@org-a.example'])).toEqual([
      calls.second,
    ]);
    expect(await ids(['--since', '1h'])).toHaveLength(4);
    expect(await ids(['--until', '1h'])).toEqual([]);
    expect(await ids(['--since', '2000-01-01', '--until', '2000-01-02T00:00:00+01:00'])).toEqual(
      [],
    );
    // --since is inclusive, --until exclusive, at the millisecond.
    const first = (await queryJson(a, ['--correlation-id', calls.success])).events[0] as EventJson;
    expect(await ids(['--since', first.time, '--capability', 'echo'])).toContain(calls.success);
    expect(await ids(['--until', first.time])).toEqual([]);
  });

  it('an empty result is success: nothing on stdout, a note on stderr', async () => {
    const result = await a.cli(['audit', 'query', '--node', 'node-z']);
    expect(result).toEqual({ code: 0, stdout: '', stderr: 'no audit events match\n' });
    const json = await queryJson(a, ['--principal', 'nobody']);
    expect(json).toMatchObject({ count: 0, total: 0, truncated: false, events: [] });
  });

  it('--limit keeps the newest events and says on stderr that more matched', async () => {
    const result = await a.cli(['audit', 'query', '--limit', '2']);
    expectSuccess(result);
    const ids = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => line.split('\t')[1]);
    expect(ids).toEqual([calls.second, calls.error]);
    expect(result.stderr).toBe(
      'showing the newest 2 of 4 matching events; raise --limit or narrow the filters\n',
    );
    expect(await queryJson(a, ['--limit', '3'])).toMatchObject({
      limit: 3,
      count: 3,
      total: 4,
      truncated: true,
    });
  });

  it('refuses bad flags with exit 2, one error line and a hint', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--outcome', 'maybe'], /--outcome.*Allowed choices are success, denied, error, timeout/],
      [['--since', 'yesterday'], /--since.*ISO 8601 .*relative one \(90s, 15m, 2h, 7d/],
      [['--until', '2030-02-30'], /--until.*2030-02-30 is not a day/],
      [['--since', '2030-01-01T10:00'], /--since.*expected an ISO 8601 time/],
      [['--limit', '0'], /--limit.*expected a whole number from 1/],
      [['--limit', '-3'], /--limit.*expected a whole number from 1/],
      [['--limit', 'ten'], /--limit.*expected a whole number from 1/],
      [['--since', '1h', '--until', '2h'], /--since .* is not before --until/],
      // Both relative to one moment: the same instant, an empty range.
      [['--since', '1h', '--until', '1h'], /--since \((\S+)\) is not before --until \(\1\)/],
      [['--colour', 'red'], /unknown option '--colour'/],
      // Node IDs are lower case: these could name no node, and would match nothing.
      [['--node', 'NODE-B'], /invalid node ID "NODE-B"/],
      [['--node', 'node_b'], /invalid node ID "node_b"/],
    ];
    for (const [args, message] of cases) {
      const result = await a.cli(['audit', 'query', ...args]);
      expectRefusal(result, 2, { message, hint: /\S/ });
    }
  });

  it('draws a table on a terminal: upper-case headers, short IDs and times', async () => {
    const result = await runOnTerminal(['--state', a.state, 'audit', 'query']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^TIME \(UTC\)\s+CORRELATION\s+DIRECTION\s+SOURCE → TARGET\s+PRINCIPAL\s+RESOURCE\/CAPABILITY\s+OUTCOME\s+ERROR\s+DURATION$/,
    );
    expect(lines).toHaveLength(5);
    const row =
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\s+(\S+)\s+outbound\s+node-a → node-b\s+bob@org-a\.example\s+echo\/echo\s+success\s+-\s+\d/.exec(
        lines[1] ?? '',
      );
    expect(row, lines[1]).not.toBeNull();
    // The ID as far as it takes to name one call of this trail (UUIDv7s of calls made together
    // share their first 8 characters and more), and `audit trace` takes it as shown.
    const shown = row?.[1] as string;
    expect(shown.length).toBeGreaterThanOrEqual(8);
    expect(calls.second.startsWith(shown)).toBe(true);
    expect(result.stdout).not.toContain(calls.second);
    const traced = await a.cli(['audit', 'trace', shown, '--json']);
    expect(traced.code, traced.stderr).toBe(0);
    expect(JSON.parse(traced.stdout)).toMatchObject({ correlationId: calls.second });
  });

  it('--correlation-id takes an ID as the table shows it (a prefix naming one call) or in upper case, as audit trace does', async () => {
    const ids = async (args: string[]) =>
      (await queryJson(a, args)).events.map((event) => event.correlationId);
    expect(await ids(['--correlation-id', calls.success.slice(0, 8)])).toEqual([calls.success]);
    expect(await ids(['--correlation-id', calls.denied.toUpperCase()])).toEqual([calls.denied]);
    const federated = await queryJson(a, [
      '--federated',
      '--correlation-id',
      calls.denied.slice(0, 23),
    ]);
    expect(federated.events.map((event) => [event.origin, event.correlationId])).toEqual([
      ['node-b', calls.denied],
      ['node-a', calls.denied],
    ]);
    // An ID this trail does not hold matches nothing: an empty result, no error.
    const unknown = await a.cli(['audit', 'query', '--correlation-id', randomUUID()]);
    expect(unknown).toEqual({ code: 0, stdout: '', stderr: 'no audit events match\n' });
    // The calls made by node-a share their first characters (UUIDv7 starts with the time).
    const shared = calls.denied.slice(0, 4);
    expect(calls.second.startsWith(shared)).toBe(true);
    expectRefusal(await a.cli(['audit', 'query', '--correlation-id', shared]), 2, {
      message: new RegExp(`^${shared} is the start of 3 correlation IDs: `),
      hint: /give more of the correlation ID/,
    });
    expectRefusal(await a.cli(['audit', 'query', '--correlation-id', 'abc']), 2, {
      message: /the correlation ID prefix abc is too short/,
      hint: /audit query/,
    });
  });

  it(
    '--federated merges the peers’ events, each with its origin',
    async () => {
      const report = await queryJson(a, ['--federated', '--correlation-id', calls.success]);
      expect(report).toMatchObject({ federated: true, total: null, problems: [] });
      expect(
        report.events.map((event) => [event.origin, event.direction, event.correlationId]),
      ).toEqual(
        expect.arrayContaining([
          ['node-a', 'outbound', calls.success],
          ['node-b', 'inbound', calls.success],
        ]),
      );
      expect(report.events).toHaveLength(2);
      // The inbound event carries the receipt node-b issued: the one node-a kept.
      const [outbound, inbound] = ['outbound', 'inbound'].map((direction) =>
        report.events.find((event) => event.direction === direction),
      );
      expect(inbound?.receipt).toEqual(outbound?.receipt);

      const rows = await a.cli(['audit', 'query', '--federated']);
      expectSuccess(rows);
      const parsed = rows.stdout
        .trimEnd()
        .split('\n')
        .map((line) => line.split('\t'));
      expect(parsed).toHaveLength(8);
      for (const row of parsed) {
        expect(row).toHaveLength(11);
        expect(row[9]).toMatch(/^\d+$/);
      }
      expect(new Set(parsed.map((row) => row[1]))).toEqual(new Set(['node-a', 'node-b']));
      const times = parsed.map((row) => row[0] as string);
      expect([...times].sort().reverse()).toEqual(times);

      const table = await runOnTerminal(['--state', a.state, 'audit', 'query', '--federated']);
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout.split('\n')[0]).toMatch(
        /^TIME \(UTC\)\s+ORIGIN\s+CORRELATION\s+DIRECTION/,
      );
    },
    SLOW_TEST_MS,
  );

  it(
    '--federated with --limit says more matched in the same words as a local query',
    async () => {
      const result = await a.cli(['audit', 'query', '--federated', '--limit', '2']);
      expectSuccess(result);
      expect(result.stdout.trimEnd().split('\n')).toHaveLength(2);
      // Only one event past the limit is fetched from each node: the count is a floor.
      expect(result.stderr).toBe(
        'showing the newest 2 of more than 2 matching events; raise --limit or narrow the filters\n',
      );
    },
    SLOW_TEST_MS,
  );
});

describe('audit trace', () => {
  it('an unknown correlation ID is not found (exit 4), with a hint', async () => {
    expectRefusal(await a.cli(['audit', 'trace', randomUUID()]), 4, {
      message: /^no audit event of this node has the correlation ID [0-9a-f-]{36}$/,
      hint: /sark-fed audit query/,
    });
  });

  it('takes a correlation ID in upper case, whole or as a prefix, as UUIDs may be written', async () => {
    const traced = await a.cli(['audit', 'trace', calls.second.toUpperCase(), '--json']);
    expect(traced.code, traced.stderr).toBe(0);
    expect(JSON.parse(traced.stdout)).toMatchObject({ correlationId: calls.second });
    const prefixed = await a.cli([
      'audit',
      'trace',
      calls.second.slice(0, 30).toUpperCase(),
      '--json',
    ]);
    expect(prefixed.code, prefixed.stderr).toBe(0);
    const queried = await queryJson(a, ['--correlation-id', calls.second.toUpperCase()]);
    expect(queried.events.map((event) => event.correlationId)).toEqual([calls.second]);
  });

  it('a prefix shorter than 4 characters is a usage error (exit 2), not "not found", --federated too', async () => {
    // calls.second is a UUIDv7 this node made: its first 3 characters start IDs in the trail.
    const prefix = calls.second.slice(0, 3);
    for (const extra of [[], ['--federated']]) {
      expectRefusal(await a.cli(['audit', 'trace', prefix, ...extra]), 2, {
        message: new RegExp(
          `^the correlation ID prefix ${prefix} is too short: give at least 4 characters, or the whole ID$`,
        ),
        hint: /sark-fed audit query/,
      });
    }
    const json = await a.cli(['audit', 'trace', '', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toEqual({
      error: {
        code: 'CORRELATION_ID_TOO_SHORT',
        message: 'the correlation ID is empty: give at least 4 characters, or the whole ID',
        hint: expect.stringContaining('sark-fed audit query'),
        exitCode: 2,
      },
    });
  });

  it(
    'an ambiguous prefix lists the first 10 IDs and says how many more match (exit 2)',
    async () => {
      // A copy of node-a's trail with IDs that share a prefix, so the other tests keep theirs.
      const state = join(tempDir('sark-fed-audit-ambiguous-'), 'state.db');
      copyState(a.state, state);
      const ids = (from: number, count: number) =>
        Array.from(
          { length: count },
          (_, index) => `feed0000-0000-7000-8000-${String(from + index).padStart(12, '0')}`,
        );
      const append = (correlationIds: string[]) => {
        const store = openState(state, { create: false });
        try {
          store.write((db) =>
            appendEvents(
              db,
              correlationIds.map((correlationId) =>
                inboundEvent({ correlationId, direction: 'outbound' }),
              ),
            ),
          );
        } finally {
          store.close();
        }
      };
      append(ids(1, 13));
      const listed = ids(1, 10).join(', ');
      for (const extra of [[], ['--federated']]) {
        expectRefusal(await runCli(['--state', state, 'audit', 'trace', 'feed', ...extra]), 2, {
          message: new RegExp(`^feed is the start of 13 correlation IDs: ${listed} and 3 more$`),
          hint: /give more of the correlation ID/,
        });
      }
      // --json: the same message in the usual error document, no key added.
      const json = await runCli(['--state', state, 'audit', 'trace', 'feed', '--json']);
      expect(json.code).toBe(2);
      const { error } = JSON.parse(json.stderr) as { error: Record<string, unknown> };
      expect(Object.keys(error)).toEqual(['code', 'message', 'hint', 'exitCode']);
      expect(error).toMatchObject({
        code: 'AMBIGUOUS_CORRELATION_ID',
        message: `feed is the start of 13 correlation IDs: ${listed} and 3 more`,
      });
      // Beyond 10,000 IDs counting stops: "over".
      append(ids(14, 9_988));
      expectRefusal(await runCli(['--state', state, 'audit', 'trace', 'feed']), 2, {
        message: new RegExp(
          `^feed is the start of over 10000 correlation IDs: ${listed} and over 9990 more$`,
        ),
      });
    },
    SLOW_TEST_MS,
  );

  it('shows this node’s side of a call with the receipt verified against the pinned certificate', async () => {
    const result = await a.cli(['audit', 'trace', calls.success, '--json']);
    expectSuccess(result);
    const trace = JSON.parse(result.stdout) as TraceJson;
    expect(trace).toMatchObject({
      correlationId: calls.success,
      nodes: ['node-a', 'node-b'],
      federated: false,
      problems: [],
    });
    expect(trace.hops).toHaveLength(1);
    expect(trace.hops[0]).toMatchObject({
      index: 1,
      parent: null,
      depth: 0,
      sourceNode: 'node-a',
      targetNode: 'node-b',
      principal: 'alice@org-a.example',
      resource: 'echo',
      capability: 'echo',
      outcome: 'success',
      statusCode: 200,
      startUs: 0,
      receipt: { status: 'verified', signer: 'node-b', reason: null },
      events: [
        {
          origin: 'node-a',
          direction: 'outbound',
          startUs: 0,
          receipt: { status: 'verified', signer: 'node-b' },
        },
      ],
    });

    // node-b's side: the receipt it issued, checked against its own certificate.
    const served = JSON.parse(
      (await b.cli(['audit', 'trace', calls.success, '--json'])).stdout,
    ) as TraceJson;
    expect(served.hops[0]?.events).toEqual([
      expect.objectContaining({
        origin: 'node-b',
        direction: 'inbound',
        receipt: { status: 'verified', signer: 'node-b', reason: null },
      }),
    ]);
  });

  it(
    'with --federated shows both sides of the hop, both receipts verified',
    async () => {
      const result = await a.cli(['audit', 'trace', calls.success, '--federated', '--json']);
      expectSuccess(result);
      const trace = JSON.parse(result.stdout) as TraceJson;
      expect(trace.federated).toBe(true);
      expect(trace.hops).toHaveLength(1);
      const hop = trace.hops[0];
      expect(
        hop?.events.map((event) => [event.direction, event.origin, event.receipt.status]),
      ).toEqual([
        ['outbound', 'node-a', 'verified'],
        ['inbound', 'node-b', 'verified'],
      ]);
      // The serving side's span lies within the caller's (up to the clocks' millisecond).
      const [outbound, inbound] = hop?.events ?? [];
      expect(inbound?.durationUs).toBeLessThanOrEqual((outbound?.durationUs ?? 0) + 1000);
      expect(hop?.durationUs).toBeGreaterThanOrEqual(outbound?.durationUs ?? 0);

      // In a pipe: one row per event.
      const rows = await a.cli(['audit', 'trace', calls.success, '--federated']);
      expectSuccess(rows);
      // The last field (the reason a receipt failed) is empty: keep it.
      const parsed = rows.stdout
        .replace(/\n$/, '')
        .split('\n')
        .map((line) => line.split('\t'));
      expect(
        parsed.map((row) => [row[0], row[1], row[2], row[3], row[4], row[5], row[11]]),
      ).toEqual([
        ['1', 'outbound', 'node-a', 'node-a', 'node-b', 'echo/echo', 'verified'],
        ['1', 'inbound', 'node-b', 'node-a', 'node-b', 'echo/echo', 'verified'],
      ]);
      for (const row of parsed) expect(row).toHaveLength(13);
    },
    SLOW_TEST_MS,
  );

  it(
    'draws the hop and its events as a tree with timeline bars on a terminal',
    async () => {
      const result = await runOnTerminal([
        '--state',
        a.state,
        'audit',
        'trace',
        calls.success.slice(0, 8),
        '--federated',
      ]);
      expect(result.code, result.stderr).toBe(0);
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe(`correlation ID  ${calls.success}`);
      expect(lines[1]).toMatch(/1 hop across node-a, node-b, 2 events/);
      const header = lines.findIndex((line) => line.startsWith('HOP'));
      expect(lines[header]).toMatch(
        /^HOP\s+CALL \/ RECORDED AT\s+OUTCOME\s+STATUS\s+START\s+DURATION\s+RECEIPT\s+TIMELINE$/,
      );
      const [hop, outbound, inbound] = lines.slice(header + 1);
      expect(hop).toMatch(
        /^1\. node-a → node-b\s+echo\/echo\s+success\s+200\s+\+0 µs\s+.*✓ verified\s+█+/,
      );
      expect(outbound).toMatch(/^\s+├─ outbound \(node-a\)\s+.*✓ verified\s+▆+/);
      expect(inbound).toMatch(/^\s+└─ inbound \(node-b\)\s+.*✓ verified\s+[·▆]+$/);
    },
    SLOW_TEST_MS,
  );

  it('a denied call is a hop with its refusal and the receipt of the refusal', async () => {
    const trace = JSON.parse(
      (await a.cli(['audit', 'trace', calls.denied, '--federated', '--json'])).stdout,
    ) as TraceJson;
    expect(trace.hops).toHaveLength(1);
    expect(trace.hops[0]).toMatchObject({
      outcome: 'denied',
      statusCode: 403,
      errorCode: 'POLICY_DENIED',
      receipt: { status: 'verified' },
    });
    expect(trace.hops[0]?.events).toHaveLength(2);
  });

  it(
    '--federated with a peer that cannot be asked: a warning, this node’s side, exit 0',
    async () => {
      // Last test of the file: node-a's daemon goes away.
      await fed.daemons[1]?.stop();
      const result = await b.cli([
        'audit',
        'trace',
        calls.success,
        '--federated',
        '--timeout',
        '2s',
      ]);
      expect(result.code, result.stderr).toBe(0);
      // The node named once: the message says it, nothing is put before it.
      expect(result.stderr).toMatch(
        /^warning: cannot reach node-a \(https:\/\/127\.0\.0\.1:\d+\): ECONNREFUSED \(UNREACHABLE\): node-a's events of this call are not in these results$/m,
      );
      const query = await b.cli(['audit', 'query', '--federated', '--timeout', '2s', '--json']);
      expect(query.code, query.stderr).toBe(0);
      expect(query.stderr).toMatch(/UNREACHABLE\): node-a's events are not in these results$/m);
      const report = JSON.parse(query.stdout) as QueryJson;
      expect(report.problems).toEqual([
        expect.objectContaining({ nodeId: 'node-a', code: 'UNREACHABLE' }),
      ]);
      expect(new Set(report.events.map((event) => event.origin))).toEqual(new Set(['node-b']));
      expect(report.events).toHaveLength(4);
    },
    SLOW_TEST_MS,
  );
});
