/**
 * The CLI at a terminal: a pseudo-terminal from util-linux `script`, 100 columns wide, as an
 * operator's shell gives one. Spinners and prompts only appear there, and they load libraries no
 * scripted run loads (ora, @inquirer/prompts), from inside each command's bundle: these tests
 * run them as a person would see them.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, PROJECT_ROOT, cleanEnv, tempDir } from '../helpers/cli.js';
import { makeNode } from '../helpers/federation.js';
import { createCa } from '../helpers/pki.js';

interface TerminalRun {
  code: number;
  /** Everything the terminal showed, escape sequences included. */
  screen: string;
}

/**
 * Runs `sark-fed …args` in a pseudo-terminal. When the screen shows `answer.when`, types
 * `answer.keys`. The exit code comes from the shell `script` runs, printed after the command.
 */
function runInTerminal(
  args: string[],
  answer?: { when: string; keys: string },
  timeoutMs = 20_000,
): Promise<TerminalRun> {
  const quoted = [process.execPath, CLI_PATH, ...args].map((arg) => `'${arg}'`).join(' ');
  const command = `stty cols 100 rows 40; ${quoted}; echo "exit=$?"`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: PROJECT_ROOT,
      env: cleanEnv({ TERM: 'xterm-256color' }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    let answered = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sark-fed ${args.join(' ')} did not finish in a terminal:\n${screen}`));
    }, timeoutMs);
    const take = (chunk: Buffer) => {
      screen += chunk.toString('utf8');
      if (answer && !answered && screen.includes(answer.when)) {
        answered = true;
        child.stdin.write(answer.keys);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', () => {
      clearTimeout(timer);
      const code = /exit=(\d+)/.exec(screen)?.[1];
      if (code === undefined) reject(new Error(`no exit code on the screen:\n${screen}`));
      else resolve({ code: Number(code), screen });
    });
  });
}

describe('at a terminal', () => {
  it('shows a spinner while a command works (ora, bundled)', async () => {
    const root = tempDir();
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'org-a.example']);
    const node = await makeNode(root, ca.dir, 'node-a', 'org-a.example');
    const run = await runInTerminal(['--state', node.state, 'audit', 'verify']);
    expect(run.screen).not.toContain('internal error');
    expect(run.screen).toContain('verifying the audit trail');
    expect(run.code, run.screen).toBe(0);
  });

  it('asks before overwriting, and a "no" leaves the files alone (@inquirer/prompts)', async () => {
    const root = tempDir();
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'org-a.example']);
    const run = await runInTerminal(
      ['pki', 'ca', 'create', '--out', ca.dir, '--trust-domain', 'org-b.example'],
      { when: '(y/N)', keys: 'n\r' },
    );
    expect(run.screen).not.toContain('internal error');
    expect(run.screen).toContain('Overwrite');
    expect(run.screen).toContain('nothing was written');
    expect(run.code, run.screen).toBe(0);
    expect(existsSync(ca.certPath)).toBe(true);
  });
});
