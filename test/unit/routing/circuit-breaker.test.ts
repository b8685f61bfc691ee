import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CircuitBreakers,
  findCircuit,
  type BreakerConfig,
} from '../../../src/core/routing/circuit-breaker.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { PROJECT_ROOT, tempDir } from '../../helpers/cli.js';

/**
 * The persisted circuit breaker of DESIGN §6, on real state files: the state machine under an
 * injected clock, and the single half-open trial claimed by many processes at once.
 */

const CONFIG: BreakerConfig = { failureThreshold: 5, openMs: 30_000, trialLeaseMs: 60_000 };
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

const stores: StateStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

function freshStore(path = join(tempDir('sark-fed-circuit-'), 'state.db')): StateStore {
  const store = openState(path, { create: true });
  stores.push(store);
  return store;
}

/** A breaker on its own clock, which the test moves. */
function breakerWithClock(store: StateStore) {
  let now = T0;
  const breakers = new CircuitBreakers(store, CONFIG, () => new Date(now));
  return {
    breakers,
    advance(ms: number) {
      now += ms;
    },
    row: () => store.read((db) => findCircuit(db, 'node-b')),
  };
}

function failTimes(breakers: CircuitBreakers, count: number) {
  for (let index = 0; index < count; index++)
    breakers.recordFailure('node-b', 'ECONNREFUSED', null);
}

describe('circuit breaker state machine', () => {
  it('stays closed through four failures and opens on the fifth', () => {
    const { breakers, row } = breakerWithClock(freshStore());
    failTimes(breakers, 4);
    expect(row()).toMatchObject({ state: 'closed', consecutiveFailures: 4 });
    expect(breakers.admit('node-b')).toEqual({ admitted: true, trial: null });
    failTimes(breakers, 1);
    expect(row()).toMatchObject({
      state: 'open',
      consecutiveFailures: 5,
      openedAt: new Date(T0).toISOString(),
      lastFailure: 'ECONNREFUSED',
    });
  });

  it('a success resets the count of consecutive failures', () => {
    const { breakers, row } = breakerWithClock(freshStore());
    failTimes(breakers, 4);
    breakers.recordSuccess('node-b', null);
    failTimes(breakers, 4);
    expect(row()).toMatchObject({ state: 'closed', consecutiveFailures: 4 });
  });

  it('refuses calls while open for 30 s, without counting the refusals as failures', () => {
    const { breakers, advance, row } = breakerWithClock(freshStore());
    failTimes(breakers, 5);
    advance(29_999);
    for (let index = 0; index < 10; index++) {
      expect(breakers.admit('node-b')).toEqual({
        admitted: false,
        state: 'open',
        retryAt: new Date(T0 + 30_000).toISOString(),
      });
    }
    expect(row()).toMatchObject({ state: 'open', consecutiveFailures: 5 });
  });

  it('after the wait lets exactly one trial through; the others are refused until it ends', () => {
    const { breakers, advance, row } = breakerWithClock(freshStore());
    failTimes(breakers, 5);
    advance(30_000);
    const first = breakers.admit('node-b');
    expect(first).toEqual({ admitted: true, trial: new Date(T0 + 30_000).toISOString() });
    expect(row()).toMatchObject({ state: 'half_open' });
    advance(1_000);
    expect(breakers.admit('node-b')).toEqual({
      admitted: false,
      state: 'half_open',
      retryAt: new Date(T0 + 30_000 + CONFIG.trialLeaseMs).toISOString(),
    });
  });

  it("closes on the trial's success", () => {
    const { breakers, advance, row } = breakerWithClock(freshStore());
    failTimes(breakers, 5);
    advance(30_000);
    const trial = breakers.admit('node-b');
    breakers.recordSuccess('node-b', trial.admitted ? trial.trial : null);
    expect(row()).toMatchObject({ state: 'closed', consecutiveFailures: 0, openedAt: null });
    expect(breakers.admit('node-b')).toEqual({ admitted: true, trial: null });
  });

  it("re-opens on the trial's failure, for another full wait from then", () => {
    const { breakers, advance, row } = breakerWithClock(freshStore());
    failTimes(breakers, 5);
    advance(30_000);
    const trial = breakers.admit('node-b');
    advance(500);
    expect(breakers.recordFailure('node-b', 'TIMEOUT', trial.admitted ? trial.trial : null)).toBe(
      'open',
    );
    expect(row()).toMatchObject({
      state: 'open',
      consecutiveFailures: 6,
      openedAt: new Date(T0 + 30_500).toISOString(),
      lastFailure: 'TIMEOUT',
    });
    advance(29_999);
    expect(breakers.admit('node-b').admitted).toBe(false);
    advance(1);
    expect(breakers.admit('node-b').admitted).toBe(true);
  });

  it('ignores the outcome of calls that were not the trial while the circuit is not closed', () => {
    const { breakers, advance, row } = breakerWithClock(freshStore());
    failTimes(breakers, 5);
    // A call admitted before the circuit opened fails or succeeds late: neither decides.
    breakers.recordFailure('node-b', 'late', null);
    breakers.recordSuccess('node-b', null);
    expect(row()).toMatchObject({
      state: 'open',
      consecutiveFailures: 5,
      lastFailure: 'ECONNREFUSED',
    });
    advance(30_000);
    const trial = breakers.admit('node-b');
    breakers.recordSuccess('node-b', null);
    expect(row()).toMatchObject({ state: 'half_open' });
    breakers.recordSuccess('node-b', trial.admitted ? trial.trial : null);
    expect(row()).toMatchObject({ state: 'closed' });
  });

  it('hands the trial to another caller when its holder never reported (lease lapsed)', () => {
    const { breakers, advance } = breakerWithClock(freshStore());
    failTimes(breakers, 5);
    advance(30_000);
    const stale = breakers.admit('node-b');
    advance(CONFIG.trialLeaseMs);
    const fresh = breakers.admit('node-b');
    expect(fresh.admitted && fresh.trial).toBe(
      new Date(T0 + 30_000 + CONFIG.trialLeaseMs).toISOString(),
    );
    // The stale holder's late verdict no longer counts: only the current trial decides.
    breakers.recordSuccess('node-b', stale.admitted ? stale.trial : null);
    expect(breakers.admit('node-b').admitted).toBe(false);
  });

  it('is shared by every connection to the same state file', () => {
    const path = join(tempDir('sark-fed-circuit-'), 'state.db');
    const one = breakerWithClock(freshStore(path));
    const two = breakerWithClock(freshStore(path));
    failTimes(one.breakers, 3);
    failTimes(two.breakers, 2);
    expect(one.row()).toMatchObject({ state: 'open', consecutiveFailures: 5 });
    expect(two.breakers.admit('node-b').admitted).toBe(false);
  });
});

