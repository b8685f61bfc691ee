import { CommanderError, type Command } from 'commander';
import { OperationError, SarkError, UsageError, isSarkError, messageOf } from '../core/errors.js';
import { resolveStatePath } from '../core/state/paths.js';
import { describeSqliteError } from '../core/state/sqlite-errors.js';
import { StreamStopped } from './action.js';
import { exitCodeFor } from './exit-codes.js';
import { colorLevel } from './output/color.js';
import type { CliIo } from './output/output.js';
import { visibleLines } from './output/visible.js';
import { buildProgram, forEachCommand, type CommandDefinition } from './program.js';

/**
 * Runs the CLI over the given top-level commands with the given arguments (process.argv form)
 * and returns the exit code.
 */
export async function runProgram(
  argv: readonly string[],
  io: CliIo,
  commands: readonly CommandDefinition[],
): Promise<number> {
  const program = buildProgram(io, commands);
  unsetEmptyOptionVariables(program);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0;
      // A command group called without a subcommand: commander already printed its help.
      if (error.code === 'commander.help') return exitCodeFor('usage');
      return report(usageErrorFrom(error, program, argv), argv, io);
    }
    // A stream stopped by Ctrl-C ended as it normally does: exit 130, nothing to report.
    if (error instanceof StreamStopped) return exitCodeFor('interrupted');
    return report(toSarkError(error, argv, io), argv, io);
  }
}

/** The process entry point of a bundle (bin/sark-fed.js picks one and calls its `run`). */
export async function runProcess(commands: readonly CommandDefinition[]): Promise<void> {
  // `sark-fed … | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    // A file or device that refused the output (a full disk, /dev/full): the data is lost, and
    // the operator is told so in one line, not with a stack trace; nothing more is written.
    const failure = new OperationError(
      'STDOUT_FAILED',
      `cannot write the output (${error.code ?? messageOf(error)})`,
      { cause: error, hint: 'check where stdout goes: free space, permissions, the device' },
    );
    process.exit(report(failure, process.argv, io));
  });
  const io: CliIo = {
    // Opened on first use: creating process.stdin loads Node's stream machinery for a pipe or a
    // file (~3 ms), and most commands never read it.
    get stdin() {
      return process.stdin;
    },
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  };
  process.exitCode = await runProgram(process.argv, io, commands);
}

/**
 * An empty variable is an unset one, as everywhere else here (SARK_FED_NO_PROMPT, CONSUL_HTTP_ADDR,
 * FEDERATION_CONSUL_URL for discover): commander takes an option's variable whenever it exists,
 * so `FEDERATION_CA_CERT_PATH=` in an env file made `init` read a file named "", and
 * `FEDERATION_LISTEN_ADDRESS=` kept `serve` from its endpoint. Commander reads process.env.
 */
function unsetEmptyOptionVariables(program: Command): void {
  forEachCommand(program, (command) => {
    for (const option of command.options) {
      if (option.envVar !== undefined && process.env[option.envVar] === '')
        delete process.env[option.envVar];
    }
  });
}

function toSarkError(error: unknown, argv: readonly string[], io: CliIo): SarkError {
  if (isSarkError(error)) return error;
  const statePath = resolveStatePath(optionValue(argv, '--state'), io.env);
  const fromSqlite = describeSqliteError(error, statePath);
  if (fromSqlite) return fromSqlite;
  return new SarkError('failed', 'INTERNAL', `internal error: ${messageOf(error)}`, {
    cause: error,
    hint: 'run again with --verbose for details, and report it if it persists',
  });
}

function usageErrorFrom(
  error: CommanderError,
  program: Command,
  argv: readonly string[],
): UsageError {
  const [first = error.message, ...rest] = error.message.replace(/^error: /, '').split('\n');
  const suggestion = /\(Did you mean (.+)\?\)/.exec(rest.join(' '))?.[1];
  const path = commandPath(program, argv.slice(2));
  const seeHelp = `see \`${path} --help\``;
  return new UsageError(error.code.replace(/^commander\./, 'usage.'), first, {
    hint: suggestion ? `did you mean ${suggestion}? ${seeHelp}` : seeHelp,
  });
}

/** Prints the error (one line, a hint line) on stderr and returns its exit code. */
function report(error: SarkError, argv: readonly string[], io: CliIo): number {
  const exitCode = exitCodeFor(error.kind);
  if (argv.includes('--json')) {
    const body = { code: error.code, message: error.message, hint: error.hint ?? null, exitCode };
    io.stderr.write(`${JSON.stringify({ error: body })}\n`);
    return exitCode;
  }
  const colored = colorLevel(io.env, !argv.includes('--no-color'), io.stderr.isTTY === true) > 0;
  const red = (text: string) => (colored ? `\u001b[31m${text}\u001b[39m` : text);
  const dim = (text: string) => (colored ? `\u001b[2m${text}\u001b[22m` : text);
  // A message may quote a peer (its error message, a principal): its controls are shown escaped.
  io.stderr.write(`${red('error:')} ${visibleLines(error.message)}\n`);
  if (error.hint) io.stderr.write(`${dim('hint:')} ${visibleLines(error.hint)}\n`);
  if (argv.includes('--verbose') || argv.includes('-v')) {
    let cause: unknown = error.cause;
    while (cause) {
      io.stderr.write(
        dim(`cause: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}\n`),
      );
      cause = cause instanceof Error ? cause.cause : undefined;
    }
  }
  return exitCode;
}

/** "sark-fed pki issue" for argv ["pki", "issue", "--bad"]: the deepest command the words name. */
function commandPath(program: Command, words: readonly string[]): string {
  const names = [program.name()];
  let command = program;
  for (let index = 0; index < words.length; index++) {
    const word = words[index] as string;
    if (word.startsWith('-')) {
      // The value of a global option (`--state ./a.db init`) is not a command name.
      if (word === '--state') index++;
      continue;
    }
    const sub = command.commands.find(
      (child) => child.name() === word || child.aliases().includes(word),
    );
    if (!sub) break;
    names.push(sub.name());
    command = sub;
  }
  return names.join(' ');
}

function optionValue(argv: readonly string[], name: string): string | undefined {
  const index = argv.indexOf(name);
  if (index !== -1) return argv[index + 1];
  const inline = argv.find((arg) => arg.startsWith(`${name}=`));
  return inline?.slice(name.length + 1);
}
