import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendEvents,
  type AuditEvent,
  type AuditEventInput,
} from '../../../src/core/audit/events.js';
import {
  buildWhere,
  countEvents,
  countSql,
  eventFromWire,
  eventToWire,
  normaliseInstant,
  queryEvents,
  selectSql,
  type AuditFilter,
} from '../../../src/core/audit/query.js';
import type { Receipt } from '../../../src/core/audit/receipts.js';
import { UsageError } from '../../../src/core/errors.js';
import { AuditQueryRequest, WireAuditEvent } from '../../../src/core/protocol/schemas.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { inboundEvent, receiptFixture } from '../../helpers/audit-events.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * queryEvents and countEvents (DESIGN §7) on a real state file: every filter alone and together,
 * the order, the limit, the time bounds in other ISO 8601 spellings, values that look like SQL,
 * and the query plans: each indexed filter is a SEARCH of an index, never a SCAN.
 */

let store: StateStore;
let all: AuditEvent[];

const RECEIPT: Receipt = receiptFixture({
  correlation_id: 'c-1',
  timestamp: '2030-01-01T10:00:00.000Z',
});

function event(overrides: Partial<AuditEventInput>): AuditEventInput {
  return inboundEvent({
    correlationId: 'c-1',
    time: '2030-01-01T10:00:00.000Z',
    direction: 'outbound',
    durationUs: 1200,
    requestSize: 10,
    resultSize: 12,
    ...overrides,
  });
}

beforeAll(() => {
  store = openState(join(tempDir('sark-fed-audit-query-'), 'state.db'), { create: true });
  all = store.write((db) =>
    appendEvents(db, [
      // seq 1..9, written in this order (not time order: the query sorts).
      event({ correlationId: 'c-1', receipt: RECEIPT }),
      event({
        correlationId: 'c-2',
        time: '2030-01-01T09:00:00.000Z',
        direction: 'inbound',
        sourceNode: 'node-c',
        targetNode: 'node-a',
        principal: 'carol@org-c.example',
        resource: 'inventory',
        capability: 'lookup',
        outcome: 'denied',
        statusCode: 403,
        errorCode: 'POLICY_DENIED',
      }),
      event({
        correlationId: 'c-3',
        time: '2030-01-01T11:00:00.000Z',
        targetNode: 'node-c',
        resource: 'inventory',
        capability: 'lookup',
        outcome: 'error',
      }),
      event({
        correlationId: 'c-4',
        time: '2030-01-01T11:00:00.000Z',
        resource: 'inventory',
        capability: 'update',
        outcome: 'timeout',
      }),
      event({
        correlationId: 'c-5',
        time: '2030-01-02T00:00:00.000Z',
        sourceNode: 'node-b',
        targetNode: 'node-c',
      }),
      event({ correlationId: "x' OR '1'='1", time: '2030-01-01T08:00:00.000Z' }),
      event({ correlationId: 'c-1', time: '2030-01-01T10:00:00.005Z', direction: 'inbound' }),
      event({
        correlationId: 'c-6',
        time: '2030-01-01T12:00:00.000Z',
        sourceNode: 'node-c',
        targetNode: 'node-b',
        principal: 'carol@org-c.example',
      }),
      // A node calling itself through its own daemon: source and target alike.
      event({
        correlationId: 'c-7',
        time: '2030-01-01T07:00:00.000Z',
        sourceNode: 'node-a',
        targetNode: 'node-a',
      }),
    ]),
  );
});

afterAll(() => store.close());

function seqs(filter: AuditFilter): number[] {
  return store.read((db) => queryEvents(db, filter)).map((e) => e.seq);
}

function count(filter: AuditFilter): number {
  return store.read((db) => countEvents(db, filter));
}

