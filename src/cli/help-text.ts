import type { Command } from 'commander';

export type Example = readonly [description: string, commandLine: string];

/** Appends an EXAMPLES section (`$`-prefixed lines) to a command's help, as `step` and `gh` do. */
export function withExamples(command: Command, examples: readonly Example[]): Command {
  const lines = examples.flatMap(([description, commandLine]) => [
    `  # ${description}`,
    `  $ ${commandLine}`,
    '',
  ]);
  return command.addHelpText('after', `\nExamples:\n${lines.join('\n').trimEnd()}\n`);
}
