import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BACKOFF,
  Deadline,
  DeadlineExceeded,
  backoffDelay,
} from '../../../src/core/routing/retry.js';

/** Full-jitter exponential backoff (DESIGN §6) and the one deadline of a command. */

describe('backoffDelay', () => {
  it('waits uniformly in [0, min(2 s, 100 ms · 2^(n-1))) before attempt n+1', () => {
    const ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
    ceilings.forEach((ceiling, index) => {
      const attempt = index + 1;
      expect(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0)).toBe(0);
      expect(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0.5)).toBe(ceiling / 2);
      // Math.random() is below 1: the ceiling itself is never reached.
      expect(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0.999_999)).toBe(ceiling - 1);
    });
  });

  it('spreads many callers over the whole window rather than one instant', () => {
    let seed = 42;
    // A small deterministic generator: the point is the spread, not the randomness source.
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const waits = Array.from({ length: 1000 }, () => backoffDelay(3, DEFAULT_BACKOFF, random));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...waits)).toBeLessThan(400);
    const quarters = [0, 1, 2, 3].map(
      (quarter) =>
        waits.filter((wait) => wait >= quarter * 100 && wait < (quarter + 1) * 100).length,
    );
    for (const count of quarters) expect(count).toBeGreaterThan(150);
  });

  it('defaults to 3 attempts, 100 ms base, 2 s cap', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 100, capMs: 2_000, attempts: 3 });
  });
});

describe('Deadline', () => {
  it('counts down on its clock and aborts its signal when it runs out', async () => {
    let now = 1_000;
    const deadline = new Deadline(50, () => now);
    expect(deadline.remaining()).toBe(50);
    now += 20;
    expect(deadline.remaining()).toBe(30);
    expect(deadline.expired).toBe(false);
    now += 40;
    expect(deadline.remaining()).toBe(0);
    expect(deadline.expired).toBe(true);
    await new Promise((resolve) => deadline.signal.addEventListener('abort', resolve));
    expect(deadline.signal.reason).toBeInstanceOf(DeadlineExceeded);
    deadline.dispose();
  });

  it('bounds a shorter wait within it, without ending the deadline itself', async () => {
    const deadline = new Deadline(10_000);
    const short = deadline.within(10);
    await new Promise((resolve) => short.addEventListener('abort', resolve));
    expect(deadline.signal.aborted).toBe(false);
    deadline.dispose();
  });
});
