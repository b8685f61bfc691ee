// Trust and the daemon (issue 3): in one run, against a bare Node https server with the same
// certificates and TLS settings (bench/bare-server.mjs),
//   - full mutual-TLS `trust establish` round trips per second (new connection, info, challenge,
//     signed answer, validation, pinning and the state writes on both nodes), and
//   - the daemon's `info` requests per second over keep-alive mTLS.
// Both servers run as their own processes; the client is this process, driving the real engine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  BARE_SERVER,
  BIN,
  loadDriver,
  requireBuild,
  setUpFederation,
  startProcess,
  stopProcess,
} from './federation.mjs';
import { BenchError, interleave, round2, suiteResult, summarizeRates } from './lib.mjs';

export const name = 'trust';
export const description = 'trust establish and info throughput against a bare Node https server';

const ESTABLISH_PER_ROUND = 10;
const INFO_PER_ROUND = 1000;
const INFO_CONNECTIONS = 8;

export async function run({ rounds, warmupRounds, timeLimitMs, onRound }) {
  requireBuild();
  const folder = mkdtempSync(join(tmpdir(), 'sark-bench-trust-'));
  const children = [];
  let initiator;
  try {
    const driver = await loadDriver('./trust-driver.ts');
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
