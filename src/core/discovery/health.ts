import type { KeyObject } from 'node:crypto';
import { newCorrelationId } from '../protocol/ids.js';
import { performance } from 'node:perf_hooks';
import { messageOf, SarkError } from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { PATHS } from '../protocol/constants.js';
import { HealthResponse } from '../protocol/schemas.js';
import type { HealthStatus, NodeHealth } from '../state/discovery-repository.js';
import { authenticateChain, isChainFailure, type TrustMaterial } from '../trust/authenticate.js';
import { PeerClient } from '../trust/peer-client.js';

export interface HealthTarget {
  nodeId: string;
  endpoint: string;
  /** Set for a peer this node pinned: any other certificate makes the node degraded. */
  pinnedFingerprint: string | null;
}

export interface HealthCheckOptions {
  identity: NodeIdentity;
  privateKey: KeyObject;
  material: TrustMaterial;
  timeoutMs: number;
  now: () => Date;
}

/**
 * Asks one node's health endpoint over mutual TLS. `online`: it answered healthy with a
 * certificate we accept; `degraded`: it answered, but unhealthy, with an error, or with a
 * certificate that fails our checks; `offline`: no answer (refused, unreachable, timed out).
 * Nodes of trust domains we hold no anchor for are still asked: health is not trust.
 */
export async function checkNodeHealth(
  target: HealthTarget,
  options: HealthCheckOptions,
): Promise<NodeHealth> {
  let certificateProblem: string | null = null;
  const client = new PeerClient(
    target.endpoint,
    options.identity,
    options.privateKey,
    (chain) => {
      const result = authenticateChain(chain, options.material, options.now());
      if (isChainFailure(result)) {
        if (result.code !== 'UNKNOWN_TRUST_DOMAIN') certificateProblem = result.reason;
        return;
      }
      if (result.nodeId !== target.nodeId) {
        certificateProblem = `its certificate names ${result.nodeId}`;
      } else if (target.pinnedFingerprint && result.fingerprint !== target.pinnedFingerprint) {
        certificateProblem = 'its certificate does not match the pinned fingerprint';
      }
    },
    options.timeoutMs,
  );
  const started = performance.now();
  const report = (status: HealthStatus, detail: string | null, latencyMs: number | null) => ({
    nodeId: target.nodeId,
    status,
    latencyMs: latencyMs === null ? null : Math.round(latencyMs * 10) / 10,
    detail,
    checkedAt: options.now().toISOString(),
  });
  try {
    const response = await client.send({
      method: 'GET',
      path: PATHS.health,
      correlationId: newCorrelationId(),
    });
    const latency = performance.now() - started;
    if (certificateProblem) return report('degraded', certificateProblem, latency);
    if (response.status !== 200) {
      const code =
        (response.body as { error?: { code?: string } } | null)?.error?.code ??
        `HTTP ${response.status}`;
      return report('degraded', `answered ${response.status} ${code}`, latency);
    }
    const parsed = HealthResponse.safeParse(response.body);
    if (!parsed.success)
      return report('degraded', 'answered with a malformed health document', latency);
    if (parsed.data.status !== 'healthy') {
      const failing = Object.entries(parsed.data.checks)
        .filter(([, check]) => check.status !== 'ok')
        .map(([name, check]) => `${name}: ${check.detail}`);
      return report('degraded', failing.join('; ') || 'reports itself degraded', latency);
    }
    return report('online', null, latency);
  } catch (error) {
    const detail = error instanceof SarkError ? error.message : messageOf(error);
    return report('offline', detail, null);
  } finally {
    client.close();
  }
}

/** Checks many nodes concurrently (a bounded number at a time), in the order given. */
export async function checkHealthOfNodes(
  targets: readonly HealthTarget[],
  options: HealthCheckOptions & { concurrency?: number },
): Promise<NodeHealth[]> {
  const results: NodeHealth[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const index = next++;
      results[index] = await checkNodeHealth(targets[index] as HealthTarget, options);
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? 16, targets.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}
