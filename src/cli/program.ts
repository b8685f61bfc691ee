import { Command, Option } from 'commander';
import { registerAudit } from './commands/audit.js';
import { registerCircuit } from './commands/circuit.js';
import { registerCompletion } from './commands/completion.js';
import { registerDemo } from './commands/demo.js';
import { registerDiscover } from './commands/discover.js';
import { registerHelp } from './commands/help.js';
import { registerInit } from './commands/init.js';
import { registerInvoke } from './commands/invoke.js';
import { registerNodes } from './commands/nodes.js';
import { registerPki } from './commands/pki.js';
import { registerRoute } from './commands/route.js';
import { registerServe } from './commands/serve.js';
import { registerStatus } from './commands/status.js';
import { registerTrust } from './commands/trust.js';
import { withExamples } from './help-text.js';
import type { CliIo } from './output/output.js';
import { packageVersion } from './version.js';

type Register = (program: Command, io: CliIo) => void;

/** The top-level commands, in the order `--help` lists them. */
const COMMANDS: ReadonlyArray<readonly [name: string, register: Register]> = [
  ['init', registerInit],
  ['status', registerStatus],
  ['pki', registerPki],
  ['discover', registerDiscover],
  ['nodes', registerNodes],
  ['trust', registerTrust],
  ['route', registerRoute],
  ['invoke', registerInvoke],
  ['circuit', registerCircuit],
  ['audit', registerAudit],
  ['serve', registerServe],
  ['completion', registerCompletion],
  ['demo', registerDemo],
  ['help', registerHelp],
];

/** Global options that take a value: the word after them is not a command name. */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--state']);

/**
 * The command tree. Only definitions live here and in the register functions: every action
 * imports what it needs when it runs, so `--help` and `--version` stay fast.
 *
 * Given the command line, only the command it names is defined: building all fourteen trees of
 * commands, options and help texts is a measurable part of a one-shot command's start
 * (docs/benchmarks.md). Without a command line, or when it names no known command, or names one
 * that reads the whole tree (`help`, `completion`), everything is defined, so top-level help and
 * "did you mean" suggestions see every command.
 */
export function buildProgram(io: CliIo, argv?: readonly string[]): Command {
  const program = new Command('sark-fed');
  program
    .description(
      'Administer a SARK federation: discover nodes, establish mutual-TLS trust, invoke ' +
        'governed resources across organizations, and query the tamper-evident audit trail.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .addOption(new Option('--state <path>', 'state file').env('SARK_FED_STATE'))
    .option('--json', 'print one JSON document on stdout (errors as JSON on stderr)')
    .option('--no-color', 'no colour (also NO_COLOR, FORCE_COLOR=0)')
    .option('-q, --quiet', 'print less on stderr')
    .option('-v, --verbose', 'print more on stderr')
    .option('--yes', 'answer yes to confirmations (overwrite, revoke)')
    .option('--non-interactive', 'never prompt (also SARK_FED_NO_PROMPT=1; implied without a TTY)')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // main.ts prints commander's errors itself, as one line with a hint and the right exit code.
      outputError: () => {},
    })
    .exitOverride();

  const only = argv === undefined ? undefined : commandNamed(argv.slice(2));
  for (const [name, register] of COMMANDS) {
    if (only === undefined || only === name) register(program, io);
  }

  // `help` is our own command (it knows the exit-codes topic); groups need no implicit one.
  forEachCommand(program, (command) => command.helpCommand(false));
  withExamples(program, [
    ['Create a development CA', 'sark-fed pki ca create --out ./ca --trust-domain org-a.example'],
    [
      'Issue a node certificate from it',
      'sark-fed pki issue --ca ./ca --node-id node-a --ip 127.0.0.1 --out ./node-a',
    ],
    [
      "Record this node's identity",
      'sark-fed init --node-id node-a --trust-domain org-a.example --cert ./node-a/cert.pem --key ./node-a/key.pem',
    ],
    ['Show it, as JSON for scripts', 'sark-fed status --json'],
  ]);
  program.addHelpText(
    'after',
    'Exit codes: 0 ok, 1 failed, 2 usage, 3 trust, 4 not found, 5 unavailable, 6 refused, 130 interrupted.\nRun `sark-fed help exit-codes` for details.\n',
  );
  return program;
}

/** The top-level command a command line names, when defining it alone is enough. */
function commandNamed(args: readonly string[]): string | undefined {
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    if (arg === '--') return undefined;
    if (GLOBAL_OPTIONS_WITH_VALUE.has(arg)) {
      index++;
      continue;
    }
    if (arg.startsWith('-')) continue;
    const known = COMMANDS.some(([name]) => name === arg);
    return known && arg !== 'help' && arg !== 'completion' ? arg : undefined;
  }
  return undefined;
}

export function forEachCommand(command: Command, visit: (command: Command) => void): void {
  visit(command);
  for (const child of command.commands) forEachCommand(child, visit);
}
