import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { ALL_COMMANDS } from '../../src/cli/commands/all.js';
import type { CliIo } from '../../src/cli/output/output.js';
import { buildProgram, forEachCommand } from '../../src/cli/program.js';
import {
  CLI_PATH,
  PROJECT_ROOT,
  cleanEnv,
  expectRefusal,
  expectSuccess,
  runCli,
  tempDir,
  type RunResult,
} from '../helpers/cli.js';

const VERSION = (
  JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

const EXIT_CODES = [0, 1, 2, 3, 4, 5, 6, 130];

const silentIo: CliIo = {
  stdin: process.stdin,
  stdout: { write: () => true },
  stderr: { write: () => true },
  env: {},
};

/** Lines of help text wider than an 80-column terminal. */
function longLines(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 80);
}

/** The `$` lines of a help page's examples, continuation lines joined as a shell reads them. */
function exampleCommands(help: string): string[] {
  const commands: string[] = [];
  let current: string | undefined;
  for (const line of help.split('\n')) {
    if (current !== undefined) current += `\n${line}`;
    else if (line.startsWith('  $ ')) current = line.slice('  $ '.length);
    else continue;
    if (!current.endsWith('\\')) {
      commands.push(current);
      current = undefined;
    }
  }
  return commands;
}

function installed(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

let shimDir: string | undefined;

/**
 * Runs a command line as an operator pastes it into a shell, with `sark-fed` on the PATH (a
 * shim running this build) and nothing else of the machine's environment but PATH.
 */
function shell(
  commandLine: string,
  options: { cwd: string; env: Record<string, string> },
): SpawnSyncReturns<string> {
  if (shimDir === undefined) {
    shimDir = tempDir('sark-fed-shim-');
    const shim = join(shimDir, 'sark-fed');
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${CLI_PATH}" "$@"\n`);
    chmodSync(shim, 0o755);
  }
  const env = cleanEnv(options.env);
  env.PATH = `${shimDir}:${env.PATH ?? ''}`;
  return spawnSync('sh', ['-c', commandLine], {
    cwd: options.cwd,
    env,
    encoding: 'utf8',
    timeout: 20_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The commands that run from the CLI with every command (they read the whole tree). */
const WHOLE_TREE_COMMANDS = ['help', 'completion'];

describe.concurrent('one bundle per command (scripts/build.mjs, bin/sark-fed.js)', () => {
  const names = ALL_COMMANDS.map(([name]) => name);

  it('the build made a bundle for every command but help and completion, and one for none', () => {
    expect(existsSync(join(PROJECT_ROOT, 'dist', 'cli', 'no-command.cjs'))).toBe(true);
    for (const name of names) {
      const bundle = join(PROJECT_ROOT, 'dist', 'cli', `command-${name}.cjs`);
      expect(existsSync(bundle), bundle).toBe(!WHOLE_TREE_COMMANDS.includes(name));
    }
  });

  it.each(names)(
    '%s --help runs, after global options too, and is the help of that command',
    async (name) => {
      const direct = await runCli([name, '--help']);
      expectSuccess(direct);
      expect(direct.stdout).toMatch(new RegExp(`^Usage: sark-fed ${name}\\b`));
      const afterGlobals = await runCli([
        '--state',
        '/nonexistent/state.db',
        '--no-color',
        name,
        '--help',
      ]);
      expectSuccess(afterGlobals);
      expect(afterGlobals.stdout).toBe(direct.stdout);
      // `help <command>` runs the CLI with every command: the same definitions, the same text.
      const viaHelp = await runCli(['help', name]);
      expectSuccess(viaHelp);
      expect(viaHelp.stdout).toBe(direct.stdout);
    },
  );

  it('a bundle keeps a V8 code cache beside it; a damaged cache is refused and replaced', async () => {
    const cacheDir = join(PROJECT_ROOT, 'dist', 'cli', '.v8-cache');
    const cacheOf = () =>
      readdirSync(cacheDir)
        .filter((file) => file.startsWith('command-circuit.cjs-') && file.endsWith(process.version))
        .map((file) => join(cacheDir, file));
    const state = join(tempDir(), 'state.db');
    // Whatever the cache holds, the command's answer is the same.
    const first = await runCli(['--state', state, 'circuit', 'list']);
    expectRefusal(first, 4);
    const [cache] = cacheOf();
    expect(cache, 'the first run wrote the cache').toBeDefined();
    const garbage = Buffer.alloc(4096, 7);
    writeFileSync(cache!, garbage);
    const again = await runCli(['--state', state, 'circuit', 'list']);
    expect(again).toEqual(first);
    expect(readFileSync(cache!).equals(garbage), 'the damaged cache was replaced').toBe(false);
  });
});

describe.concurrent('version and help', () => {
  it.each([['--version'], ['-V']])('%s prints the package.json version', async (flag) => {
    const result = await runCli([flag]);
    expectSuccess(result);
    expect(result.stdout).toBe(`${VERSION}\n`);
    expect(result.stderr).toBe('');
  });

  it('--help exits 0 and lists the commands and the exit codes', async () => {
    const result = await runCli(['--help']);
    expectSuccess(result);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Usage: sark-fed \[options\] \[command\]/);
    for (const command of ['init', 'status', 'pki', 'help']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    for (const option of ['--state <path>', '--json', '--no-color', '--yes', '--non-interactive']) {
      expect(result.stdout).toContain(option);
    }
    expect(result.stdout).toContain('Examples:');
    expect(result.stdout).toContain('sark-fed help exit-codes');
  });

  it('--help fits an 80-column terminal: in a pipe (commander writes for 80 columns there) and in a pty of 80 columns', async () => {
    const piped = await runCli(['--help']);
    expectSuccess(piped);
    expect(longLines(piped.stdout)).toEqual([]);
    // Every command is listed with its arguments, without "[options]" (its own help has them).
    expect(piped.stdout).toMatch(/^  invoke <resource> <capability> {2}call a capability/m);
    if (!installed('script')) return;
    // util-linux script(1) gives the CLI a terminal; stty sets its size before the CLI reads it.
    const terminal = spawnSync(
      'script',
      [
        '-qec',
        `stty cols 80 rows 24; exec "${process.execPath}" "${CLI_PATH}" --help`,
        '/dev/null',
      ],
      {
        cwd: PROJECT_ROOT,
        env: cleanEnv(),
        encoding: 'utf8',
        timeout: 20_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    expect(terminal.status, terminal.stderr).toBe(0);
    const text = terminal.stdout.replace(/\r\n/g, '\n');
    expect(text).toMatch(/^Usage: sark-fed/);
    expect(longLines(text)).toEqual([]);
  });

  it("every command's help fits 80 columns in a pipe, examples included", async () => {
    const paths: string[][] = [];
    forEachCommand(buildProgram(silentIo, ALL_COMMANDS), (command) => {
      const path: string[] = [];
      for (let node: Command | null = command; node?.parent; node = node.parent)
        path.unshift(node.name());
      if (path.length > 0) paths.push(path);
    });
    const results = await Promise.all(paths.map((path) => runCli([...path, '--help'])));
    results.forEach((result, index) => {
      expectSuccess(result);
      expect(longLines(result.stdout), (paths[index] as string[]).join(' ')).toEqual([]);
    });
  });

  it('the examples of --help run as shown, one after the other, in an empty folder; init --help names the files they made', async () => {
    const cwd = tempDir('sark-fed-examples-');
    const env = { SARK_FED_HOME: tempDir('sark-fed-examples-home-') };
    const help = await runCli(['--help']);
    const commands = exampleCommands(help.stdout);
    expect(commands.length).toBeGreaterThanOrEqual(4);
    for (const command of commands) {
      const result = shell(command, { cwd, env });
      expect(result.status, `${command}\n${result.stderr}`).toBe(0);
    }
    // The identity recorded above is the one of the files init --help names.
    const initHelp = await runCli(['init', '--help']);
    const files = exampleCommands(initHelp.stdout).flatMap((command) =>
      [...command.matchAll(/--(?:cert|key|ca|chain) (\S+)/g)].map((match) => match[1] as string),
    );
    expect(files).toEqual(expect.arrayContaining(['./node-a/cert.pem', './ca-a/ca.pem']));
    for (const path of files) expect(existsSync(join(cwd, path)), path).toBe(true);
  });

  it('the install lines of completion --help for a home folder work on a fresh account', async () => {
    const help = await runCli(['completion', '--help']);
    const lines = exampleCommands(help.stdout).filter((command) => command.includes('~/'));
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      const home = tempDir('sark-fed-fresh-home-');
      const result = shell(line, { cwd: home, env: { HOME: home } });
      expect(result.status, `${line}\n${result.stderr}`).toBe(0);
      const target = /> (~\/\S+)$/.exec(line)?.[1] as string;
      const script = readFileSync(join(home, target.slice(2)), 'utf8');
      expect(script).toMatch(/^# (bash|fish) completion for sark-fed/);
    }
  });

  it('help exit-codes prints the eight codes as tab-separated rows in a pipe', async () => {
    const result = await runCli(['help', 'exit-codes']);
    expectSuccess(result);
    expect(result.stderr).toBe('');
    const rows = result.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(8);
    const cells = rows.map((row) => row.split('\t'));
    expect(cells.every((row) => row.length === 2 && (row[1] ?? '').length > 0)).toBe(true);
    expect(cells.map(([code]) => Number(code))).toEqual(EXIT_CODES);
    expect(cells[2]?.[1]).toMatch(/^usage error/);
    expect(cells[7]?.[1]).toMatch(/^interrupted/);
  });

  it('help exit-codes --json prints an array of {code, meaning}', async () => {
    for (const args of [
      ['help', 'exit-codes', '--json'],
      ['--json', 'help', 'exit-codes'],
    ]) {
      const result = await runCli(args);
      expectSuccess(result);
      const parsed = JSON.parse(result.stdout) as Array<{ code: number; meaning: string }>;
      expect(parsed.map((entry) => Object.keys(entry).sort())).toEqual(
        EXIT_CODES.map(() => ['code', 'meaning']),
      );
      expect(parsed.map((entry) => entry.code)).toEqual(EXIT_CODES);
      expect(parsed.every((entry) => typeof entry.meaning === 'string')).toBe(true);
    }
  });

  it('help pki issue prints that command’s help, as pki issue --help does', async () => {
    const [viaHelp, viaFlag] = await Promise.all([
      runCli(['help', 'pki', 'issue']),
      runCli(['pki', 'issue', '--help']),
    ]);
    expectSuccess(viaHelp);
    expectSuccess(viaFlag);
    expect(viaHelp.stdout).toMatch(/^Usage: sark-fed pki issue \[options\]/);
    for (const option of ['--ca <dir>', '--node-id <id>', '--out <dir>', '--key-type']) {
      expect(viaHelp.stdout).toContain(option);
    }
    expect(viaHelp.stdout).toContain('$ sark-fed pki issue');
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
  });

  it('help of an unknown topic is a usage error', async () => {
    expectRefusal(await runCli(['help', 'frobnicate']), 2, {
      message: /frobnicate/,
      hint: /help exit-codes/,
    });
  });

  it.each([[[]], [['pki']], [['pki', 'ca']]])(
    'a command group without a subcommand (%j) prints help on stderr and exits 2',
    async (args) => {
      const result = await runCli(args);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^Usage: sark-fed/);
    },
  );
});

describe.concurrent('errors', () => {
  it('an unknown command exits 2 with a "did you mean" hint', async () => {
    expectRefusal(await runCli(['statsu']), 2, {
      message: "unknown command 'statsu'",
      hint: 'did you mean status? see `sark-fed --help`',
    });
    expectRefusal(await runCli(['pki', 'isue', '--ca', 'x']), 2, {
      message: "unknown command 'isue'",
      hint: 'did you mean issue? see `sark-fed pki --help`',
    });
  });

  it('an unknown option names the command in the hint, even after --state <path>', async () => {
    expectRefusal(await runCli(['--state', '/tmp/x.db', 'pki', 'inspect', '--frob', 'a']), 2, {
      message: "unknown option '--frob'",
      hint: 'see `sark-fed pki inspect --help`',
    });
  });

  it('with --json, errors are one JSON object on stderr and stdout stays empty', async () => {
    const dir = tempDir();
    const cases: Array<[string[], number, string]> = [
      [['--json', 'statsu'], 2, 'usage.unknownCommand'],
      [
        ['pki', 'ca', 'create', '--json', '--days', 'abc', '--out', dir],
        2,
        'usage.invalidArgument',
      ],
      // Every usage.<reason> json-output.md lists.
      [['--json', 'status', '--frob'], 2, 'usage.unknownOption'],
      [['--json', 'pki', 'issue', '--out', dir], 2, 'usage.missingMandatoryOptionValue'],
      [['--json', 'trust', 'show'], 2, 'usage.missingArgument'],
      [['--json', 'pki', 'issue', '--ca'], 2, 'usage.optionMissingArgument'],
      [['--json', 'status', 'extra'], 2, 'usage.excessArguments'],
      [['--json', 'pki', 'inspect', join(dir, 'missing.pem')], 2, 'INPUT_UNREADABLE'],
      [['--json', '--state', join(dir, 'none.db'), 'status'], 4, 'STATE_MISSING'],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, index) => {
      const [, exitCode, code] = cases[index] as [string[], number, string];
      expect(result.code, result.stderr).toBe(exitCode);
      expect(result.stdout).toBe('');
      expect(result.stderr.endsWith('\n')).toBe(true);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      const parsed = JSON.parse(result.stderr) as { error: Record<string, unknown> };
      expect(Object.keys(parsed)).toEqual(['error']);
      expect(Object.keys(parsed.error).sort()).toEqual(['code', 'exitCode', 'hint', 'message']);
      expect(parsed.error).toMatchObject({ code, exitCode });
      expect(typeof parsed.error.message).toBe('string');
      expect(typeof parsed.error.hint).toBe('string');
    });
  });

  it('a stdout that refuses the output (a full device) is one error line and exit 1, no stack trace', () => {
    const run = (args: string[]) => {
      const full = openSync('/dev/full', 'w');
      try {
        return spawnSync(process.execPath, [CLI_PATH, ...args], {
          cwd: PROJECT_ROOT,
          env: cleanEnv(),
          stdio: ['ignore', full, 'pipe'],
          encoding: 'utf8',
          timeout: 20_000,
        });
      } finally {
        closeSync(full);
      }
    };
    for (const args of [['--version'], ['completion', 'bash'], ['help', 'exit-codes']]) {
      const result = run(args);
      expect(result.status, result.stderr).toBe(1);
      expect(result.stderr).toBe(
        'error: cannot write the output (ENOSPC)\nhint: check where stdout goes: free space, permissions, the device\n',
      );
    }
    const json = run(['--json', 'completion', 'bash']);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stderr)).toEqual({
      error: {
        code: 'STDOUT_FAILED',
        message: 'cannot write the output (ENOSPC)',
        hint: 'check where stdout goes: free space, permissions, the device',
        exitCode: 1,
      },
    });
  });

  it('never writes to stdout on an error', async () => {
    const dir = tempDir();
    const failing: string[][] = [
      ['nope'],
      ['--bogus'],
      ['status', '--state'],
      ['--state', join(dir, 'absent.db'), 'status'],
      ['pki', 'inspect'],
      ['pki', 'inspect', dir],
      ['init', '--node-id', 'BAD ID', '--trust-domain', 'x', '--cert', 'c', '--key', 'k'],
    ];
    const results: RunResult[] = await Promise.all(failing.map((args) => runCli(args)));
    results.forEach((result, index) => {
      expect(result.code, failing[index]?.join(' ')).not.toBe(0);
      expect(result.stdout, failing[index]?.join(' ')).toBe('');
      expect(result.stderr).toMatch(/^error: /);
    });
  });
});

describe.concurrent('colour', () => {
  const RED_ERROR = '\u001b[31merror:\u001b[39m';

  it('colours errors when FORCE_COLOR asks, and not with NO_COLOR or --no-color', async () => {
    const [forced, noColor, flag, forcedOff] = await Promise.all([
      runCli(['statsu'], { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } }),
      runCli(['statsu'], { env: { NO_COLOR: '1', FORCE_COLOR: '1' } }),
      runCli(['--no-color', 'statsu'], { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } }),
      runCli(['statsu'], { env: { NO_COLOR: undefined, FORCE_COLOR: '0' } }),
    ]);
    expect(forced.stderr.startsWith(RED_ERROR)).toBe(true);
    for (const result of [noColor, flag, forcedOff]) {
      expect(result.code).toBe(2);
      expect(result.stderr).not.toContain('\u001b[');
    }
  });

  it('shows control characters an error message quotes escaped: they do not reach the terminal', async () => {
    // An error may quote what a peer or a file said; here the command line's own argument.
    const result = await runCli(['help', 'x\u001b[2Jy\u0007'], { env: { NO_COLOR: '1' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('x\\x1b[2Jy\\x07');
    expect(result.stderr).not.toMatch(/[\u001b\u0007]/);
  });

  it('writes no escape codes into a pipe by default', async () => {
    const result = await runCli(['help', 'exit-codes'], { env: { NO_COLOR: undefined } });
    expectSuccess(result);
    expect(result.stdout).not.toContain('\u001b[');
  });
});
