import { setTimeout as delay } from 'node:timers/promises';

/**
 * Exponential backoff with full jitter (DESIGN §6): before attempt n+1 wait a uniformly random
 * time in [0, min(cap, base · 2^(n-1))). Full jitter spreads the retries of many callers that
 * failed together, which is what a peer coming back needs most.
 */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
  /** Attempts per candidate node, the first one included. */
  attempts: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 100, capMs: 2_000, attempts: 3 };

/** The wait before the attempt that follows attempt number `attempt` (1-based). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/** Sleeps, or rejects when the signal aborts; injectable so tests need not wait. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const realSleep: Sleep = async (ms, signal) => {
  await delay(ms, undefined, { signal });
};

/**
 * One deadline for a whole command: every attempt, every wait and every catalog query fits in
 * it. The timer is referenced on purpose: a CLI process must not exit while it still waits.
 */
export class Deadline {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly endsAt: number;

  constructor(
    readonly totalMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.endsAt = clock() + totalMs;
    this.signal = this.controller.signal;
    this.timer = setTimeout(
      () => this.controller.abort(new DeadlineExceeded(totalMs)),
      Math.max(0, totalMs),
    );
  }

  remaining(): number {
    return Math.max(0, this.endsAt - this.clock());
  }

  get expired(): boolean {
    return this.signal.aborted || this.remaining() <= 0;
  }

  /** A signal that aborts at the deadline or after ms, whichever comes first. */
  within(ms: number): AbortSignal {
    return AbortSignal.any([this.signal, AbortSignal.timeout(Math.max(1, Math.ceil(ms)))]);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}

export class DeadlineExceeded extends Error {
  constructor(readonly totalMs: number) {
    super(`the deadline of ${totalMs} ms ran out`);
    this.name = 'DeadlineExceeded';
  }
}
