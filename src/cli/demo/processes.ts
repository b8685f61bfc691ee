import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InterruptedError, OperationError } from '../../core/errors.js';
import type { OutputChunk } from './transcript.js';

/**
 * This package's CLI entry point (bin/sark-fed.js), found by walking up from this module to the
 * package.json named sark-fed: the same from src/cli/demo/ under tests and from the bundled
 * dist/cli/ (main.js or a chunk), whatever the depth.
 */
export function cliEntryPoint(moduleUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as {
        name?: string;
        bin?: string | Record<string, string>;
      };
      const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.['sark-fed'];
      if (pkg.name === 'sark-fed' && bin !== undefined) return join(dir, bin);
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new OperationError('NO_CLI_ENTRY_POINT', 'cannot find the sark-fed package files', {
        hint: 'run the demo from an installed or built sark-fed (npm install)',
      });
    }
    dir = parent;
  }
}

/** An argument as an operator would type it in a POSIX shell: quoted only when it must be. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(args: readonly string[]): string {
  return ['sark-fed', ...args].map(shellQuote).join(' ');
}

export interface SpawnSettings {
  entryPoint: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C / SIGTERM: the step is ended and the run rejects with InterruptedError. */
  signal: AbortSignal;
}

export interface StepOutcome {
  /** null when the process ended by a signal. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Bounded waits: after SIGTERM a process gets this long before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/**
 * Runs one CLI command to its end, passing its output on as it comes, each chunk with the stream
 * it came from (stdin is /dev/null, so it never prompts). A command that outlives timeoutMs is ended and reported as failed.
 */
export function runStep(
  settings: SpawnSettings,
  args: readonly string[],
  timeoutMs: number,
  onOutput: (chunk: OutputChunk) => void,
): Promise<StepOutcome> {
  if (settings.signal.aborted) return Promise.reject(new InterruptedError());
  const started = performance.now();
  const child = spawn(process.execPath, [settings.entryPoint, ...args], {
    cwd: settings.cwd,
    env: settings.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout.push(text);
    onOutput({ stream: 'stdout', text });
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr.push(text);
    onOutput({ stream: 'stderr', text });
  });
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      terminate(child);
    }, timeoutMs);
    const onAbort = () => terminate(child);
    settings.signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (error) => {
      clearTimeout(timer);
      settings.signal.removeEventListener('abort', onAbort);
      reject(
        new OperationError('SPAWN_FAILED', `cannot start ${commandLine(args)}: ${error.message}`, {
          cause: error,
        }),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      settings.signal.removeEventListener('abort', onAbort);
      if (settings.signal.aborted) {
        reject(new InterruptedError());
        return;
      }
      if (timedOut) {
        reject(
          new OperationError(
            'DEMO_STEP_TIMEOUT',
            `${commandLine(args)} did not finish within ${timeoutMs / 1000} s`,
            { hint: 'the machine may be very busy; run the demo again' },
          ),
        );
        return;
      }
      resolve({
        exitCode: code,
        stdout: stdout.join(''),
        stderr: stderr.join(''),
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
    });
  });
}

/** SIGTERM now, SIGKILL if it is still there after the grace period. */
function terminate(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

/** A daemon that did not start; `log` is what it wrote on stderr meanwhile. */
export class DaemonStartError extends OperationError {
  constructor(
    code: string,
    message: string,
    readonly log: string,
  ) {
    super(code, message, { hint: 'its log is above; `sark-fed demo --keep` keeps the folder' });
  }
}

export interface Daemon {
  nodeId: string;
  pid: number;
  host: string;
  port: number;
  /** The `listening` log line, as the daemon wrote it. */
  listeningLine: string;
  /** Milliseconds from the start until it said it listens. */
  startMs: number;
  /** Everything it wrote on stderr (its JSON log lines), for a failure report. */
  log(): string;
  /** The exit code once it has stopped (null: ended by a signal), undefined while it runs. */
  exitCode(): number | null | undefined;
  /**
   * SIGTERM, then SIGKILL after `graceMs` (the daemon lets requests in flight finish for up to
   * 10 s); resolves with the exit code once the process is gone.
   */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL at once, for an exit that cannot wait. */
  kill(): void;
}

/**
 * Starts `sark-fed … serve` in the background and waits (at most timeoutMs) for its JSON
 * `listening` log line, which gives the port it chose. Its later log lines go to onLog.
 */
export function startDaemon(
  settings: SpawnSettings,
  nodeId: string,
  args: readonly string[],
  timeoutMs: number,
  onLog: (line: string) => void,
): Promise<Daemon> {
  if (settings.signal.aborted) return Promise.reject(new InterruptedError());
  const started = performance.now();
  const child = spawn(process.execPath, [settings.entryPoint, ...args], {
    cwd: settings.cwd,
    env: settings.env,
    stdio: ['ignore', 'ignore', 'pipe'],
    // In a process group of its own: a Ctrl-C at the terminal reaches the whole foreground group,
    // and `serve` takes a second signal (the demo's SIGTERM that follows) as "stop at once",
    // skipping its clean shutdown. Only the demo signals its daemons, and it always does: on its
    // way out, on its own SIGINT, SIGTERM or SIGHUP, and (SIGKILL) on any exit (scenario.ts).
    detached: true,
  });
  let log = '';
  let partial = '';
  let status: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      status = code;
      resolve(code);
    });
    child.on('error', () => {
      status = null;
      resolve(null);
    });
  });
  const stop = async (graceMs = 12_000): Promise<number | null> => {
    if (status !== undefined) return status;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  return new Promise<Daemon>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      settings.signal.removeEventListener('abort', onAbort);
      void stop(KILL_GRACE_MS).then(() => reject(error));
    };
    const timer = setTimeout(
      () =>
        fail(
          new DaemonStartError(
            'DEMO_DAEMON_NOT_LISTENING',
            `${nodeId}'s daemon did not say it listens within ${timeoutMs / 1000} s`,
            log,
          ),
        ),
      timeoutMs,
    );
    const onAbort = () => fail(new InterruptedError());
    settings.signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (error) =>
      fail(
        new OperationError('SPAWN_FAILED', `cannot start ${commandLine(args)}: ${error.message}`, {
          cause: error,
        }),
      ),
    );
    child.on('exit', (code) =>
      fail(
        new DaemonStartError(
          'DEMO_DAEMON_EXITED',
          `${nodeId}'s daemon exited with ${code ?? 'a signal'} before it listened`,
          log,
        ),
      ),
    );
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      log += text;
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (settled) {
          onLog(line);
          continue;
        }
        const port = listeningPort(line);
        if (port === undefined) continue;
        settled = true;
        clearTimeout(timer);
        settings.signal.removeEventListener('abort', onAbort);
        resolve({
          nodeId,
          pid: child.pid as number,
          host: port.host,
          port: port.port,
          listeningLine: line,
          startMs: Math.round((performance.now() - started) * 10) / 10,
          log: () => log,
          exitCode: () => status,
          stop,
          kill: () => {
            if (status === undefined) child.kill('SIGKILL');
          },
        });
      }
    });
  });
}

/** The address of a `listening` log line (DESIGN: one JSON object per line on stderr). */
function listeningPort(line: string): { host: string; port: number } | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return undefined;
  }
  const { msg, address, port } = (entry ?? {}) as Record<string, unknown>;
  if (msg !== 'listening' || typeof port !== 'number' || typeof address !== 'string')
    return undefined;
  return { host: address, port };
}
