import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, type AuditEvent } from '../../../src/core/audit/events.js';
import type { Receipt } from '../../../src/core/audit/receipts.js';
import {
  CANDIDATES_SHOWN,
  MIN_CORRELATION_PREFIX,
  buildTrace,
  distinctPrefixLengths,
  resolveCorrelationId,
  type OriginEvent,
} from '../../../src/core/audit/trace.js';
import type { ReceiptCheck } from '../../../src/core/audit/verify.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { inboundEvent, receiptFixture } from '../../helpers/audit-events.js';
import { tempDir } from '../../helpers/cli.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const CORRELATION = '2c0c951f-062b-45c3-985a-8cedde3770eb';

let seq = 0;

function receipt(signature: string): Receipt {
  return receiptFixture({
    correlation_id: CORRELATION,
    result_sha256: null,
    timestamp: new Date(T0).toISOString(),
    signature,
  });
}

/** An event stamped at T0 + atMs. */
function event(
  direction: 'outbound' | 'inbound',
  atMs: number,
  durationMs: number,
  extra: Partial<OriginEvent> = {},
): OriginEvent {
  seq++;
  return {
    ...inboundEvent({
      correlationId: CORRELATION,
      time: new Date(T0 + atMs).toISOString(),
      direction,
      durationUs: durationMs * 1000,
      requestSha256: null,
      requestSize: null,
      resultSha256: null,
      resultSize: null,
    }),
    seq,
    eventId: `event-${seq}`,
    prevHash: '0'.repeat(64),
    hash: '1'.repeat(64),
    ...extra,
  };
}

/** Signers that judge receipts by their signature text, for the test's convenience. */
const signers = {
  check(checked: AuditEvent): ReceiptCheck {
    if (checked.receipt === null) return { status: 'none', signer: null, reason: null };
    if (checked.receipt.signature.startsWith('bad')) {
      return { status: 'invalid', signer: checked.targetNode, reason: 'forged' };
    }
    return { status: 'verified', signer: checked.targetNode, reason: null };
  },
};

