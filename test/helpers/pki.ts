import { join } from 'node:path';
import { expect } from 'vitest';
import { runCli } from './cli.js';

export interface CaFixture {
  dir: string;
  certPath: string;
  keyPath: string;
}

export interface NodeFixture {
  dir: string;
  certPath: string;
  keyPath: string;
  caPath: string;
}

/** `sark-fed pki ca create` into dir, failing the test with the CLI's stderr if it fails. */
export async function createCa(dir: string, extraArgs: string[] = []): Promise<CaFixture> {
  const result = await runCli(['pki', 'ca', 'create', '--out', dir, ...extraArgs]);
  expect(result.code, result.stderr).toBe(0);
  return { dir, certPath: join(dir, 'ca.pem'), keyPath: join(dir, 'ca.key') };
}

/** `sark-fed pki issue --ca caDir --node-id nodeId --out dir`. */
export async function issueNode(
  caDir: string,
  nodeId: string,
  dir: string,
  extraArgs: string[] = [],
): Promise<NodeFixture> {
  const result = await runCli([
    'pki',
    'issue',
    '--ca',
    caDir,
    '--node-id',
    nodeId,
    '--out',
    dir,
    ...extraArgs,
  ]);
  expect(result.code, result.stderr).toBe(0);
  return {
    dir,
    certPath: join(dir, 'cert.pem'),
    keyPath: join(dir, 'key.pem'),
    caPath: join(dir, 'ca.pem'),
  };
}
