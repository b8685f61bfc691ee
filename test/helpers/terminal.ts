import { spawn } from 'node:child_process';
import { CLI_PATH, PROJECT_ROOT, cleanEnv } from './cli.js';

/**
 * The CLI at a terminal: a pseudo-terminal from util-linux `script`, 100 columns wide, as an
 * operator's shell gives one (spinners, prompts and stdin notes only appear there).
 */

export interface TerminalRun {
  code: number;
  /** Everything the terminal showed, escape sequences included. */
  screen: string;
}

/**
 * Runs `sark-fed …args` in a pseudo-terminal. When the screen shows `answer.when`, types
 * `answer.keys`. The exit code comes from the shell `script` runs, printed after the command.
 */
export function runInTerminal(
  args: string[],
  answer?: { when: string; keys: string },
  timeoutMs = 20_000,
  env: Record<string, string | undefined> = {},
): Promise<TerminalRun> {
  const quoted = [process.execPath, CLI_PATH, ...args].map((arg) => `'${arg}'`).join(' ');
  // The shell outlives a Ctrl-C typed at the command (a no-op trap), to print its exit code.
  const command = `trap : INT; stty cols 100 rows 40; ${quoted}; echo "exit=$?"`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: PROJECT_ROOT,
      env: cleanEnv({ TERM: 'xterm-256color', ...env }),
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