describe('buildTrace', () => {
  it('groups the two sides of a call into one hop, placing the inbound span where it ran', () => {
    const outbound = event('outbound', 0, 10, { origin: 'node-a', receipt: receipt('one') });
    // Stamped when its answer was signed, 8 ms in, after 5 ms of work.
    const inbound = event('inbound', 8, 5, { origin: 'node-b', receipt: receipt('one') });
    const trace = buildTrace(CORRELATION, [inbound, outbound], signers);
    expect(trace).toMatchObject({
      correlationId: CORRELATION,
      startedAt: '2030-01-01T00:00:00.000Z',
      spanUs: 10_000,
      nodes: ['node-a', 'node-b'],
    });
    expect(trace.hops).toHaveLength(1);
    expect(trace.hops[0]).toMatchObject({
      index: 1,
      parent: null,
      depth: 0,
      sourceNode: 'node-a',
      targetNode: 'node-b',
      startUs: 0,
      durationUs: 10_000,
      receipt: { status: 'verified' },
    });
    expect(
      trace.hops[0]?.events.map((item) => [item.direction, item.origin, item.startUs]),
    ).toEqual([
      ['outbound', 'node-a', 0],
      ['inbound', 'node-b', 3_000],
    ]);
  });

  it('names the recording node from the direction when the events carry no origin', () => {
    const trace = buildTrace(
      CORRELATION,
      [event('inbound', 4, 4, { receipt: receipt('x') })],
      signers,
    );
    expect(trace.hops[0]?.events[0]?.origin).toBe('node-b');
    expect(trace.hops[0]?.startUs).toBe(0);
  });

  it('pairs retries by their receipts: an attempt the caller never heard back from gets its inbound side', () => {
    const events = [
      // First attempt: the caller timed out, the serving node answered late.
      event('outbound', 0, 100, { outcome: 'timeout', statusCode: null, errorCode: 'TIMEOUT' }),
      event('inbound', 150, 140, { receipt: receipt('late') }),
      // Second attempt: both sides hold the same receipt.
      event('outbound', 200, 20, { receipt: receipt('second') }),
      event('inbound', 215, 10, { receipt: receipt('second') }),
    ];
    const trace = buildTrace(CORRELATION, events, signers);
    expect(
      trace.hops.map((hop) => [hop.index, hop.outcome, hop.events.map((item) => item.seq)]),
    ).toEqual([
      [1, 'timeout', [events[0]?.seq, events[1]?.seq]],
      [2, 'success', [events[2]?.seq, events[3]?.seq]],
    ]);
    // The caller's view of the outcome leads; the serving side's receipt is the hop's.
    expect(trace.hops[0]?.receipt.status).toBe('verified');
  });

  it('keeps a refusal before calling as a hop of its own, without a receipt', () => {
    const trace = buildTrace(
      CORRELATION,
      [event('outbound', 0, 0, { outcome: 'denied', statusCode: null, errorCode: 'NOT_TRUSTED' })],
      signers,
    );
    expect(trace.hops[0]).toMatchObject({
      outcome: 'denied',
      errorCode: 'NOT_TRUSTED',
      receipt: { status: 'none' },
    });
    expect(trace.spanUs).toBe(0);
  });

  it('shows an invalid receipt as the hop’s, over a verified one', () => {
    const trace = buildTrace(
      CORRELATION,
      [
        event('outbound', 0, 10, { receipt: receipt('bad: forged') }),
        event('inbound', 8, 5, { receipt: receipt('bad: forged') }),
        event('outbound', 20, 10, { receipt: receipt('good') }),
      ],
      signers,
    );
    expect(trace.hops.map((hop) => [hop.events.length, hop.receipt.status])).toEqual([
      [2, 'invalid'],
      [1, 'verified'],
    ]);
    expect(trace.hops[0]?.receipt.reason).toBe('forged');
  });

  it('nests a call a node made while serving another under that hop', () => {
    const events = [
      event('outbound', 0, 30, { receipt: receipt('ab') }),
      event('outbound', 5, 10, {
        sourceNode: 'node-b',
        targetNode: 'node-c',
        resource: 'stock',
        capability: 'lookup',
        receipt: receipt('bc'),
      }),
    ];
    const trace = buildTrace(CORRELATION, events, signers);
    expect(trace.hops.map((hop) => [hop.index, hop.parent, hop.depth, hop.sourceNode])).toEqual([
      [1, null, 0, 'node-a'],
      [2, 1, 1, 'node-b'],
    ]);
    expect(trace.nodes).toEqual(['node-a', 'node-b', 'node-c']);
  });
});