describe('queryEvents', () => {
  it('answers every event newest first, ties in reverse chain order', () => {
    expect(seqs({})).toEqual([5, 8, 4, 3, 7, 1, 2, 6, 9]);
    expect(count({})).toBe(9);
  });

  it('returns whole events, the receipt parsed', () => {
    const [first] = store.read((db) => queryEvents(db, { correlationId: 'c-1', limit: 1 }));
    expect(first).toEqual(all[6]);
    const withReceipt = store
      .read((db) => queryEvents(db, { correlationId: 'c-1' }))
      .find((e) => e.seq === 1);
    expect(withReceipt?.receipt).toEqual(RECEIPT);
    expect(withReceipt).toEqual(all[0]);
  });

  it.each<[string, AuditFilter, number[]]>([
    ['correlation ID', { correlationId: 'c-1' }, [7, 1]],
    ['principal', { principal: 'carol@org-c.example' }, [8, 2]],
    ['resource', { resource: 'inventory' }, [4, 3, 2]],
    ['resource and capability', { resource: 'inventory', capability: 'lookup' }, [3, 2]],
    ['capability alone', { capability: 'update' }, [4]],
    ['outcome', { outcome: 'denied' }, [2]],
    ['node as source or target', { node: 'node-c' }, [5, 8, 3, 2]],
    ['participant', { participant: 'node-b' }, [5, 8, 4, 7, 1, 6]],
    ['node and participant', { node: 'node-c', participant: 'node-b' }, [5, 8]],
    ['since (inclusive)', { since: '2030-01-01T11:00:00.000Z' }, [5, 8, 4, 3]],
    ['until (exclusive)', { until: '2030-01-01T10:00:00.005Z' }, [1, 2, 6, 9]],
    [
      'since and until',
      { since: '2030-01-01T10:00:00.000Z', until: '2030-01-01T12:00:00.000Z' },
      [4, 3, 7, 1],
    ],
    [
      'every filter at once',
      {
        correlationId: 'c-3',
        principal: 'alice@org-a.example',
        resource: 'inventory',
        capability: 'lookup',
        node: 'node-c',
        participant: 'node-a',
        outcome: 'error',
        since: '2030-01-01T11:00:00Z',
        until: '2030-01-01T11:00:01Z',
      },
      [3],
    ],
    ['a node that took part in nothing', { participant: 'node-z' }, []],
  ])('filters by %s', (_name, filter, expected) => {
    expect(seqs(filter)).toEqual(expected);
    expect(count(filter)).toBe(expected.length);
  });

  it('applies the limit after ordering; countEvents ignores it', () => {
    expect(seqs({ limit: 3 })).toEqual([5, 8, 4]);
    expect(seqs({ node: 'node-c', limit: 2 })).toEqual([5, 8]);
    expect(seqs({ limit: 0 })).toEqual([]);
    expect(count({ limit: 3 })).toBe(9);
  });

  it('counts up to a bound when asked, for the plain and the split-by-node statements', () => {
    const upTo = (filter: AuditFilter, bound: number) =>
      store.read((db) => countEvents(db, filter, bound));
    expect(upTo({}, 4)).toBe(4);
    expect(upTo({}, 100)).toBe(9);
    expect(upTo({ node: 'node-c' }, 1)).toBe(1);
    expect(upTo({ node: 'node-c' }, 100)).toBe(count({ node: 'node-c' }));
  });

  it('refuses a limit that is not a whole number', () => {
    for (const limit of [-1, 1.5, Number.NaN]) {
      expect(() => store.read((db) => queryEvents(db, { limit }))).toThrow(UsageError);
    }
  });

  it('binds values: text that looks like SQL matches only itself', () => {
    expect(seqs({ correlationId: "x' OR '1'='1" })).toEqual([6]);
    expect(seqs({ principal: "' OR 1=1 --" })).toEqual([]);
    expect(seqs({ node: "node-a' OR 'x'='x" })).toEqual([]);
    const { where, params } = buildWhere({ correlationId: "'; DROP TABLE audit_events; --" });
    expect(where).not.toContain('DROP');
    expect(params).toEqual(["'; DROP TABLE audit_events; --"]);
    expect(count({})).toBe(9);
  });

  it('reads time bounds in other ISO 8601 spellings as the same instants', () => {
    // Without milliseconds: "...:00Z" sorts after "...:00.000Z" as text, so it must be rewritten.
    expect(seqs({ since: '2030-01-01T11:00:00Z' })).toEqual([5, 8, 4, 3]);
    expect(seqs({ since: '2030-01-01T11:00Z' })).toEqual([5, 8, 4, 3]);
    // An offset: 12:00+01:00 is 11:00Z.
    expect(seqs({ since: '2030-01-01T12:00:00+01:00' })).toEqual([5, 8, 4, 3]);
    expect(seqs({ until: '2030-01-01T10:00:00+01:00' })).toEqual([6, 9]);
    // A date alone is its UTC midnight.
    expect(seqs({ since: '2030-01-02' })).toEqual([5]);
    // Finer than milliseconds: 10:00:00.0041 lies after 10:00:00.000 and before .005.
    expect(seqs({ since: '2030-01-01T10:00:00.0041Z' })).toEqual([5, 8, 4, 3, 7]);
    expect(seqs({ until: '2030-01-01T10:00:00.0041Z' })).toEqual([1, 2, 6, 9]);
  });

  it('refuses time bounds that are not instants', () => {
    for (const since of [
      'yesterday',
      '2030-01-01T10:00:00', // no zone: local time would depend on the machine
      '2030-02-30T00:00:00Z',
      '2030-01-01T25:00:00Z',
      '1893456000',
      '',
    ]) {
      expect(() => store.read((db) => queryEvents(db, { since })), since).toThrow(UsageError);
    }
    expect(normaliseInstant('2030-01-01T00:00:00.5+00:00')).toBe('2030-01-01T00:00:00.500Z');
  });
});

