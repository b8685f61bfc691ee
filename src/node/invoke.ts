import type { DaemonMetrics } from './metrics.js';
import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AuditEventInput, AuditSink } from '../core/audit/events.js';
import { sha256Hex, signReceipt, type AuditOutcome, type Receipt } from '../core/audit/receipts.js';
import type { NodeIdentity } from '../core/identity/node-identity.js';
import {
  InvokeRequest,
  type CatalogResource,
  type InvokeResponse,
  type ResourceResponse,
  type ResourcesResponse,
} from '../core/protocol/schemas.js';
import type { ClaimedIdentity } from '../core/trust/peer-identity.js';
import type { Backends } from './backends.js';
import type { ConcurrencyLimiter } from './concurrency.js';
import { HttpError, readJsonBody } from './http-io.js';
import type { Logger } from './logger.js';
import type { CallingNode } from './policy.js';
import type { RateLimit, RateLimiter } from './rate-limit.js';
import { catalogEntry } from './resources.js';
import type { ServedConfig } from './served-files.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_CONCURRENT_PER_NODE,
  DEFAULT_RATE_LIMIT_BURST,
  DEFAULT_RATE_LIMIT_PER_HOUR,
} from './invocation-defaults.js';

/**
 * The serving side of federated invocation (DESIGN §5, §7): the `resources` catalog filtered by
 * policy, and `invoke`, whose every answer after authentication (success, refusal or failure)
 * is an InvokeResponse with the correlation ID and a receipt signed by this node, and is sent
 * only once its inbound audit event is committed.
 */

export const DEFAULT_INVOCATION_SETTINGS: InvocationSettings = {
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  rateLimit: { perHour: DEFAULT_RATE_LIMIT_PER_HOUR, burst: DEFAULT_RATE_LIMIT_BURST },
  maxConcurrentPerNode: DEFAULT_MAX_CONCURRENT_PER_NODE,
};

/** What the receipt and the audit event name when the body could not be read or understood. */
const UNREAD = { principal: '', resource: '-', capability: '-' } as const;
/** request_sha256 of a request whose arguments were never read: the hash of no bytes. */
export const NO_ARGUMENTS_SHA256 = sha256Hex('');

export interface InvocationSettings {
  maxBodyBytes: number;
  rateLimit: RateLimit;
  maxConcurrentPerNode: number;
}

export interface InvocationDependencies {
  identity: NodeIdentity;
  privateKey: KeyObject;
  /** The catalog and policy, replaced whole when `serve` reloads its files. */
  served: ServedConfig;
  backends: Backends;
  audit: Pick<AuditSink, 'append'>;
  rateLimiter: RateLimiter;
  concurrency: ConcurrencyLimiter;
  settings: InvocationSettings;
  logger: Logger;
  now: () => Date;
  /** federation_invocation_requests_total and _duration_seconds. */
  metrics?: Pick<DaemonMetrics, 'recordInvocation'>;
}

export interface InvokeCall {
  peer: ClaimedIdentity;
  correlationId: string;
  request: IncomingMessage;
}

export interface InvokeAnswer {
  status: number;
  body: InvokeResponse;
  headers: Record<string, string>;
}

/** The call as far as it is known: placeholders until the body is understood. */
interface Subject {
  principal: string;
  resource: string;
  capability: string;
  requestSha256: string;
  requestSize: number | null;
}

interface Outcome {
  status: number;
  outcome: AuditOutcome;
  result?: unknown;
  error?: { code: string; message: string };
  headers?: Record<string, string>;
}

export class InvocationService {
  constructor(private readonly deps: InvocationDependencies) {}

  /** GET resources: what this node may use here, for any of its principals. */
  resources(peer: CallingNode): ResourcesResponse {
    return {
      node_id: this.deps.identity.nodeId,
      resources: this.deps.served.catalog.catalogFor((resource, capability) =>
        this.deps.served.policy.mayList(peer, resource, capability),
      ),
    };
  }

  /** GET resources/:id, or 404 UNKNOWN_RESOURCE when it is not served or not shown to the peer. */
  resource(peer: CallingNode, id: string): ResourceResponse {
    const { catalog, policy } = this.deps.served;
    const served = catalog.resource(id);
    const entry =
      served &&
      catalogEntry(served, (resource, capability) => policy.mayList(peer, resource, capability));
    if (!entry) {
      throw new HttpError(404, 'UNKNOWN_RESOURCE', `no resource ${id} is served to you here`);
    }
    return { node_id: this.deps.identity.nodeId, resource: entry };
  }

  /** What this node may use on itself: the `local_catalog` the CLI's `route` reads. */
  localCatalog(): CatalogResource[] {
    return this.resources(this.deps.identity).resources;
  }