describe('resolveCorrelationId', () => {
  let store: StateStore;
  /** 12 IDs that start with feed, two events each (both sides of a call), one with abc1. */
  const feed = Array.from(
    { length: 12 },
    (_, index) => `feed0000-0000-7000-8000-${String(index + 1).padStart(12, '0')}`,
  );
  const lone = 'abc10000-0000-7000-8000-000000000001';

  beforeAll(() => {
    store = openState(join(tempDir('sark-fed-trace-resolve-'), 'state.db'), { create: true });
    store.write((db) =>
      appendEvents(db, [
        ...feed.flatMap((correlationId) => [
          inboundEvent({ correlationId, direction: 'outbound' }),
          inboundEvent({ correlationId }),
        ]),
        inboundEvent({ correlationId: lone }),
        // An ID a caller chose, shorter than any prefix may be.
        inboundEvent({ correlationId: 'ab' }),
      ]),
    );
  });
  afterAll(() => store.close());

  const resolve = (given: string, countUpTo?: number) =>
    store.read((db) => resolveCorrelationId(db, given, countUpTo));

  it('takes a whole ID, or a prefix that starts only one', () => {
    expect(resolve(lone)).toEqual({ status: 'found', correlationId: lone });
    expect(resolve('abc1')).toEqual({ status: 'found', correlationId: lone });
  });

  it('refuses a prefix shorter than the minimum without looking it up, but not a whole ID that short', () => {
    expect(MIN_CORRELATION_PREFIX).toBe(4);
    // abc starts one ID and fee twelve: neither is "not found".
    for (const given of ['abc', 'fee', 'f', '']) {
      expect(resolve(given)).toEqual({ status: 'too-short', minimum: 4 });
    }
    expect(resolve('ab')).toEqual({ status: 'found', correlationId: 'ab' });
  });

  it('finds nothing for a long enough prefix that starts no ID', () => {
    expect(resolve('0000')).toEqual({ status: 'none' });
  });

  it('lists the first IDs of an ambiguous prefix and counts them all, each ID once', () => {
    expect(resolve('feed')).toEqual({
      status: 'ambiguous',
      candidates: feed.slice(0, CANDIDATES_SHOWN),
      total: 12,
    });
    expect(resolve('feed0000-0000-7000-8000-00000000000')).toEqual({
      status: 'ambiguous',
      candidates: feed.slice(0, 9),
      total: 9,
    });
    expect(resolve('feed0000-0000-7000-8000-00000000001')).toEqual({
      status: 'ambiguous',
      candidates: feed.slice(9),
      total: 3,
    });
  });

  it('stops counting at the cap: more than that is a null total', () => {
    expect(resolve('feed', 12)).toMatchObject({ status: 'ambiguous', total: 12 });
    expect(resolve('feed', 11)).toEqual({
      status: 'ambiguous',
      candidates: feed.slice(0, CANDIDATES_SHOWN),
      total: null,
    });
  });
});

describe('distinctPrefixLengths', () => {
  let store: StateStore;
  // UUIDv7-like IDs of calls made together: the first 13 characters are the same time.
  const close = [
    '01a21757-2f97-718d-bc48-22eb154926bc',
    '01a21757-2f97-7aaa-8000-000000000001',
    '01a21757-2f98-7000-8000-000000000002',
  ];
  const apart = '9b000000-0000-7000-8000-000000000001';

  beforeAll(() => {
    store = openState(join(tempDir('sark-fed-trace-prefix-'), 'state.db'), { create: true });
    store.write((db) =>
      appendEvents(
        db,
        [...close, apart].map((correlationId) => inboundEvent({ correlationId })),
      ),
    );
  });
  afterAll(() => store.close());

  const lengths = (ids: string[]) => store.read((db) => distinctPrefixLengths(db, ids));

  it('gives each ID the shortest prefix that starts no other ID of the trail, 8 at least', () => {
    const found = lengths([...close, apart]);
    expect(found.get(close[0] as string)).toBe(16);
    expect(found.get(close[1] as string)).toBe(16);
    expect(found.get(close[2] as string)).toBe(13);
    expect(found.get(apart)).toBe(8);
    // Each prefix resolves to its own ID, as `audit trace` takes it.
    for (const [id, length] of found) {
      expect(store.read((db) => resolveCorrelationId(db, id.slice(0, length)))).toEqual({
        status: 'found',
        correlationId: id,
      });
      // One character less starts another ID too (the lone one needed none of its 8).
      if (length > 8) {
        expect(store.read((db) => resolveCorrelationId(db, id.slice(0, length - 1))).status).toBe(
          'ambiguous',
        );
      }
    }
  });

  it('tells apart IDs of the trail from the ones shown only, such as those of a peer', () => {
    // Only in another node's trail: told apart from its neighbours here and from each other.
    const peerOnly = [
      '01a21757-2f97-718d-bc00-000000000000',
      '01a21757-2f97-718d-bc00-000000000001',
    ];
    const found = lengths(peerOnly);
    expect(found.get(peerOnly[0] as string)).toBe(36);
    expect(found.get(peerOnly[1] as string)).toBe(36);
    expect(lengths([close[0] as string, ...peerOnly]).get(close[0] as string)).toBe(22);
  });

  it('never cuts an ID shorter than the minimum or longer than itself', () => {
    expect(lengths(['ab']).get('ab')).toBe(2);
    expect(store.read((db) => distinctPrefixLengths(db, [apart], 4)).get(apart)).toBe(4);
  });
});
