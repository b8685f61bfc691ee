import Database from 'better-sqlite3';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { CLI_PATH, PROJECT_ROOT, cleanEnv, runCli, tempDir, type RunResult } from './cli.js';
import { normalizeOpensslFingerprint, opensslOk } from './openssl.js';
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
  return initNode(root, fixture, nodeId, trustDomain);
}

/**
 * Records an identity with `init` in a new state file under root/nodeId, from a certificate
 * issued earlier (several test federations may share one node certificate: issuing is the
 * costly part), with an endpoint on a free loopback port.
 */
export async function initNode(
  root: string,
  fixture: NodeFixture,
  nodeId: string,
  trustDomain: string,
): Promise<TestNode> {
  mkdirSync(join(root, nodeId), { recursive: true, mode: 0o700 });
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

/** A copy of a state file, made through SQLite (safe while a daemon has it open in WAL mode). */
export function copyState(source: string, target: string): void {
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    db.prepare('VACUUM INTO ?').run(target);
  } finally {
    db.close();
  }
}

/**
 * The same node on a consistent copy of its state file (write-ahead log included), in a new
 * folder: for a second daemon of that node while the first runs, since one state file takes one
 * `serve` at a time.
 */
export function nodeCopy(node: TestNode): TestNode {
  const state = join(tempDir('sark-fed-node-copy-'), 'state.db');
  copyState(node.state, state);
  const cli = (args: string[], env?: Record<string, string | undefined>) =>
    runCli(['--state', state, ...args], { env });
  return { ...node, state, cli };
}

export interface RunningServe {
  process: ChildProcessWithoutNullStreams;
  /** JSON log lines the daemon wrote so far. */
  logs: Array<Record<string, unknown>>;
  /** Everything the daemon wrote on stderr so far, log lines or not. */
  stderr(): string;
  /**
   * The first log line (already written or still to come, within timeoutMs) that matches. Log
   * lines travel through a pipe, so one may arrive after the HTTP answer it follows.
   */
  waitForLog(
    match: (entry: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGTERM (or the given signal), then the exit code (bounded: SIGKILL after 10 s). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Every daemon started by this file and not yet stopped: stopped after the file at the latest. */
const runningServes = new Set<RunningServe>();

afterAll(async () => {
  await stopAllServes();
});

/** Stops every daemon still running (a safety net; tests stop their own). */
export async function stopAllServes(): Promise<void> {
  await Promise.all([...runningServes].map((serve) => serve.stop()));
}

/**
 * Starts `sark-fed serve` for a node and waits until it logs that it listens. `env` is added to
 * the clean environment (CONSUL_HTTP_TOKEN and the like).
 */
export async function startServe(
  node: TestNode,
  extraArgs: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<RunningServe> {
  const child = spawn(process.execPath, [CLI_PATH, '--state', node.state, 'serve', ...extraArgs], {
    cwd: PROJECT_ROOT,
    env: cleanEnv(env),
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters = new Set<(entry: Record<string, unknown>) => void>();
  let buffered = '';
  let rawErr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
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
          for (const waiter of waiters) waiter(entry);
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
  try {
    await listening;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const running: RunningServe = {
    process: child,
    logs,
    stderr: () => rawErr,
    waitForLog(match, timeoutMs = 5_000) {
      const found = logs.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = (entry: Record<string, unknown>) => {
          if (!match(entry)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(entry);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no such log line within ${timeoutMs} ms; logs: ${rawErr}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      runningServes.delete(running);
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  runningServes.add(running);
  return running;
}

/** Makes `node` accept certificates of the CA whose ca.pem is at caPath (`trust anchor add`). */
export async function addAnchor(node: TestNode, caPath: string): Promise<void> {
  const result = await node.cli(['trust', 'anchor', 'add', caPath]);
  expect(result.code, result.stderr).toBe(0);
}

/**
 * Every row of every table of a state file, read through a read-only connection (safe while a
 * daemon holds the file in WAL mode, where the file's bytes alone say little). Compare it before
 * and after a refused command: nothing may have been written.
 */
export function stateRows(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .pluck()
      .all() as string[];
    const rows: Record<string, unknown[]> = {};
    for (const table of tables)
      rows[table] = db.prepare(`SELECT * FROM "${table}" ORDER BY 1`).all();
    return rows;
  } finally {
    db.close();
  }
}

/** The SHA-256 fingerprint of a certificate file as openssl computes it, canonical form. */
export function opensslFingerprint(certPath: string): string {
  return normalizeOpensslFingerprint(
    opensslOk(['x509', '-in', certPath, '-noout', '-fingerprint', '-sha256']),
  );
}

/** The notAfter of a certificate file as openssl reads it, as an ISO 8601 string. */
export function opensslNotAfter(certPath: string): string {
  const line = opensslOk(['x509', '-in', certPath, '-noout', '-enddate']).trim();
  return new Date(line.replace(/^notAfter=/, '')).toISOString();
}

export interface CurlOptions {
  /** CA certificate curl verifies the daemon's certificate with. */
  cacert: string;
  /** Client certificate and key; none means no client certificate at all. */
  cert?: { certPath: string; keyPath: string };
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body with chunked transfer encoding, so no length is declared up front. */
  chunked?: boolean;
}

export interface CurlResult {
  status: number;
  /** Response headers, names in lowercase. */
  headers: Record<string, string>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  /** curl's own exit code and message (0 and '' when it got an answer). */
  exitCode: number;
  stderr: string;
}

/**
 * One request with the system curl: a standard TLS client, independent of Node, which verifies
 * the daemon's certificate and (with `cert`) presents a client certificate.
 */
export function curl(url: string, options: CurlOptions): Promise<CurlResult> {
  const args = ['-sS', '--http1.1', '-i', '--max-time', '10', '--cacert', options.cacert];
  if (options.cert) args.push('--cert', options.cert.certPath, '--key', options.cert.keyPath);
  if (options.method) args.push('-X', options.method);
  // No "Expect: 100-continue" round trip: the daemon answers the body it gets.
  args.push('-H', 'Expect:');
  if (options.chunked) args.push('-H', 'Transfer-Encoding: chunked');
  for (const [name, value] of Object.entries(options.headers ?? {}))
    args.push('-H', `${name}: ${value}`);
  if (options.body !== undefined) args.push('--data-binary', '@-');
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn('curl', args, { env: cleanEnv() });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const raw = Buffer.concat(stdout).toString('utf8');
      const split = raw.indexOf('\r\n\r\n');
      const head = split === -1 ? raw : raw.slice(0, split);
      const text = split === -1 ? '' : raw.slice(split + 4);
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({
        status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers,
        text,
        json,
        exitCode: code ?? -1,
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.body ?? '');
  });
}

/**
 * `serve` options for a node serving the built-in echo (resource and capability `echo`) to the
 * given nodes: the resources and policy files are written into `dir`.
 */
export function echoServing(dir: string, allowNodes: readonly string[]): string[] {
  const resources = join(dir, 'resources.json');
  const policy = join(dir, 'policy.json');
  writeFileSync(
    resources,
    JSON.stringify({
      resources: [{ id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] }],
    }),
  );
  writeFileSync(
    policy,
    JSON.stringify({
      rules: [
        {
          effect: 'allow',
          nodes: allowNodes,
          principals: ['*'],
          resources: ['*'],
          capabilities: ['*'],
        },
      ],
    }),
  );
  return ['--resources', resources, '--policy', policy];
}
