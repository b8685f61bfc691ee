// Trust and the daemon (issue 3): in one run, against a bare Node https server with the same
// certificates and TLS settings (bench/bare-server.mjs),
//   - full mutual-TLS `trust establish` round trips per second (new connection, info, challenge,
//     signed answer, validation, pinning and the state writes on both nodes), and
//   - the daemon's `info` requests per second over keep-alive mTLS.
// Both servers run as their own processes; the client is this process, driving the real engine.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { BenchError, interleave, round2, suiteResult, summarizeRates } from './lib.mjs';

export const name = 'trust';
export const description = 'trust establish and info throughput against a bare Node https server';

const BIN = fileURLToPath(new URL('../bin/sark-fed.js', import.meta.url));
const BUILT_ENTRY = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const BARE_SERVER = fileURLToPath(new URL('./bare-server.mjs', import.meta.url));
const ESTABLISH_PER_ROUND = 10;
const INFO_PER_ROUND = 1000;
const INFO_CONNECTIONS = 8;

export async function run({ rounds, warmupRounds, timeLimitMs, onRound }) {
  if (!existsSync(BUILT_ENTRY)) {
    throw new BenchError(`${BUILT_ENTRY} is missing: run \`npm run build\` (npm run bench does)`);
  }
  const folder = mkdtempSync(join(tmpdir(), 'sark-bench-trust-'));
  const children = [];
  let initiator;
  try {
    const driver = await loadDriver();
    const federation = setUpFederation(folder);
    const daemon = await startProcess(
      children,
      [BIN, '--state', federation.b.state, 'serve', '--listen', '127.0.0.1:0'],
      /"msg":"listening".*"port":(\d+)/,
    );
    const bare = await startProcess(
      children,
      [BARE_SERVER, federation.b.cert, federation.b.key],
      /^(\d+)$/m,
    );
    const daemonUrl = `https://127.0.0.1:${daemon}`;
    const bareUrl = `https://127.0.0.1:${bare}`;
    const clientA = { certPath: federation.a.cert, keyPath: federation.a.key };
    initiator = driver.openInitiator(federation.a.state, daemonUrl, federation.b.fingerprint);

    const rate = async (count, step) => {
      const started = performance.now();
      for (let index = 0; index < count; index++) await step();
      return (count * 1000) / (performance.now() - started);
    };
    const load = async (endpoint) => {
      const result = await driver.keepAliveLoad({
        endpoint,
        path: '/api/v2/federation/info',
        client: clientA,
        connections: INFO_CONNECTIONS,
        total: INFO_PER_ROUND,
        deadlineMs: 10_000,
      });
      return (result.requests * 1000) / result.elapsedMs;
    };
    const subjects = [
      {
        label: 'bare https: 3 requests on a new mTLS connection',
        measure: () => rate(ESTABLISH_PER_ROUND, () => driver.bareRoundTrip(bareUrl, clientA)),
      },
      {
        label: 'sark-fed trust establish',
        baselineIndex: 0,
        measure: () => rate(ESTABLISH_PER_ROUND, () => initiator.establish()),
      },
      { label: `bare https: GET, keep-alive ×${INFO_CONNECTIONS}`, measure: () => load(bareUrl) },
      {
        label: `sark-fed serve: GET info, keep-alive ×${INFO_CONNECTIONS}`,
        baselineIndex: 2,
        measure: () => load(daemonUrl),
      },
    ];
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
    const stats = measured.samples.map(summarizeRates);
    const rows = subjects.map((subject, index) => {
      const isBaseline = subject.baselineIndex === undefined;
      return {
        label: subject.label,
        unit: 'per second',
        ...stats[index],
        ratio: isBaseline
          ? null
          : round2(stats[index].medianPerSecond / stats[subject.baselineIndex].medianPerSecond),
        target: null,
        verdict: null,
        samplesPerSecond: measured.samples[index].map(round2),
      };
    });
    return suiteResult({ name, description, measured, timeLimitMs, rows });
  } finally {
    initiator?.close();
    await Promise.all(children.map(stopProcess));
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Bundles bench/trust-driver.ts (types stripped, dependencies external) and imports it. */
async function loadDriver() {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./trust-driver.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    logLevel: 'warning',
  });
  // Written inside the project, so that its bare imports resolve against node_modules.
  const entry = fileURLToPath(new URL(`./.trust-driver-${process.pid}.mjs`, import.meta.url));
  writeFileSync(entry, bundle.outputFiles[0].text);
  try {
    return await import(pathToFileURL(entry).href);
  } finally {
    rmSync(entry, { force: true });
  }
}

function cli(args) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new BenchError(`sark-fed ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  }
  return result.stdout;
}

/** Two organizations, a node each, each anchoring the other's CA: what `trust establish` needs. */
function setUpFederation(folder) {
  const nodes = {};
  for (const [letter, org] of [
    ['a', 'org-a.example'],
    ['b', 'org-b.example'],
  ]) {
    const ca = join(folder, `ca-${letter}`);
    const dir = join(folder, `node-${letter}`);
    cli(['pki', 'ca', 'create', '--out', ca, '--trust-domain', org]);
    cli(
      ['pki', 'issue', '--ca', ca, '--node-id', `node-${letter}`, '--ip', '127.0.0.1'].concat([
        '--out',
        dir,
      ]),
    );
    const state = join(folder, `${letter}.db`);
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    const report = JSON.parse(
      cli(
        ['--state', state, '--json', 'init', '--node-id', `node-${letter}`].concat([
          '--trust-domain',
          org,
          '--cert',
          cert,
          '--key',
          key,
        ]),
      ),
    );
    nodes[letter] = { ca, state, cert, key, fingerprint: report.fingerprint };
  }
  cli(['--state', nodes.a.state, 'trust', 'anchor', 'add', join(nodes.b.ca, 'ca.pem')]);
  cli(['--state', nodes.b.state, 'trust', 'anchor', 'add', join(nodes.a.ca, 'ca.pem')]);
  return nodes;
}

/** Starts a server process and resolves with the port it reports (bounded wait). */
function startProcess(children, args, portPattern) {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let output = '';
    let started = false;
    const timer = setTimeout(() => reject(new BenchError(`${args[0]} did not start`)), 15_000);
    const onData = (chunk) => {
      // Once started, the output (the daemon's request log) is drained unread: accumulating it
      // would charge the benchmark's own work to the daemon.
      if (started) return;
      output += chunk.toString('utf8');
      const match = portPattern.exec(output);
      if (match) {
        started = true;
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new BenchError(`${args[0]} exited with ${code}: ${output.slice(0, 500)}`));
    });
  });
}

function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
