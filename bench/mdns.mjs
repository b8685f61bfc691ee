// mDNS discovery (issue 4): in private network namespaces (never on a real interface), 50 nodes
// announcing (ten to a process, each with its own node ID, port and socket) and, for
// comparison, a single one. Each round runs `sark-fed discover --method mdns --expect N` (or,
// while that command is not built, the same discovery through the engine's scan()) and records
// how many nodes it found and its wall time; with the command built, scan() alone on 50 nodes
// too, which leaves out the process start-up. Target: all 50 found in under 1.5 s.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { BenchError, interleave, quantile, round2, suiteResult, summarize } from './lib.mjs';

export const name = 'mdns';
export const description =
  'mDNS discovery in a private network namespace: 50 announcing nodes against one';

const TARGET_MS = 1500;
const TIMEOUT_MS = 3000;
const NETNS_SETUP =
  'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo';
const BIN = fileURLToPath(new URL('../bin/sark-fed.js', import.meta.url));
const BUILT_ENTRY = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const DRIVER = fileURLToPath(new URL('./mdns-driver.ts', import.meta.url));

export async function run({ rounds, warmupRounds, timeLimitMs, onRound }) {
  if (!existsSync(BUILT_ENTRY)) {
    throw new BenchError(`${BUILT_ENTRY} is missing: run \`npm run build\` (npm run bench does)`);
  }
  const probe = spawnSync('unshare', ['-rn', 'sh', '-c', NETNS_SETUP], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new BenchError(
      `no private network namespace (unshare -rn): ${probe.error?.message ?? probe.stderr.trim()}`,
    );
  }
  // `discover --help` of a CLI without the command prints the general help: look for its own.
  const useCli = spawnSync(process.execPath, [BIN, 'discover', '--help'], {
    encoding: 'utf8',
  }).stdout.includes('Usage: sark-fed discover');

  const folder = mkdtempSync(join(tmpdir(), 'sark-bench-mdns-'));
  const drivers = [];
  try {
    const program = await bundle(folder);
    const start = (nodes, cli) =>
      startDriver(drivers, program, {
        nodes,
        perProcess: 10,
        bin: BIN,
        state: join(folder, `discover-${nodes}-${cli ? 'cli' : 'scan'}.db`),
        useCli: cli,
        timeoutMs: TIMEOUT_MS,
      });
    // One namespace per subject: each has its own announcers, so no round disturbs another's.
    const plan = [
      { nodes: 1, cli: useCli },
      { nodes: 50, cli: useCli },
      // The protocol alone, without a process start-up: the engine's scan() in the driver.
      ...(useCli ? [{ nodes: 50, cli: false }] : []),
    ];
    const started = await Promise.all(plan.map((entry) => start(entry.nodes, entry.cli)));
    const subjects = plan.map((entry, index) => ({
      label: `${entry.cli ? 'sark-fed discover --method mdns' : 'scan() with the mDNS runner'} --expect ${entry.nodes}, ${entry.nodes} node${entry.nodes === 1 ? '' : 's'} announcing`,
      expected: entry.nodes,
      measure: () => started[index].round(),
    }));

    const measured = await interleave({
      subjects,
      rounds,
      warmupRounds,
      timeLimitMs,
      onRound,
    });
    if (measured.rounds === 0) {
      throw new BenchError(`no round finished within ${timeLimitMs / 1000} s`);
    }
    const baseline = quantile(
      measured.samples[0].map((sample) => sample.ms),
      0.5,
    );
    const rows = subjects.map((subject, index) => {
      const samples = measured.samples[index];
      const times = samples.map((sample) => sample.ms);
      const found = samples.map((sample) => sample.found);
      const stats = summarize(times);
      const allFound = found.filter((count) => count === subject.expected).length;
      return {
        label: subject.label,
        unit: 'discovery',
        expected: subject.expected,
        foundMin: Math.min(...found),
        foundMedian: quantile(found, 0.5),
        roundsAllFound: allFound,
        ...stats,
        ratio: index === 0 ? null : round2(stats.medianMs / baseline),
        targetMs: TARGET_MS,
        verdict: allFound === samples.length && stats.p90Ms <= TARGET_MS ? 'PASS' : 'FAIL',
        samplesMs: times.map(round2),
        samplesFound: found,
      };
    });
    return suiteResult({
      name,
      description,
      measured,
      timeLimitMs,
      rows,
      note:
        'Rounds in one namespace are at least 1.1 s apart (not timed): RFC 6762 §6 keeps a ' +
        'responder from multicasting a record twice within a second, and a one-shot discover ' +
        'meets announcers in that steady state.',
    });
  } finally {
    await Promise.all(drivers.map((driver) => driver.stop()));
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Bundles bench/mdns-driver.ts with its dependencies into one module for the namespace. */
async function bundle(folder) {
  const outfile = join(folder, 'driver.mjs');
  await build({
    entryPoints: [DRIVER],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['better-sqlite3'],
    banner: {
      js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * One namespace with its announcers and a driver that runs a discovery per request. The driver
 * is its own process group, killed as a whole at the end.
 */
async function startDriver(drivers, program, config) {
  const child = spawn(
    'unshare',
    [
      '-rn',
      'sh',
      '-c',
      `${NETNS_SETUP} && exec "$@"`,
      'sh',
      process.execPath,
      program,
      'rounds',
      JSON.stringify(config),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk.toString('utf8')));
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  const exited = new Promise((resolve) => child.once('exit', resolve));
  lines.on('line', (line) => waiting.shift()?.resolve(JSON.parse(line)));
  child.once('exit', (code) => {
    for (const waiter of waiting.splice(0)) {
      waiter.reject(new BenchError(`the mDNS driver exited with ${code}: ${stderr.slice(0, 500)}`));
    }
  });
  const next = (timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new BenchError(`the mDNS driver did not answer within ${timeoutMs} ms: ${stderr}`));
      }, timeoutMs);
      waiting.push({
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  const driver = {
    round() {
      const answer = next(TIMEOUT_MS + 10_000);
      child.stdin.write('round\n');
      return answer;
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => killGroup(child), 8000);
      await exited;
      clearTimeout(timer);
      killGroup(child);
    },
  };
  drivers.push(driver);
  await next(30_000);
  return driver;
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
