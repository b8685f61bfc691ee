import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter } from '../../../src/node/concurrency.js';
import { RateLimiter } from '../../../src/node/rate-limit.js';

describe('RateLimiter', () => {
  it('allows a burst, then refuses with the seconds until the next call is earned', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const limit = { perHour: 60, burst: 3 }; // one call a minute
    for (let i = 0; i < 3; i++) expect(limiter.take('node-a', limit)).toEqual({ allowed: true });
    expect(limiter.take('node-a', limit)).toEqual({ allowed: false, retryAfterSeconds: 60 });
    now = 45_000;
    expect(limiter.take('node-a', limit)).toEqual({ allowed: false, retryAfterSeconds: 15 });
    now = 60_000;
    expect(limiter.take('node-a', limit)).toEqual({ allowed: true });
    expect(limiter.take('node-a', limit)).toMatchObject({ allowed: false });
  });

  it('keeps one bucket per node', () => {
    const limiter = new RateLimiter(() => 0);
    const limit = { perHour: 1, burst: 1 };
    expect(limiter.take('node-a', limit).allowed).toBe(true);
    expect(limiter.take('node-a', limit).allowed).toBe(false);
    expect(limiter.take('node-b', limit).allowed).toBe(true);
  });

  it('never earns more than the burst, however long the node was quiet', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const limit = { perHour: 3600, burst: 2 };
    limiter.take('node-a', limit);
    now = 10 * 3_600_000;
    expect(limiter.take('node-a', limit).allowed).toBe(true);
    expect(limiter.take('node-a', limit).allowed).toBe(true);
    expect(limiter.take('node-a', limit)).toEqual({ allowed: false, retryAfterSeconds: 1 });
  });

  it('says at least one second, and rounds up', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const limit = { perHour: 7200, burst: 1 }; // one call every 500 ms
    limiter.take('node-a', limit);
    expect(limiter.take('node-a', limit)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    const slow = { perHour: 7, burst: 1 }; // one call every 514.28... s
    limiter.take('node-b', slow);
    now = 1;
    expect(limiter.take('node-b', slow)).toEqual({ allowed: false, retryAfterSeconds: 515 });
  });

  it('starts a node afresh when its limit changes', () => {
    const limiter = new RateLimiter(() => 0);
    expect(limiter.take('node-a', { perHour: 1, burst: 1 }).allowed).toBe(true);
    expect(limiter.take('node-a', { perHour: 1, burst: 1 }).allowed).toBe(false);
    expect(limiter.take('node-a', { perHour: 10, burst: 1 }).allowed).toBe(true);
  });
});

describe('ConcurrencyLimiter', () => {
  it('caps each key, and frees a slot once per release', () => {
    const limiter = new ConcurrencyLimiter(2);
    const first = limiter.tryAcquire('node-a');
    const second = limiter.tryAcquire('node-a');
    expect(first && second).toBeTruthy();
    expect(limiter.tryAcquire('node-a')).toBeUndefined();
    expect(limiter.tryAcquire('node-b')).toBeDefined();
    first?.();
    first?.();
    expect(limiter.count('node-a')).toBe(1);
    expect(limiter.tryAcquire('node-a')).toBeDefined();
    expect(limiter.tryAcquire('node-a')).toBeUndefined();
  });
});
