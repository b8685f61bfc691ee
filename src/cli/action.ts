import type { Command } from 'commander';
import { UsageError } from '../core/errors.js';
import { createCommandContext, type CommandContext } from './context.js';
import type { CliIo } from './output/output.js';

/**
 * Thrown when the operator answers "no" to a confirmation. Declining is a decision, not a failure:
 * the command reports what it left alone and exits 0, whichever command asked.
 */
export class Declined extends Error {
  constructor(readonly outcome: string) {
    super(outcome);
    this.name = 'Declined';
  }
}

/**
 * Thrown by a streaming mode (`audit query --follow`, `discover --watch`) that Ctrl-C or SIGTERM
 * stopped. That is how such a stream normally ends, as `tail -f` or `journalctl -f` ends: the
 * process exits 130 (interrupted, CLI.md) with nothing on stderr, where an InterruptedError would
 * print `error: …` (or a JSON error) as if something had gone wrong. Any other interruption (a
 * prompt cancelled, a demo stopped) stays an InterruptedError, with its error line.
 */
export class StreamStopped extends Error {
  constructor() {
    super('stream stopped');
    this.name = 'StreamStopped';
  }
}

export type ActionHandler<Options> = (
  context: CommandContext,
  options: Options,
  args: string[],
) => Promise<void>;

/**
 * Adapts a handler to commander's action signature (positional arguments, options, command) and
 * gives it the per-invocation context. Handlers lazy-import the engine, so defining the command
 * tree stays cheap for `--help`.
 */
export function action<Options>(io: CliIo, handler: ActionHandler<Options>) {
  return async (...received: unknown[]): Promise<void> => {
    const command = received[received.length - 1] as Command;
    const args = received.slice(0, -2).flatMap((value) => (Array.isArray(value) ? value : [value]));
    const context = await createCommandContext(command, io);
    try {
      await handler(
        context,
        command.opts<Options & object>(),
        args.filter((value): value is string => typeof value === 'string'),
      );
    } catch (error) {
      if (!(error instanceof Declined)) throw withEnvironmentSource(error, command);
      context.output.info(error.outcome);
    }
  };
}

/**
 * A usage error about a value that came from an environment variable (FEDERATION_NODE_ID=Bad_Id,
 * FEDERATION_DNS_NAMESERVER) names the variable: the operator did not type the value, and may
 * look for it everywhere but the environment. (commander says so itself for the values its own
 * parsers refuse; this covers the checks the commands make.)
 */
function withEnvironmentSource(error: unknown, command: Command): unknown {
  if (!(error instanceof UsageError)) return error;
  for (const option of command.options) {
    const name = option.attributeName();
    if (option.envVar === undefined || command.getOptionValueSource(name) !== 'env') continue;
    const value: unknown = command.getOptionValue(name);
    if (typeof value === 'string' && value !== '' && error.message.includes(value)) {
      return new UsageError(error.code, `${error.message} (from ${option.envVar})`, {
        hint: error.hint,
        cause: error.cause,
      });
    }
  }
  return error;
}
