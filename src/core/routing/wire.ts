import type { Receipt } from '../audit/receipts.js';
import type { CatalogResource, InvokeResponse } from '../protocol/schemas.js';

/**
 * Hand-written readers of the bodies `invoke` and `route` receive, equivalent to the zod schemas
 * of protocol/schemas.ts (a unit test holds them to the same verdicts). zod costs more to import
 * than a whole one-shot invoke spends on its request, and invoke is the command run most often,
 * so its path parses these few shapes without it.
 */
type Json = Record<string, unknown>;

const RESOURCE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const NODE_ID = /^[a-z0-9][a-z0-9.-]{0,62}$/;
// What z.iso.datetime() accepts by default: UTC with a Z, seconds, an optional fraction.
const ISO_DATETIME = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?Z$/;
const OUTCOMES = new Set(['success', 'denied', 'error', 'timeout']);

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isString(value: unknown, max: number, min = 0): value is string {
  return typeof value === 'string' && value.length >= min && value.length <= max;
}

function isIsoDatetime(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const match = ISO_DATETIME.exec(value);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // A real calendar day: the Date rolls 2023-02-29 over to March, which shows here.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function optionalDescription(value: unknown): boolean {
  return value === undefined || value === null || isString(value, 1024);
}

export function readReceipt(value: unknown): Receipt | undefined {
  if (!isObject(value)) return undefined;
  const allowed = new Set([
    'correlation_id',
    'source',
    'target',
    'principal',
    'resource',
    'capability',
    'request_sha256',
    'outcome',
    'result_sha256',
    'timestamp',
    'signature',
  ]);
  if (Object.keys(value).some((key) => !allowed.has(key))) return undefined;
  const ok =
    isString(value.correlation_id, 64) &&
    isString(value.source, 2048) &&
    value.source.startsWith('spiffe://') &&
    isString(value.target, 2048) &&
    value.target.startsWith('spiffe://') &&
    isString(value.principal, 512) &&
    typeof value.resource === 'string' &&
    RESOURCE_ID.test(value.resource) &&
    typeof value.capability === 'string' &&
    RESOURCE_ID.test(value.capability) &&
    typeof value.request_sha256 === 'string' &&
    SHA256.test(value.request_sha256) &&
    typeof value.outcome === 'string' &&
    OUTCOMES.has(value.outcome) &&
    (value.result_sha256 === null ||
      (typeof value.result_sha256 === 'string' && SHA256.test(value.result_sha256))) &&
    isIsoDatetime(value.timestamp) &&
    isString(value.signature, 1024) &&
    BASE64URL.test(value.signature);
  return ok ? (value as unknown as Receipt) : undefined;
}

export function readInvokeResponse(value: unknown): InvokeResponse | undefined {
  if (!isObject(value)) return undefined;
  if (!isString(value.correlation_id, 64) || typeof value.success !== 'boolean') return undefined;
  if (
    typeof value.duration_ms !== 'number' ||
    !Number.isFinite(value.duration_ms) ||
    value.duration_ms < 0
  ) {
    return undefined;
  }
  if (value.error !== undefined) {
    const error = value.error;
    if (!isObject(error) || !isString(error.code, 64) || !isString(error.message, 2048)) {
      return undefined;
    }
    if (
      error.correlation_id !== undefined &&
      error.correlation_id !== null &&
      !isString(error.correlation_id, 64)
    ) {
      return undefined;
    }
  }
  const receipt = readReceipt(value.receipt);
  if (!receipt) return undefined;
  return { ...(value as unknown as InvokeResponse), receipt };
}

/** The plain error document of DESIGN §5 (refusals that come before any receipt is made). */
export function readErrorDocument(
  value: unknown,
): { code: string; message: string; correlationId: string | null } | undefined {
  if (!isObject(value) || !isObject(value.error)) return undefined;
  const { code, message, correlation_id: correlationId } = value.error;
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  return {
    code: code.slice(0, 64),
    message: message.slice(0, 2048),
    correlationId: typeof correlationId === 'string' ? correlationId : null,
  };
}

export function readCatalogResource(value: unknown): CatalogResource | undefined {
  if (!isObject(value) || typeof value.id !== 'string' || !RESOURCE_ID.test(value.id)) {
    return undefined;
  }
  if (!optionalDescription(value.description)) return undefined;
  if (!Array.isArray(value.capabilities) || value.capabilities.length > 1000) return undefined;
  const capabilities: CatalogResource['capabilities'] = [];
  for (const item of value.capabilities as unknown[]) {
    if (
      !isObject(item) ||
      typeof item.id !== 'string' ||
      !RESOURCE_ID.test(item.id) ||
      typeof item.idempotent !== 'boolean' ||
      !optionalDescription(item.description)
    ) {
      return undefined;
    }
    capabilities.push({
      id: item.id,
      idempotent: item.idempotent,
      ...(item.description === undefined ? {} : { description: item.description as string | null }),
    });
  }
  return {
    id: value.id,
    ...(value.description === undefined ? {} : { description: value.description as string | null }),
    capabilities,
  };
}

/** GET resources: `{ node_id, resources: [...] }`. */
export function readResourceListing(
  value: unknown,
): { nodeId: string; resources: CatalogResource[] } | undefined {
  if (!isObject(value) || typeof value.node_id !== 'string' || !NODE_ID.test(value.node_id)) {
    return undefined;
  }
  if (!Array.isArray(value.resources) || value.resources.length > 10_000) return undefined;
  const resources: CatalogResource[] = [];
  for (const item of value.resources as unknown[]) {
    const resource = readCatalogResource(item);
    if (!resource) return undefined;
    resources.push(resource);
  }
  return { nodeId: value.node_id, resources };
}