  async invoke(call: InvokeCall): Promise<InvokeAnswer> {
    const started = process.hrtime.bigint();
    const subject: Subject = {
      ...UNREAD,
      requestSha256: NO_ARGUMENTS_SHA256,
      requestSize: null,
    };
    let release: (() => void) | undefined;
    try {
      let outcome: Outcome;
      try {
        outcome = await this.execute(call, subject, (slot) => {
          release = slot;
        });
      } catch (error) {
        outcome = failure(error);
        if (!(error instanceof HttpError)) {
          this.deps.logger.error('invocation failed', {
            correlation_id: call.correlationId,
            error: String(error),
          });
        }
      }
      return await this.answer(call, subject, outcome, started);
    } finally {
      release?.();
    }
  }

  private async execute(
    call: InvokeCall,
    subject: Subject,
    hold: (release: () => void) => void,
  ): Promise<Outcome> {
    const { deps } = this;
    const raw = await readJsonBody(call.request, deps.settings.maxBodyBytes);
    const parsed = InvokeRequest.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
      // zod says "expected nonoptional, received undefined" of a missing `arguments`.
      const reason = issue?.message.endsWith('received undefined')
        ? 'required (send null for no arguments)'
        : (issue?.message ?? 'malformed');
      return refusal(400, 'INVALID_BODY', `invalid invoke request${where}: ${reason}`);
    }
    const body = parsed.data;
    // Hashed as JSON.stringify writes the parsed arguments, which a JavaScript caller gets by
    // stringifying the very object it sent (docs/resources.md: receipts).
    const argumentsJson = JSON.stringify(body.arguments ?? null);
    Object.assign(subject, {
      principal: body.principal_id,
      resource: body.resource_id,
      capability: body.capability_id,
      requestSha256: sha256Hex(argumentsJson),
      requestSize: Buffer.byteLength(argumentsJson),
    });

    const limited = this.rateLimited(call.peer);
    if (limited) {
      return {
        ...refusal(limited.status, limited.code, limited.message),
        outcome: 'denied',
        headers: limited.headers,
      };
    }
    const slot = deps.concurrency.tryAcquire(call.peer.nodeId);
    if (!slot) {
      return {
        ...refusal(
          503,
          'BUSY',
          `node ${call.peer.nodeId} already has ${deps.settings.maxConcurrentPerNode} calls in progress here`,
        ),
        headers: { 'retry-after': '1' },
      };
    }
    hold(slot);

    // Taken together once: a reload between the lookups cannot pair a capability of one file
    // with a rule of another.
    const { catalog, policy } = deps.served;
    const resource = catalog.resource(body.resource_id);
    if (!resource) {
      return refusal(404, 'UNKNOWN_RESOURCE', `no resource ${body.resource_id} is served here`);
    }
    const capability = catalog.capability(resource, body.capability_id);
    if (!capability) {
      return refusal(
        404,
        'UNKNOWN_CAPABILITY',
        `resource ${resource.id} has no capability ${body.capability_id}`,
      );
    }
    const decision = policy.decide({
      nodeId: call.peer.nodeId,
      spiffeId: call.peer.spiffeId,
      principal: body.principal_id,
      resource: resource.id,
      capability: capability.id,
    });
    if (!decision.allowed) {
      deps.logger.warn('invocation denied by policy', {
        correlation_id: call.correlationId,
        node: call.peer.nodeId,
        principal: body.principal_id,
        resource: resource.id,
        capability: capability.id,
        reason: decision.reason,
        rule: decision.rule,
      });
      return {
        ...refusal(
          403,
          'POLICY_DENIED',
          `the policy of ${deps.identity.nodeId} does not let ${body.principal_id} on ${call.peer.nodeId} use ${resource.id}/${capability.id}`,
        ),
        outcome: 'denied',
      };
    }

