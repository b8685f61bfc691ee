import { Argument, type Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { action } from '../action.js';
import { completeWith } from '../completion/values.js';
import { EXIT_CODES } from '../exit-codes.js';
import type { CliIo } from '../output/output.js';

const EXIT_CODES_TOPIC = 'exit-codes';

/** `help [command...]`, plus the `help exit-codes` topic of CLI.md. */
export function registerHelp(program: Command, io: CliIo): void {
  program
    .command('help')
    .description('show help for a command, or a topic: exit-codes')
    .addArgument(
      completeWith(
        new Argument('[command...]', 'a command path such as "pki issue", or "exit-codes"'),
        { kind: 'command-path', topics: [EXIT_CODES_TOPIC] },
      ),
    )
    .action(
      action<object>(io, async ({ output }, _options, words) => {
        if (words.length === 1 && words[0] === EXIT_CODES_TOPIC) {
          if (output.json) {
            output.writeJson(EXIT_CODES.map(({ code, meaning }) => ({ code, meaning })));
          } else {
            output.table(
              ['code', 'meaning'],
              EXIT_CODES.map(({ code, meaning }) => [String(code), meaning]),
            );
          }
          return;
        }
        let target = program;
        for (const word of words) {
          const next = target.commands.find((command) => command.name() === word);
          if (!next) {
            throw new UsageError(
              'UNKNOWN_HELP_TOPIC',
              `no command or help topic "${words.join(' ')}"`,
              {
                hint: 'run `sark-fed --help` for the commands, or `sark-fed help exit-codes`',
              },
            );
          }
          target = next;
        }
        target.outputHelp();
      }),
    );
}
