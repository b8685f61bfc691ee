import { Option, type Command } from 'commander';
import { action } from '../action.js';
import { completeWith, KNOWN_NODES } from '../completion/values.js';
import { withExamples } from '../help-text.js';
import { durationOption, integerIn } from '../options.js';
import type { CliIo } from '../output/output.js';
import {
  AUDIT_OUTCOMES,
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  auditTime,
} from './audit-options.js';

export interface QueryOptions {
  correlationId?: string;
  principal?: string;
  resource?: string;
  capability?: string;
  node?: string;
  outcome?: (typeof AUDIT_OUTCOMES)[number];
  since?: string;
  until?: string;
  limit: number;
  federated?: boolean;
  follow?: boolean;
  timeout: number;
}

export interface TraceOptions {
  federated?: boolean;
  timeout: number;
}

export interface ExportOptions {
  format: 'jsonl' | 'csv';
  since?: string;
}

const TIME_HELP = 'ISO 8601 (2030-01-31T09:30:00Z) or relative (15m, 2h, 7d: that long ago)';

/**
 * `sark-fed audit`: the hash-chained trail of every call this node made or served (DESIGN §7).
 * Definitions only; each action loads its renderer (audit-*.ts) and the engine when it runs.
 */
export function registerAudit(program: Command, io: CliIo): void {
  const audit = program
    .command('audit')
    .description('the tamper-evident audit trail: query, trace a call, verify, export');

  const query = audit
    .command('query')
    .description('audit events matching every filter given, newest first')
    .option(
      '--correlation-id <id>',
      'events of one call: its ID, or a prefix that names it (as tables show it)',
    )
    .option('--principal <principal>', 'events of this principal')
    .option('--resource <resource>', 'events of this resource')
    .option('--capability <capability>', 'events of this capability')
    .addOption(
      completeWith(
        new Option('--node <node>', 'events where this node called or served'),
        KNOWN_NODES,
      ),
    )
    .addOption(
      new Option('--outcome <outcome>', 'events with this outcome').choices(AUDIT_OUTCOMES),
    )
    .addOption(new Option('--since <time>', `at or after: ${TIME_HELP}`).argParser(auditTime))
    .addOption(new Option('--until <time>', `before: ${TIME_HELP}`).argParser(auditTime))
    .addOption(
      new Option('--limit <n>', 'at most this many events, the newest')
        .argParser(integerIn(1, MAX_QUERY_LIMIT))
        .default(DEFAULT_QUERY_LIMIT),
    )
    .option(
      '--federated',
      'ask the peers named in the matching events too (each answers only with calls this node took part in)',
    )
    .option(
      '-f, --follow',
      'then print each matching event as it is recorded, until Ctrl-C (oldest first; NDJSON with --json)',
    )
    .addOption(
      durationOption('--timeout <duration>', 'how long to wait for each peer (--federated)', '5s'),
    )
    .action(
      action<QueryOptions>(io, async (context, options) => {
        const { runQuery } = await import('./audit-query.js');
        await runQuery(context, options);
      }),
    );
  withExamples(query, [
    ['The last 100 events', 'sark-fed audit query'],
    ['Denied calls of the last two hours', 'sark-fed audit query --outcome denied --since 2h'],
    ['Watch calls from node-a as they happen', 'sark-fed audit query --node node-a --follow'],
    [
      'One call, on this node and on the peers it involved',
      'sark-fed audit query --correlation-id 2c0c951f-062b-45c3-985a-8cedde3770eb --federated',
    ],
    [
      'Principals of calls to inventory, for a script',
      "sark-fed audit query --resource inventory --limit 1000 --json | jq -r '.events[].principal' | sort -u",
    ],
  ]);

  const trace = audit
    .command('trace')
    .description('the timeline of one call across nodes, with each receipt verified')
    .argument('<correlation-id>', 'the correlation ID `invoke` printed')
    .option('--federated', 'ask the peers involved for their side too')
    .addOption(
      durationOption('--timeout <duration>', 'how long to wait for each peer (--federated)', '5s'),
    )
    .action(
      action<TraceOptions>(io, async (context, options, [correlationId]) => {
        const { runTrace } = await import('./audit-trace.js');
        await runTrace(context, options, correlationId as string);
      }),
    );
  withExamples(trace, [
    ['How one call went', 'sark-fed audit trace 2c0c951f-062b-45c3-985a-8cedde3770eb'],
    [
      "Both sides of it, the peers' records included",
      'sark-fed audit trace 2c0c951f-062b-45c3-985a-8cedde3770eb --federated',
    ],
    [
      'Receipts that do not verify, for a script',
      'sark-fed audit trace 2c0c951f-062b-45c3-985a-8cedde3770eb --json | jq \'.hops[] | select(.receipt.status == "invalid")\'',
    ],
  ]);

  const verify = audit
    .command('verify')
    .description('check the whole hash chain and every stored receipt (exit 1 on any break)')
    .action(
      action<object>(io, async (context) => {
        const { runVerify } = await import('./audit-verify.js');
        await runVerify(context);
      }),
    );
  withExamples(verify, [
    ['Check the trail', 'sark-fed audit verify'],
    [
      'Check it from cron, keeping the head hash to compare with next time',
      "sark-fed audit verify --json | jq -r '.headHash' >> audit-heads.txt",
    ],
  ]);

  const exporter = audit
    .command('export')
    .description('every event, oldest first, on stdout (streamed: any size of trail)')
    .addOption(
      new Option('--format <format>', 'JSON Lines or CSV')
        .choices(['jsonl', 'csv'])
        .default('jsonl'),
    )
    .addOption(new Option('--since <time>', `at or after: ${TIME_HELP}`).argParser(auditTime))
    .action(
      action<ExportOptions>(io, async (context, options) => {
        const { runExport } = await import('./audit-export.js');
        await runExport(context, options);
      }),
    );
  withExamples(exporter, [
    ['The whole trail as JSON Lines', 'sark-fed audit export > audit.jsonl'],
    ['The last week as CSV', 'sark-fed audit export --format csv --since 7d > audit.csv'],
  ]);
}
