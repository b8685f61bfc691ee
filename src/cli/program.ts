import { Command, Help, Option } from 'commander';
import { withExamples } from './help-text.js';
import type { CliIo } from './output/output.js';
import { packageVersion } from './version.js';

/** Defines one top-level command (and its subcommands) on the program. */
export type RegisterCommand = (program: Command, io: CliIo) => void;

/** A top-level command: its name, as the command line spells it, and what defines it. */
export type CommandDefinition = readonly [name: string, register: RegisterCommand];

/**
 * The command tree over the given top-level commands (src/cli/commands/all.ts lists every one).
 * Only definitions live here and in the register functions: every action imports what it needs
 * when it runs, so `--help` and `--version` stay fast. A one-shot command runs from a bundle
 * holding that command alone (bin/sark-fed.js picks it; scripts/build.mjs builds them).
 */
export function buildProgram(io: CliIo, commands: readonly CommandDefinition[]): Command {
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
      // cli.ts prints commander's errors itself, as one line with a hint and the right exit code.
      outputError: () => {},
    })
    .exitOverride()
    // Set before the commands are added, which inherit it. A list of commands shows each one's
    // arguments but not "[options]" (every command has some, and its own help lists them): with
    // it, `invoke [options] <resource> <capability>` made the column so wide that commander gave
    // up wrapping the descriptions, and the help overflowed an 80-column terminal.
    .configureHelp({
      subcommandTerm: (command) => DEFAULT_HELP.subcommandTerm(command).replace(' [options]', ''),
    });

  for (const [, register] of commands) register(program, io);

  // `help` is our own command (it knows the exit-codes topic); groups need no implicit one.
  forEachCommand(program, (command) => command.helpCommand(false));
  forEachCommand(program, checkRequiredOptionsLast);
  // The names of the README and the guide (./ca-a, ./node-a), which `init --help` uses too: the
  // examples run as shown, one after the other, in an empty folder.
  withExamples(program, [
    ['Create a development CA', 'sark-fed pki ca create --out ./ca-a --trust-domain org-a.example'],
    [
      'Issue a node certificate from it',
      'sark-fed pki issue --ca ./ca-a --node-id node-a --ip 127.0.0.1 --out ./node-a',
    ],
    [
      "Record this node's identity, and trust its organization's CA",
      'sark-fed init --node-id node-a --trust-domain org-a.example --cert ./node-a/cert.pem --key ./node-a/key.pem --ca ./ca-a/ca.pem',
    ],
    ['Show it, as JSON for scripts', 'sark-fed status --json'],
  ]);
  program.addHelpText(
    'after',
    'Exit codes: 0 ok, 1 failed, 2 usage, 3 trust, 4 not found, 5 unavailable,\n' +
      '6 refused, 130 interrupted. Run `sark-fed help exit-codes` for details.\n',
  );
  return program;
}

/**
 * Commander checks required options before unknown ones, so `init --nodeid node-a` said
 * "required option '--node-id <id>' not specified" where "unknown option '--nodeid' (Did you
 * mean --node-id?)" says what went wrong. The check moves to a preAction hook, which commander
 * runs after its unknown-option check; the error is commander's own, word for word.
 */
function checkRequiredOptionsLast(command: Command): void {
  const required = command.options.filter((option) => option.mandatory);
  if (required.length === 0) return;
  for (const option of required) option.makeOptionMandatory(false);
  command.hook('preAction', () => {
    for (const option of required) {
      if (command.getOptionValue(option.attributeName()) === undefined) {
        command.error(`error: required option '${option.flags}' not specified`, {
          code: 'commander.missingMandatoryOptionValue',
          exitCode: 1,
        });
      }
    }
  });
}

/** commander's own help, whose terms the program's help shortens. */
const DEFAULT_HELP = new Help();

export function forEachCommand(command: Command, visit: (command: Command) => void): void {
  visit(command);
  for (const child of command.commands) forEachCommand(child, visit);
}
