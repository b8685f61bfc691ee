import { performance } from 'node:perf_hooks';
import { sha256Hex, verifyReceipt, type AuditOutcome, type Receipt } from '../audit/receipts.js';
import {
  NotFoundError,
  OperationError,
  RefusedError,
  TrustError,
  UnavailableError,
  messageOf,
  type SarkError,
} from '../errors.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { PATHS } from '../protocol/constants.js';
import type { InvokeRequest, InvokeResponse } from '../protocol/schemas.js';
import {
  AnswerTooLarge,
  NotSentError,
  isPeerTimeout,
  type PeerAnswer,
  type PeerTransport,
} from './peer-transport.js';
import { DeadlineExceeded } from './retry.js';
import type { CallTarget } from './target.js';
import { readErrorDocument, readInvokeResponse } from './wire.js';

/** request_sha256 of a request whose body the serving node never read: the hash of no bytes. */
const UNREAD_SHA256 = sha256Hex('');

/** One invocation as the caller asked for it. */
export interface InvokeCall {
  resource: string;
  capability: string;
  principal: string;
  arguments: unknown;
  correlationId: string;
  context?: Record<string, unknown>;
}

/**
 * What one attempt against one node came to, with what the retry loop needs to decide: whether
 * the capability may have run, whether trying again here or elsewhere could help, and whether
 * the attempt counts against the node's circuit.
 */
export interface AttemptOutcome {
  target: CallTarget;
  startedAt: string;
  /** Whole microseconds: audit events are hashed as canonical JSON, which takes integers only. */
  durationUs: number;
  /** HTTP status of the answer; null when there was none. */
  status: number | null;
  /** A connection to the node was made, so the request may have reached it (audited). */
  reached: boolean;
  /** The capability may have run: retrying it could run it twice unless it is idempotent. */
  mayHaveExecuted: boolean;
  /** Worth another attempt on the same node (after a backoff). */
  transient: boolean;
  /** Worth trying the next candidate node. */
  failover: boolean;
  /** Non-null when the attempt counts as a failure of the node's circuit. */
  circuitFailure: string | null;
  retryAfterMs: number | null;
  /** The verified answer of a successful call. */
  response: InvokeResponse | null;
  /** The receipt the node signed, once verified; stored with the audit event. */
  receipt: Receipt | null;
  resultSha256: string | null;
  resultSize: number | null;
  /** The peer's error code, or ours (TIMEOUT, UNREACHABLE, RECEIPT_INVALID...). */
  errorCode: string | null;
  auditOutcome: AuditOutcome;
  /** Null on success. */
  error: SarkError | null;
}

/** sha256 and size of the request arguments exactly as the serving node hashes them. */
export function argumentsDigest(args: unknown): { sha256: string; size: number } {
  const text = JSON.stringify(args ?? null);
  return { sha256: sha256Hex(text), size: Buffer.byteLength(text) };
}

/**
 * Runs one invoke request against one node and classifies what came back. Never throws: every
 * failure becomes an outcome, so that the caller can audit it and decide what to do next.
 */
export async function attemptInvoke(
  transport: PeerTransport,
  identity: NodeIdentity,
  target: CallTarget,
  call: InvokeCall,
  signal: AbortSignal,
  timeoutMs: number,
  now: () => Date,
): Promise<AttemptOutcome> {
  const startedAt = now().toISOString();
  const started = performance.now();
  const request: InvokeRequest = {
    resource_id: call.resource,
    capability_id: call.capability,
    principal_id: call.principal,
    arguments: call.arguments ?? null,
    ...(call.context ? { context: call.context } : {}),
  };
  const base = {
    target,
    startedAt,
    status: null,
    retryAfterMs: null,
    response: null,
    receipt: null,
    resultSha256: null,
    resultSize: null,
  };
  let answer: PeerAnswer;
  try {
    answer = await transport.request(target, {
      method: 'POST',
      path: PATHS.invoke,
      correlationId: call.correlationId,
      body: JSON.stringify(request),
      signal,
      timeoutMs,
    });
  } catch (error) {
    const durationUs = Math.round((performance.now() - started) * 1000);
    return { ...base, durationUs, ...classifyFailure(error, target, signal) };
  }
  const durationUs = Math.round((performance.now() - started) * 1000);
  return { ...base, durationUs, ...classifyAnswer(answer, identity, target, call) };
}

