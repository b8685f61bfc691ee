import type { KeyObject } from 'node:crypto';
import { UsageError } from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import type { StateStore } from '../state/database.js';
import { trustMaterial } from '../trust/trust-material.js';
import { CircuitBreakers, DEFAULT_BREAKER, type BreakerConfig } from './circuit-breaker.js';
import { PeerTransport } from './peer-transport.js';
import { Deadline } from './retry.js';

/**
 * The breaker settings, with the open duration overridable by SARK_FED_CIRCUIT_OPEN_MS. That
 * variable exists for tests (30 s is long to wait in one) and is documented as such.
 */
export function breakerConfig(env: Record<string, string | undefined>): BreakerConfig {
  const raw = env.SARK_FED_CIRCUIT_OPEN_MS;
  if (raw === undefined || raw === '') return DEFAULT_BREAKER;
  if (!/^\d+$/.test(raw) || Number(raw) > 86_400_000) {
    throw new UsageError('BAD_ENVIRONMENT', `SARK_FED_CIRCUIT_OPEN_MS=${raw} is not a duration`, {
      hint: 'give whole milliseconds, e.g. 2000, or unset it',
    });
  }
  return { ...DEFAULT_BREAKER, openMs: Number(raw) };
}

export interface RoutingSession {
  transport: PeerTransport;
  breakers: CircuitBreakers;
  deadline: Deadline;
  close(): Promise<void>;
}

/** What calling peers needs for one command: a transport, the shared circuits, one deadline. */
export function openRoutingSession(options: {
  store: StateStore;
  identity: NodeIdentity;
  privateKey: KeyObject;
  now: () => Date;
  env: Record<string, string | undefined>;
  timeoutMs: number;
}): RoutingSession {
  const breakers = new CircuitBreakers(options.store, breakerConfig(options.env), options.now);
  const transport = new PeerTransport({
    identity: options.identity,
    privateKey: options.privateKey,
    material: trustMaterial(options.store),
    now: options.now,
  });
  const deadline = new Deadline(options.timeoutMs);
  return {
    transport,
    breakers,
    deadline,
    async close() {
      deadline.dispose();
      await transport.close();
    },
  };
}
