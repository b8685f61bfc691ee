import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/node/logger.js';
import { loadPolicyFile } from '../../../src/node/policy.js';
import { loadResourcesFile } from '../../../src/node/resources.js';
import {
  fileSignature,
  ServedConfig,
  watchServedFiles,
  type ServedFileKind,
} from '../../../src/node/served-files.js';

const INTERVAL_MS = 40;
const ALLOW_ALL =
  'rules:\n  - { effect: allow, nodes: ["*"], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n';
const ECHO = (id: string) =>
  JSON.stringify({
    resources: [{ id, capabilities: [{ id: 'echo', backend: { type: 'echo' } }] }],
  });

let dir: string;
let lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }>;
let reloads: ServedFileKind[][];
let outcomes: Array<[ServedFileKind, boolean]>;
let watcher: { close(): void } | undefined;

const logger: Logger = {
  info: (message, fields) => lines.push({ level: 'info', message, ...(fields && { fields }) }),
  warn: (message, fields) => lines.push({ level: 'warn', message, ...(fields && { fields }) }),
  error: (message, fields) => lines.push({ level: 'error', message, ...(fields && { fields }) }),
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sark-fed-served-files-'));
  lines = [];
  reloads = [];
  outcomes = [];
});

afterEach(() => {
  watcher?.close();
  watcher = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Writes the files, loads them as `serve` does, and watches them. */
async function start(files: { resources?: string; policy?: string }) {
  const paths: Partial<Record<ServedFileKind, string>> = {};
  const watched: Partial<Record<ServedFileKind, { path: string; signature: string }>> = {};
  for (const kind of ['resources', 'policy'] as const) {
    const text = files[kind];
    if (text === undefined) continue;
    const path = join(dir, `${kind}.yaml`);
    writeFileSync(path, text);
    paths[kind] = path;
    watched[kind] = { path, signature: await fileSignature(path) };
  }
  const served = new ServedConfig(
    paths.resources ? await loadResourcesFile(paths.resources, {}) : undefined,
    paths.policy ? await loadPolicyFile(paths.policy) : undefined,
  );
  watcher = watchServedFiles({
    served,
    files: watched,
    env: {},
    logger,
    intervalMs: INTERVAL_MS,
    onReloaded: (kinds) => reloads.push(kinds),
    onOutcome: (kind, ok) => outcomes.push([kind, ok]),
  });
  return { served, paths: paths as Record<ServedFileKind, string> };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (bounded) until `done` holds. */
async function until(done: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out; log: ${JSON.stringify(lines)}`);
    await sleep(10);
  }
}

const ids = (served: ServedConfig) => served.catalog.resources.map((resource) => resource.id);

describe('watchServedFiles', () => {
  it('leaves files that do not change alone', async () => {
    const { served } = await start({ resources: ECHO('a'), policy: ALLOW_ALL });
    await sleep(INTERVAL_MS * 6);
    expect(reloads).toEqual([]);
    expect(lines).toEqual([]);
    expect(ids(served)).toEqual(['a']);
  });

  it('swaps in a changed file once it has stayed the same for one interval', async () => {
    const { served, paths } = await start({ resources: ECHO('a') });
    writeFileSync(paths.resources, ECHO('b'));
    await until(() => reloads.length === 1);
    expect(reloads).toEqual([['resources']]);
    expect(ids(served)).toEqual(['b']);
    expect(outcomes).toEqual([['resources', true]]);
  });

  it('does not load a file that keeps changing (being written) until it settles', async () => {
    const { served, paths } = await start({ resources: ECHO('a') });
    // A change every quarter interval: never the same signature on two ticks in a row.
    for (let round = 0; round < 16; round += 1) {
      writeFileSync(paths.resources, `${ECHO('b')}${' '.repeat(round)}`);
      await sleep(INTERVAL_MS / 4);
    }
    expect(reloads).toEqual([]);
    await until(() => reloads.length === 1);
    expect(ids(served)).toEqual(['b']);
  });

  it('keeps what it serves when a changed file does not load, says so once, and takes the next good one', async () => {
    const { served, paths } = await start({ policy: ALLOW_ALL });
    const before = served.policy;
    writeFileSync(paths.policy, 'rules:\n  - { efect: allow }\n');
    await until(() => lines.some((line) => line.level === 'error'));
    expect(served.policy).toBe(before);
    expect(lines).toEqual([
      {
        level: 'error',
        message: 'policy file not reloaded: still serving the previous one',
        fields: {
          file: paths.policy,
          error: expect.stringMatching(/^invalid policy file .*policy\.yaml: /),
          hint: expect.any(String),
        },
      },
    ]);
    expect(outcomes).toEqual([['policy', false]]);
    // Not tried (or logged) again while the file stays as it is.
    await sleep(INTERVAL_MS * 5);
    expect(lines).toHaveLength(1);

    writeFileSync(paths.policy, '{"rules": []}');
    await until(() => reloads.length === 1);
    expect(served.policy).not.toBe(before);
    expect(served.policy.allowsNothing).toBe(true);
    expect(served.declaredPolicy).toBe(served.policy);
  });

  it('reloads a file touched without a change (the way to force it) and a file replaced by rename', async () => {
    const { paths } = await start({ policy: ALLOW_ALL });
    const later = new Date(Date.now() + 5_000);
    utimesSync(paths.policy, later, later);
    await until(() => reloads.length === 1);
    writeFileSync(`${paths.policy}.new`, ALLOW_ALL);
    execFileSync('mv', [`${paths.policy}.new`, paths.policy]);
    await until(() => reloads.length === 2);
  });

  it('refuses a path that is no longer a regular file (a FIFO would block the daemon) and a deleted file', async () => {
    const { served, paths } = await start({ resources: ECHO('a') });
    rmSync(paths.resources);
    await until(() => lines.length === 1);
    expect(lines[0]).toMatchObject({
      level: 'error',
      fields: { error: `cannot read the resources file ${paths.resources} (ENOENT)` },
    });
    execFileSync('mkfifo', [paths.resources]);
    await until(() => lines.length === 2);
    expect(lines[1]).toMatchObject({
      level: 'error',
      fields: { error: `${paths.resources} is not a regular file` },
    });
    rmSync(paths.resources);
    mkdirSync(paths.resources);
    await until(() => lines.length === 3);
    expect(lines[2]?.fields?.error).toBe(`${paths.resources} is not a regular file`);
    expect(ids(served)).toEqual(['a']);
    expect(reloads).toEqual([]);
  });

  it('applies both files of one tick together', async () => {
    const { served, paths } = await start({ resources: ECHO('a'), policy: '{"rules": []}' });
    writeFileSync(paths.resources, ECHO('b'));
    writeFileSync(paths.policy, ALLOW_ALL);
    await until(() => reloads.length >= 1);
    // Written well inside one interval: seen, settled and applied on the same ticks.
    expect(reloads[0]?.sort()).toEqual(['policy', 'resources']);
    expect(ids(served)).toEqual(['b']);
    expect(served.policy.allowsNothing).toBe(false);
  });

  it('stops looking once closed', async () => {
    const { served, paths } = await start({ resources: ECHO('a') });
    watcher?.close();
    writeFileSync(paths.resources, ECHO('b'));
    await sleep(INTERVAL_MS * 6);
    expect(reloads).toEqual([]);
    expect(ids(served)).toEqual(['a']);
  });
});
