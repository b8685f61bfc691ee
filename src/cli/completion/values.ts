import type { Argument, Option } from 'commander';

/**
 * What a completion script offers for an option's value or an argument where commander's
 * choices cannot say it: values that a custom parser checks (`--announce mdns,consul`, a list),
 * or a path of command names (`help pki issue`). Kept beside the command tree, which the
 * generator reads, rather than in it: commander would check choices itself and refuse a list.
 */
export type CompletionValues =
  /** One of these words (for a list option, each item of the list). */
  | { kind: 'words'; words: readonly string[] }
  /** A command path of the program, from its top, or at first one of these topics. */
  | { kind: 'command-path'; topics: readonly string[] }
  /**
   * What the program itself lists when the user presses Tab: the first tab-separated field of
   * each line `<program> [options copied from the line] --no-color <command...>` prints (in a
   * pipe, as the completion scripts run it). `copiedOptions` are the global options that say
   * which state to read (`--state`), taken from the command line being completed.
   */
  | { kind: 'listed'; command: readonly string[]; copiedOptions: readonly string[] };

/** The node IDs the state file knows, as `nodes list` prints them. */
export const KNOWN_NODES: CompletionValues = {
  kind: 'listed',
  command: ['nodes', 'list'],
  copiedOptions: ['--state'],
};

const VALUES = new WeakMap<Option | Argument, CompletionValues>();

export function completeWith<T extends Option | Argument>(target: T, values: CompletionValues): T {
  VALUES.set(target, values);
  return target;
}

export function completionValues(target: Option | Argument): CompletionValues | undefined {
  return VALUES.get(target);
}
