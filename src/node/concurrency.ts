/**
 * A cap on the invocations one node may have in flight here at once, so that a single busy or
 * misbehaving peer cannot take every backend connection (DESIGN §5).
 */
export class ConcurrencyLimiter {
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly maxPerKey: number) {}

  /** A release function, or undefined when the key is at its cap. Release exactly once. */
  tryAcquire(key: string): (() => void) | undefined {
    const current = this.inFlight.get(key) ?? 0;
    if (current >= this.maxPerKey) return undefined;
    this.inFlight.set(key, current + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(key) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(key);
      else this.inFlight.set(key, left);
    };
  }

  count(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }
}
