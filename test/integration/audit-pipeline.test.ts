import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  GENESIS_HASH,
  chainHash,
  eventFromRow,
  type AuditEventInput,
} from '../../src/core/audit/events.js';
import { openState } from '../../src/core/state/database.js';
import { AuditPipeline } from '../../src/node/audit-pipeline.js';
import { inboundEvent } from '../helpers/audit-events.js';
import { tempDir } from '../helpers/cli.js';

/**
 * The daemon's audit writer thread as `sark-fed serve` runs it: the built worker
 * (dist/cli/audit-worker.js, made by `npm run build`, which `npm test` runs first) committing
 * into a real state file while this thread goes on.
 */

const WORKER = pathToFileURL(
  fileURLToPath(new URL('../../dist/cli/audit-worker.js', import.meta.url)),
);

function event(index: number): AuditEventInput {
  return inboundEvent({
    correlationId: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
    time: new Date(Date.UTC(2026, 10, 26, 3, 0, 0, index)).toISOString(),
    durationUs: 120 + index,
  });
}

function newStateFile(): string {
  const path = join(tempDir(), 'state.db');
  openState(path, { create: true }).close();
  return path;
}

describe('audit writer thread', () => {
  it('exists in the build', () => {
    expect(existsSync(WORKER), 'run `npm run build` first').toBe(true);
  });

  it('commits every event of many concurrent appends, each settling once committed, in one chain', async () => {
    const path = newStateFile();
    const pipeline = await AuditPipeline.start(WORKER, path);
    const appends: Array<Promise<unknown>> = [];
    // Appends spread over several turns of the event loop, as requests complete in a daemon.
    for (let turn = 0; turn < 20; turn++) {
      for (let index = 0; index < 25; index++)
        appends.push(pipeline.append(event(turn * 25 + index)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const settledBeforeClose = await Promise.all(appends);
    expect(settledBeforeClose).toHaveLength(500);
    await pipeline.close();

    const store = openState(path, { create: false });
    try {
      const rows = store.read((db) =>
        db.prepare('SELECT * FROM audit_events ORDER BY seq').all(),
      ) as Parameters<typeof eventFromRow>[0][];
      expect(rows).toHaveLength(500);
      let previous = GENESIS_HASH;
      for (const row of rows.map(eventFromRow)) {
        expect(row.prevHash).toBe(previous);
        expect(row.hash).toBe(chainHash(row.prevHash, row));
        previous = row.hash;
      }
      // Queued in order, committed in order.
      expect(rows.map((row) => row.duration_us)).toEqual(
        Array.from({ length: 500 }, (_, index) => 120 + index),
      );
    } finally {
      store.close();
    }
  });

  it('on close, commits what was appended while a batch was in flight, and settles every append', async () => {
    const path = newStateFile();
    const pipeline = await AuditPipeline.start(WORKER, path);
    const first = Array.from({ length: 10 }, (_, index) => pipeline.append(event(index)));
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is posted
    const second = Array.from({ length: 10 }, (_, index) => pipeline.append(event(10 + index)));
    await pipeline.close();
    await expect(Promise.all([...first, ...second])).resolves.toHaveLength(20);
    const store = openState(path, { create: false });
    try {
      const count = store.read((db) =>
        db.prepare('SELECT count(*) FROM audit_events').pluck().get(),
      );
      expect(count).toBe(20);
    } finally {
      store.close();
    }
  });

  it('refuses appends once closed, and close is idempotent', async () => {
    const pipeline = await AuditPipeline.start(WORKER, newStateFile());
    await pipeline.append(event(1));
    await pipeline.close();
    await pipeline.close();
    await expect(pipeline.append(event(2))).rejects.toThrow(/closing/);
  });

  it('fails to start, with the reason, when the state file cannot be opened', async () => {
    const missing = join(tempDir(), 'nowhere.db');
    await expect(AuditPipeline.start(WORKER, missing)).rejects.toThrow(/could not open the state/);
    expect(existsSync(missing)).toBe(false);
  });
});
