// Shared set-up of the benchmarks that need a federation: two organizations with a node each
// (made with the real CLI), server processes started and stopped, and the TypeScript drivers
// bundled on the fly by esbuild (as scripts/limbo.mjs does) so they drive the real engine.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { BenchError } from './lib.mjs';

export const BIN = fileURLToPath(new URL('../bin/sark-fed.js', import.meta.url));
export const BUILT_ENTRY = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
export const BARE_SERVER = fileURLToPath(new URL('./bare-server.mjs', import.meta.url));
export const FLOOR_SERVER = fileURLToPath(new URL('./floor-server.mjs', import.meta.url));

export function requireBuild() {
  if (!existsSync(BUILT_ENTRY)) {
    throw new BenchError(`${BUILT_ENTRY} is missing: run \`npm run build\` (npm run bench does)`);
  }
}

/**
 * CPU time of each thread of a process so far, in microseconds, keyed by thread ID (Linux
 * /proc/<pid>/task/<tid>/stat: utime + stime, in clock ticks of 10 ms). Empty where /proc is
 * not there to read.
 */
export function threadCpuMicros(pid) {
  const times = new Map();
  let threads;
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return times;
  }
  for (const tid of threads) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      times.set(Number(tid), (Number(fields[11]) + Number(fields[12])) * 10_000);
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return times;
}

/** Bundles a bench/*.ts driver (types stripped, dependencies external) and imports it. */
export async function loadDriver(file) {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL(file, import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    logLevel: 'warning',
  });
  // Written inside the project, so that its bare imports resolve against node_modules.
  const entry = fileURLToPath(new URL(`./.driver-${process.pid}.mjs`, import.meta.url));
  writeFileSync(entry, bundle.outputFiles[0].text);
  try {
    return await import(pathToFileURL(entry).href);
  } finally {
    rmSync(entry, { force: true });
  }
}

export function cli(args) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new BenchError(`sark-fed ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  }
  return result.stdout;
}

/** Two organizations, a node each, each anchoring the other's CA: what `trust establish` needs. */
export function setUpFederation(folder) {
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
export function startProcess(children, args, portPattern) {
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

export function stopProcess(child) {
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