type Classified = Omit<
  AttemptOutcome,
  'target' | 'startedAt' | 'durationUs' | 'receipt' | 'response' | 'resultSha256' | 'resultSize'
> &
  Partial<Pick<AttemptOutcome, 'receipt' | 'response' | 'resultSha256' | 'resultSize'>>;

/** A call that got no answer: refused before sending, or lost or timed out after. */
function classifyFailure(error: unknown, target: CallTarget, signal: AbortSignal): Classified {
  const where = `${target.nodeId} (${target.endpoint})`;
  if (error instanceof NotSentError) {
    const reason = error.reason;
    if (reason instanceof TrustError) {
      return {
        status: null,
        reached: true,
        mayHaveExecuted: false,
        transient: false,
        failover: false,
        circuitFailure: reason.code,
        retryAfterMs: null,
        errorCode: reason.code,
        auditOutcome: 'denied',
        error: reason,
      };
    }
    const code = errnoCode(reason);
    return {
      status: null,
      reached: false,
      mayHaveExecuted: false,
      transient: true,
      failover: true,
      circuitFailure: code,
      retryAfterMs: null,
      errorCode: 'UNREACHABLE',
      auditOutcome: 'error',
      error: new UnavailableError('UNREACHABLE', `cannot reach ${where}: ${code}`, {
        cause: reason,
        hint: `check that ${target.nodeId} runs \`sark-fed serve\` at that endpoint`,
      }),
    };
  }
  if (error instanceof AnswerTooLarge) {
    return {
      status: null,
      reached: true,
      mayHaveExecuted: true,
      transient: false,
      failover: false,
      circuitFailure: null,
      retryAfterMs: null,
      errorCode: 'ANSWER_TOO_LARGE',
      auditOutcome: 'error',
      error: new OperationError('ANSWER_TOO_LARGE', `${where} answered with ${error.message}`, {
        hint: 'ask for less at once',
      }),
    };
  }
  const timedOut = signal.aborted || isPeerTimeout(error);
  if (timedOut) {
    const deadline = signal.reason instanceof DeadlineExceeded;
    return {
      status: null,
      reached: true,
      mayHaveExecuted: true,
      transient: true,
      failover: true,
      circuitFailure: 'TIMEOUT',
      retryAfterMs: null,
      errorCode: 'TIMEOUT',
      auditOutcome: 'timeout',
      error: new UnavailableError('TIMEOUT', `${where} did not answer in time`, {
        cause: error,
        hint: deadline
          ? 'raise --timeout, or check the peer with `sark-fed nodes health`'
          : 'check the peer with `sark-fed nodes health`',
      }),
    };
  }
  // The connection broke after the request may have been written (reset, closed by the peer).
  return {
    status: null,
    reached: true,
    mayHaveExecuted: true,
    transient: true,
    failover: true,
    circuitFailure: errnoCode(error),
    retryAfterMs: null,
    errorCode: 'CONNECTION_LOST',
    auditOutcome: 'error',
    error: new UnavailableError(
      'CONNECTION_LOST',
      `the connection to ${where} broke: ${messageOf(error)}`,
      { cause: error, hint: 'the call may or may not have run there; check its audit trail' },
    ),
  };
}

