/**
 * `sark-fed invoke --args`: JSON on the command line, in a file (@file) or on stdin (-). Each way
 * of getting it wrong is refused with exit 2 before the state file is opened or a peer called,
 * with a hint that fits where the arguments came from. The state file named here never exists:
 * a run that gets past the arguments stops there (exit 4), which shows they were accepted.
 */
import { existsSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectRefusal, runCli, tempDir } from '../helpers/cli.js';
import { runInTerminal } from '../helpers/terminal.js';

const dir = tempDir('sark-fed-invoke-args-');
const state = join(dir, 'never', 'state.db');

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function invoke(args: string[], input?: string) {
  return runCli(['--state', state, 'invoke', 'echo', 'echo', ...args], { input });
}

const NOTE = 'reading the arguments from stdin; end with Ctrl-D on a new line';

describe.concurrent('invoke --args refusals (exit 2, nothing opened)', () => {
  it.each([
    [
      '@ a YAML file',
      () => ['--args', `@${file('args.yaml', 'sku: A-1\n')}`],
      undefined,
      /^the arguments from \S+args\.yaml are not JSON: unexpected "s"$/,
      /^--args @file reads JSON only \(not YAML\): write \S+args\.yaml as JSON, e\.g\. \{"key":"value"\}$/,
    ],
    [
      '@ a JSON file with a trailing comma',
      () => ['--args', `@${file('comma.json', '{\n  "sku": "A-1",\n}\n')}`],
      undefined,
      /^the arguments from \S+comma\.json are not JSON: Expected double-quoted property name at line 3, column 1$/,
      /^--args @file reads JSON only/,
    ],
    [
      '@ an empty file',
      () => ['--args', `@${file('empty.json', '\n')}`],
      undefined,
      /^the arguments file \S+empty\.json is empty$/,
      /^write one JSON value in it, e\.g\. \{"key":"value"\}, or leave --args out for null$/,
    ],
    [
      '@ without a file name',
      () => ['--args', '@'],
      undefined,
      /^--args @ names no file$/,
      /^give a file name after @, e\.g\. --args @query\.json$/,
    ],
    [
      '@ a file that is not there',
      () => ['--args', `@${join(dir, 'missing.json')}`],
      undefined,
      /^cannot read arguments from \S+missing\.json \(ENOENT\)$/,
      /^give --args @file with a readable JSON file$/,
    ],
    [
      '@ a folder',
      () => ['--args', `@${dir}`],
      undefined,
      /^cannot read arguments from \S+ \(EISDIR\)$/,
      /^give --args @file with a readable JSON file$/,
    ],
    [
      '@ a file over 16 MiB',
      () => {
        // Sparse: its size is what counts, and it is refused before it is read.
        const path = file('huge.json', '');
        truncateSync(path, 16 * 1024 * 1024 + 1);
        return ['--args', `@${path}`];
      },
      undefined,
      /^\S+huge\.json is larger than 16 MiB$/,
      /^send less at once$/,
    ],
    [
      '- with nothing on stdin',
      () => ['--args', '-'],
      '',
      /^no arguments on stdin: it was empty$/,
      /^send JSON on stdin, e\.g\. echo '\{"key":"value"\}' \| sark-fed invoke … --args -, or leave --args out for null$/,
    ],
    [
      '- with more than 16 MiB on stdin',
      () => ['--args', '-'],
      ' '.repeat(16 * 1024 * 1024 + 1),
      /^the arguments on stdin exceed 16 MiB$/,
      /^send less at once$/,
    ],
    [
      '- with stdin that is not JSON',
      () => ['--args', '-'],
      '{sku: 1}',
      /^the arguments from stdin are not JSON: Expected property name or '\}' at line 1, column 2$/,
      /^send one JSON value on stdin, e\.g\. \{"key":"value"\}$/,
    ],
    [
      'an empty --args',
      () => ['--args', ''],
      undefined,
      /^--args is empty$/,
      /^give JSON, e\.g\. --args '\{"key":"value"\}', or leave --args out for null$/,
    ],
    [
      'an --args that is not JSON',
      () => ['--args', '{not json'],
      undefined,
      /^the arguments from --args are not JSON: Expected property name or '\}' at line 1, column 2$/,
      /^quote JSON for the shell, e\.g\. --args '\{"key":"value"\}', or use --args @file$/,
    ],
  ])('%s', async (_name, args, input, message, hint) => {
    const result = await invoke(args(), input);
    expectRefusal(result, 2, { message, hint });
    expect(existsSync(dirname(state))).toBe(false);
  });
});

describe('invoke --args - at a terminal', () => {
  it('says it is reading stdin when stdin is a terminal, and only then', async () => {
    const piped = await invoke(['--args', '-'], '{"sku":"A-1"}');
    expect(piped.stderr).not.toContain(NOTE);
    expect(piped.stderr).toMatch(/^error: no state file at /);
    expect(piped.code).toBe(4);

    // At a terminal, the JSON is typed once the note shows; Ctrl-D at the start of a line ends
    // the terminal's input.
    const { screen, code } = await runInTerminal(
      ['--state', state, 'invoke', 'echo', 'echo', '--args', '-'],
      { when: NOTE, keys: '{"sku":"A-1"}\n\u0004' },
    );
    expect(screen).toContain(NOTE);
    // The typed arguments were accepted: the run went on to open the (absent) state file.
    expect(screen).toMatch(/error: no state file at /);
    expect(code).toBe(4);
  });
});
