import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, cleanEnv, expectSuccess, tempDir } from '../helpers/cli.js';
import { initNode, type TestNode } from '../helpers/federation.js';
import { createCa, issueNode } from '../helpers/pki.js';

/**
 * The shipped completion scripts (completions/) asking the real, built sark-fed for the node IDs
 * of a real state file when Tab is pressed: `trust show <TAB>`, `invoke --node <TAB>`, with the
 * state file named by --state on the command line or by SARK_FED_STATE.
 */

const COMPLETIONS = fileURLToPath(new URL('../../completions/', import.meta.url));

function installed(shell: string): boolean {
  return spawnSync(shell, ['--version'], { stdio: 'ignore' }).status === 0;
}

let node: TestNode;
/** An environment whose PATH finds `sark-fed`, as after `npm install -g`. */
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  const root = tempDir('sark-fed-completion-');
  const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'org-a.example']);
  const certs = await issueNode(ca.dir, 'node-a', join(root, 'certs'), ['--ip', '127.0.0.1']);
  node = await initNode(root, certs, 'node-a', 'org-a.example');
  for (const peer of ['node-b', 'node-c'])
    expectSuccess(await node.cli(['nodes', 'add', peer, '--endpoint', 'https://127.0.0.1:9']));
  const bin = join(root, 'bin');
  mkdirSync(bin);
  symlinkSync(CLI_PATH, join(bin, 'sark-fed'));
  env = cleanEnv({ PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
}, 60_000);

describe('bash', () => {
  /** COMPREPLY for a command line whose last word is being completed. */
  function complete(line: string, extraEnv: Record<string, string> = {}): string[] {
    const driver = [
      'source "$1"; shift',
      'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))',
      '_sark_fed sark-fed "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const result = spawnSync(
      'bash',
      ['--norc', '-c', driver, 'bash', join(COMPLETIONS, 'sark-fed.bash'), ...line.split(' ')],
      { encoding: 'utf8', env: { ...env, ...extraEnv } },
    );
    expect(result.stderr).toBe('');
    return result.stdout.split('\n').filter((entry) => entry !== '');
  }

  it('completes node IDs from the state file on the command line or in SARK_FED_STATE', () => {
    expect(complete(`sark-fed --state ${node.state} trust show `)).toEqual(['node-b', 'node-c']);
    expect(complete(`sark-fed invoke echo echo --state ${node.state} --node node-c`)).toEqual([
      'node-c',
    ]);
    expect(complete('sark-fed circuit reset ', { SARK_FED_STATE: node.state })).toEqual([
      'node-b',
      'node-c',
    ]);
    // No state file there: nothing offered, nothing said.
    expect(complete(`sark-fed --state ${node.state}.missing trust show `)).toEqual([]);
  });
});

describe.skipIf(!installed('zsh'))('zsh', () => {
  it('completes node IDs from the state file on the command line', () => {
    // _sark-fed_listed as _arguments calls it for `trust show <TAB>`; compadd stubbed to print.
    const result = spawnSync(
      'zsh',
      [
        '-f',
        '-c',
        'compdef() { : }; source $1; compadd() { print -rl -- ${(P)${@[-1]}} }; LBUFFER=$2; _sark-fed_listed --state nodes list',
        'zsh',
        join(COMPLETIONS, '_sark-fed'),
        `sark-fed --state=${node.state} trust show `,
      ],
      { encoding: 'utf8', env },
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('node-b\nnode-c\n');
  });
});

describe.skipIf(!installed('fish'))('fish', () => {
  it('completes node IDs from the state file on the command line', () => {
    const result = spawnSync(
      'fish',
      [
        '--no-config',
        '-c',
        'source $argv[1]; and complete -C $argv[2]',
        join(COMPLETIONS, 'sark-fed.fish'),
        `sark-fed --state ${node.state} audit query --node `,
      ],
      { encoding: 'utf8', env },
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n').map((entry) => entry.split('\t')[0])).toEqual([
      'node-b',
      'node-c',
      '',
    ]);
  });
});