/** A call that got an HTTP answer: verify its receipt, then map its status to an outcome. */
function classifyAnswer(
  answer: PeerAnswer,
  identity: NodeIdentity,
  target: CallTarget,
  call: InvokeCall,
): Classified {
  const status = answer.status;
  const where = target.nodeId;
  const circuitFailure = status >= 500 ? `HTTP ${status}` : null;
  const common = {
    status,
    reached: true,
    retryAfterMs: answer.retryAfterMs,
    circuitFailure,
  };
  const response = readInvokeResponse(answer.body);
  const plain = response ? undefined : readErrorDocument(answer.body);

  const untrustworthy = (code: string, reason: string): Classified => ({
    ...common,
    mayHaveExecuted: true,
    transient: false,
    failover: false,
    errorCode: code,
    auditOutcome: 'error',
    error: new TrustError(code, `the receipt from ${where} does not verify: ${reason}`, {
      hint: `do not rely on this answer; the call may have run on ${where}`,
    }),
  });

  if (response) {
    const problem = receiptProblem(response, identity, target, call);
    if (problem) return untrustworthy('RECEIPT_INVALID', problem);
    const result = resultDigest(response);
    const verified = {
      receipt: response.receipt,
      resultSha256: result?.sha256 ?? null,
      resultSize: result?.size ?? null,
    };
    if (response.success && status >= 200 && status < 300) {
      return {
        ...common,
        ...verified,
        response,
        mayHaveExecuted: true,
        transient: false,
        failover: false,
        errorCode: null,
        auditOutcome: 'success',
        error: null,
      };
    }
    const code = response.error?.code ?? `HTTP_${status}`;
    const message = response.error?.message ?? 'no details';
    return {
      ...common,
      ...verified,
      ...failureFor(status, code, `${where} answered ${status} ${code}: ${message}`, call),
      auditOutcome: response.receipt.outcome,
    };
  }
  if (status >= 200 && status < 300) {
    return untrustworthy(
      'RECEIPT_MISSING',
      'the answer carries no well-formed invoke response and receipt',
    );
  }
  const code = plain?.code ?? `HTTP_${status}`;
  const message = plain?.message ?? 'no details';
  const failure = failureFor(status, code, `${where} answered ${status} ${code}: ${message}`, call);
  return {
    ...common,
    ...failure,
    auditOutcome:
      failure.error?.kind === 'trust' || failure.error?.kind === 'refused'
        ? 'denied'
        : status === 504
          ? 'timeout'
          : 'error',
  };
}

/** Trust refusals before any policy decision: the plain error documents of the daemon. */
const AUTHENTICATION_CODES = new Set([
  'NOT_TRUSTED',
  'REVOKED',
  'PIN_MISMATCH',
  'UNKNOWN_TRUST_DOMAIN',
  'PENDING_APPROVAL',
  'TRUST_EXPIRED',
  'IDENTITY_MISMATCH',
  'NO_CLIENT_CERTIFICATE',
  'BAD_SPIFFE_ID',
]);

function failureFor(
  status: number,
  code: string,
  message: string,
  call: InvokeCall,
): Pick<Classified, 'mayHaveExecuted' | 'transient' | 'failover' | 'errorCode' | 'error'> {
  const result = (
    error: SarkError,
    flags: { mayHaveExecuted: boolean; transient: boolean; failover: boolean },
  ) => ({ ...flags, errorCode: code, error });
  if (status === 401 || (status === 403 && AUTHENTICATION_CODES.has(code))) {
    return result(
      new TrustError(code, message, {
        hint: 'the peer does not accept this node; check trust on both sides',
      }),
      { mayHaveExecuted: false, transient: false, failover: false },
    );
  }
  if (status === 403) {
    return result(
      new RefusedError(code, message, {
        hint: "the peer's policy does not allow this principal to use this capability",
      }),
      { mayHaveExecuted: false, transient: false, failover: false },
    );
  }
  if (status === 429) {
    return result(
      new RefusedError(code, message, { hint: 'rate limited by the peer; retry later' }),
      { mayHaveExecuted: false, transient: true, failover: false },
    );
  }
  if (status === 503) {
    // The peer's concurrency cap turned the call away before running it: refused, like 429.
    return result(new RefusedError(code, message, { hint: 'the peer is busy; retry later' }), {
      mayHaveExecuted: false,
      transient: true,
      failover: true,
    });
  }
  if (status === 404) {
    return result(
      new NotFoundError(code, message, {
        hint: `see what the peer offers with \`sark-fed route ${call.resource} --refresh\``,
      }),
      { mayHaveExecuted: false, transient: false, failover: true },
    );
  }
  if (status === 504) {
    return result(
      new UnavailableError(code, message, {
        hint: "the peer's backend did not answer in time",
      }),
      { mayHaveExecuted: true, transient: true, failover: true },
    );
  }
  // The caller cannot read the peer's log: its hints say what the caller can do, or whom to ask.
  if (status >= 500) {
    return result(
      new OperationError(code, message, {
        hint: "the peer's operator can find why in its log, by the correlation ID",
      }),
      { mayHaveExecuted: true, transient: true, failover: true },
    );
  }
  if (status === 413) {
    return result(
      new OperationError(code, message, { hint: "the arguments exceed the peer's body limit" }),
      { mayHaveExecuted: false, transient: false, failover: false },
    );
  }
  if (status >= 200 && status < 300) {
    return result(
      new OperationError(code, message, { hint: 'the capability reported a failure' }),
      { mayHaveExecuted: true, transient: false, failover: false },
    );
  }
  if (status === 400 && code === 'INVALID_ARGUMENTS') {
    // The peer's message says what the capability takes (docs/resources.md: HTTP backends).
    return result(
      new OperationError(code, message, {
        hint: 'change --args to what the capability takes, e.g. --args \'{"name":"value"}\'',
      }),
      { mayHaveExecuted: false, transient: false, failover: false },
    );
  }
  return result(
    new OperationError(code, message, {
      hint: 'the peer refused the request; its operator can find why in its log, by the correlation ID',
    }),
    {
      mayHaveExecuted: false,
      transient: false,
      failover: false,
    },
  );
}

