import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { CLI_PATH, PROJECT_ROOT, cleanEnv, runCli, type RunResult } from './cli.js';
import { issueNode, type NodeFixture } from './pki.js';

/** A node of a test federation: its certificate folder, its state file and its endpoint. */
export interface TestNode extends NodeFixture {
  nodeId: string;
  trustDomain: string;
  state: string;
  port: number;
  endpoint: string;
  fingerprint: string;
  /** Runs the CLI against this node's state file. */
  cli(args: string[], env?: Record<string, string | undefined>): Promise<RunResult>;
}

/** A free loopback port: bound, read and released (the daemon binds it again right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Issues a node certificate from caDir, records the identity with `init`, and returns the node. */
export async function makeNode(
  root: string,
  caDir: string,
  nodeId: string,
  trustDomain: string,
): Promise<TestNode> {
  const fixture = await issueNode(caDir, nodeId, join(root, nodeId), ['--ip', '127.0.0.1']);
  const port = await freePort();
  const state = join(root, nodeId, 'state.db');
  const endpoint = `https://127.0.0.1:${port}`;
  const cli = (args: string[], env?: Record<string, string | undefined>) =>
    runCli(['--state', state, ...args], { env });
  const init = await cli([
    'init',
    '--node-id',
    nodeId,
    '--trust-domain',
    trustDomain,
    '--cert',
    fixture.certPath,
    '--key',
    fixture.keyPath,
    '--endpoint',
    endpoint,
    '--json',
  ]);
  expect(init.code, init.stderr).toBe(0);
  const fingerprint = (JSON.parse(init.stdout) as { fingerprint: string }).fingerprint;
  return { ...fixture, nodeId, trustDomain, state, port, endpoint, fingerprint, cli };
}

export interface RunningServe {
  process: ChildProcessWithoutNullStreams;
  /** JSON log lines the daemon wrote so far. */
  logs: Array<Record<string, unknown>>;
  /** SIGTERM, then the exit code (bounded: SIGKILL after 10 s). */
  stop(): Promise<number | null>;
}

/** Starts `sark-fed serve` for a node and waits until it logs that it listens. */
export async function startServe(node: TestNode, extraArgs: string[] = []): Promise<RunningServe> {
  const child = spawn(process.execPath, [CLI_PATH, '--state', node.state, 'serve', ...extraArgs], {
    cwd: PROJECT_ROOT,
    env: cleanEnv(),
  });
  const logs: Array<Record<string, unknown>> = [];
  let buffered = '';
  let rawErr = '';
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${rawErr}`)), 15_000);
    child.stderr.on('data', (chunk: Buffer) => {
      rawErr += chunk.toString('utf8');
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'listening') {
            clearTimeout(timer);
            resolve();
          }
        } catch {
          // Not a log line (an error before the daemon started): kept in rawErr.
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${rawErr}`));
    });
  });
  child.stdout.resume();
  await listening;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    process: child,
    logs,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
