import type { DaemonMetrics } from './metrics.js';
import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ZodType } from 'zod';
import type { NodeIdentity } from '../core/identity/node-identity.js';
import { normalizeEndpoint } from '../core/identity/node-identity.js';
import { toPem } from '../core/identity/pem.js';
import {
  API_VERSION,
  CHALLENGE_TTL_MS,
  CONTROL_BODY_LIMIT,
  PATHS,
  TLS_BINDING_LABEL,
  TLS_BINDING_LENGTH,
  NO_CONTEXT,
} from '../core/protocol/constants.js';
import {
  ChallengeRequest,
  RevokeRequest,
  TrustRequest,
  type ChallengeResponse,
  type HealthResponse,
  type InfoResponse,
  type TrustResponse,
} from '../core/protocol/schemas.js';
import type { StateStore } from '../core/state/database.js';
import { findPeer, savePeer, type Peer } from '../core/state/trust-repository.js';
import type { ClaimedIdentity } from '../core/trust/peer-identity.js';
import { signTrustStatement, verifyTrustStatement } from '../core/trust/trust-statement.js';
import type { ChallengeStore } from './challenges.js';
import type { InvocationService } from './invoke.js';
import { HttpError, parseJsonBody } from './http-io.js';
import type { Logger } from './logger.js';
import type { TrustView } from './trust-view.js';
import { auditQuery } from './audit-query.js';

export interface HandlerContext {
  identity: NodeIdentity;
  privateKey: KeyObject;
  store: StateStore;
  trust: TrustView;
  challenges: ChallengeStore;
  requireApproval: boolean;
  version: string;
  logger: Logger;
  now: () => Date;
  invocation: InvocationService;
  metrics?: Pick<DaemonMetrics, 'recordEstablishment'>;
  /** This node's own leaf certificate (DER): a client presenting it is this node calling itself. */
  ownLeafDer: Buffer;
}

export interface RequestContext {
  request: IncomingMessage;
  socket: TLSSocket;
  peer: ClaimedIdentity;
  correlationId: string;
  params: Record<string, string>;
}

export interface HandlerResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

type Handler = (request: RequestContext, context: HandlerContext) => Promise<HandlerResult>;

interface Route {
  method: string;
  /** "valid-chain": any client whose chain validates; "trusted": also trusted, pinned, not revoked. */
  access: 'valid-chain' | 'trusted';
  handler: Handler;
  params: Record<string, string>;
}

const ROUTES: ReadonlyArray<{
  method: string;
  pattern: RegExp;
  access: Route['access'];
  handler: Handler;
  names: string[];
}> = [
  { method: 'GET', pattern: exact(PATHS.info), access: 'valid-chain', handler: info, names: [] },
  {
    method: 'GET',
    pattern: exact(PATHS.health),
    access: 'valid-chain',
    handler: health,
    names: [],
  },
  {
    method: 'POST',
    pattern: exact(PATHS.challenge),
    access: 'valid-chain',
    handler: challenge,
    names: [],
  },
  {
    method: 'POST',
    pattern: exact(PATHS.trust),
    access: 'valid-chain',
    handler: countedEstablish,
    names: [],
  },
  {
    method: 'POST',
    pattern: exact(PATHS.revoke),
    access: 'trusted',
    handler: revokeNotice,
    names: [],
  },
  {
    method: 'GET',
    pattern: exact(PATHS.resources),
    access: 'trusted',
    handler: resources,
    names: [],
  },
  {
    method: 'GET',
    // Any one path segment: an ID no resource can have is an unknown resource too (404
    // UNKNOWN_RESOURCE), not a missing endpoint (404 NOT_FOUND).
    pattern: new RegExp(`^${escape(PATHS.resources)}/([^/]{1,256})$`),
    access: 'trusted',
    handler: resource,
    names: ['id'],
  },
  {
    method: 'POST',
    pattern: exact(PATHS.invoke),
    access: 'trusted',
    handler: invoke,
    names: [],
  },
  {
    method: 'POST',
    pattern: exact(PATHS.auditQuery),
    access: 'trusted',
    handler: auditQuery,
    names: [],
  },
];

