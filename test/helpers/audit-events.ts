import type { AuditEventInput } from '../../src/core/audit/events.js';
import type { Receipt } from '../../src/core/audit/receipts.js';

/**
 * An inbound audit event as a daemon records one (node-a calling echo/echo on node-b), for tests
 * that need rows in a trail and vary only a few fields.
 */
export function inboundEvent(overrides: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    correlationId: '018f0000-0000-7000-8000-000000000001',
    time: '2026-11-26T03:00:00.000Z',
    direction: 'inbound',
    sourceNode: 'node-a',
    targetNode: 'node-b',
    principal: 'alice@org-a.example',
    resource: 'echo',
    capability: 'echo',
    outcome: 'success',
    statusCode: 200,
    errorCode: null,
    durationUs: 100,
    requestSha256: 'a'.repeat(64),
    requestSize: 17,
    resultSha256: 'b'.repeat(64),
    resultSize: 17,
    receipt: null,
    ...overrides,
  };
}

/**
 * A receipt as node-b issues one for that call, its signature a placeholder (tests that verify
 * signatures sign their own), for tests that store or compare receipts.
 */
export function receiptFixture(overrides: Partial<Receipt> = {}): Receipt {
  return {
    correlation_id: '018f0000-0000-7000-8000-000000000001',
    source: 'spiffe://org-a.example/sark/node/node-a',
    target: 'spiffe://org-b.example/sark/node/node-b',
    principal: 'alice@org-a.example',
    resource: 'echo',
    capability: 'echo',
    request_sha256: 'a'.repeat(64),
    outcome: 'success',
    result_sha256: 'b'.repeat(64),
    timestamp: '2026-11-26T03:00:00.000Z',
    signature: 'c2lnbmF0dXJl',
    ...overrides,
  };
}
