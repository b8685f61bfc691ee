import {
  eventToWire,
  normaliseInstant,
  queryEvents,
  type AuditFilter,
} from '../core/audit/query.js';
import { messageOf } from '../core/errors.js';
import { CONTROL_BODY_LIMIT } from '../core/protocol/constants.js';
import {
  AUDIT_QUERY_DEFAULT_LIMIT,
  AUDIT_QUERY_MAX_LIMIT,
  AuditQueryRequest,
  type AuditQueryResponse,
} from '../core/protocol/schemas.js';
import { HttpError, parseJsonBody } from './http-io.js';
import type { HandlerContext, HandlerResult, RequestContext } from './routes.js';

/**
 * POST audit/query (DESIGN §7, docs/protocol.md): a trusted peer asks for the audit events of
 * this node that match its filters. Whatever it asks, it is answered only with events in which
 * it took part itself (as source or target): the filter cannot lift that, so a correlation ID
 * or a node ID learned elsewhere reveals nothing of calls between other nodes. Each query takes
 * a token of the node's rate limit, as an invocation does.
 */
export async function auditQuery(
  request: RequestContext,
  context: HandlerContext,
): Promise<HandlerResult> {
  const limited = context.invocation.rateLimited(request.peer);
  if (limited) throw limited;
  const body = await parseJsonBody(request.request, AuditQueryRequest, CONTROL_BODY_LIMIT);
  const limit = Math.min(body.limit ?? AUDIT_QUERY_DEFAULT_LIMIT, AUDIT_QUERY_MAX_LIMIT);
  const filter: AuditFilter = {
    ...(body.correlation_id !== undefined && { correlationId: body.correlation_id }),
    ...(body.principal !== undefined && { principal: body.principal }),
    ...(body.resource !== undefined && { resource: body.resource }),
    ...(body.capability !== undefined && { capability: body.capability }),
    ...(body.node !== undefined && { node: body.node }),
    ...(body.outcome !== undefined && { outcome: body.outcome }),
    ...(body.since !== undefined && { since: instant(body.since, 'since') }),
    ...(body.until !== undefined && { until: instant(body.until, 'until') }),
    // Set last, from the authenticated certificate: nothing in the body can override it.
    participant: request.peer.nodeId,
    // One more than answered tells whether more matched.
    limit: limit + 1,
  };
  const events = context.store.read((db) => queryEvents(db, filter));
  const response: AuditQueryResponse = {
    node_id: context.identity.nodeId,
    events: events.slice(0, limit).map(eventToWire),
    truncated: events.length > limit,
  };
  return { status: 200, body: response };
}

/** A time bound as stored times are written, or 400 (the schema and the query agree on these). */
function instant(value: string, name: string): string {
  try {
    return normaliseInstant(value, name);
  } catch (error) {
    throw new HttpError(
      400,
      'INVALID_BODY',
      `invalid request body at ${name}: ${messageOf(error)}`,
    );
  }
}
