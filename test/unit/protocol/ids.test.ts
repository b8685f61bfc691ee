import { describe, expect, it } from 'vitest';
import { newCorrelationId, newEventId, uuidV7 } from '../../../src/core/protocol/ids.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const millisecondsOf = (id: string) => Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16);

describe('generated IDs (UUIDv7)', () => {
  it('are version 7, RFC 9562 variant, stamped with the current Unix milliseconds', () => {
    const before = Date.now();
    const ids = [newCorrelationId(), newEventId()];
    const after = Date.now();
    for (const id of ids) {
      expect(id).toMatch(UUID_V7);
      expect(millisecondsOf(id)).toBeGreaterThanOrEqual(before);
      expect(millisecondsOf(id)).toBeLessThanOrEqual(after);
    }
  });

  it('strictly increase, and never repeat, many to a millisecond', () => {
    const ids = Array.from({ length: 20_000 }, () => newEventId());
    expect(new Set(ids).size).toBe(ids.length);
    for (let index = 1; index < ids.length; index++) {
      expect(ids[index]! > ids[index - 1]!).toBe(true);
    }
    // Most of them shared a millisecond with the one before: the counter, not the clock, ordered them.
    const sameMillisecond = ids.filter(
      (id, index) => index > 0 && millisecondsOf(id) === millisecondsOf(ids[index - 1]!),
    ).length;
    expect(sameMillisecond).toBeGreaterThan(ids.length / 2);
  });

  it('keep increasing when the clock steps back, holding the last millisecond', () => {
    const later = Date.now() + 60_000;
    const first = uuidV7(later);
    const second = uuidV7(later - 5_000);
    const third = uuidV7(later - 10_000);
    expect(second > first && third > second).toBe(true);
    expect([first, second, third].map(millisecondsOf)).toEqual([later, later, later]);
    expect(third).toMatch(UUID_V7);
  });

  it('end in 40 random bits, so that two processes counting in the same millisecond differ', () => {
    // The last 10 hex digits are past the counter: random, not a sequence.
    const tails = Array.from({ length: 1000 }, () => newCorrelationId().slice(-10));
    expect(new Set(tails).size).toBe(1000);
    const sequential = tails.filter(
      (tail, index) =>
        index > 0 && Number.parseInt(tail, 16) === Number.parseInt(tails[index - 1]!, 16) + 1,
    );
    expect(sequential).toEqual([]);
  });
});