describe('query plans', () => {
  /** The plans of the very statements queryEvents and countEvents run. */
  function plan(filter: AuditFilter): string[] {
    return store.read((db) =>
      [selectSql(filter), countSql(filter)].flatMap(({ sql, params }) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map(
          (row) => row.detail,
        ),
      ),
    );
  }

  it.each<[string, AuditFilter, RegExp]>([
    ['correlation ID', { correlationId: 'c-1' }, /audit_by_correlation/],
    ['principal', { principal: 'p' }, /audit_by_principal/],
    [
      'principal and time',
      { principal: 'p', since: '2030-01-01T00:00:00Z' },
      /audit_by_principal \(principal=\? AND time>\?\)/,
    ],
    ['resource', { resource: 'r' }, /audit_by_resource/],
    [
      'resource and capability',
      { resource: 'r', capability: 'c' },
      /audit_by_resource \(resource=\? AND capability=\?\)/,
    ],
    ['node', { node: 'n' }, /audit_by_source \(source_node=\?\)/],
    ['participant', { participant: 'n' }, /audit_by_target \(target_node=\?\)/],
    ['node and participant', { node: 'n', participant: 'm' }, /audit_by_source/],
    [
      'node and time',
      { node: 'n', until: '2030-01-01T00:00:00Z' },
      /audit_by_source \(source_node=\? AND time<\?\)/,
    ],
    // Failures are few: their index, not both sides of the node, and no sort afterwards.
    ['node and outcome', { node: 'n', outcome: 'error' }, /audit_unsuccessful \(outcome=\?\)/],
    ['node and success', { node: 'n', outcome: 'success' }, /audit_by_target/],
    ['since', { since: '2030-01-01T00:00:00Z' }, /audit_by_time/],
    [
      'since and until',
      { since: '2030-01-01T00:00:00Z', until: '2031-01-01T00:00:00Z' },
      /audit_by_time \(time>\? AND time<\?\)/,
    ],
    [
      'correlation ID of a participant',
      { correlationId: 'c', participant: 'n' },
      /audit_by_correlation/,
    ],
    ['principal of a participant', { principal: 'p', participant: 'n' }, /audit_by_principal/],
    // Migration 6: calls that did not succeed, without walking every success.
    ['outcome denied', { outcome: 'denied' }, /audit_unsuccessful \(outcome=\?\)/],
    [
      'outcome and time',
      { outcome: 'timeout', since: '2030-01-01T00:00:00Z' },
      /audit_unsuccessful \(outcome=\? AND time>\?\)/,
    ],
  ])('%s is a search of an index, never a scan of the table', (_name, filter, index) => {
    for (const limit of [undefined, 100]) {
      const details = plan({ ...filter, limit });
      const all = details.join(' | ');
      expect(all).toMatch(index);
      for (const detail of details) expect(detail, all).not.toMatch(/^SCAN audit_events/);
      if (
        (filter.node ?? filter.participant) &&
        !filter.correlationId &&
        !filter.principal &&
        (filter.outcome === undefined || filter.outcome === 'success')
      ) {
        // Both sides of source-or-target are searched, each in its own index.
        expect(details, all).toEqual(
          expect.arrayContaining([
            expect.stringMatching(/^SEARCH audit_events USING (COVERING )?INDEX audit_by_source/),
            expect.stringMatching(/^SEARCH audit_events USING (COVERING )?INDEX audit_by_target/),
          ]),
        );
      }
    }
  });

  it('reads a node filter with a limit newest first from each index, sorting no more', () => {
    // Each branch reads (source_node, time) or (target_node, time) in order and stops at the
    // limit; only the merge of the two short lists is sorted.
    const { sql } = selectSql({ participant: 'n', limit: 10 });
    expect(sql.match(/LIMIT \?/g)).toHaveLength(3);
    const details = plan({ participant: 'n', limit: 10 });
    expect(details.filter((detail) => /^SEARCH audit_events/.test(detail))).toHaveLength(2 + 2);
  });

  it('lists everything in time order from the time index, without sorting', () => {
    const details = plan({ limit: 100 });
    expect(details[0]).toBe('SCAN audit_events USING INDEX audit_by_time');
    expect(details.slice(0, 1).join(' | ')).not.toMatch(/TEMP B-TREE/);
  });
});