export function routeFor(method: string, path: string): Route {
  const matches = ROUTES.filter((route) => route.pattern.test(path));
  if (matches.length === 0) throw new HttpError(404, 'NOT_FOUND', `no endpoint ${path}`);
  const route = matches.find((candidate) => candidate.method === method);
  if (!route) {
    throw new HttpError(
      405,
      'METHOD_NOT_ALLOWED',
      `${path} takes ${matches.map((m) => m.method).join(', ')}`,
      {
        allow: matches.map((m) => m.method).join(', '),
      },
    );
  }
  const values = route.pattern.exec(path)?.slice(1) ?? [];
  const params = Object.fromEntries(
    route.names.map((name, index) => [name, values[index] as string]),
  );
  return { method: route.method, access: route.access, handler: route.handler, params };
}

async function info(_request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  const { identity } = context;
  const body: InfoResponse = {
    node_id: identity.nodeId,
    trust_domain: identity.trustDomain,
    spiffe_id: identity.spiffeId,
    version: context.version,
    api_version: API_VERSION,
    fingerprint: identity.fingerprint,
    endpoint: identity.endpoint,
  };
  return { status: 200, body };
}

async function health(_request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  const checks: HealthResponse['checks'] = {};
  try {
    context.trust.refresh();
    checks.state = { status: 'ok', detail: 'state file readable' };
  } catch (error) {
    checks.state = { status: 'fail', detail: String(error) };
  }
  const daysLeft = Math.floor(
    (new Date(context.identity.notAfter).getTime() - context.now().getTime()) / 86_400_000,
  );
  checks.certificate =
    daysLeft < 7
      ? { status: 'warn', detail: `node certificate expires in ${daysLeft} days` }
      : { status: 'ok', detail: `node certificate valid for ${daysLeft} days` };
  const healthy = Object.values(checks).every((check) => check.status === 'ok');
  const body: HealthResponse = {
    node_id: context.identity.nodeId,
    status: healthy ? 'healthy' : 'degraded',
    checks,
  };
  return { status: 200, body };
}

async function challenge(request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  await parseBody(request, ChallengeRequest);
  const issued = context.challenges.issue(request.peer.spiffeId);
  if (issued === 'peer-limit') {
    throw new HttpError(
      429,
      'TOO_MANY_CHALLENGES',
      'this node holds too many unanswered challenges; answer or let them expire',
      { 'retry-after': String(Math.ceil(CHALLENGE_TTL_MS / 1000)) },
    );
  }
  if (issued === 'full') {
    throw new HttpError(
      503,
      'TOO_MANY_CHALLENGES',
      'too many outstanding challenges; retry shortly',
      {
        'retry-after': '5',
      },
    );
  }
  const body: ChallengeResponse = {
    challenge_id: issued.id,
    nonce: issued.nonce,
    expires_at: issued.expiresAt.toISOString(),
    node_id: context.identity.nodeId,
  };
  return { status: 200, body };
}

/** The responder's half of `trust establish` (DESIGN §3). */
/** establish, counted for federation_trust_establishment_total. */
async function countedEstablish(
  request: RequestContext,
  context: HandlerContext,
): Promise<HandlerResult> {
  try {
    const result = await establish(request, context);
    const status = (result.body as { status?: string }).status;
    context.metrics?.recordEstablishment(status === 'pending' ? 'pending' : 'trusted');
    return result;
  } catch (error) {
    context.metrics?.recordEstablishment('refused');
    throw error;
  }
}

