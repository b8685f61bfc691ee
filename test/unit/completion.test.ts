import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, Option } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { completionScript, type Shell } from '../../src/cli/completion/generate.js';
import { completeWith, type CompletionValues } from '../../src/cli/completion/values.js';
import type { CliIo } from '../../src/cli/output/output.js';
import { ALL_COMMANDS } from '../../src/cli/commands/all.js';
import { buildProgram } from '../../src/cli/program.js';

const COMPLETIONS = fileURLToPath(new URL('../../completions/', import.meta.url));
const FILES: Record<Shell, string> = {
  bash: 'sark-fed.bash',
  zsh: '_sark-fed',
  fish: 'sark-fed.fish',
};

const io: CliIo = {
  stdin: process.stdin,
  stdout: { write: () => true },
  stderr: { write: () => true },
  env: {},
};

const work = mkdtempSync(join(tmpdir(), 'sark-fed-completion-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Writes a generated script into the work folder and returns its path. */
function scriptFile(program: Command, shell: Shell): string {
  const path = join(work, `${program.name()}-${FILES[shell]}`);
  writeFileSync(path, completionScript(program, shell));
  return path;
}

function installed(shell: string): boolean {
  return spawnSync(shell, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A toy program: nothing of sark-fed's tree is in it. */
function toyProgram(): Command {
  const program = new Command('gizmo')
    .option('--loud', 'shout')
    .option('--depot <path>', 'where the widgets are kept');
  const widget = program.command('widget').alias('w').description('widgets');
  const listedWidgets: CompletionValues = {
    kind: 'listed',
    command: ['widget', 'list'],
    copiedOptions: ['--depot'],
  };
  widget
    .command('frob')
    .description('frob a widget')
    .addOption(new Option('--colour <c>', 'paint colour').choices(['red', 'green']))
    .addOption(new Option('--secret-knob', 'not for users').hideHelp())
    .addOption(completeWith(new Option('--twin <widget>', 'frob its twin too'), listedWidgets))
    .addArgument(completeWith(new Argument('<widget>', 'which one'), listedWidgets))
    .addArgument(new Argument('[label]', 'a label for it (free text)'));
  program.command('sneaky', { hidden: true }).description('a hidden command');
  return program;
}

/**
 * The toy program itself, on a PATH of its own for the scripts to run when Tab is pressed: a
 * shell script that lists two widgets, tab-separated as sark-fed prints rows in a pipe, and
 * writes down the arguments it was given.
 */
const toyBin = join(work, 'toy-bin');
const toyCalls = join(work, 'toy-calls');
mkdirSync(toyBin);
writeFileSync(
  join(toyBin, 'gizmo'),
  `#!/bin/sh\nprintf '%s\\n' "$*" >> '${toyCalls}'\nprintf 'alpha\\tfirst\\nbeta\\tsecond\\n'\n`,
);
chmodSync(join(toyBin, 'gizmo'), 0o755);
const toyEnv = { ...process.env, PATH: `${toyBin}:${process.env.PATH ?? ''}` };

/** The arguments the toy program was run with since the last call, one line a run. */
function toyRuns(): string[] {
  let calls = '';
  try {
    calls = readFileSync(toyCalls, 'utf8');
  } catch {
    return [];
  }
  rmSync(toyCalls);
  return calls.split('\n').filter((line) => line !== '');
}

describe('completion scripts in completions/', () => {
  for (const shell of ['bash', 'zsh', 'fish'] as const) {
    it(`completions/${FILES[shell]} is what \`sark-fed completion ${shell}\` prints`, () => {
      const committed = readFileSync(join(COMPLETIONS, FILES[shell]), 'utf8');
      expect(
        committed,
        `completions/${FILES[shell]} is out of date: run \`npm run completions\``,
      ).toBe(completionScript(buildProgram(io, ALL_COMMANDS), shell));
    });
  }
});

describe('completionScript', () => {
  it('is read from the command tree: a new command appears in every script', () => {
    for (const shell of ['bash', 'zsh', 'fish'] as const) {
      const script = completionScript(toyProgram(), shell);
      expect(script, shell).toContain('widget');
      expect(script, shell).toContain('frob');
      expect(script, shell).toContain('colour');
      expect(script, shell).toMatch(/red.green/);
      if (shell !== 'bash') expect(script, shell).toContain('frob a widget');
      expect(script, shell).not.toContain('sark-fed');
      expect(script, shell).not.toContain('sneaky');
      expect(script, shell).not.toContain('secret-knob');
    }
  });

  it('is the same every time', () => {
    for (const shell of ['bash', 'zsh', 'fish'] as const) {
      expect(completionScript(buildProgram(io, ALL_COMMANDS), shell)).toBe(
        completionScript(buildProgram(io, ALL_COMMANDS), shell),
      );
    }
  });

  it('says how it was made and how to install it', () => {
    expect(completionScript(buildProgram(io, ALL_COMMANDS), 'bash')).toContain(
      'generated by `sark-fed completion bash`',
    );
    expect(completionScript(buildProgram(io, ALL_COMMANDS), 'zsh')).toContain(
      '"${fpath[1]}/_sark-fed"',
    );
    expect(completionScript(buildProgram(io, ALL_COMMANDS), 'fish')).toContain(
      '~/.config/fish/completions/sark-fed.fish',
    );
  });
});

describe('bash', () => {
  const files = join(work, 'files');
  mkdirSync(join(files, 'certs'), { recursive: true });
  writeFileSync(join(files, 'node.pem'), '');

  /**
   * Runs the completion function bash registered for the command, as bash would for a command
   * line split into `words` (the last one being completed), and returns COMPREPLY.
   */
  function complete(program: Command, words: string[]): string[] {
    const driver = [
      'source "$1"; command=$2; shift',
      'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}',
      'function=$(complete -p "$command" | sed -E "s/.* -F ([^ ]+) .*/\\1/")',
      '"$function" "$command" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const script = scriptFile(program, 'bash');
    const result = spawnSync('bash', ['--norc', '-c', driver, 'bash', script, ...words], {
      cwd: files,
      encoding: 'utf8',
      env: toyEnv,
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return result.stdout.split('\n').filter((line) => line !== '');
  }
  const sarkFed = (line: string) => complete(buildProgram(io, ALL_COMMANDS), line.split(' '));

  it('completes command names', () => {
    expect(sarkFed('sark-fed pk')).toEqual(['pki']);
    expect(sarkFed('sark-fed pki ')).toEqual(
      expect.arrayContaining(['ca', 'issue', 'inspect', 'crl']),
    );
    expect(sarkFed('sark-fed pki ca ')).toEqual(['create']);
  });

  it('completes the choices of an option, in every spelling', () => {
    expect(sarkFed('sark-fed pki issue --key-type ')).toEqual(['ec', 'ed25519']);
    // With "=" in COMP_WORDBREAKS (the default) bash splits --key-type=e into three words.
    expect(
      complete(buildProgram(io, ALL_COMMANDS), ['sark-fed', 'pki', 'issue', '--key-type', '=']),
    ).toEqual(['ec', 'ed25519']);
    expect(
      complete(buildProgram(io, ALL_COMMANDS), [
        'sark-fed',
        'pki',
        'issue',
        '--key-type',
        '=',
        'ed',
      ]),
    ).toEqual(['ed25519']);
    expect(sarkFed('sark-fed pki issue --key-type=e')).toEqual([
      '--key-type=ec',
      '--key-type=ed25519',
    ]);
  });

  it('completes file names for an option without choices', () => {
    expect(sarkFed('sark-fed pki issue --out ').sort()).toEqual(['certs', 'node.pem']);
    expect(sarkFed('sark-fed --state n')).toEqual(['node.pem']);
  });

  it('skips option values when working out the command', () => {
    expect(sarkFed('sark-fed --state x.db pki ')).toEqual(
      expect.arrayContaining(['ca', 'issue', 'inspect', 'crl']),
    );
    expect(sarkFed('sark-fed pki issue --out ca ')).not.toContain('create');
    expect(
      complete(buildProgram(io, ALL_COMMANDS), [
        'sark-fed',
        '--state',
        '=',
        'x.db',
        'pki',
        'c',
      ]).sort(),
    ).toEqual(['ca', 'crl']);
  });

  it("completes the command's options and the global ones", () => {
    const options = sarkFed('sark-fed pki issue --n');
    expect(options).toContain('--node-id');
    expect(options).toContain('--non-interactive');
    expect(options).not.toContain('--json');
    expect(sarkFed('sark-fed pki ca create --')).toEqual(
      expect.arrayContaining(['--out', '--days', '--key-type', '--state', '--json']),
    );
    expect(sarkFed('sark-fed pki ca create --')).not.toContain('--node-id');
  });

  it('completes arguments: their choices, or file names', () => {
    expect(sarkFed('sark-fed completion ')).toEqual(['bash', 'zsh', 'fish']);
    expect(sarkFed('sark-fed pki inspect ').sort()).toEqual(['certs', 'node.pem']);
  });

  it('completes help with the command names and its topic, then the subcommands of the path so far, never file names', () => {
    const topLevel = sarkFed('sark-fed help ');
    expect(topLevel).toEqual(expect.arrayContaining(['init', 'pki', 'invoke', 'exit-codes']));
    expect(topLevel).not.toContain('node.pem');
    expect(sarkFed('sark-fed help e')).toEqual(['exit-codes']);
    expect(sarkFed('sark-fed help pki ')).toEqual(['ca', 'issue', 'inspect', 'crl']);
    expect(sarkFed('sark-fed help --json pki ca ')).toEqual(['create']);
    expect(sarkFed('sark-fed help exit-codes ')).toEqual([]);
    expect(sarkFed('sark-fed help nope ')).toEqual([]);
  });

  it('completes the methods of serve --announce, a list its own parser checks, item by item', () => {
    expect(sarkFed('sark-fed serve --announce ')).toEqual(['mdns', 'consul']);
    expect(sarkFed('sark-fed serve --announce=c')).toEqual(['--announce=consul']);
    expect(sarkFed('sark-fed serve --announce mdns,')).toEqual(['mdns,consul']);
    expect(sarkFed('sark-fed serve --announce=consul,')).toEqual(['--announce=consul,mdns']);
    expect(sarkFed('sark-fed serve --announce mdns,consul,')).toEqual([]);
    // Only a list is completed item by item: --key-type takes one value.
    expect(sarkFed('sark-fed pki issue --key-type ec,')).toEqual([]);
  });

  it('offers nothing for free text (a URL, an address, a duration, a resource ID), not file names', () => {
    expect(sarkFed('sark-fed init --endpoint ')).toEqual([]);
    expect(sarkFed('sark-fed discover --nameserver ')).toEqual([]);
    expect(sarkFed('sark-fed invoke --timeout ')).toEqual([]);
    expect(sarkFed('sark-fed route ')).toEqual([]);
    expect(sarkFed('sark-fed invoke echo ')).toEqual([]);
    // Files where a file is meant.
    expect(sarkFed('sark-fed init --cert ').sort()).toEqual(['certs', 'node.pem']);
    expect(sarkFed('sark-fed trust crl import ').sort()).toEqual(['certs', 'node.pem']);
  });

  it('asks the program for what it lists (node IDs), with the --state of the command line', () => {
    toyRuns();
    expect(complete(toyProgram(), ['gizmo', 'widget', 'frob', ''])).toEqual(['alpha', 'beta']);
    expect(complete(toyProgram(), ['gizmo', 'w', 'frob', '--twin', 'b'])).toEqual(['beta']);
    expect(toyRuns()).toEqual(['--no-color widget list', '--no-color widget list']);
    expect(
      complete(toyProgram(), ['gizmo', '--depot', 'd.db', 'widget', 'frob', '--twin', '']),
    ).toEqual(['alpha', 'beta']);
    // bash splits --depot=e.db at the "=".
    complete(toyProgram(), ['gizmo', '--depot', '=', 'e.db', 'widget', 'frob', '']);
    complete(toyProgram(), ['gizmo', 'widget', 'frob', '--depot', '~/f.db', '']);
    expect(toyRuns()).toEqual([
      '--depot d.db --no-color widget list',
      '--depot e.db --no-color widget list',
      `--depot ${process.env.HOME}/f.db --no-color widget list`,
    ]);
    // The next argument is free text: the program is not asked.
    expect(complete(toyProgram(), ['gizmo', 'widget', 'frob', 'alpha', ''])).toEqual([]);
    expect(toyRuns()).toEqual([]);
  });

  it('offers nothing, and says nothing, when the program cannot list (no state file yet)', () => {
    const env = { ...toyEnv, PATH: '/usr/bin:/bin' };
    const script = scriptFile(toyProgram(), 'bash');
    const result = spawnSync(
      'bash',
      [
        '--norc',
        '-c',
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gizmo gizmo "" frob; printf "%s\\n" "${COMPREPLY[@]}"',
        'bash',
        script,
        'gizmo',
        'widget',
        'frob',
        '',
      ],
      { encoding: 'utf8', env },
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('');
  });

  it('completes a program it has never seen', () => {
    // commander's implicit help command is a command like the others.
    expect(complete(toyProgram(), ['gizmo', ''])).toEqual(['widget', 'w', 'help']);
    expect(complete(toyProgram(), ['gizmo', 'w', 'frob', '--colour', ''])).toEqual([
      'red',
      'green',
    ]);
    expect(complete(toyProgram(), ['gizmo', 'widget', 'frob', '-'])).toEqual([
      '--colour',
      '--twin',
      '-h',
      '--help',
      '--loud',
      '--depot',
    ]);
  });
});

describe.skipIf(!installed('zsh'))('zsh', () => {
  it('is valid zsh that defines a function per command and registers itself', () => {
    const script = scriptFile(buildProgram(io, ALL_COMMANDS), 'zsh');
    expect(readFileSync(script, 'utf8').split('\n')[0]).toBe('#compdef sark-fed');
    const syntax = spawnSync('zsh', ['-n', script], { encoding: 'utf8' });
    expect(syntax.stderr).toBe('');
    expect(syntax.status).toBe(0);
    // Sourced (not autoloaded from $fpath) the script calls compdef: stub it and look.
    const sourced = spawnSync(
      'zsh',
      [
        '-f',
        '-c',
        'compdef() { print -r -- "compdef $*" }; source $1; whence -w _sark-fed _sark-fed_pki_issue',
        'zsh',
        script,
      ],
      { encoding: 'utf8' },
    );
    expect(sourced.stderr).toBe('');
    expect(sourced.stdout).toBe(
      'compdef _sark-fed sark-fed\n_sark-fed: function\n_sark-fed_pki_issue: function\n',
    );
  });

  it('completes help with command paths and topics, and serve --announce with its methods', () => {
    const path = scriptFile(buildProgram(io, ALL_COMMANDS), 'zsh');
    const script = readFileSync(path, 'utf8');
    // Each item of the comma-separated list (_sequence); node IDs from the program; nothing
    // offered for free text (a single space), such as a host[:port] (whose value name keeps its
    // brackets and is not mistaken for an optional value).
    expect(script).toContain(":methods:_sequence compadd - '\\''mdns'\\'' '\\''consul'\\''' \\\n");
    expect(script).toContain(
      "'*--node=[call this node, skipping routing]:node:{_sark-fed_listed '\\''--state'\\'' '\\''nodes'\\'' '\\''list'\\''}' \\\n",
    );
    expect(script).toContain(
      "'*--nameserver=[DNS-SD: ask this server, not the system resolver]:host[\\:port]: ' \\\n",
    );
    /** The candidates for help's argument, `words` being the words from `help` to the cursor. */
    const candidates = (...words: string[]) => {
      // _describe stubbed: it prints the "name:description" items it was given.
      const result = spawnSync(
        'zsh',
        [
          '-f',
          '-c',
          'compdef() { : }; source $1; shift; _describe() { print -rl -- "${(@P)${@[-1]}}" }; words=("$@"); CURRENT=$#; _sark-fed_command_path 0 exit-codes',
          'zsh',
          path,
          ...words,
        ],
        { encoding: 'utf8' },
      );
      expect(result.stderr).toBe('');
      return result.stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.split(':')[0]);
    };
    expect(candidates('help', '')).toEqual(expect.arrayContaining(['init', 'pki', 'exit-codes']));
    expect(candidates('help', 'pki', '')).toEqual(['ca', 'issue', 'inspect', 'crl']);
    expect(candidates('help', 'pki', 'ca', '')).toEqual(['create']);
    expect(candidates('help', 'exit-codes', '')).toEqual([]);
  });
  it('asks the program for what it lists, with the options of the whole line', () => {
    const script = scriptFile(toyProgram(), 'zsh');
    /** What _gizmo_listed offers for a line ending at the cursor (compadd stubbed). */
    const offered = (line: string) => {
      const result = spawnSync(
        'zsh',
        [
          '-f',
          '-c',
          'compdef() { : }; source $1; compadd() { print -rl -- ${(P)${@[-1]}} }; LBUFFER=$2; _gizmo_listed --depot widget list',
          'zsh',
          script,
          line,
        ],
        { encoding: 'utf8', env: toyEnv },
      );
      expect(result.stderr).toBe('');
      return result.stdout.split('\n').filter((entry) => entry !== '');
    };
    toyRuns();
    expect(offered('gizmo widget frob ')).toEqual(['alpha', 'beta']);
    expect(offered("gizmo --depot 'my depot.db' widget frob --twin ")).toEqual(['alpha', 'beta']);
    expect(offered('gizmo --depot=e.db w frob ')).toEqual(['alpha', 'beta']);
    expect(toyRuns()).toEqual([
      '--no-color widget list',
      '--depot my depot.db --no-color widget list',
      '--depot e.db --no-color widget list',
    ]);
    expect(readFileSync(script, 'utf8')).toContain(
      "'1:which one:{_gizmo_listed '\\''--depot'\\'' '\\''widget'\\'' '\\''list'\\''}'",
    );
  });
});

describe.skipIf(!installed('fish'))('fish', () => {
  /** The candidates fish offers for a command line (`complete -C`), without descriptions. */
  function complete(program: Command, line: string): string[] {
    const script = scriptFile(program, 'fish');
    const result = spawnSync(
      'fish',
      ['--no-config', '-c', 'source $argv[1]; and complete -C $argv[2]', script, line],
      { encoding: 'utf8' },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return result.stdout
      .split('\n')
      .filter((entry) => entry !== '')
      .map((entry) => entry.split('\t')[0] ?? '');
  }
  const sarkFed = (line: string) => complete(buildProgram(io, ALL_COMMANDS), line);

  it('is valid fish', () => {
    const result = spawnSync(
      'fish',
      ['--no-execute', scriptFile(buildProgram(io, ALL_COMMANDS), 'fish')],
      {
        encoding: 'utf8',
      },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('completes commands, option values and options, with descriptions', () => {
    expect(sarkFed('sark-fed pk')).toEqual(['pki']);
    expect(sarkFed('sark-fed pki ').sort()).toEqual(['ca', 'crl', 'inspect', 'issue']);
    expect(sarkFed('sark-fed --state x.db pki ').sort()).toEqual(['ca', 'crl', 'inspect', 'issue']);
    expect(sarkFed('sark-fed pki issue --key-type ')).toEqual(['ec', 'ed25519']);
    expect(sarkFed('sark-fed pki issue --n').sort()).toEqual([
      '--no-color',
      '--node-id',
      '--non-interactive',
    ]);
    expect(sarkFed('sark-fed completion ').sort()).toEqual(['bash', 'fish', 'zsh']);
    const script = readFileSync(join(COMPLETIONS, FILES.fish), 'utf8');
    expect(script).toContain("-a 'ca' -d 'certificate authorities'");
  });

  it('completes help with command paths and topics, and serve --announce with its methods', () => {
    const topLevel = sarkFed('sark-fed help ');
    expect(topLevel).toEqual(expect.arrayContaining(['init', 'pki', 'invoke', 'exit-codes']));
    expect(topLevel).not.toContain('node.pem');
    expect(sarkFed('sark-fed help pki ').sort()).toEqual(['ca', 'crl', 'inspect', 'issue']);
    expect(sarkFed('sark-fed help --json pki ca ')).toEqual(['create']);
    expect(sarkFed('sark-fed help exit-codes ')).toEqual([]);
    expect(sarkFed('sark-fed serve --announce ').sort()).toEqual(['consul', 'mdns']);
  });

  it('completes a program it has never seen', () => {
    expect(complete(toyProgram(), 'gizmo w frob --colour ').sort()).toEqual(['green', 'red']);
    expect(complete(toyProgram(), 'gizmo ').sort()).toEqual(['help', 'w', 'widget']);
  });

  it('asks the program for what it lists, and offers nothing for free text', () => {
    const run = (line: string) => {
      const result = spawnSync(
        'fish',
        [
          '--no-config',
          '-c',
          'source $argv[1]; and complete -C $argv[2]',
          scriptFile(toyProgram(), 'fish'),
          line,
        ],
        { encoding: 'utf8', env: toyEnv },
      );
      expect(result.stderr).toBe('');
      return result.stdout
        .split('\n')
        .filter((entry) => entry !== '')
        .map((entry) => entry.split('\t')[0] ?? '');
    };
    toyRuns();
    expect(run('gizmo widget frob ')).toEqual(['alpha', 'beta']);
    expect(run('gizmo --depot d.db w frob --twin ')).toEqual(['alpha', 'beta']);
    expect(run('gizmo --depot=e.db widget frob --twin=')).toEqual(['--twin=alpha', '--twin=beta']);
    expect(toyRuns()).toEqual([
      '--no-color widget list',
      '--depot d.db --no-color widget list',
      '--depot e.db --no-color widget list',
    ]);
    expect(run('gizmo widget frob alpha ')).toEqual([]);
    expect(sarkFed('sark-fed init --endpoint ')).toEqual([]);
    expect(sarkFed('sark-fed serve --announce mdns,')).toEqual(['mdns,consul']);
  });
});
