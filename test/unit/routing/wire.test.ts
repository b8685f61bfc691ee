import { describe, expect, it } from 'vitest';
import {
  CatalogResource,
  InvokeResponse,
  ReceiptSchema,
  ResourcesResponse,
} from '../../../src/core/protocol/schemas.js';
import {
  readCatalogResource,
  readInvokeResponse,
  readReceipt,
  readResourceListing,
} from '../../../src/core/routing/wire.js';

/**
 * The hand-written readers that keep zod off invoke's path must reach the zod schemas' verdict
 * on every body: the same bodies accepted, the same refused.
 */

const receipt = {
  correlation_id: '0b6f4c0e-8a41-4c47-9d8e-6f2b8f0f5a10',
  source: 'spiffe://org-a.example/sark/node/node-a',
  target: 'spiffe://org-b.example/sark/node/node-b',
  principal: 'alice@node-a',
  resource: 'echo',
  capability: 'echo',
  request_sha256: 'a'.repeat(64),
  outcome: 'success',
  result_sha256: 'b'.repeat(64),
  timestamp: '2030-01-01T00:00:00.123Z',
  signature: 'MEUCIQ_-abc',
};

const response = {
  correlation_id: receipt.correlation_id,
  success: true,
  result: { hello: 'world' },
  duration_ms: 0.42,
  receipt,
};

const receiptVariants: Array<[string, unknown]> = [
  ['a well-formed receipt', receipt],
  ['no result hash', { ...receipt, result_sha256: null }],
  ['a timestamp without a fraction', { ...receipt, timestamp: '2030-01-01T00:00:00Z' }],
  ['a timestamp with an offset', { ...receipt, timestamp: '2030-01-01T00:00:00+01:00' }],
  ['a timestamp without seconds', { ...receipt, timestamp: '2030-01-01T00:00Z' }],
  ['a day that does not exist', { ...receipt, timestamp: '2031-02-29T00:00:00Z' }],
  ['an hour that does not exist', { ...receipt, timestamp: '2030-01-01T24:00:00Z' }],
  ['an unknown outcome', { ...receipt, outcome: 'maybe' }],
  ['an extra field', { ...receipt, extra: 1 }],
  ['a missing signature', { ...receipt, signature: undefined }],
  ['a signature that is not base64url', { ...receipt, signature: 'a+b/' }],
  ['a short hash', { ...receipt, request_sha256: 'abc' }],
  ['an upper-case hash', { ...receipt, request_sha256: 'A'.repeat(64) }],
  ['a source that is no SPIFFE ID', { ...receipt, source: 'https://node-a' }],
  ['a resource ID with a space', { ...receipt, resource: 'ec ho' }],
  ['a principal too long', { ...receipt, principal: 'p'.repeat(513) }],
  ['not an object', 'receipt'],
  ['null', null],
];

const responseVariants: Array<[string, unknown]> = [
  ['a success', response],
  ['no result at all', { ...response, result: undefined }],
  [
    'a refusal with its error',
    {
      ...response,
      success: false,
      result: null,
      error: { code: 'POLICY_DENIED', message: 'no', correlation_id: receipt.correlation_id },
    },
  ],
  ['an error without correlation ID', { ...response, error: { code: 'X', message: 'y' } }],
  [
    'an error with a null correlation ID',
    { ...response, error: { code: 'X', message: 'y', correlation_id: null } },
  ],
  ['an error without message', { ...response, error: { code: 'X' } }],
  ['a negative duration', { ...response, duration_ms: -1 }],
  ['a duration that is a string', { ...response, duration_ms: '1' }],
  ['success that is a string', { ...response, success: 'true' }],
  ['no receipt', { ...response, receipt: undefined }],
  ['a broken receipt', { ...response, receipt: { ...receipt, outcome: 'maybe' } }],
  ['an array', [response]],
];

const catalogVariants: Array<[string, unknown]> = [
  ['a resource', { id: 'echo', capabilities: [{ id: 'echo', idempotent: false }] }],
  [
    'descriptions, null or text',
    {
      id: 'inv',
      description: null,
      capabilities: [{ id: 'lookup', description: 'find', idempotent: true }],
    },
  ],
  ['no idempotent flag', { id: 'echo', capabilities: [{ id: 'echo' }] }],
  [
    'a capability ID too long',
    { id: 'echo', capabilities: [{ id: 'e'.repeat(129), idempotent: true }] },
  ],
  ['no capabilities', { id: 'echo' }],
  ['a numeric ID', { id: 5, capabilities: [] }],
];

describe('hand-written wire readers agree with the zod schemas', () => {
  it.each(receiptVariants)('receipt: %s', (_name, value) => {
    expect(readReceipt(value) !== undefined).toBe(ReceiptSchema.safeParse(value).success);
  });

  it.each(responseVariants)('invoke response: %s', (_name, value) => {
    expect(readInvokeResponse(value) !== undefined).toBe(InvokeResponse.safeParse(value).success);
  });

  it.each(catalogVariants)('catalog resource: %s', (_name, value) => {
    const ours = readCatalogResource(value);
    const theirs = CatalogResource.safeParse(value);
    expect(ours !== undefined).toBe(theirs.success);
    if (theirs.success) expect(ours).toEqual(theirs.data);
  });

  it('reads a resources listing as ResourcesResponse does', () => {
    const listing = {
      node_id: 'node-b',
      resources: catalogVariants.slice(0, 2).map(([, value]) => value),
    };
    expect(readResourceListing(listing)).toEqual({
      nodeId: 'node-b',
      resources: ResourcesResponse.parse(listing).resources,
    });
    const bad = { ...listing, node_id: 'Node B' };
    expect(readResourceListing(bad)).toBeUndefined();
    expect(ResourcesResponse.safeParse(bad).success).toBe(false);
  });
});
