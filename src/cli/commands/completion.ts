import type { Command } from 'commander';
import type { CliIo } from '../output/output.js';

export function registerCompletion(program: Command, io: CliIo): void {
  void program;
  void io;
}