/**
 * A script each racing process runs: open the state file, wait for the common start time, try to
 * claim the trial, print what it got. Bundled from the real sources with esbuild.
 */
const RACER = `
import { openState } from './src/core/state/database.ts';
import { CircuitBreakers } from './src/core/routing/circuit-breaker.ts';
const [path, startAt, openMs] = process.argv.slice(2);
const store = openState(path, { create: false, busyTimeoutMs: 10000 });
const breakers = new CircuitBreakers(store, { failureThreshold: 5, openMs: Number(openMs), trialLeaseMs: 60000 });
while (Date.now() < Number(startAt)) {}
const admission = breakers.admit('node-b');
process.stdout.write(JSON.stringify(admission));
store.close();
`;

async function bundleRacer(dir: string): Promise<string> {
  // CommonJS, so that NODE_PATH finds better-sqlite3 from a bundle outside the project.
  const out = join(dir, 'racer.cjs');
  await build({
    stdin: { contents: RACER, resolveDir: PROJECT_ROOT, loader: 'ts' },
    outfile: out,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external: ['better-sqlite3'],
    logLevel: 'silent',
  });
  return out;
}

function runRacer(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, NODE_PATH: join(PROJECT_ROOT, 'node_modules') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`racer exited ${code}: ${stderr}`)),
    );
  });
}

describe('half-open trial across processes', () => {
  it('gives the trial to exactly one of 12 processes claiming it at the same moment', async () => {
    const dir = tempDir('sark-fed-race-');
    const path = join(dir, 'state.db');
    const store = freshStore(path);
    // Opened 10 s ago; the racers wait 1 s: the trial is due when they start.
    failTimes(new CircuitBreakers(store, CONFIG, () => new Date(Date.now() - 10_000)), 5);
    expect(store.read((db) => findCircuit(db, 'node-b'))?.state).toBe('open');

    const script = await bundleRacer(dir);
    // Node starts in well under 2 s here even with the machine busy; all spin until then.
    const startAt = String(Date.now() + 2_500);
    const results = await Promise.all(
      Array.from({ length: 12 }, () => runRacer(script, [path, startAt, '1000'])),
    );
    const admissions = results.map((text) => JSON.parse(text) as { admitted: boolean });
    expect(admissions.filter((admission) => admission.admitted)).toHaveLength(1);
    expect(admissions.filter((admission) => !admission.admitted)).toHaveLength(11);
    expect(store.read((db) => findCircuit(db, 'node-b'))?.state).toBe('half_open');
  }, 30_000);
});
