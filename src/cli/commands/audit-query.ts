import type { AuditEvent } from '../../core/audit/rows.js';
import { countEvents, queryEvents, type AuditFilter } from '../../core/audit/query.js';
import { distinctPrefixLengths } from '../../core/audit/trace.js';
import { UsageError } from '../../core/errors.js';
import { assertNodeId } from '../../core/identity/spiffe.js';
import { loadIdentity } from '../../core/state/identity-repository.js';
import type { StateStore } from '../../core/state/database.js';
import { StreamStopped } from '../action.js';
import type { CommandContext } from '../context.js';
import type { Cell } from '../output/output.js';
import type { QueryOptions } from './audit.js';
import { formatDuration, outcomeCell, shortTime, warnProblems } from './audit-format.js';
import { resolveCorrelationArgument } from './audit-correlation.js';
import { withNode, withStore } from './shared.js';

type OriginEvent = AuditEvent & { origin: string | null };

/**
 * Matches beyond those shown are counted up to this many: counting every match of a broad filter
 * on a million events takes seconds, for a figure the operator only needs roughly.
 */
export const COUNT_UP_TO = 10_000;

interface Problem {
  nodeId: string;
  code: string;
  message: string;
}

/** The JSON shape of `audit query` (docs/json-output.md). */
export interface QueryReport {
  federated: boolean;
  limit: number;
  count: number;
  /**
   * Local events matching the filters, however many were shown; null with --federated, or when
   * more than COUNT_UP_TO match.
   */
  total: number | null;
  truncated: boolean;
  events: Array<OriginEvent>;
  problems: Problem[];
}

/** `audit query`: local events (or, --federated, the peers' too), newest first. */
export async function runQuery(context: CommandContext, options: QueryOptions): Promise<void> {
  const filter = filterOf(options);
  if (options.follow) {
    await follow(context, options, filter);
    return;
  }
  const report = options.federated
    ? await federated(context, options, filter)
    : await local(context, options, filter);

  if (context.output.json) context.output.writeJson(report);
  else if (context.output.stdoutIsTTY) await renderTable(context, report);
  else renderRows(context, report);

  warnProblems(context.output, report.problems, 'events');
  if (report.count === 0) context.output.info('no audit events match');
  if (report.truncated) context.output.info(truncationNote(report));
}

/**
 * How many events matched beyond those shown, in one wording whatever is known of it: the count
 * (local), or a floor: the counting cap (local, more than that matched), or the limit (federated,
 * where only one event past the limit is fetched from each node).
 */
export function truncationNote(
  report: Pick<QueryReport, 'federated' | 'count' | 'limit' | 'total'>,
): string {
  const matching =
    report.total !== null
      ? `${report.total}`
      : `more than ${report.federated ? report.limit : COUNT_UP_TO}`;
  return `showing the newest ${report.count} of ${matching} matching events; raise --limit or narrow the filters`;
}

function filterOf(options: QueryOptions): AuditFilter {
  if (
    options.since !== undefined &&
    options.until !== undefined &&
    options.since >= options.until
  ) {
    throw new UsageError(
      'AUDIT_EMPTY_RANGE',
      `--since (${options.since}) is not before --until (${options.until})`,
      { hint: '--since is inclusive and --until exclusive: give an earlier --since' },
    );
  }
  const filter: AuditFilter = {};
  // Resolved against the trail once it is open (withCorrelation): a prefix will do.
  if (options.correlationId !== undefined) filter.correlationId = options.correlationId;
  if (options.principal !== undefined) filter.principal = options.principal;
  if (options.resource !== undefined) filter.resource = options.resource;
  if (options.capability !== undefined) filter.capability = options.capability;
  if (options.node !== undefined) {
    // As `invoke --node` and `circuit reset` do: NODE-B or node_b can name no node, and
    // matching nothing would read as "no calls".
    assertNodeId(options.node);
    filter.node = options.node;
  }
  if (options.outcome !== undefined) filter.outcome = options.outcome;
  if (options.since !== undefined) filter.since = options.since;
  if (options.until !== undefined) filter.until = options.until;
  return filter;
}

async function local(
  context: CommandContext,
  options: QueryOptions,
  filter: AuditFilter,
): Promise<QueryReport> {
  const { events, total, self } = await withStore(context, (store) => {
    const resolved = withCorrelation(store, filter);
    return store.read((db) => {
      // One more than shown says whether more match, without counting them all.
      const found = queryEvents(db, { ...resolved, limit: options.limit + 1 });
      const counted =
        found.length > options.limit ? countEvents(db, resolved, COUNT_UP_TO + 1) : found.length;
      return {
        events: found.slice(0, options.limit),
        total: counted > COUNT_UP_TO ? null : counted,
        self: loadIdentity(db)?.nodeId ?? null,
      };
    });
  });
  return {
    federated: false,
    limit: options.limit,
    count: events.length,
    total,
    truncated: total === null || total > events.length,
    events: events.map((event) => ({ origin: self, ...event })),
    problems: [],
  };
}

async function federated(
  context: CommandContext,
  options: QueryOptions,
  filter: AuditFilter,
): Promise<QueryReport> {
  const { queryFederated } = await import('../../core/audit/federated.js');
  const result = await withNode(context, async ({ store, identity, privateKey }) => {
    const resolved = withCorrelation(store, filter);
    const spinner = await context.output.spinner('asking the peers involved');
    try {
      // One more than shown tells whether more matched.
      return await queryFederated({
        store,
        identity,
        privateKey,
        filter: { ...resolved, limit: options.limit + 1 },
        timeoutMs: options.timeout,
        now: context.now,
      });
    } finally {
      spinner.stop();
    }
  });
  const events = result.events.slice(0, options.limit);
  return {
    federated: true,
    limit: options.limit,
    count: events.length,
    total: null,
    truncated: result.events.length > options.limit,
    events: events.map(({ origin, ...event }) => ({ origin, ...event })),
    problems: result.problems,
  };
}

