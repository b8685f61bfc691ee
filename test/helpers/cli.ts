import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';

/** The project root and the CLI entry point, as an operator runs it (npm's bin shim). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_PATH = join(PROJECT_ROOT, 'bin', 'sark-fed.js');

export interface RunOptions {
  /** Added to the clean environment; an undefined value removes the variable. */
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 20_000;

const createdDirs: string[] = [];

// Registered when a test file imports this module: every tempDir() of the file goes afterwards.
afterAll(() => {
  for (const dir of createdDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh folder under the system temp folder, removed after the test file. It is made 0755 (not
 * mkdtemp's 0700) so that a CLI process run as another user (`uid: 65534`) can reach files in it.
 */
export function tempDir(prefix = 'sark-fed-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  createdDirs.push(dir);
  return dir;
}

let defaultHome: string | undefined;

/** HOME for CLI runs that do not set one: a temp folder, so nothing reads the real ~/.local. */
function homeDir(): string {
  defaultHome ??= tempDir('sark-fed-home-');
  return defaultHome;
}

/**
 * The environment a CLI process sees: nothing inherited but PATH, HOME in a temp folder and
 * NO_COLOR, so that no SARK_FED_*, FEDERATION_*, XDG_* or FORCE_COLOR of the machine running the
 * tests leaks in. Tests add what they need through `options.env`.
 */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: homeDir(),
    NO_COLOR: '1',
  };
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Runs `node bin/sark-fed.js ...args` (dist/ must be built) and collects its output. */
export function runCli(args: string[], options: RunOptions = {}): Promise<RunResult> {
  assertBuilt();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: options.cwd ?? PROJECT_ROOT,
      env: cleanEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        code: code ?? 128 + (signal ? constants.signals[signal] : 0),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (timedOut) {
        reject(
          new Error(
            `sark-fed ${args.join(' ')} did not finish within ${timeoutMs} ms\n` +
              `stdout: ${result.stdout}\nstderr: ${result.stderr}`,
          ),
        );
        return;
      }
      resolve(result);
    });
    // A command that reads stdin gets the input and then end-of-file; others get end-of-file.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

let built = false;

/** The e2e tests run the compiled CLI: say so plainly when there is none. */
function assertBuilt(): void {
  if (built) return;
  if (!existsSync(join(PROJECT_ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/cli/main.js is missing: run `npm run build` before the e2e tests');
  }
  built = true;
}

/** A successful run, with the output shown when it was not. */
export function expectSuccess(result: RunResult): void {
  expect(result, `stderr: ${result.stderr}`).toMatchObject({ code: 0 });
}

export interface RefusalExpectation {
  message?: RegExp | string;
  hint?: RegExp | string;
}

/**
 * The error contract of CLI.md: the exit code, nothing on stdout, and on stderr exactly one
 * `error:` line followed by one `hint:` line.
 */
export function expectRefusal(
  result: RunResult,
  exitCode: number,
  expected: RefusalExpectation = {},
): { message: string; hint: string } {
  expect(result.code, `stderr: ${result.stderr}`).toBe(exitCode);
  expect(result.stdout).toBe('');
  const lines = result.stderr.split('\n');
  expect(lines, result.stderr).toHaveLength(3);
  expect(lines[2]).toBe('');
  const [errorLine = '', hintLine = ''] = lines;
  expect(errorLine).toMatch(/^error: \S/);
  expect(hintLine).toMatch(/^hint: \S/);
  const message = errorLine.slice('error: '.length);
  const hint = hintLine.slice('hint: '.length);
  if (expected.message !== undefined) expect(message).toMatch(expected.message);
  if (expected.hint !== undefined) expect(hint).toMatch(expected.hint);
  return { message, hint };
}

/** SHA-256 of a file's bytes, or "absent": compare before and after a refused command. */
export function fileDigest(path: string): string {
  if (!existsSync(path)) return 'absent';
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The names in a folder, sorted: shows stray -wal/-shm/temporary files left behind. */
export function listDir(path: string): string[] {
  return existsSync(path) ? readdirSync(path).sort() : [];
}

/** Permission bits of a file or folder, e.g. 0o600. */
export function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}
