import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll } from 'vitest';

/**
 * Multicast never leaves the machine (DESIGN §8): mDNS tests run inside a private network
 * namespace that has only a loopback interface, made multicast-capable and given the multicast
 * route. Everything started inside dies with the namespace's last process.
 */
export const NETNS_SETUP =
  'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo';

export interface NetnsResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let availability: { ok: true } | { ok: false; reason: string } | undefined;

/**
 * Whether `unshare -rn` works here (user namespaces allowed, unshare and ip installed). The tests
 * fail rather than skip when it does not, unless SARK_FED_SKIP_NETNS=1: a skipped mDNS suite
 * must be a decision, not an accident of the machine.
 */
export function netnsAvailability(): { ok: true } | { ok: false; reason: string } {
  if (availability) return availability;
  const probe = spawnSync('unshare', ['-rn', 'sh', '-c', NETNS_SETUP], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  availability =
    probe.status === 0
      ? { ok: true }
      : {
          ok: false,
          reason:
            probe.error?.message ??
            `unshare -rn exited ${probe.status}: ${probe.stderr.trim()} (needs util-linux, iproute2 and user namespaces)`,
        };
  return availability;
}

export const skipNetns = process.env.SARK_FED_SKIP_NETNS === '1';

/**
 * Runs `argv` inside a fresh network namespace and collects its output. The process runs in its
 * own process group, killed as a whole (SIGKILL) at the deadline, so nothing it started can
 * outlive the test.
 */
export function runInNetns(
  argv: string[],
  options: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<NetnsResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      ['-rn', 'sh', '-c', `${NETNS_SETUP} && exec "$@"`, 'sh', ...argv],
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the scenario left behind in its group goes with it.
      killGroup();
      const result = {
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (timedOut) {
        reject(
          new Error(
            `${argv.join(' ')} did not finish within ${options.timeoutMs} ms\n` +
              `stdout: ${result.stdout}\nstderr: ${result.stderr}`,
          ),
        );
        return;
      }
      resolve(result);
    });
  });
}

const bundleDirs: string[] = [];
afterAll(() => {
  for (const dir of bundleDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * Bundles a TypeScript program (with its dependencies: it runs from a temp folder) into one ES
 * module that `node` can run inside the namespace, and returns its path.
 */
export async function bundleProgram(entry: URL): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sark-fed-netns-'));
  bundleDirs.push(dir);
  const outfile = join(dir, 'program.mjs');
  await build({
    entryPoints: [fileURLToPath(entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // better-sqlite3 is a native addon; mDNS programs never load it.
    external: ['better-sqlite3'],
    // multicast-dns and dns-packet are CommonJS and require Node built-ins.
    banner: {
      js: "import { createRequire as __netnsRequire } from 'node:module'; const require = __netnsRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}
