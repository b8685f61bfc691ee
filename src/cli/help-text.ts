import type { Command } from 'commander';

export type Example = readonly [description: string, commandLine: string];

/**
 * The width help text is written for: commander wraps its own columns to the terminal's width,
 * or 80 in a pipe; the examples, written once for every terminal, fit the narrowest common one.
 */
export const HELP_WIDTH = 80;

/** Appends an EXAMPLES section (`$`-prefixed lines) to a command's help, as `step` and `gh` do. */
export function withExamples(command: Command, examples: readonly Example[]): Command {
  // Wrapped when the help is shown, not while the command tree is built on every start.
  return command.addHelpText('after', () => {
    const lines = examples.flatMap(([description, commandLine]) => [
      ...wrapWords(description.split(' '), '  # ', '  # ', ''),
      ...wrapCommandLine(commandLine),
      '',
    ]);
    return `\nExamples:\n${lines.join('\n').trimEnd()}\n`;
  });
}

/**
 * A command line as `  $ …` lines of at most HELP_WIDTH columns, continued with a backslash, so
 * that it still runs when pasted whole into a shell. Only spaces outside quotes break a line (a
 * backslash-newline inside quotes would be part of the argument).
 */
export function wrapCommandLine(commandLine: string): string[] {
  if (`  $ ${commandLine}`.length <= HELP_WIDTH) return [`  $ ${commandLine}`];
  // Each command of an `a && b` list or an `a | b` pipeline starts a line of its own.
  const commands: string[][] = [[]];
  for (const unit of lineUnits(shellWords(commandLine))) {
    (commands.at(-1) as string[]).push(unit);
    if (unit.endsWith(' &&') || unit.endsWith(' |')) commands.push([]);
  }
  const lines = commands
    .filter((command) => command.length > 0)
    .flatMap((command, index) =>
      wrapWords(command, index === 0 ? '  $ ' : '      ', '      ', ' \\'),
    );
  return lines.map((line, index) =>
    index < lines.length - 1 && !line.endsWith(' \\') ? `${line} \\` : line,
  );
}

/**
 * The words that stay together on a line: an option and its value (`--out ./node-a`), a
 * redirection and its file (`> ~/.config/…`), and `&&` or `|` with the command before it.
 */
const OPERATORS = new Set(['&&', '|']);

function lineUnits(words: readonly string[]): string[] {
  const units: string[] = [];
  for (let index = 0; index < words.length; index++) {
    const word = words[index] as string;
    const next = words[index + 1];
    if (OPERATORS.has(word) && units.length > 0) {
      units.push(`${units.pop() as string} ${word}`);
    } else if (
      next !== undefined &&
      ((word.startsWith('-') && !next.startsWith('-') && !OPERATORS.has(next)) ||
        word === '>' ||
        word === '>>')
    ) {
      units.push(`${word} ${next}`);
      index++;
    } else {
      units.push(word);
    }
  }
  return units;
}

/**
 * Words filled greedily into lines of at most HELP_WIDTH columns: the first line starts with
 * `first`, the others with `next`, and every line but the last ends with `continuation`. A word
 * too long for any line gets one of its own.
 */
function wrapWords(words: string[], first: string, next: string, continuation: string): string[] {
  const lines: string[] = [];
  let line = '';
  words.forEach((word, index) => {
    const last = index === words.length - 1;
    const candidate =
      line === '' ? `${lines.length === 0 ? first : next}${word}` : `${line} ${word}`;
    if (line === '' || candidate.length + (last ? 0 : continuation.length) <= HELP_WIDTH) {
      line = candidate;
      return;
    }
    lines.push(`${line}${continuation}`);
    line = `${next}${word}`;
  });
  lines.push(line);
  return lines;
}

/** The words of a POSIX shell command line, quotes kept: `--args '{"a": 1}'` is two words. */
function shellWords(commandLine: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote: string | undefined;
  for (let index = 0; index < commandLine.length; index++) {
    const char = commandLine[index] as string;
    if (quote === undefined && char === ' ') {
      if (word !== '') words.push(word);
      word = '';
      continue;
    }
    word += char;
    if (char === '\\' && quote !== "'") {
      word += commandLine[++index] ?? '';
    } else if (quote === undefined && (char === "'" || char === '"')) {
      quote = char;
    } else if (char === quote) {
      quote = undefined;
    }
  }
  if (word !== '') words.push(word);
  return words;
}