/**
 * Why a receipt cannot be relied on, or undefined when it can: it must be signed by the key of
 * the certificate pinned for the node, and say what this call was (DESIGN §5).
 */
export function receiptProblem(
  response: InvokeResponse,
  identity: NodeIdentity,
  target: CallTarget,
  call: InvokeCall,
): string | undefined {
  const receipt = response.receipt as Receipt;
  if (!verifyReceipt(receipt, target.certificatePem)) {
    return 'its signature does not match the pinned certificate';
  }
  const expected: Array<[string, unknown, unknown]> = [
    ['correlation_id', receipt.correlation_id, call.correlationId],
    ['source', receipt.source, identity.spiffeId],
    ['target', receipt.target, target.spiffeId],
  ];
  // A node signs what it knows: a body it refused without reading (too large, not JSON) is
  // receipted as unread, with no principal and the hash of no bytes, never as another call.
  const unread =
    !response.success && receipt.principal === '' && receipt.request_sha256 === UNREAD_SHA256;
  if (!unread) {
    expected.push(
      ['principal', receipt.principal, call.principal],
      ['resource', receipt.resource, call.resource],
      ['capability', receipt.capability, call.capability],
      ['request_sha256', receipt.request_sha256, argumentsDigest(call.arguments).sha256],
    );
  }
  for (const [field, got, want] of expected) {
    if (got !== want) return `its ${field} is ${String(got)}, not ${String(want)}`;
  }
  if (response.correlation_id !== call.correlationId) {
    return `the answer's correlation ID is ${response.correlation_id}`;
  }
  if (response.success !== (receipt.outcome === 'success')) {
    return `it records the outcome ${receipt.outcome} for an answer with success=${response.success}`;
  }
  if (response.success) {
    const result = resultDigest(response);
    // A node may hash an empty (null) result or record none: either is the same statement.
    const empty = receipt.result_sha256 === null && (response.result ?? null) === null;
    if (!empty && (result?.sha256 ?? null) !== receipt.result_sha256) {
      return 'its result_sha256 does not match the result received';
    }
  }
  return undefined;
}

/** sha256 and size of a result as the serving node hashes it; null when there is none. */
function resultDigest(response: InvokeResponse): { sha256: string; size: number } | null {
  if (response.result === undefined || (response.result === null && !response.success)) return null;
  const text = JSON.stringify(response.result);
  return { sha256: sha256Hex(text), size: Buffer.byteLength(text) };
}

function errnoCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : messageOf(error);
}
