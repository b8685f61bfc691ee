import type { Styles, WritableStream } from '../output/output.js';

/**
 * The demo as an operator would see it at a terminal: a heading per stage, each command line as
 * typed after `$`, then what the command printed, as it printed it.
 */
export class Transcript {
  /** Whether the last thing written ended a line: a command's output may not. */
  private atLineStart = true;

  constructor(
    private readonly stream: WritableStream | undefined,
    private readonly styles: Styles,
  ) {}

  heading(number: number, total: number, title: string): void {
    this.write(`\n${this.styles.bold(this.styles.cyan(`── ${number}/${total} ${title}`))}\n`);
  }

  command(line: string): void {
    this.write(`${this.styles.dim('$')} ${this.styles.bold(line)}\n`);
  }

  comment(text: string): void {
    this.write(`${this.styles.dim(`# ${text}`)}\n`);
  }

  /** A command's own output, passed on unchanged. */
  output(text: string): void {
    this.write(text, true);
  }

  /**
   * A command's output once it has ended, in the order its two streams wrote it. It ran in a
   * pipe, so its records and tables are tab-separated rows: aligned here into columns, as
   * `column -t` would, for a person to read.
   */
  commandOutput(chunks: readonly OutputChunk[]): void {
    let pending = '';
    let stream: OutputChunk['stream'] | undefined;
    const flush = () => {
      this.output(stream === 'stdout' ? alignColumns(pending) : pending);
      pending = '';
    };
    for (const chunk of chunks) {
      if (chunk.stream !== stream) flush();
      stream = chunk.stream;
      pending += chunk.text;
    }
    flush();
  }

  note(text: string): void {
    this.write(`${text}\n`);
  }

  success(text: string): void {
    this.write(`${this.styles.green('✓')} ${text}\n`);
  }

  private write(text: string, continues = false): void {
    if (!this.stream || text === '') return;
    // What the demo itself prints starts on a line of its own, even after output without a
    // newline at its end; a command's output continues where its previous chunk stopped.
    const prefix = !continues && !this.atLineStart ? '\n' : '';
    this.stream.write(prefix + text);
    this.atLineStart = text.endsWith('\n');
  }
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  text: string;
}

/** Runs of tab-separated lines become columns two spaces apart; other lines are left alone. */
export function alignColumns(text: string): string {
  const lines = text.split('\n');
  const result: string[] = [];
  let block: string[][] = [];
  const flush = () => {
    const widths: number[] = [];
    for (const cells of block)
      cells.slice(0, -1).forEach((cell, index) => {
        widths[index] = Math.max(widths[index] ?? 0, cell.length);
      });
    for (const cells of block) {
      const padded = cells.map((cell, index) =>
        index === cells.length - 1 ? cell : cell.padEnd(widths[index] ?? 0),
      );
      result.push(padded.join('  ').trimEnd());
    }
    block = [];
  };
  for (const line of lines) {
    if (line.includes('\t')) {
      block.push(line.split('\t'));
      continue;
    }
    flush();
    result.push(line);
  }
  flush();
  return result.join('\n');
}
