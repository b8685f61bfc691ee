/**
 * Per-node token buckets (DESIGN §5): each calling node may make `burst` calls at once, and
 * earns them back at `perHour` an hour. Kept in the daemon's memory: a restart forgives.
 */
export interface RateLimit {
  perHour: number;
  burst: number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
  limit: RateLimit;
}

/** Buckets kept before full ones (indistinguishable from new ones) are forgotten. */
const PRUNE_ABOVE = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = Date.now) {}

  take(key: string, limit: RateLimit): RateDecision {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.limit.perHour !== limit.perHour || bucket.limit.burst !== limit.burst) {
      bucket = { tokens: limit.burst, updatedAt: now, limit };
      if (this.buckets.size >= PRUNE_ABOVE) this.prune(now);
      this.buckets.set(key, bucket);
    } else {
      refill(bucket, now);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    const perMs = limit.perHour / 3_600_000;
    const waitMs = (1 - bucket.tokens) / perMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      refill(bucket, now);
      if (bucket.tokens >= bucket.limit.burst) this.buckets.delete(key);
    }
  }
}

function refill(bucket: Bucket, now: number): void {
  const elapsed = Math.max(0, now - bucket.updatedAt);
  bucket.tokens = Math.min(
    bucket.limit.burst,
    bucket.tokens + (elapsed * bucket.limit.perHour) / 3_600_000,
  );
  bucket.updatedAt = now;
}
