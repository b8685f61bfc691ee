import { messageOf, SarkError, UnavailableError } from '../errors.js';
import { deadlineReason } from './method-support.js';
import {
  byPrecedence,
  DISCOVERY_METHODS,
  methodOf,
  methodsOf,
  type DiscoveredNode,
  type DiscoveryMethod,
  type MethodContext,
  type MethodProblem,
} from './types.js';

/**
 * One discovery method, ready to run: it reports each node it resolves through `found` as soon
 * as it has it (so `--expect` and `--watch` need not wait), and returns when it has nothing more
 * to say or its signal is aborted. Throwing means the whole method failed; a bad record or packet
 * is only `context.skipped(...)`.
 */
export interface MethodRunner {
  method: DiscoveryMethod;
  run(context: MethodContext, found: (node: DiscoveredNode) => void): Promise<void>;
}

/** A node as the scan reports it: every method's sighting merged under one node ID. */
export interface ScannedNode {
  nodeId: string;
  endpoint: string;
  trustDomain: string | null;
  fingerprint: string | null;
  /** The methods that saw it, in DISCOVERY_METHODS order. */
  via: DiscoveryMethod[];
  /** The shortest TTL among the sightings: how long the merged record may be cached. */
  ttlSeconds: number;
  sightings: DiscoveredNode[];
}

export interface ScanOptions {
  runners: readonly MethodRunner[];
  timeoutMs: number;
  /** Stop as soon as this many distinct nodes are resolved. */
  expect?: number | undefined;
  /** Ctrl-C and the like: ends the scan early with what was found. */
  signal?: AbortSignal | undefined;
  now?: () => Date;
  /** Called for each node the first time it is resolved (for progress, `--expect`). */
  onNode?: (node: ScannedNode) => void;
}

export interface ScanResult {
  nodes: ScannedNode[];
  problems: MethodProblem[];
  /** Skipped records and packets per method (malformed, pointing nowhere, wrong type). */
  skipped: Array<{ method: DiscoveryMethod; detail: string }>;
  notices: Array<{ method: DiscoveryMethod; detail: string }>;
  /** Methods that completed without failing. */
  succeeded: DiscoveryMethod[];
  elapsedMs: number;
  /** True when `expect` nodes were found before the deadline. */
  expectMet: boolean;
}

/** How long a method may take to wind down once the scan's signal is aborted. */
const ABORT_GRACE_MS = 500;

/**
 * Runs the methods concurrently under one deadline and merges their sightings by node ID. A
 * method's failure is a problem in the result, never an exception: the caller decides that only
 * all methods failing fails the scan.
 */
export async function scan(options: ScanOptions): Promise<ScanResult> {
  const now = options.now ?? (() => new Date());
  const started = Date.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(deadlineReason()), options.timeoutMs);
  const onOuterAbort = () => controller.abort();
  if (options.signal?.aborted) controller.abort();
  else options.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const merged = new Map<string, ScannedNode>();
  const problems: MethodProblem[] = [];
  const skipped: ScanResult['skipped'] = [];
  const notices: ScanResult['notices'] = [];
  const succeeded: DiscoveryMethod[] = [];
  let expectMet = false;
  let finished = false;

  const found = (sighting: DiscoveredNode) => {
    if (finished) return;
    const existing = merged.get(sighting.nodeId);
    if (!existing) {
      const node: ScannedNode = {
        nodeId: sighting.nodeId,
        endpoint: sighting.endpoint,
        trustDomain: sighting.trustDomain,
        fingerprint: sighting.fingerprint,
        via: [methodOf(sighting.source)],
        ttlSeconds: sighting.ttlSeconds,
        sightings: [sighting],
      };
      merged.set(sighting.nodeId, node);
      options.onNode?.(node);
      if (options.expect !== undefined && merged.size >= options.expect) {
        expectMet = true;
        controller.abort();
      }
      return;
    }
    const index = existing.sightings.findIndex((item) => item.source === sighting.source);
    if (index === -1) existing.sightings.push(sighting);
    else existing.sightings[index] = sighting;
    mergeInto(existing);
  };

  const pending = new Set(options.runners);
  // A method that goes on after the scan's signal is aborted is left behind after a short grace:
  // the deadline bounds the scan whatever a method does.
  let graceTimer: NodeJS.Timeout | undefined;
  const abandoned = new Promise<void>((resolve) => {
    const onAbort = () => {
      graceTimer = setTimeout(resolve, ABORT_GRACE_MS);
    };
    if (controller.signal.aborted) onAbort();
    else controller.signal.addEventListener('abort', onAbort, { once: true });
  });

  try {
    const all = Promise.all(
      options.runners.map(async (runner) => {
        const context: MethodContext = {
          signal: controller.signal,
          notice: (detail) => {
            if (!finished) notices.push({ method: runner.method, detail });
          },
          skipped: (detail) => {
            if (!finished) skipped.push({ method: runner.method, detail });
          },
          now,
        };
        try {
          await runner.run(context, (node) => {
            if (!controller.signal.aborted || methodOf(node.source) === 'manual') found(node);
          });
          if (!finished) succeeded.push(runner.method);
        } catch (error) {
          if (finished) return;
          if (controller.signal.aborted && isAbort(error)) {
            succeeded.push(runner.method);
            return;
          }
          problems.push(problemOf(runner.method, error));
        } finally {
          pending.delete(runner);
        }
      }),
    );
    await Promise.race([all, abandoned]);
  } finally {
    finished = true;
    controller.abort();
    clearTimeout(timer);
    clearTimeout(graceTimer);
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
  for (const runner of pending) {
    problems.push({
      method: runner.method,
      code: 'METHOD_DID_NOT_STOP',
      message: `${runner.method} did not stop when the scan ended; what it found until then is kept`,
    });
  }
  return {
    nodes: [...merged.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId)),
    problems,
    skipped,
    notices,
    succeeded: DISCOVERY_METHODS.filter((method) => succeeded.includes(method)),
    elapsedMs: Date.now() - started,
    expectMet,
  };
}

/**
 * The merged view prefers, field by field, the first sighting in SIGHTING_SOURCES order that has
 * a value: the live methods first, then what the operator recorded by hand (`nodes add`), then a
 * nodes file's entry. What was written down would be out of date sooner than what a node
 * announces where it runs, so manual is consulted for the endpoint only when no live method saw
 * the node; and what was typed with `nodes add` wins over a file.
 */
function mergeInto(node: ScannedNode): void {
  const ordered = byPrecedence(node.sightings);
  node.via = methodsOf(ordered.map((sighting) => sighting.source));
  node.endpoint = (ordered[0] as DiscoveredNode).endpoint;
  node.trustDomain = ordered.find((item) => item.trustDomain !== null)?.trustDomain ?? null;
  node.fingerprint = ordered.find((item) => item.fingerprint !== null)?.fingerprint ?? null;
  node.ttlSeconds = Math.min(...ordered.map((item) => item.ttlSeconds));
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

function problemOf(method: DiscoveryMethod, error: unknown): MethodProblem {
  if (error instanceof SarkError) {
    return { method, code: error.code, message: error.message, hint: error.hint };
  }
  const wrapped = new UnavailableError('METHOD_FAILED', `${method}: ${messageOf(error)}`);
  return { method, code: wrapped.code, message: wrapped.message };
}
