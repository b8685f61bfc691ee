import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { expect } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/output/output.js';
import { tempDir, type RunResult } from '../helpers/cli.js';
import {
  addAnchor,
  makeNode,
  opensslFingerprint,
  startServe,
  type RunningServe,
  type TestNode,
} from '../helpers/federation.js';
import { createCa } from '../helpers/pki.js';

/**
 * A two-organization federation for the audit tests, set up with the CLI as operators do:
 * node-a (org A) trusts node-b (org B), whose real `sark-fed serve` daemon serves `echo` and a
 * capability whose backend is down; its policy lets node-a call anything, except as mallory.
 * node-a runs a daemon too (`withDaemonOnA`), so that node-b can ask it in federated queries.
 */

export const TD_A = 'org-a.example';
export const TD_B = 'org-b.example';

export interface AuditFederation {
  dir: string;
  a: TestNode;
  b: TestNode;
  daemons: RunningServe[];
}

const POLICY = {
  rules: [
    {
      effect: 'deny',
      nodes: ['*'],
      principals: ['mallory@*'],
      resources: ['*'],
      capabilities: ['*'],
    },
    { effect: 'allow', nodes: ['*'], principals: ['*'], resources: ['*'], capabilities: ['*'] },
  ],
};

export async function setUpFederation(
  options: { withDaemonOnA?: boolean } = {},
): Promise<AuditFederation> {
  const dir = tempDir('sark-fed-audit-e2e-');
  const [caA, caB] = await Promise.all([
    createCa(join(dir, 'ca-a'), ['--trust-domain', TD_A]),
    createCa(join(dir, 'ca-b'), ['--trust-domain', TD_B]),
  ]);
  const [a, b] = await Promise.all([
    makeNode(dir, caA.dir, 'node-a', TD_A),
    makeNode(dir, caB.dir, 'node-b', TD_B),
  ]);
  await Promise.all([addAnchor(a, caB.certPath), addAnchor(b, caA.certPath)]);
  const resources = join(dir, 'resources.json');
  writeFileSync(
    resources,
    JSON.stringify({
      resources: [
        { id: 'echo', capabilities: [{ id: 'echo', backend: { type: 'echo' } }] },
        {
          id: 'broken',
          capabilities: [
            // Nothing listens on port 9 of the loopback: the backend fails, the call is an error.
            {
              id: 'call',
              backend: { type: 'http', method: 'POST', url: 'http://127.0.0.1:9/', timeout: '2s' },
            },
          ],
        },
      ],
    }),
  );
  const policy = join(dir, 'policy.json');
  writeFileSync(policy, JSON.stringify(POLICY));
  const serveArgs = ['--resources', resources, '--policy', policy];
  const daemons = await Promise.all([
    startServe(b, serveArgs),
    ...(options.withDaemonOnA ? [startServe(a, serveArgs)] : []),
  ]);
  const establish = await a.cli([
    'trust',
    'establish',
    b.endpoint,
    '--fingerprint',
    opensslFingerprint(b.certPath),
  ]);
  expect(establish.code, establish.stderr).toBe(0);
  if (options.withDaemonOnA) {
    const back = await b.cli([
      'trust',
      'establish',
      a.endpoint,
      '--fingerprint',
      opensslFingerprint(a.certPath),
    ]);
    expect(back.code, back.stderr).toBe(0);
  }
  return { dir, a, b, daemons };
}

/** `invoke` from node, returning the correlation ID it printed (or was given). */
export async function invoke(
  node: TestNode,
  resource: string,
  capability: string,
  extra: string[] = [],
): Promise<{ result: RunResult; correlationId: string }> {
  const result = await node.cli(['invoke', resource, capability, '--node', 'node-b', ...extra]);
  const correlationId = /^correlation ID: (\S+)$/m.exec(result.stderr)?.[1];
  expect(correlationId, result.stderr).toBeDefined();
  return { result, correlationId: correlationId as string };
}

class CapturedStream {
  text = '';
  constructor(readonly isTTY: boolean) {}
  columns = 200;
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/**
 * Runs the CLI in this process with a stdout that says it is a terminal: how the tests see the
 * tables and trees a person sees (no colour: NO_COLOR).
 */
export async function runOnTerminal(args: string[]): Promise<RunResult> {
  const stdout = new CapturedStream(true);
  const stderr = new CapturedStream(false);
  const io: CliIo = {
    stdin: Readable.from([]),
    stdout,
    stderr,
    env: { NO_COLOR: '1', HOME: tempDir('sark-fed-home-') },
  };
  const code = await main(['node', 'sark-fed', ...args], io);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Opens a state file for tampering: the append-only triggers dropped. */
export function openForTampering(path: string): Database.Database {
  const db = new Database(path, { fileMustExist: true });
  db.exec('DROP TRIGGER IF EXISTS audit_events_no_update');
  db.exec('DROP TRIGGER IF EXISTS audit_events_no_delete');
  return db;
}

export { copyState } from '../helpers/federation.js';
