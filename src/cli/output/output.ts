import type { ChalkInstance } from 'chalk';
import type CliTable3 from 'cli-table3';
import { createRequire } from 'node:module';
import type { Environment } from '../../core/state/paths.js';
import { colorLevel } from './color.js';
import { visible, visibleLines } from './visible.js';

export interface WritableStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: WritableStream;
  stderr: WritableStream;
  env: Environment;
}

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  /** false after --no-color. */
  color: boolean;
}

type Paint = (text: string) => string;

export interface Styles {
  bold: Paint;
  dim: Paint;
  red: Paint;
  green: Paint;
  yellow: Paint;
  cyan: Paint;
}

export interface Spinner {
  succeed(text?: string): void;
  fail(text?: string): void;
  stop(): void;
}

/**
 * A cell of a table: plain text, or text with the style it takes on a terminal, or (`styled`)
 * text this process already styled for stdout, shown as it is. Text may come from the network
 * (a peer's principal, an error message), so control characters in the first two are shown
 * escaped, never sent to the terminal.
 */
export type Cell = string | { text: string; style: keyof Styles } | { styled: string };

const plain: Paint = (text) => text;
const PLAIN_STYLES: Styles = {
  bold: plain,
  dim: plain,
  red: plain,
  green: plain,
  yellow: plain,
  cyan: plain,
};

/**
 * Everything the CLI writes goes through here. stdout carries data only: tables on a terminal,
 * tab-separated rows in a pipe, one JSON document with --json. Progress, warnings and errors go
 * to stderr.
 */
/**
 * Whether data goes to a person: stdout is a terminal, or SARK_FED_FORCE_TTY says to write as if
 * it were (as GH_FORCE_TTY does for gh), for a program that shows the output to a person: the
 * demo's transcript, a `watch`, a pager. Prompts still need a real terminal.
 */
export function stdoutIsTerminal(io: Pick<CliIo, 'stdout' | 'env'>): boolean {
  const forced = io.env.SARK_FED_FORCE_TTY;
  if (forced !== undefined && forced !== '' && forced !== '0' && forced.toLowerCase() !== 'false')
    return true;
  return io.stdout.isTTY === true;
}

export class Output {
  private constructor(
    private readonly io: CliIo,
    readonly options: OutputOptions,
    /** Styles for stdout and for stderr: each stream has its own terminal (or not). */
    readonly out: Styles,
    readonly err: Styles,
  ) {}

  static async create(io: CliIo, options: OutputOptions): Promise<Output> {
    const outLevel = colorLevel(io.env, options.color, stdoutIsTerminal(io));
    const errLevel = colorLevel(io.env, options.color, io.stderr.isTTY === true);
    // chalk costs ~10 ms to import: only pay for it when some stream is coloured.
    if (outLevel === 0 && errLevel === 0)
      return new Output(io, options, PLAIN_STYLES, PLAIN_STYLES);
    const { Chalk } = await import('chalk');
    return new Output(
      io,
      options,
      outLevel === 0 ? PLAIN_STYLES : stylesFor(new Chalk({ level: outLevel })),
      errLevel === 0 ? PLAIN_STYLES : stylesFor(new Chalk({ level: errLevel })),
    );
  }

  get json(): boolean {
    return this.options.json;
  }

  get quiet(): boolean {
    return this.options.quiet;
  }

  get stdoutIsTTY(): boolean {
    return stdoutIsTerminal(this.io);
  }

  /** Writes one line of data to stdout. */
  line(text = ''): void {
    this.io.stdout.write(`${text}\n`);
  }

  writeJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One JSON document per line, for streaming commands. */
  writeJsonLine(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /**
   * Rows under upper-case headers on a terminal; tab-separated rows without a header in a pipe
   * (the form `cut -f` and `while read` expect).
   */
  table(headers: readonly string[], rows: ReadonlyArray<readonly Cell[]>): void {
    // No rows, no table: commands say "nothing yet" on stderr; a bare header would be noise.
    if (rows.length === 0) return;
    if (!this.stdoutIsTTY) {
      for (const row of rows) this.line(row.map((cell) => tsvField(textOf(cell))).join('\t'));
      return;
    }
    const Table = loadTable();
    const table = new Table({
      head: headers.map((header) => this.out.bold(header.toUpperCase())),
      chars: BORDERLESS,
      style: { head: [], border: [], 'padding-left': 0, 'padding-right': 2 },
    });
    for (const row of rows) table.push(row.map((cell) => this.paint(cell)));
    this.line(table.toString().replace(/ +$/gm, ''));
  }

  /** A record as aligned "Label  value" lines on a terminal, "label<TAB>value" in a pipe. */
  fields(pairs: ReadonlyArray<readonly [string, Cell]>): void {
    if (!this.stdoutIsTTY) {
      for (const [label, value] of pairs) this.line(`${label}\t${tsvField(textOf(value))}`);
      return;
    }
    const width = Math.max(...pairs.map(([label]) => label.length));
    for (const [label, value] of pairs) {
      this.line(`${this.out.bold(label.padEnd(width))}  ${this.paint(value)}`);
    }
  }

  /** Progress and notes for a person: stderr, silenced by --quiet. */
  info(text: string): void {
    if (!this.options.quiet) this.io.stderr.write(`${text}\n`);
  }

  success(text: string): void {
    if (!this.options.quiet) this.io.stderr.write(`${this.err.green('✓')} ${text}\n`);
  }

  /** A warning: often about what a peer said, so its control characters are shown escaped. */
  warn(text: string): void {
    this.io.stderr.write(`${this.err.yellow('warning:')} ${visibleLines(text)}\n`);
  }

  debug(text: string): void {
    if (this.options.verbose) this.io.stderr.write(`${this.err.dim(text)}\n`);
  }

  /** Spinners only where a person watches: stderr is a terminal, and neither --json nor --quiet. */
  async spinner(text: string): Promise<Spinner> {
    // A terminal that reports no width (`script`, some CI consoles) makes ora redraw endlessly.
    const columns = (this.io.stderr as { columns?: number }).columns ?? 0;
    if (this.io.stderr.isTTY !== true || this.options.json || this.options.quiet || columns <= 0)
      return SILENT_SPINNER;
    const { default: ora } = await import('ora');
    // ora colours by the terminal alone: NO_COLOR, FORCE_COLOR=0 and --no-color are ours to pass
    // on (the spinner's colour, and our own marks instead of its coloured ones).
    const coloured = this.err !== PLAIN_STYLES;
    const spinner = ora({
      text,
      stream: this.io.stderr as NodeJS.WritableStream,
      color: coloured ? 'cyan' : false,
    }).start();
    return {
      succeed: (done) => spinner.stopAndPersist({ symbol: this.err.green('✓'), text: done }),
      fail: (failed) => spinner.stopAndPersist({ symbol: this.err.red('✗'), text: failed }),
      stop: () => spinner.stop(),
    };
  }

  paint(cell: Cell): string {
    if (typeof cell === 'string') return visible(cell);
    if ('styled' in cell) return cell.styled;
    return this.out[cell.style](visible(cell.text));
  }
}

const SILENT_SPINNER: Spinner = { succeed: () => {}, fail: () => {}, stop: () => {} };

const BORDERLESS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '',
};

function stylesFor(chalk: ChalkInstance): Styles {
  return {
    bold: (text) => chalk.bold(text),
    dim: (text) => chalk.dim(text),
    red: (text) => chalk.red(text),
    green: (text) => chalk.green(text),
    yellow: (text) => chalk.yellow(text),
    cyan: (text) => chalk.cyan(text),
  };
}

function textOf(cell: Cell): string {
  if (typeof cell === 'string') return cell;
  return 'styled' in cell ? cell.styled : cell.text;
}

/**
 * A field of a tab-separated row: tabs and newlines inside it would break the row format, and
 * other control characters (a terminal escape in a peer's principal) are shown escaped.
 */
function tsvField(text: string): string {
  return visible(text.replace(/[\t\n\r]/g, ' '));
}

type TableConstructor = typeof CliTable3;
let tableConstructor: TableConstructor | undefined;

/** cli-table3 is CommonJS, so it can be required synchronously, and only when a table is drawn. */
function loadTable(): TableConstructor {
  tableConstructor ??= createRequire(import.meta.url)('cli-table3') as TableConstructor;
  return tableConstructor;
}
