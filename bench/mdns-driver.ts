/**
 * The mDNS benchmark's program inside a private network namespace (bench/mdns.mjs bundles it and
 * starts it under `unshare -rn`). Two modes:
 *
 *   driver.mjs announce '<json: [{nodeId, port}]>'
 *       announces those nodes (one socket each, all in this process), prints "announced", and
 *       says goodbye when its standard input closes.
 *   driver.mjs rounds '<json: {nodes, perProcess, bin, state, useCli, timeoutMs}>'
 *       starts the announcer processes, then runs one discovery per "round" line on its
 *       standard input and prints {"found": n, "ms": t} for each; stops everything at the end
 *       of its input.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { announceMdns, mdnsRunner } from '../src/core/discovery/mdns.js';
import { scan } from '../src/core/discovery/scanner.js';

const FINGERPRINT = 'ef'.repeat(32);
/**
 * RFC 6762 §6: a responder does not multicast a record again within a second. A one-shot
 * discover meets announcers in that steady state; back-to-back rounds would instead measure the
 * rate limit (answers only to the second query, a second later). Not counted in the timings.
 */
const SETTLE_MS = 1100;
/** Past both start-up announcements (RFC 6762 §8.3) and their rate limit. */
const WARM_UP_MS = 2200;
const LIFETIME_MS = 600_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Whatever happens to the process that started this one, this one ends.
setTimeout(() => process.exit(3), LIFETIME_MS).unref();

async function announceMode(nodes: Array<{ nodeId: string; port: number }>): Promise<void> {
  const announcements = await Promise.all(
    nodes.map((node) =>
      announceMdns({
        nodeId: node.nodeId,
        trustDomain: 'bench.example',
        fingerprint: FINGERPRINT,
        host: '127.0.0.1',
        port: node.port,
      }),
    ),
  );
  process.stdout.write('announced\n');
  await new Promise<void>((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('close', resolve);
    process.stdin.resume();
  });
  await Promise.all(announcements.map((announcement) => announcement.close()));
}

interface RoundsConfig {
  nodes: number;
  perProcess: number;
  bin: string;
  state: string;
  useCli: boolean;
  timeoutMs: number;
}

async function roundsMode(config: RoundsConfig): Promise<void> {
  const announcers: ChildProcess[] = [];
  const driver = process.argv[1] as string;
  try {
    const ready: Array<Promise<void>> = [];
    for (let first = 0; first < config.nodes; first += config.perProcess) {
      const group = [];
      for (let index = first; index < Math.min(first + config.perProcess, config.nodes); index++) {
        group.push({ nodeId: `bench-${String(index).padStart(2, '0')}`, port: 20_000 + index });
      }
      const child = spawn(process.execPath, [driver, 'announce', JSON.stringify(group)], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      announcers.push(child);
      ready.push(
        new Promise<void>((resolve, reject) => {
          child.stdout?.on('data', (chunk: Buffer) => {
            if (chunk.toString('utf8').includes('announced')) resolve();
          });
          child.on('exit', (code) => reject(new Error(`an announcer exited with ${code}`)));
        }),
      );
    }
    await Promise.all(ready);
    await sleep(WARM_UP_MS);
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

    let lastEnded = performance.now();
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim() !== 'round') continue;
      const wait = lastEnded + SETTLE_MS - performance.now();
      if (wait > 0) await sleep(wait);
      const result = config.useCli ? await cliRound(config) : await scanRound(config);
      lastEnded = performance.now();
      process.stdout.write(`${JSON.stringify(result)}\n`);
    }
  } finally {
    for (const child of announcers) child.stdin?.end();
    await Promise.race([
      Promise.all(
        announcers.map(
          (child) =>
            new Promise<void>((resolve) =>
              child.exitCode !== null ? resolve() : child.once('exit', () => resolve()),
            ),
        ),
      ),
      sleep(5000),
    ]);
    for (const child of announcers) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** `sark-fed discover --method mdns --expect N`, as an operator runs it: a whole process. */
async function cliRound(config: RoundsConfig): Promise<{ found: number; ms: number }> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      config.bin,
      '--state',
      config.state,
      'discover',
      '--method',
      'mdns',
      '--expect',
      String(config.nodes),
      '--timeout',
      `${config.timeoutMs}ms`,
      '--no-save',
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`discover exited with ${code}: ${stderr.slice(0, 500)}`);
  const nodes = JSON.parse(stdout) as Array<{ nodeId: string }>;
  return { found: nodes.filter((node) => node.nodeId.startsWith('bench-')).length, ms };
}

/** The same discovery through the engine, in this process (when `discover` is not built). */
async function scanRound(config: RoundsConfig): Promise<{ found: number; ms: number }> {
  const started = performance.now();
  const result = await scan({
    runners: [mdnsRunner()],
    timeoutMs: config.timeoutMs,
    expect: config.nodes,
  });
  return { found: result.nodes.length, ms: performance.now() - started };
}

const [mode, configText] = process.argv.slice(2);
const run =
  mode === 'announce'
    ? announceMode(JSON.parse(configText ?? '[]') as Array<{ nodeId: string; port: number }>)
    : roundsMode(JSON.parse(configText ?? '{}') as RoundsConfig);
run.then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
