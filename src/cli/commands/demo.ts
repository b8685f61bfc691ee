import type { Command } from 'commander';
import { action } from '../action.js';
import { withExamples } from '../help-text.js';
import type { CliIo } from '../output/output.js';

interface DemoCommandOptions {
  keep?: boolean;
}

export function registerDemo(program: Command, io: CliIo): void {
  const command = program
    .command('demo')
    .description(
      'set up a two-organization federation on loopback in a temporary folder, with the real CLI, ' +
        'showing every command',
    )
    .option('--keep', 'keep the temporary folder (certificates, state files) at the end')
    .action(
      action<DemoCommandOptions>(io, async (context, options) => {
        const { runDemo } = await import('../demo/scenario.js');
        await runDemo(context, { keep: options.keep === true });
      }),
    );
  command.addHelpText(
    'after',
    [
      '',
      'Two CAs (org-a.example, org-b.example), a node each, both daemons on 127.0.0.1',
      '(never multicast), trust by fingerprint, a route, an invoke, and its audit trace',
      'on both nodes. Nothing touches your own state file. The daemons are stopped at',
      'the end, and on Ctrl-C (exit 130); the folder is removed unless --keep. A',
      'failing step ends the demo with its exit code. With --json: a summary on stdout,',
      'the transcript on stderr.',
    ].join('\n'),
  );
  withExamples(command, [
    ['Run it', 'sark-fed demo'],
    ['Keep the certificates and state files to explore afterwards', 'sark-fed demo --keep'],
    [
      'For a script: the summary only',
      "sark-fed demo --json --quiet | jq '.steps[] | [.exitCode, .command]'",
    ],
  ]);
}
