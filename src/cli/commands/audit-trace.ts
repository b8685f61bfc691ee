import { eventsByCorrelation } from '../../core/audit/events.js';
import {
  buildTrace,
  type OriginEvent,
  type Trace,
  type TraceEvent,
  type TraceHop,
} from '../../core/audit/trace.js';
import { ReceiptSigners, type ReceiptCheck } from '../../core/audit/verify.js';
import { loadIdentity } from '../../core/state/identity-repository.js';
import type { CommandContext } from '../context.js';
import type { Cell } from '../output/output.js';
import type { TraceOptions } from './audit.js';
import { formatDuration, outcomeCell, shortTime, warnProblems } from './audit-format.js';
import { resolveCorrelationArgument } from './audit-correlation.js';
import { withNode, withStore } from './shared.js';
import { count } from '../../core/plural.js';

/** Width of the timeline bar, in characters. */
const BAR_WIDTH = 24;

interface Problem {
  nodeId: string;
  code: string;
  message: string;
}

/** The JSON shape of `audit trace` (docs/json-output.md). */
export type TraceReport = Trace & { federated: boolean; problems: Problem[] };

/** `audit trace <correlation-id>`: one call's hops across nodes, receipts verified. */
export async function runTrace(
  context: CommandContext,
  options: TraceOptions,
  given: string,
): Promise<void> {
  const report = options.federated
    ? await federated(context, options, given)
    : await withStore(context, (store) => {
        const correlationId = resolveCorrelationArgument(store, given, 'trace');
        return store.read((db) => {
          const self = loadIdentity(db)?.nodeId;
          const events: OriginEvent[] = eventsByCorrelation(db, correlationId).map((event) => ({
            ...event,
            ...(self === undefined ? {} : { origin: self }),
          }));
          return {
            ...buildTrace(correlationId, events, ReceiptSigners.load(db)),
            federated: false,
            problems: [],
          };
        });
      });

  if (context.output.json) context.output.writeJson(report);
  else render(context, report);
  warnProblems(context.output, report.problems, 'events of this call');
}

async function federated(
  context: CommandContext,
  options: TraceOptions,
  given: string,
): Promise<TraceReport> {
  const { queryFederated } = await import('../../core/audit/federated.js');
  return withNode(context, async ({ store, identity, privateKey }) => {
    const correlationId = resolveCorrelationArgument(store, given, 'trace');
    const spinner = await context.output.spinner('asking the peers involved');
    let result;
    try {
      result = await queryFederated({
        store,
        identity,
        privateKey,
        filter: { correlationId },
        timeoutMs: options.timeout,
        now: context.now,
      });
    } finally {
      spinner.stop();
    }
    const signers = store.read((db) => ReceiptSigners.load(db));
    return {
      ...buildTrace(correlationId, result.events, signers),
      federated: true,
      problems: result.problems,
    };
  });
}

function render(context: CommandContext, trace: TraceReport): void {
  const { output } = context;
  if (!output.stdoutIsTTY) {
    // In a pipe, one row per event, under the hop it belongs to: start and duration in µs.
    output.table(
      [],
      trace.hops.flatMap((hop) =>
        hop.events.map((event) =>
          [
            hop.index,
            event.direction,
            event.origin,
            hop.sourceNode,
            hop.targetNode,
            `${hop.resource}/${hop.capability}`,
            event.time,
            event.outcome,
            event.statusCode ?? '-',
            event.startUs,
            event.durationUs,
            event.receipt.status,
            event.receipt.reason ?? '',
          ].map(String),
        ),
      ),
    );
    return;
  }
  const events = trace.hops.reduce((sum, hop) => sum + hop.events.length, 0);
  output.line(`${output.out.bold('correlation ID')}  ${trace.correlationId}`);
  output.line(
    `${output.out.bold('started')}         ${shortTime(trace.startedAt)} UTC · ${count(trace.hops.length, 'hop')} across ${trace.nodes.join(', ')}, ${count(events, 'event')} · ${formatDuration(trace.spanUs)}`,
  );
  output.line();
  const rows: Cell[][] = [];
  for (const hop of trace.hops) {
    const indent = '  '.repeat(hop.depth);
    rows.push([
      `${indent}${hop.index}. ${hop.sourceNode} → ${hop.targetNode}`,
      `${hop.resource}/${hop.capability}`,
      outcomeCell(hop.outcome),
      hop.statusCode === null ? '-' : String(hop.statusCode),
      `+${formatDuration(hop.startUs)}`,
      formatDuration(hop.durationUs),
      receiptCell(hop.receipt),
      bar(context, trace, hop, true),
    ]);
    hop.events.forEach((event, index) => {
      const branch = index === hop.events.length - 1 ? '└─' : '├─';
      rows.push([
        `${indent}   ${branch} ${event.direction} (${event.origin})`,
        shortTime(event.time),
        outcomeCell(event.outcome),
        event.statusCode === null ? '-' : String(event.statusCode),
        `+${formatDuration(event.startUs)}`,
        formatDuration(event.durationUs),
        receiptCell(event.receipt),
        bar(context, trace, event, false),
      ]);
    });
  }
  output.table(
    ['hop', 'call / recorded at', 'outcome', 'status', 'start', 'duration', 'receipt', 'timeline'],
    rows,
  );
}

function receiptCell(check: ReceiptCheck): Cell {
  switch (check.status) {
    case 'verified':
      return { text: '✓ verified', style: 'green' };
    case 'invalid':
      return { text: `✗ not verified: ${check.reason ?? ''}`, style: 'red' };
    case 'unknown-signer':
      return { text: `? unknown signer (${check.signer ?? '-'})`, style: 'yellow' };
    case 'none':
      return { text: '- no receipt', style: 'dim' };
  }
}

/** The span of an event or hop on the trace's timeline: a bar of BAR_WIDTH characters. */
function bar(
  context: CommandContext,
  trace: Trace,
  { startUs, durationUs }: Pick<TraceEvent | TraceHop, 'startUs' | 'durationUs'>,
  hop: boolean,
): Cell {
  const scale = trace.spanUs > 0 ? BAR_WIDTH / trace.spanUs : 0;
  const from = Math.min(BAR_WIDTH - 1, Math.floor(startUs * scale));
  const length = Math.max(1, Math.min(BAR_WIDTH - from, Math.round(durationUs * scale)));
  const { out } = context.output;
  const filled = (hop ? '█' : '▆').repeat(length);
  return {
    styled:
      out.dim('·'.repeat(from)) +
      (hop ? out.cyan(filled) : filled) +
      out.dim('·'.repeat(BAR_WIDTH - from - length)),
  };
}
