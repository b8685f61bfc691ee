import { z } from 'zod';

/** Wire bodies of DESIGN §5, validated on both ends. snake_case as the original protocol. */
const base64url = z
  .string()
  .regex(/^[A-Za-z0-9_-]+$/, 'expected base64url')
  .max(1024);
const nodeId = z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/);
const fingerprint = z.string().regex(/^[0-9a-f]{64}$/);

export const InfoResponse = z.object({
  node_id: nodeId,
  trust_domain: z.string().min(1).max(255),
  spiffe_id: z.string().startsWith('spiffe://').max(2048),
  version: z.string().max(64),
  api_version: z.string().max(16),
  fingerprint,
  endpoint: z.string().max(2048).nullable(),
});
export type InfoResponse = z.infer<typeof InfoResponse>;

export const HealthResponse = z.object({
  node_id: nodeId,
  status: z.enum(['healthy', 'degraded']),
  checks: z.record(
    z.string(),
    z.object({ status: z.enum(['ok', 'warn', 'fail']), detail: z.string() }),
  ),
});
export type HealthResponse = z.infer<typeof HealthResponse>;

export const ChallengeRequest = z.object({}).strict();

export const ChallengeResponse = z.object({
  challenge_id: z.uuid(),
  nonce: base64url,
  expires_at: z.iso.datetime(),
  node_id: nodeId,
});
export type ChallengeResponse = z.infer<typeof ChallengeResponse>;

export const TrustRequest = z
  .object({
    challenge_id: z.uuid(),
    signature: base64url,
    counter_nonce: base64url,
    endpoint: z.string().url().max(2048).nullable().optional(),
  })
  .strict();
export type TrustRequest = z.infer<typeof TrustRequest>;

export const TrustResponse = z.object({
  status: z.enum(['trusted', 'pending']),
  node_id: nodeId,
  spiffe_id: z.string().startsWith('spiffe://'),
  fingerprint,
  signature: base64url,
});
export type TrustResponse = z.infer<typeof TrustResponse>;

export const RevokeRequest = z.object({ reason: z.string().max(512).optional() }).strict();
export type RevokeRequest = z.infer<typeof RevokeRequest>;

export const RevokeResponse = z.object({ status: z.literal('revoked'), node_id: nodeId });

const resourceIdentifier = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/);

/** A capability as a catalog shows it to a caller: never its backend. */
export const CatalogCapability = z.object({
  id: resourceIdentifier,
  description: z.string().max(1024).nullable().optional(),
  idempotent: z.boolean(),
});
export const CatalogResource = z.object({
  id: resourceIdentifier,
  description: z.string().max(1024).nullable().optional(),
  capabilities: z.array(CatalogCapability).max(1000),
});
export type CatalogResource = z.infer<typeof CatalogResource>;

export const ResourcesResponse = z.object({
  node_id: nodeId,
  resources: z.array(CatalogResource).max(10_000),
});
export type ResourcesResponse = z.infer<typeof ResourcesResponse>;

export const ResourceResponse = z.object({ node_id: nodeId, resource: CatalogResource });
export type ResourceResponse = z.infer<typeof ResourceResponse>;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/** DESIGN §5: the receipt the serving node signs for every invocation. */
export const ReceiptSchema = z
  .object({
    correlation_id: z.string().max(64),
    source: z.string().startsWith('spiffe://').max(2048),
    target: z.string().startsWith('spiffe://').max(2048),
    principal: z.string().max(512),
    resource: resourceIdentifier,
    capability: resourceIdentifier,
    request_sha256: sha256,
    outcome: z.enum(['success', 'denied', 'error', 'timeout']),
    result_sha256: sha256.nullable(),
    timestamp: z.iso.datetime(),
    signature: base64url,
  })
  .strict();

/**
 * Who a call is made for: 1 to 512 characters, none of them a control character. The principal
 * is written into both nodes' trails and shown to operators in terminals; an escape sequence or a
 * newline in it could drive a terminal or forge a line of a log (the CLI shows stored ones
 * escaped, and a new call cannot bring one in).
 */
export const principalId = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'a principal holds no control characters');

/** The invoke body keeps the original's field names (DESIGN §5). */
export const InvokeRequest = z
  .object({
    resource_id: resourceIdentifier,
    capability_id: resourceIdentifier,
    principal_id: principalId,
    arguments: z.unknown(),
    context: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type InvokeRequest = z.infer<typeof InvokeRequest>;

export const InvokeResponse = z.object({
  correlation_id: z.string().max(64),
  success: z.boolean(),
  result: z.unknown(),
  error: z
    .object({
      code: z.string().max(64),
      message: z.string().max(2048),
      correlation_id: z.string().max(64).nullable().optional(),
    })
    .optional(),
  duration_ms: z.number().nonnegative(),
  receipt: ReceiptSchema,
});
export type InvokeResponse = z.infer<typeof InvokeResponse>;

export const ErrorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), correlation_id: z.string().nullable() }),
});
export type ErrorResponse = z.infer<typeof ErrorResponse>;

/** Most events one audit query answers; a larger `limit` is capped to it (docs/protocol.md). */
export const AUDIT_QUERY_MAX_LIMIT = 1000;
export const AUDIT_QUERY_DEFAULT_LIMIT = 100;

const auditOutcome = z.enum(['success', 'denied', 'error', 'timeout']);
/** An instant: UTC (Z) or with an offset, any fraction of a second. */
const auditInstant = z.iso.datetime({ offset: true });

/**
 * POST audit/query: the filters of `audit query` (DESIGN §7). The answering node adds one the
 * caller cannot lift: only events in which the calling node took part.
 */
export const AuditQueryRequest = z
  .object({
    correlation_id: z.string().min(1).max(64).optional(),
    principal: z.string().max(512).optional(),
    resource: z.string().max(128).optional(),
    capability: z.string().max(128).optional(),
    node: z.string().min(1).max(63).optional(),
    outcome: auditOutcome.optional(),
    since: auditInstant.optional(),
    until: auditInstant.optional(),
    limit: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict();
export type AuditQueryRequest = z.infer<typeof AuditQueryRequest>;

/**
 * One audit event on the wire: the stored row, snake_case, its receipt parsed. Answers are not
 * strict (fields a newer peer adds are dropped), requests are.
 */
export const WireAuditEvent = z.object({
  seq: z.number().int().min(1),
  event_id: z.string().min(1).max(64),
  correlation_id: z.string().max(64),
  time: z.iso.datetime(),
  direction: z.enum(['outbound', 'inbound']),
  source_node: z.string().max(63),
  target_node: z.string().max(63),
  principal: z.string().max(512),
  resource: z.string().max(128),
  capability: z.string().max(128),
  outcome: auditOutcome,
  status_code: z.number().int().min(0).max(999).nullable(),
  error_code: z.string().max(64).nullable(),
  duration_us: z.number().int().min(0),
  request_sha256: sha256.nullable(),
  request_size: z.number().int().min(0).nullable(),
  result_sha256: sha256.nullable(),
  result_size: z.number().int().min(0).nullable(),
  receipt: ReceiptSchema.nullable(),
  prev_hash: sha256,
  hash: sha256,
});
export type WireAuditEvent = z.infer<typeof WireAuditEvent>;

export const AuditQueryResponse = z.object({
  node_id: nodeId,
  events: z.array(WireAuditEvent).max(AUDIT_QUERY_MAX_LIMIT),
  /** More events matched than were answered. */
  truncated: z.boolean(),
});
export type AuditQueryResponse = z.infer<typeof AuditQueryResponse>;