async function establish(request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  const body = await parseBody(request, TrustRequest);
  const { peer, socket } = request;
  const outcome = context.challenges.redeem(body.challenge_id, peer.spiffeId);
  if (!outcome.ok)
    throw new HttpError(
      outcome.code === 'CHALLENGE_NOT_YOURS' ? 403 : 400,
      outcome.code,
      outcome.reason,
    );

  const binding = socket
    .exportKeyingMaterial(TLS_BINDING_LENGTH, TLS_BINDING_LABEL, NO_CONTEXT)
    .toString('base64url');
  const leafDer = socket.getPeerCertificate().raw;
  const statement = {
    purpose: 'sark-fed/trust-establish/v1',
    role: 'initiator',
    nonce: outcome.nonce,
    initiator: peer.spiffeId,
    responder: context.identity.spiffeId,
    tls_binding: binding,
  } as const;
  if (!verifyTrustStatement(leafDer, statement, body.signature)) {
    throw new HttpError(
      401,
      'BAD_SIGNATURE',
      'the signature does not prove possession of the key for this TLS session',
    );
  }

  const now = context.now();
  const saved = context.store.write((db) => {
    const existing = findPeer(db, peer.nodeId);
    if (existing && existing.trustDomain !== peer.trustDomain) {
      throw new HttpError(
        409,
        'NODE_ID_CONFLICT',
        `node ID ${peer.nodeId} belongs to ${existing.spiffeId}`,
      );
    }
    if (existing?.trustLevel === 'revoked') {
      throw new HttpError(
        403,
        'REVOKED',
        `trust in ${peer.nodeId} was revoked here; only this node's operator can restore it`,
      );
    }
    const alreadyTrusted =
      existing?.trustLevel === 'trusted' && existing.pinnedFingerprint === peer.fingerprint;
    // A pinned peer that comes back with another certificate has its new pin held for this
    // node's operator (`trust approve`), whatever --require-approval says: otherwise anyone its
    // CA would certify under that node ID could replace the pin, and pinning would mean nothing.
    const pinChanged =
      existing?.pinnedFingerprint != null && existing.pinnedFingerprint !== peer.fingerprint;
    const level =
      (context.requireApproval && !alreadyTrusted) || pinChanged ? 'pending' : 'trusted';
    const record: Peer = {
      nodeId: peer.nodeId,
      trustDomain: peer.trustDomain,
      spiffeId: peer.spiffeId,
      endpoint: endpointOf(body.endpoint) ?? existing?.endpoint ?? null,
      trustLevel: level,
      pinnedFingerprint: peer.fingerprint,
      certificatePem: toPem('CERTIFICATE', leafDer),
      trustExpiresAt: peer.notAfter.toISOString(),
      establishedAt: now.toISOString(),
      revokedAt: null,
      revokeReason: null,
      createdAt: existing?.createdAt ?? now.toISOString(),
      updatedAt: now.toISOString(),
    };
    savePeer(db, record);
    return record;
  });
  context.trust.invalidate();
  context.logger.info('peer trust recorded', {
    correlation_id: request.correlationId,
    peer: peer.spiffeId,
    trust_level: saved.trustLevel,
    fingerprint: peer.fingerprint,
  });

  const response: TrustResponse = {
    status: saved.trustLevel === 'pending' ? 'pending' : 'trusted',
    node_id: context.identity.nodeId,
    spiffe_id: context.identity.spiffeId,
    fingerprint: context.identity.fingerprint,
    signature: signTrustStatement(context.privateKey, {
      ...statement,
      role: 'responder',
      nonce: body.counter_nonce,
    }),
  };
  return { status: 200, body: response };
}

/**
 * A trusted peer says it revoked this node. It will refuse our calls, so stop trusting it too;
 * it becomes `untrusted` rather than `revoked`, so that its operator can later re-establish
 * trust from its side without ours having to undo a revocation we never decided.
 */
async function revokeNotice(
  request: RequestContext,
  context: HandlerContext,
): Promise<HandlerResult> {
  const body = await parseBody(request, RevokeRequest);
  const now = context.now().toISOString();
  context.store.write((db) => {
    const existing = findPeer(db, request.peer.nodeId);
    if (!existing) return;
    savePeer(db, {
      ...existing,
      trustLevel: 'untrusted',
      revokedAt: now,
      revokeReason: `revoked by the peer${body.reason ? `: ${body.reason}` : ''}`,
      updatedAt: now,
    });
  });
  context.trust.invalidate();
  context.logger.warn('peer revoked this node', {
    correlation_id: request.correlationId,
    peer: request.peer.spiffeId,
  });
  return { status: 200, body: { status: 'revoked', node_id: context.identity.nodeId } };
}

/** The catalog, limited to what the policy lets the calling node use (docs/resources.md). */
async function resources(request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  return { status: 200, body: context.invocation.resources(request.peer) };
}

async function resource(request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  return {
    status: 200,
    body: context.invocation.resource(request.peer, request.params.id ?? ''),
  };
}

/** Never throws: every answer, refusals included, is an InvokeResponse with a signed receipt. */
async function invoke(request: RequestContext, context: HandlerContext): Promise<HandlerResult> {
  return context.invocation.invoke({
    peer: request.peer,
    correlationId: request.correlationId,
    request: request.request,
  });
}

function parseBody<T>(request: RequestContext, schema: ZodType<T>): Promise<T> {
  return parseJsonBody(request.request, schema, CONTROL_BODY_LIMIT);
}

function endpointOf(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  try {
    return normalizeEndpoint(value);
  } catch {
    return undefined;
  }
}

function exact(path: string): RegExp {
  return new RegExp(`^${escape(path)}$`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