describe('query shapes agree', () => {
  /** What every filter means, computed in memory from all events. */
  function naive(filter: AuditFilter): number[] {
    const involves = (e: AuditEvent, node: string) =>
      e.sourceNode === node || e.targetNode === node;
    const since = filter.since === undefined ? undefined : normaliseInstant(filter.since);
    const until = filter.until === undefined ? undefined : normaliseInstant(filter.until);
    const matching = all
      .filter(
        (e) =>
          (filter.correlationId === undefined || e.correlationId === filter.correlationId) &&
          (filter.principal === undefined || e.principal === filter.principal) &&
          (filter.resource === undefined || e.resource === filter.resource) &&
          (filter.capability === undefined || e.capability === filter.capability) &&
          (filter.outcome === undefined || e.outcome === filter.outcome) &&
          (filter.node === undefined || involves(e, filter.node)) &&
          (filter.participant === undefined || involves(e, filter.participant)) &&
          (since === undefined || e.time >= since) &&
          (until === undefined || e.time < until),
      )
      .sort((x, y) => (x.time < y.time ? 1 : x.time > y.time ? -1 : y.seq - x.seq))
      .map((e) => e.seq);
    return filter.limit === undefined ? matching : matching.slice(0, filter.limit);
  }

  it('answers as the plain definition does, for every node filter, limit and bound', () => {
    const nodes = [undefined, 'node-a', 'node-b', 'node-c', 'node-z'];
    let checked = 0;
    for (const node of nodes) {
      for (const participant of nodes) {
        for (const limit of [undefined, 0, 1, 2, 3, 100]) {
          for (const extra of [
            {},
            { outcome: 'success' as const },
            { since: '2030-01-01T10:00:00Z' },
            { until: '2030-01-01T10:00:00.005Z', capability: 'echo' },
            { principal: 'alice@org-a.example' },
          ]) {
            const filter: AuditFilter = { node, participant, limit, ...extra };
            expect(seqs(filter), JSON.stringify(filter)).toEqual(naive(filter));
            expect(count(filter), JSON.stringify(filter)).toBe(
              naive({ ...filter, limit: undefined }).length,
            );
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(5 * 5 * 6 * 5);
  });

  it('lists an event a node addressed to itself once', () => {
    expect(seqs({ participant: 'node-a' })).toEqual([4, 3, 7, 1, 2, 6, 9]);
    expect(seqs({ node: 'node-a', limit: 2 })).toEqual([4, 3]);
    expect(count({ participant: 'node-a' })).toBe(7);
  });
});

describe('wire form', () => {
  it('round-trips every event and passes the wire schema', () => {
    for (const stored of all) {
      const wire = eventToWire(stored);
      expect(WireAuditEvent.parse(wire)).toEqual(wire);
      expect(eventFromWire(wire)).toEqual(stored);
    }
    expect(Object.keys(eventToWire(all[0] as AuditEvent))).toEqual(
      expect.arrayContaining(['seq', 'event_id', 'prev_hash', 'hash', 'receipt', 'source_node']),
    );
  });

  it('refuses unknown keys, bad outcomes and bad times in a query body', () => {
    expect(AuditQueryRequest.safeParse({ correlation_id: 'c-1', limit: 10 }).success).toBe(true);
    expect(AuditQueryRequest.safeParse({}).success).toBe(true);
    expect(AuditQueryRequest.safeParse({ participant: 'node-x' }).success).toBe(false);
    expect(AuditQueryRequest.safeParse({ outcome: 'maybe' }).success).toBe(false);
    expect(AuditQueryRequest.safeParse({ since: 'yesterday' }).success).toBe(false);
    expect(AuditQueryRequest.safeParse({ limit: 0 }).success).toBe(false);
    expect(AuditQueryRequest.safeParse({ limit: 2.5 }).success).toBe(false);
    expect(AuditQueryRequest.safeParse({ node: 42 }).success).toBe(false);
  });
});
