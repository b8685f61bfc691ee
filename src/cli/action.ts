import type { Command } from 'commander';
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
      if (!(error instanceof Declined)) throw error;
      context.output.info(error.outcome);
    }
  };
}
