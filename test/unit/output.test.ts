import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Output, type CliIo, type OutputOptions } from '../../src/cli/output/output.js';

class FakeStream {
  text = '';
  constructor(readonly isTTY: boolean) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

const DEFAULTS: OutputOptions = { json: false, quiet: false, verbose: false, color: true };

async function setup(
  options: {
    tty: boolean;
    env?: Record<string, string>;
    stderrTTY?: boolean;
  } & Partial<OutputOptions>,
) {
  const stdout = new FakeStream(options.tty);
  const stderr = new FakeStream(options.stderrTTY ?? options.tty);
  const io: CliIo = {
    stdin: Readable.from([]),
    stdout,
    stderr,
    env: options.env ?? { NO_COLOR: '1' },
  };
  const output = await Output.create(io, {
    json: options.json ?? DEFAULTS.json,
    quiet: options.quiet ?? DEFAULTS.quiet,
    verbose: options.verbose ?? DEFAULTS.verbose,
    color: options.color ?? DEFAULTS.color,
  });
  return { output, stdout, stderr };
}

const HEADERS = ['node', 'trust domain', 'state'] as const;
const ROWS = [
  ['node-a', 'org-a.example', { text: 'trusted', style: 'green' as const }],
  ['node-bb', 'org-b.example', 'pending'],
];

describe('Output.table', () => {
  it('writes as for a terminal in a pipe when SARK_FED_FORCE_TTY is set, and not for 0 or false', async () => {
    const forced = await setup({ tty: false, env: { NO_COLOR: '1', SARK_FED_FORCE_TTY: '1' } });
    forced.output.table(HEADERS, ROWS);
    expect(forced.output.stdoutIsTTY).toBe(true);
    expect(forced.stdout.text).toMatch(/^NODE\s+TRUST DOMAIN\s+STATE$/m);
    expect(forced.stdout.text).not.toContain('\t');
    for (const value of ['0', 'false', '']) {
      const plain = await setup({ tty: false, env: { NO_COLOR: '1', SARK_FED_FORCE_TTY: value } });
      plain.output.table(HEADERS, ROWS);
      expect(plain.output.stdoutIsTTY).toBe(false);
      expect(plain.stdout.text).toBe(
        'node-a\torg-a.example\ttrusted\nnode-bb\torg-b.example\tpending\n',
      );
    }
  });

  it('renders upper-case headers and aligned columns on a terminal', async () => {
    const { output, stdout, stderr } = await setup({ tty: true });
    output.table(HEADERS, ROWS);
    const lines = stdout.text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('');
    expect(lines[0]).toMatch(/^NODE\s+TRUST DOMAIN\s+STATE$/);
    expect(lines[1]).toMatch(/^node-a\s+org-a\.example\s+trusted$/);
    expect(lines[2]).toMatch(/^node-bb\s+org-b\.example\s+pending$/);
    // Columns line up: each column starts at the same offset on every line.
    const starts = (line: string, word: string) => line.indexOf(word);
    expect(starts(lines[1] ?? '', 'org-a')).toBe(starts(lines[0] ?? '', 'TRUST'));
    expect(starts(lines[2] ?? '', 'pending')).toBe(starts(lines[0] ?? '', 'STATE'));
    expect(stdout.text).not.toContain('\t');
    expect(stdout.text).not.toContain('\u001b[');
    expect(stderr.text).toBe('');
  });

  it('colours headers and styled cells on a colour terminal', async () => {
    const { output, stdout } = await setup({ tty: true, env: { FORCE_COLOR: '1' } });
    output.table(HEADERS, ROWS);
    expect(stdout.text).toContain('\u001b[1mNODE');
    expect(stdout.text).toContain('\u001b[32mtrusted\u001b[39m');
  });

  it('renders tab-separated rows without a header in a pipe', async () => {
    const { output, stdout } = await setup({ tty: false, env: {} });
    output.table(HEADERS, ROWS);
    expect(stdout.text).toBe('node-a\torg-a.example\ttrusted\nnode-bb\torg-b.example\tpending\n');
  });

  it('keeps each row on one line in a pipe, whatever the cells hold', async () => {
    const { output, stdout } = await setup({ tty: false });
    output.table(['a', 'b'], [['one\ttwo', 'three\nfour\r']]);
    expect(stdout.text).toBe('one two\tthree four \n');
  });

  it('shows control characters from the data escaped, on a terminal and in a pipe', async () => {
    // A principal comes from the calling peer: it must not drive the operator's terminal, nor
    // forge a row of its own.
    const principal = 'eve\u001b[2J\u001b]0;owned\u0007\nnode-x\u009b@x';
    const terminal = await setup({ tty: true, env: { FORCE_COLOR: '1' } });
    terminal.output.table(['principal', 'outcome'], [[principal, { text: 'a\rb', style: 'red' }]]);
    expect(terminal.stdout.text).toContain(
      'eve\\x1b[2J\\x1b]0;owned\\x07\\nnode-x\\x9b@x  \u001b[31ma\\rb\u001b[39m',
    );
    expect(terminal.stdout.text.split('\n')).toHaveLength(3);

    const pipe = await setup({ tty: false });
    pipe.output.table([], [[principal, 'success']]);
    expect(pipe.stdout.text).toBe('eve\\x1b[2J\\x1b]0;owned\\x07 node-x\\x9b@x\tsuccess\n');

    const fields = await setup({ tty: true });
    fields.output.fields([['Principal', principal]]);
    expect(fields.stdout.text).not.toMatch(/[\u001b\u0007\u009b]/);
  });

  it('shows a cell this process styled itself as it is', async () => {
    const { output, stdout } = await setup({ tty: true, env: { FORCE_COLOR: '1' } });
    output.table(['timeline'], [[{ styled: '\u001b[2m··\u001b[22m██' }]]);
    expect(stdout.text).toContain('\u001b[2m··\u001b[22m██');
  });

  it('prints nothing for no rows, in a pipe and on a terminal (no bare header)', async () => {
    for (const tty of [false, true]) {
      const { output, stdout } = await setup({ tty });
      output.table(HEADERS, []);
      expect(stdout.text).toBe('');
    }
  });
});

describe('Output.fields', () => {
  const PAIRS = [
    ['Node', 'node-a'],
    ['SPIFFE ID', 'spiffe://org-a.example/sark/node/node-a'],
    ['Expires', { text: '2027-01-01T00:00:00.000Z (in 364 days)', style: 'green' as const }],
  ] as const;

  it('aligns labels on a terminal', async () => {
    const { output, stdout } = await setup({ tty: true });
    output.fields(PAIRS);
    expect(stdout.text).toBe(
      [
        'Node       node-a',
        'SPIFFE ID  spiffe://org-a.example/sark/node/node-a',
        'Expires    2027-01-01T00:00:00.000Z (in 364 days)',
        '',
      ].join('\n'),
    );
  });

  it('prints label<TAB>value lines in a pipe, without colour even when forced', async () => {
    const { output, stdout } = await setup({ tty: false, env: {} });
    output.fields(PAIRS);
    expect(stdout.text).toBe(
      [
        'Node\tnode-a',
        'SPIFFE ID\tspiffe://org-a.example/sark/node/node-a',
        'Expires\t2027-01-01T00:00:00.000Z (in 364 days)',
        '',
      ].join('\n'),
    );
  });
});

describe('Output JSON and stderr', () => {
  it('writes one JSON document with writeJson', async () => {
    const { output, stdout, stderr } = await setup({ tty: true, json: true });
    expect(output.json).toBe(true);
    const value = { certificates: [{ fingerprint: 'ab', isCa: false, pathLength: null }] };
    output.writeJson(value);
    expect(JSON.parse(stdout.text)).toEqual(value);
    expect(stdout.text.endsWith('}\n')).toBe(true);
    expect(stderr.text).toBe('');
  });

  it('writes one compact document per line with writeJsonLine', async () => {
    const { output, stdout } = await setup({ tty: false, json: true });
    output.writeJsonLine({ a: 1 });
    output.writeJsonLine({ b: [2] });
    expect(stdout.text).toBe('{"a":1}\n{"b":[2]}\n');
  });

  it('sends notes to stderr, never stdout; --quiet silences info and success, not warnings', async () => {
    const loud = await setup({ tty: false });
    loud.output.info('working');
    loud.output.success('done');
    loud.output.warn('careful');
    loud.output.debug('details');
    expect(loud.stdout.text).toBe('');
    expect(loud.stderr.text).toBe('working\n✓ done\nwarning: careful\n');

    const quiet = await setup({ tty: false, quiet: true, verbose: true });
    quiet.output.info('working');
    quiet.output.success('done');
    quiet.output.warn('careful');
    quiet.output.debug('details');
    expect(quiet.stderr.text).toBe('warning: careful\ndetails\n');
  });

  it('shows control characters in a warning escaped, its lines kept', async () => {
    const { output, stderr } = await setup({ tty: false });
    output.warn('node-b answered 500 X: \u001b[31mred\u001b[0m\nsecond line');
    expect(stderr.text).toBe('warning: node-b answered 500 X: \\x1b[31mred\\x1b[0m\nsecond line\n');
  });

  it('colours stderr by its own terminal, not stdout’s', async () => {
    const { output, stdout, stderr } = await setup({
      tty: false,
      stderrTTY: true,
      env: { TERM: 'xterm' },
    });
    output.warn('careful');
    output.fields([['Node', { text: 'node-a', style: 'red' }]]);
    expect(stderr.text).toBe('\u001b[33mwarning:\u001b[39m careful\n');
    expect(stdout.text).toBe('Node\tnode-a\n');
  });

  it('shows no spinner unless stderr is a terminal and output is not JSON or quiet', async () => {
    for (const options of [{ tty: false }, { tty: true, json: true }, { tty: true, quiet: true }]) {
      const { output, stderr } = await setup(options);
      const spinner = await output.spinner('scanning');
      spinner.succeed('found 2');
      expect(stderr.text).toBe('');
    }
  });
});
