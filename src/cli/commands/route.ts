import type { Command } from 'commander';
import type { RouteCandidate, RouteResult } from '../../core/routing/router.js';
import { action } from '../action.js';
import type { CommandContext } from '../context.js';
import { withExamples } from '../help-text.js';
import { durationOption } from '../options.js';
import type { Cell, CliIo } from '../output/output.js';
import { withNode } from './shared.js';

interface RouteOptions {
  capability?: string;
  refresh?: boolean;
  timeout: number;
}

export function registerRoute(program: Command, io: CliIo): void {
  const route = program
    .command('route')
    .description(
      'which node an invoke of a resource would go to, the fallbacks, and why others are skipped',
    )
    .argument('<resource>', 'resource ID')
    .option('--capability <id>', 'only nodes that offer this capability of the resource')
    .option('--refresh', 'ask every peer for its catalog again, whatever the cache holds')
    .addOption(durationOption('--timeout <duration>', "how long to wait for peers' catalogs", '2s'))
    .action(
      action<RouteOptions>(io, async (context, options, [resource]) => {
        const { findRoute, noRouteError } = await import('../../core/routing/router.js');
        const { openRoutingSession } = await import('../../core/routing/session.js');
        const { assertResourceId } = await import('../../core/routing/identifiers.js');
        assertResourceId(resource as string, 'resource');
        if (options.capability !== undefined) assertResourceId(options.capability, 'capability');
        const result = await withNode(context, async ({ store, identity, privateKey }) => {
          const session = openRoutingSession({
            store,
            identity,
            privateKey,
            now: context.now,
            env: context.io.env,
            // The catalog queries run concurrently: the deadline is one query's, plus slack.
            timeoutMs: options.timeout + 1_000,
          });
          const spinner = await context.output.spinner(`finding a route to ${resource}`);
          try {
            return await findRoute({
              store,
              identity,
              transport: session.transport,
              breakers: session.breakers,
              deadline: session.deadline,
              now: context.now,
              resource: resource as string,
              capability: options.capability,
              refresh: options.refresh === true,
              catalogTimeoutMs: options.timeout,
            });
          } finally {
            spinner.stop();
            await session.close();
          }
        });
        render(context, result);
        if (!result.chosen) throw noRouteError(result, 'route');
      }),
    );
  withExamples(route, [
    ['Where would an invoke of echo go', 'sark-fed route echo'],
    [
      'Only nodes offering its echo capability, asking every peer again',
      'sark-fed route echo --capability echo --refresh',
    ],
    ['The chosen node, for a script', "sark-fed route inventory --json | jq -r '.chosen'"],
  ]);
}

function render(context: CommandContext, result: RouteResult): void {
  if (context.output.json) {
    context.output.writeJson(routeReport(result));
    return;
  }
  const what =
    result.capability === null ? result.resource : `${result.resource}/${result.capability}`;
  if (result.chosen) context.output.info(`route to ${what}: ${result.chosen.nodeId}`);
  context.output.table(
    ['node', 'status', 'health', 'latency', 'circuit', 'catalog', 'reason'],
    result.candidates.map((candidate) => [
      // In a pipe the first field is a node ID a script can pass on (`invoke --node`); this
      // node's row is the one whose catalog is `local`.
      candidate.local && context.output.stdoutIsTTY
        ? `${candidate.nodeId} (this node)`
        : candidate.nodeId,
      statusCell(candidate),
      healthCell(candidate.health),
      candidate.latencyMs === null ? '-' : `${candidate.latencyMs} ms`,
      circuitCell(candidate),
      candidate.catalog ?? '-',
      candidate.skipped?.reason ?? '',
    ]),
  );
}

function statusCell(candidate: RouteCandidate): Cell {
  if (candidate.rank === 1) return { text: 'chosen', style: 'green' };
  if (candidate.rank !== null) return `fallback ${candidate.rank - 1}`;
  return { text: `skipped: ${candidate.skipped?.code ?? ''}`, style: 'dim' };
}

function healthCell(health: RouteCandidate['health']): Cell {
  const style = ({ online: 'green', degraded: 'yellow', offline: 'red', unknown: 'dim' } as const)[
    health
  ];
  return { text: health, style };
}

function circuitCell(candidate: RouteCandidate): Cell {
  if (candidate.circuit === 'closed') return 'closed';
  // A half-open circuit's retry time is when a dead trial's claim lapses, not when calls resume.
  if (candidate.circuit === 'half_open') return { text: 'half-open (trial)', style: 'yellow' };
  return {
    text: candidate.circuitRetryAt ? `open until ${candidate.circuitRetryAt}` : 'open',
    style: 'red',
  };
}

/** The JSON shape of `route` (docs/json-output.md). */
export function routeReport(result: RouteResult) {
  return {
    resource: result.resource,
    capability: result.capability,
    chosen: result.chosen?.nodeId ?? null,
    candidates: result.candidates.map((candidate) => ({
      nodeId: candidate.nodeId,
      local: candidate.local,
      status: candidate.rank === 1 ? 'chosen' : candidate.rank !== null ? 'fallback' : 'skipped',
      rank: candidate.rank,
      trust: candidate.trust,
      endpoint: candidate.endpoint,
      health: candidate.health,
      latencyMs: candidate.latencyMs,
      circuit: candidate.circuit,
      circuitRetryAt: candidate.circuitRetryAt,
      catalog: candidate.catalog,
      idempotent: candidate.idempotent,
      skipped: candidate.skipped,
    })),
  };
}