    const ran = await deps.backends.run(
      capability.backend,
      body.arguments ?? null,
      {
        correlationId: call.correlationId,
        principal: body.principal_id,
        sourceNode: call.peer.nodeId,
        sourceSpiffeId: call.peer.spiffeId,
        resource: resource.id,
        capability: capability.id,
        traceparent: headerValue(call.request.headers.traceparent),
      },
      catalog.tlsOf(capability.backend),
    );
    if (ran.ok) return { status: 200, outcome: 'success', result: ran.result ?? null };
    if (ran.detail !== undefined) {
      deps.logger.warn('backend failed', {
        correlation_id: call.correlationId,
        resource: resource.id,
        capability: capability.id,
        detail: ran.detail,
      });
    }
    switch (ran.kind) {
      case 'timeout':
        return { ...refusal(504, 'BACKEND_TIMEOUT', ran.message), outcome: 'timeout' };
      case 'bad-arguments':
        return refusal(400, 'INVALID_ARGUMENTS', ran.message);
      default:
        return refusal(502, 'BACKEND_ERROR', ran.message);
    }
  }

  /**
   * Takes one token of the node's bucket: the refusal (429 with Retry-After) when it has none.
   * Invocations and audit queries draw on the same bucket.
   */
  rateLimited(peer: ClaimedIdentity): HttpError | undefined {
    const limit = this.rateLimitFor(peer);
    const rate = this.deps.rateLimiter.take(peer.nodeId, limit);
    if (rate.allowed) return undefined;
    return new HttpError(
      429,
      'RATE_LIMITED',
      `node ${peer.nodeId} exceeded ${limit.perHour} calls an hour (burst ${limit.burst}); retry in ${rate.retryAfterSeconds} s`,
      { 'retry-after': String(rate.retryAfterSeconds) },
    );
  }

  private rateLimitFor(peer: ClaimedIdentity): RateLimit {
    const override = this.deps.served.policy.rateLimitFor(peer);
    if (!override) return this.deps.settings.rateLimit;
    return {
      perHour: override.perHour,
      burst: override.burst ?? this.deps.settings.rateLimit.burst,
    };
  }

  /**
   * Signs the receipt, commits the audit event, and only then lets the answer go: a caller never
   * holds a receipt that this node's audit trail could lack.
   */
  private async answer(
    call: InvokeCall,
    subject: Subject,
    outcome: Outcome,
    started: bigint,
  ): Promise<InvokeAnswer> {
    const { deps } = this;
    const durationUs = Number((process.hrtime.bigint() - started) / 1000n);
    const resultJson = outcome.outcome === 'success' ? JSON.stringify(outcome.result) : null;
    const timestamp = deps.now().toISOString();
    const receiptOf = (result: string | null, verdict: AuditOutcome): Receipt =>
      signReceipt(deps.privateKey, {
        correlation_id: call.correlationId,
        source: call.peer.spiffeId,
        target: deps.identity.spiffeId,
        principal: subject.principal,
        resource: subject.resource,
        capability: subject.capability,
        request_sha256: subject.requestSha256,
        outcome: verdict,
        result_sha256: result === null ? null : sha256Hex(result),
        timestamp,
      });
    let receipt = receiptOf(resultJson, outcome.outcome);
    const event: AuditEventInput = {
      correlationId: call.correlationId,
      time: timestamp,
      direction: 'inbound',
      sourceNode: call.peer.nodeId,
      targetNode: deps.identity.nodeId,
      principal: subject.principal,
      resource: subject.resource,
      capability: subject.capability,
      outcome: outcome.outcome,
      statusCode: outcome.status,
      errorCode: outcome.error?.code ?? null,
      durationUs,
      requestSha256: subject.requestSha256,
      requestSize: subject.requestSize,
      resultSha256: receipt.result_sha256,
      resultSize: resultJson === null ? null : Buffer.byteLength(resultJson),
      receipt,
    };
    try {
      await deps.audit.append(event);
    } catch (error) {
      deps.logger.error('audit append failed', {
        correlation_id: call.correlationId,
        error: String(error),
      });
      // Whatever the backend did, the caller is told it failed: the node could not record it.
      outcome = refusal(
        500,
        'AUDIT_UNAVAILABLE',
        'the node could not record the call in its audit trail',
      );
      receipt = receiptOf(null, 'error');
    }
    deps.metrics?.recordInvocation(
      {
        node: call.peer.nodeId,
        resource: subject.resource,
        capability: subject.capability,
        outcome: outcome.outcome,
      },
      durationUs / 1e6,
    );
    const body: InvokeResponse = {
      correlation_id: call.correlationId,
      success: outcome.outcome === 'success',
      result: outcome.outcome === 'success' ? outcome.result : null,
      ...(outcome.error ? { error: { ...outcome.error, correlation_id: call.correlationId } } : {}),
      duration_ms: durationUs / 1000,
      receipt,
    };
    return { status: outcome.status, body, headers: outcome.headers ?? {} };
  }
}

function refusal(status: number, code: string, message: string): Outcome {
  return { status, outcome: 'error', error: { code, message } };
}

/** Errors thrown while reading the body (413, 415, 400) and anything unexpected (500). */
function failure(error: unknown): Outcome {
  if (error instanceof HttpError) return refusal(error.status, error.code, error.message);
  return refusal(500, 'INTERNAL', 'the node failed to answer');
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