/**
 * The filter with its correlation ID resolved as `audit trace` resolves one: the table shows
 * each ID cut to a prefix that names it, and a prefix copied from there must find its call.
 */
function withCorrelation(store: StateStore, filter: AuditFilter): AuditFilter {
  if (filter.correlationId === undefined) return filter;
  return {
    ...filter,
    correlationId: resolveCorrelationArgument(store, filter.correlationId, 'query'),
  };
}

const originCells = (report: QueryReport, event: OriginEvent) =>
  report.federated ? [event.origin ?? '-'] : [];

/**
 * In a pipe, values for scripts (CLI.md), as `audit trace` gives them: ISO times, whole IDs,
 * source and target in fields of their own, the duration in µs as a bare integer, then the
 * error code (`-` for none), last so that the fields before it keep their places.
 */
function renderRows(context: CommandContext, report: QueryReport): void {
  context.output.table(
    [],
    report.events.map((event) => pipeFields(event, originCells(report, event))),
  );
}

function pipeFields(event: AuditEvent, origin: Cell[] = []): Cell[] {
  return [
    event.time,
    ...origin,
    event.correlationId,
    event.direction,
    event.sourceNode,
    event.targetNode,
    event.principal,
    `${event.resource}/${event.capability}`,
    event.outcome,
    String(event.durationUs),
    event.errorCode ?? '-',
  ];
}

/**
 * `audit query --follow`: the events the query would show, oldest first, then each matching
 * event as it is recorded (by the daemon, or an `invoke` of this node) until Ctrl-C or SIGTERM,
 * as `tail -f` follows a log. One event a line: NDJSON with --json, the query's fields in a pipe,
 * and on a terminal a line a person reads (a table cannot be drawn before its rows are known).
 */
async function follow(
  context: CommandContext,
  options: QueryOptions,
  filter: AuditFilter,
): Promise<void> {
  const { followStart, followTrail } = await import('../../core/audit/follow.js');
  if (options.federated) {
    throw new UsageError('FOLLOW_FEDERATED', "--follow reads this node's trail only", {
      hint: 'leave out --federated; `audit query --federated` asks the peers once',
    });
  }
  if (options.until !== undefined) {
    throw new UsageError(
      'FOLLOW_UNTIL',
      '--follow prints events as they come: --until would end it',
      {
        hint: 'leave out --until (Ctrl-C stops following)',
      },
    );
  }
  const print = (events: AuditEvent[]) => {
    for (const event of events) {
      if (context.output.json) context.output.writeJsonLine(event);
      else if (context.output.stdoutIsTTY) context.output.line(followLine(context, event));
      else context.output.table([], [pipeFields(event)]);
    }
  };
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await withStore(context, async (store) => {
      const resolved = withCorrelation(store, filter);
      const start = followStart(store, resolved, options.limit);
      print(start.events);
      context.output.info(
        'following the audit trail: new events are printed as they are recorded (Ctrl-C stops)',
      );
      await followTrail({
        store,
        filter: resolved,
        afterSeq: start.lastSeq,
        signal: controller.signal,
        onEvents: print,
      });
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  // Only Ctrl-C or SIGTERM ends following: exit 130, silently (StreamStopped).
  throw new StreamStopped();
}

/** One event on a terminal: the query table's columns on one line, the whole correlation ID last. */
function followLine(context: CommandContext, event: AuditEvent): string {
  return [
    shortTime(event.time),
    event.direction.padEnd(8),
    `${event.sourceNode} → ${event.targetNode}`,
    event.principal === '' ? '-' : event.principal,
    `${event.resource}/${event.capability}`,
    context.output.paint(outcomeCell(event.outcome)),
    context.output.paint(event.errorCode ?? '-'),
    formatDuration(event.durationUs),
    event.correlationId,
  ].join('  ');
}

/** On a terminal, for people: correlation IDs cut to a prefix `audit trace` takes as it is. */
async function renderTable(context: CommandContext, report: QueryReport): Promise<void> {
  const ids = report.events.map((event) => event.correlationId);
  const prefixes =
    ids.length === 0
      ? new Map<string, number>()
      : await withStore(context, (store) => store.read((db) => distinctPrefixLengths(db, ids)));
  context.output.table(
    [
      // Shown without a zone, so the header says which.
      'time (utc)',
      ...(report.federated ? ['origin'] : []),
      'correlation',
      'direction',
      'source → target',
      'principal',
      'resource/capability',
      'outcome',
      'error',
      'duration',
    ],
    report.events.map((event): Cell[] => [
      shortTime(event.time),
      ...originCells(report, event),
      event.correlationId.slice(0, prefixes.get(event.correlationId)),
      event.direction,
      `${event.sourceNode} → ${event.targetNode}`,
      event.principal === '' ? '-' : event.principal,
      `${event.resource}/${event.capability}`,
      outcomeCell(event.outcome),
      // Why a call failed (POLICY_DENIED, REVOKED, BACKEND_TIMEOUT…): the first question.
      event.errorCode ?? '-',
      formatDuration(event.durationUs),
    ]),
  );
}
