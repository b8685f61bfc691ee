import { randomFillSync } from 'node:crypto';

/**
 * Correlation IDs and audit event IDs are UUIDv7 (RFC 9562 §5.7): time-ordered. Both are indexed
 * in audit_events (event_id UNIQUE, correlation_id for `audit query --correlation-id`); random
 * (v4) keys land on a random leaf page of each index, so every group commit of the daemon
 * rewrote one page per row per index into the WAL, while increasing keys share the rightmost page
 * (the daemon answered 2,799/s against 2,435/s with v4; docs/benchmarks.md, invoke). Operators
 * also get IDs that sort in the order the calls were made.
 *
 * Written here rather than taken from the `uuid` package: its generator draws each ID's random
 * bytes through WebCrypto's getRandomValues, which Node 20 loads on first use (~3 ms of every
 * one-shot `invoke`) and which costs ~4 µs a call against ~0.4 µs for crypto.randomUUID's pooled
 * bytes. This one draws from a pooled buffer the same way.
 *
 * Layout (RFC 9562 §6.2, method 1: a fixed-length dedicated counter after the timestamp): 48
 * bits of Unix milliseconds, the version, a 31-bit counter spread over rand_a and the top of
 * rand_b (seeded at random each new millisecond, below 2^30 so that it has room to count), the
 * variant, then 43 random bits. Within one process the IDs strictly increase, also when the clock steps back.
 *
 * IDs given by a caller or a peer are accepted in any UUID version.
 */
export function newCorrelationId(): string {
  return uuidV7();
}

export function newEventId(): string {
  return uuidV7();
}

const POOL_SIZE = 16 * 256;
const pool = Buffer.alloc(POOL_SIZE);
let poolOffset = POOL_SIZE;
let lastMs = -1;
let counter = 0;
const COUNTER_LIMIT = 2 ** 31;

function randomBytes(count: number): Buffer {
  if (poolOffset + count > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + count);
  poolOffset += count;
  return bytes;
}

export function uuidV7(now: number = Date.now()): string {
  const random = randomBytes(10);
  if (now > lastMs) {
    lastMs = now;
    counter = random.readUInt32BE(6) & 0x3fffffff;
  } else if (++counter >= COUNTER_LIMIT) {
    // 2^30 or more IDs in one millisecond, or a clock that stepped back that far: borrow the
    // next millisecond rather than repeat or reorder.
    lastMs += 1;
    counter = random.readUInt32BE(6) & 0x3fffffff;
  }
  const bytes = Buffer.allocUnsafe(16);
  bytes.writeUIntBE(lastMs, 0, 6);
  bytes[6] = 0x70 | ((counter >>> 27) & 0x0f);
  bytes[7] = (counter >>> 19) & 0xff;
  bytes[8] = 0x80 | ((counter >>> 13) & 0x3f);
  bytes[9] = (counter >>> 5) & 0xff;
  bytes[10] = ((counter << 3) & 0xf8) | (random[0]! & 0x07);
  random.copy(bytes, 11, 1, 6);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
