import { runProcess, runProgram } from './cli.js';
import { ALL_COMMANDS } from './commands/all.js';
import type { CliIo } from './output/output.js';

/**
 * The CLI with every command: what runs for top-level help, `--version`, `help`, `completion`
 * and anything that names no known command. A command line naming one command runs instead from
 * that command's own bundle (scripts/build.mjs, bin/sark-fed.js), which loads far less.
 */

/** Runs the CLI with the given arguments (process.argv form) and returns the exit code. */
export function main(argv: readonly string[], io: CliIo): Promise<number> {
  return runProgram(argv, io, ALL_COMMANDS);
}

/** The process entry point. */
export function run(): Promise<void> {
  return runProcess(ALL_COMMANDS);
}
