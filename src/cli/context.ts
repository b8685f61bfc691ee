import type { Command } from 'commander';
import { UsageError } from '../core/errors.js';
import { resolveStatePath } from '../core/state/paths.js';
import { Output, type CliIo } from './output/output.js';
import { createPrompter, type Prompter } from './output/prompt.js';

/** The global options of CLI.md, as commander parses them. */
export interface GlobalOptions {
  state?: string;
  json?: boolean;
  color?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  yes?: boolean;
  nonInteractive?: boolean;
}

/** What every command action receives: its streams, its renderer, its prompter, its settings. */
export interface CommandContext {
  io: CliIo;
  output: Output;
  prompter: Prompter;
  statePath: string;
  /** True when prompts may be shown. */
  interactive: boolean;
  assumeYes: boolean;
  now(): Date;
}

export async function createCommandContext(command: Command, io: CliIo): Promise<CommandContext> {
  const globals = command.optsWithGlobals<GlobalOptions>();
  // An empty SARK_FED_STATE is unset, as any empty variable; an empty --state (`--state "$DIR"`
  // with DIR unset) would otherwise fall back to the default file, another node's perhaps.
  if (globals.state === '' && command.getOptionValueSourceWithGlobals('state') === 'cli') {
    throw new UsageError('STATE_PATH_EMPTY', '--state is empty', {
      hint: 'name the state file, e.g. --state ./node-a/state.db, or leave --state out for the default',
    });
  }
  // stdin last: a script's run (stdout not a terminal) never opens it (see runProcess).
  const interactive =
    globals.nonInteractive !== true &&
    !isTruthy(io.env.SARK_FED_NO_PROMPT) &&
    io.stdout.isTTY === true &&
    io.stdin.isTTY === true;
  const assumeYes = globals.yes === true;
  const output = await Output.create(io, {
    json: globals.json === true,
    quiet: globals.quiet === true,
    verbose: globals.verbose === true,
    color: globals.color !== false,
  });
  return {
    io,
    output,
    prompter: createPrompter({
      interactive,
      assumeYes,
      input: () => io.stdin,
      output: io.stderr as NodeJS.WritableStream,
    }),
    statePath: resolveStatePath(globals.state, io.env),
    interactive,
    assumeYes,
    now: () => new Date(),
  };
}

function isTruthy(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}
