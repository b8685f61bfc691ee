import { randomBytes, randomUUID } from 'node:crypto';
import { CHALLENGE_NONCE_BYTES, CHALLENGE_TTL_MS } from '../core/protocol/constants.js';

interface Challenge {
  nonce: string;
  /** The SPIFFE ID of the peer the challenge was issued to. */
  issuedTo: string;
  expiresAt: number;
}

export interface IssuedChallenge {
  id: string;
  nonce: string;
  expiresAt: Date;
}

export type ChallengeOutcome =
  | { ok: true; nonce: string }
  | {
      ok: false;
      code:
        'CHALLENGE_UNKNOWN' | 'CHALLENGE_REPLAYED' | 'CHALLENGE_EXPIRED' | 'CHALLENGE_NOT_YOURS';
      reason: string;
    };

/**
 * Single-use challenges held in the daemon's memory: only this daemon issues them, they live for
 * 60 s, and a restart invalidating the outstanding ones is harmless (the peer asks again).
 * Used IDs are remembered until they would have expired, to tell a replay from a typo.
 */
export class ChallengeStore {
  private readonly open = new Map<string, Challenge>();
  private readonly used = new Map<string, number>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly capacity = 10_000,
    private readonly perPeer = 64,
  ) {}

  /**
   * A fresh challenge for a peer, or why there is none: the table is full, or this peer already
   * holds its share of unanswered challenges (so that one peer cannot lock out all others).
   */
  issue(issuedTo: string): IssuedChallenge | 'full' | 'peer-limit' {
    this.sweep();
    if (this.open.size >= this.capacity) return 'full';
    const now = this.now();
    let held = 0;
    for (const challenge of this.open.values()) {
      if (challenge.issuedTo === issuedTo && challenge.expiresAt >= now) held++;
    }
    if (held >= this.perPeer) return 'peer-limit';
    const id = randomUUID();
    const nonce = randomBytes(CHALLENGE_NONCE_BYTES).toString('base64url');
    const expiresAt = now + CHALLENGE_TTL_MS;
    this.open.set(id, { nonce, issuedTo, expiresAt });
    return { id, nonce, expiresAt: new Date(expiresAt) };
  }

  /** Takes the challenge out, whatever the outcome: a challenge answers at most one attempt. */
  redeem(id: string, presenter: string): ChallengeOutcome {
    const challenge = this.open.get(id);
    if (!challenge) {
      return this.used.has(id)
        ? { ok: false, code: 'CHALLENGE_REPLAYED', reason: 'this challenge was already used' }
        : { ok: false, code: 'CHALLENGE_UNKNOWN', reason: 'no such challenge was issued' };
    }
    this.open.delete(id);
    this.used.set(id, challenge.expiresAt);
    if (this.now() > challenge.expiresAt) {
      return {
        ok: false,
        code: 'CHALLENGE_EXPIRED',
        reason: 'the challenge expired; ask for a new one',
      };
    }
    if (challenge.issuedTo !== presenter) {
      return {
        ok: false,
        code: 'CHALLENGE_NOT_YOURS',
        reason: 'the challenge was issued to another node',
      };
    }
    return { ok: true, nonce: challenge.nonce };
  }

  /** Forgets challenges a full TTL after they expired, so a late answer still hears "expired". */
  private sweep(): void {
    const horizon = this.now() - CHALLENGE_TTL_MS;
    for (const [id, challenge] of this.open)
      if (challenge.expiresAt < horizon) this.open.delete(id);
    for (const [id, expiresAt] of this.used) if (expiresAt < horizon) this.used.delete(id);
  }
}
