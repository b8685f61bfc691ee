// Invocation (issue 5), in one run:
//   - throughput through a node: POST invoke of the echo capability over keep-alive mTLS, 16 in
//     flight, with policy, rate limit, receipt and audit all on, against a bare Node https echo
//     server with the same certificate (bench/bare-server.mjs). Target: at least 0.6×. Beside
//     them, bench/floor-server.mjs: the echo plus only what every answer must carry (a signed
//     receipt, a committed hash-chained audit row), to show how much is sark-fed's own; and the
//     floor with only one of the two (the signed receipt alone, the audit row alone), to show
//     what each mandatory piece costs on its own on this machine.
//   - one-shot `sark-fed invoke` wall time against a bare Node script making the same single
//     mTLS request (bench/one-request.mjs), and against curl. Target: at most 1.5× the script.
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  BARE_SERVER,
  BIN,
  FLOOR_SERVER,
  cli,
  requireBuild,
  setUpFederation,
  startProcess,
  stopProcess,
  threadCpuMicros,
} from './federation.mjs';
import {
  BenchError,
  interleave,
  quantile,
  round2,
  suiteResult,
  summarize,
  summarizeRates,
  timeProcess,
} from './lib.mjs';

export const name = 'invoke';
export const description =
  'invoke throughput through a node, and one-shot sark-fed invoke, against bare Node https';

const ONE_REQUEST = fileURLToPath(new URL('./one-request.mjs', import.meta.url));
const THROUGHPUT_TARGET = 0.6;
const ONE_SHOT_TARGET = 1.5;
const CONCURRENCY = 16;
const REQUESTS_PER_ROUND = 800;
const INVOKE_PATH = '/api/v2/federation/invoke';

export async function run({ rounds, warmupRounds, timeLimitMs, onRound }) {
  requireBuild();
  const folder = mkdtempSync(join(tmpdir(), 'sark-bench-invoke-'));
  const children = [];
  try {
    const { a, b } = setUpFederation(folder);
    const { resources, policy } = writeEchoService(folder);
    const daemonPort = await startProcess(
      children,
      serveArguments(BIN, b.state, resources, policy),
      /"msg":"listening".*"port":(\d+)/,
    );
    const daemonPid = children.at(-1).pid;
    const barePort = await startProcess(children, [BARE_SERVER, b.cert, b.key], /^(\d+)$/m);
    const barePid = children.at(-1).pid;
    // The floors write their audit rows into state files of their own, made by the real CLI
    // with node-b's identity. The full floor and the receipt-only one (which writes no row)
    // share one.
    const floorStateFile = (file) => {
      const state = join(folder, file);
      cli(
        ['--state', state, 'init', '--node-id', 'node-b', '--trust-domain', 'org-b.example'].concat(
          ['--cert', b.cert, '--key', b.key],
        ),
      );
      return state;
    };
    const startFloor = async (state, mode) => ({
      port: await startProcess(children, [FLOOR_SERVER, b.cert, b.key, state, mode], /^(\d+)$/m),
      pid: children.at(-1).pid,
    });
    const floorState = floorStateFile('floor.db');
    const floor = await startFloor(floorState, 'full');
    const receiptOnly = await startFloor(floorState, 'receipt');
    const auditOnly = await startFloor(floorStateFile('floor-audit-only.db'), 'audit');
    const daemonUrl = `https://127.0.0.1:${daemonPort}`;
    const bareUrl = `https://127.0.0.1:${barePort}`;
    cli(['--state', a.state, 'trust', 'establish', daemonUrl, '--fingerprint', b.fingerprint]);

    const body = INVOKE_BODY;
    const client = { cert: readFileSync(a.cert), key: readFileSync(a.key) };
    // CPU time a request, per subject and round (warm-up rounds included, dropped below).
    const cpuSamples = [];
    const throughput = (url, serverPid) => {
      const samples = [];
      cpuSamples.push(samples);
      return async () => {
        const measured = await load(url, client, body, { serverPid });
        samples.push(measured);
        return measured.rate;
      };
    };
    const oneShot = (label, command, args) => ({
      label,
      measure: () => timeProcess({ label, command, args, expectStdout: true }),
    });
    const throughputSubjects = [
      {
        label: `bare https echo, keep-alive ×${CONCURRENCY}`,
        measure: throughput(bareUrl, barePid),
      },
      {
        label: `sark-fed serve invoke echo, keep-alive ×${CONCURRENCY}`,
        measure: throughput(daemonUrl, daemonPid),
      },
      {
        label: `floor-server.mjs (receipt + audit row), keep-alive ×${CONCURRENCY}`,
        measure: throughput(`https://127.0.0.1:${floor.port}`, floor.pid),
      },
      {
        label: `floor-server.mjs receipt (signed receipt only), keep-alive ×${CONCURRENCY}`,
        measure: throughput(`https://127.0.0.1:${receiptOnly.port}`, receiptOnly.pid),
      },
      {
        label: `floor-server.mjs audit (audit row only), keep-alive ×${CONCURRENCY}`,
        measure: throughput(`https://127.0.0.1:${auditOnly.port}`, auditOnly.pid),
      },
    ];
    const oneShotSubjects = [
      oneShot('node one-request.mjs (one mTLS request)', process.execPath, [
        ONE_REQUEST,
        `${daemonUrl}${INVOKE_PATH}`,
        a.cert,
        a.key,
        body,
      ]),
      oneShot('sark-fed invoke echo echo --node node-b', process.execPath, [
        BIN,
        '--state',
        a.state,
        'invoke',
        'echo',
        'echo',
        '--node',
        'node-b',
        '--args',
        '{"message":"hello","n":42}',
      ]),
      oneShot('curl --cert --key (one mTLS request)', 'curl', [
        '-sS',
        '--fail',
        '-k',
        '--cert',
        a.cert,
        '--key',
        a.key,
        '-H',
        'content-type: application/json',
        '--data-binary',
        body,
        `${daemonUrl}${INVOKE_PATH}`,
      ]),
    ];
    if (spawnSync('curl', ['--version']).status !== 0) oneShotSubjects.pop();

    const subjects = [...throughputSubjects, ...oneShotSubjects];
    const measured = await interleave({ subjects, rounds, warmupRounds, timeLimitMs, onRound });
    if (measured.rounds === 0) {
      throw new BenchError(`no round finished within ${timeLimitMs / 1000} s`);
    }
    const throughputCount = throughputSubjects.length;
    const rateStats = measured.samples.slice(0, throughputCount).map(summarizeRates);
    const timeStats = measured.samples.slice(throughputCount).map(summarize);
    const throughputRatio = round2(rateStats[1].medianPerSecond / rateStats[0].medianPerSecond);
    const cpuStats = cpuSamples.map((samples) =>
      cpuPerRequest(samples.slice(measured.warmupRounds)),
    );
    const rows = [
      {
        label: throughputSubjects[0].label,
        unit: 'per second',
        ...rateStats[0],
        ratio: null,
        target: null,
        verdict: null,
        cpuUsPerRequest: cpuStats[0],
        samplesPerSecond: measured.samples[0].map(round2),
      },
      {
        label: throughputSubjects[1].label,
        unit: 'per second',
        ...rateStats[1],
        ratio: throughputRatio,
        target: THROUGHPUT_TARGET,
        verdict: throughputRatio >= THROUGHPUT_TARGET ? 'PASS' : 'FAIL',
        cpuUsPerRequest: cpuStats[1],
        samplesPerSecond: measured.samples[1].map(round2),
      },
      // The floors: ratios to the bare server, no target of their own.
      ...throughputSubjects.slice(2).map((subject, offset) => ({
        label: subject.label,
        unit: 'per second',
        ...rateStats[offset + 2],
        ratio: round2(rateStats[offset + 2].medianPerSecond / rateStats[0].medianPerSecond),
        target: null,
        verdict: null,
        cpuUsPerRequest: cpuStats[offset + 2],
        samplesPerSecond: measured.samples[offset + 2].map(round2),
      })),
      ...oneShotSubjects.map((subject, index) => {
        const stats = timeStats[index];
        const isBaseline = index === 0;
        const ratio = isBaseline ? null : round2(stats.medianMs / timeStats[0].medianMs);
        const isInvoke = index === 1;
        return {
          label: subject.label,
          unit: 'ms',
          ...stats,
          ratio,
          target: isInvoke ? ONE_SHOT_TARGET : null,
          verdict: isInvoke ? (ratio <= ONE_SHOT_TARGET ? 'PASS' : 'FAIL') : null,
          samplesMs: measured.samples[index + throughputCount].map(round2),
        };
      }),
    ];
    const cpuBudget = throughputBudget({
      bareRate: rateStats[0].medianPerSecond,
      bare: cpuStats[0],
      daemon: cpuStats[1],
      floor: cpuStats[2],
    });
    return suiteResult({
      name,
      description,
      measured,
      timeLimitMs,
      rows,
      ...(cpuBudget ? { cpuBudget, note: budgetNote(cpuBudget) } : {}),
    });
  } finally {
    await Promise.all(children.map(stopProcess));
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Medians over rounds of the load client's and the server's CPU time a request, in µs. */
function cpuPerRequest(samples) {
  const server = samples.map((sample) => sample.serverThreadsUs.reduce((sum, us) => sum + us, 0));
  return {
    client: round2(
      quantile(
        samples.map((sample) => sample.clientUs),
        0.5,
      ),
    ),
    server: round2(quantile(server, 0.5)),
    serverMainThread: round2(
      quantile(
        samples.map((sample) => sample.serverThreadsUs[0] ?? 0),
        0.5,
      ),
    ),
  };
}

/**
 * What the throughput target leaves a server on this machine, from CPU time measured in the same
 * run. At the target rate the load client still needs its CPU time a request (as measured against
 * the bare server, its cheapest case); what the cores have left over is the server's budget a
 * request. Two budgets: with every core busy all the time (the most there is; no run here gets
 * near it), and at the share of the cores the bare run itself kept busy (what a run here gets).
 * The floor server does only what every answer must carry (a signed receipt, a committed audit
 * row): how far each server is over or under the budgets says how much of a gap is sark-fed's
 * own. Undefined where the servers' CPU time could not be read (no /proc).
 */
function throughputBudget({ bareRate, bare, daemon, floor }) {
  if (!(bare.server > 0 && floor.server > 0 && daemon.server > 0)) return undefined;
  const cores = availableParallelism();
  const targetRate = THROUGHPUT_TARGET * bareRate;
  const clientCores = (targetRate * bare.client) / 1e6;
  const bareCores = (bareRate * (bare.client + bare.server)) / 1e6;
  return {
    cores,
    targetPerSecond: round2(targetRate),
    clientUsPerRequest: bare.client,
    serverBudgetUsAllCoresBusy: round2(((cores - clientCores) * 1e6) / targetRate),
    bareRunCoresBusy: round2(bareCores),
    serverBudgetUsAtBareUtilisation: round2(((bareCores - clientCores) * 1e6) / targetRate),
    bareServerUs: bare.server,
    floorServerUs: floor.server,
    daemonServerUs: daemon.server,
  };
}

function budgetNote(budget) {
  const against = (us) => {
    const gap = us - budget.serverBudgetUsAtBareUtilisation;
    return gap > 0 ? `${gap.toFixed(0)} µs over` : `${(-gap).toFixed(0)} µs under`;
  };
  return [
    `CPU budget at the ${THROUGHPUT_TARGET}× target (${budget.targetPerSecond.toFixed(0)}/s) on ${budget.cores} cores:`,
    `the load client takes ${budget.clientUsPerRequest.toFixed(0)} µs a request, leaving the server`,
    `${budget.serverBudgetUsAtBareUtilisation.toFixed(0)} µs a request at the ${budget.bareRunCoresBusy.toFixed(2)} cores the bare run kept busy`,
    `(${budget.serverBudgetUsAllCoresBusy.toFixed(0)} µs with every core busy all the time).`,
    `Server CPU a request: bare ${budget.bareServerUs.toFixed(0)} µs; floor ${budget.floorServerUs.toFixed(0)} µs,`,
    `${against(budget.floorServerUs)} that budget; sark-fed ${budget.daemonServerUs.toFixed(0)} µs, ${against(budget.daemonServerUs)}.`,
  ].join('\n');
}

/** The echo resource and a policy letting node-a use it: what the daemon serves here. */
export function writeEchoService(folder) {
  const resources = join(folder, 'resources.json');
  const policy = join(folder, 'policy.json');
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
          nodes: ['node-a'],
          principals: ['*'],
          resources: ['echo'],
          capabilities: ['*'],
        },
      ],
    }),
  );
  return { resources, policy };
}

/**
 * `serve` with the rate limit on, set above what the benchmark sends (so its bookkeeping is
 * measured), and a concurrency cap above the benchmark's.
 */
export function serveArguments(bin, state, resources, policy) {
  return [
    bin,
    '--state',
    state,
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--resources',
    resources,
    '--policy',
    policy,
    '--rate-limit-per-hour',
    '100000000',
    '--rate-limit-burst',
    '100000',
    '--max-concurrent-per-node',
    String(CONCURRENCY * 2),
  ];
}

export const INVOKE_BODY = JSON.stringify({
  resource_id: 'echo',
  capability_id: 'echo',
  principal_id: 'bench@node-a',
  arguments: { message: 'hello', n: 42 },
});

/**
 * `requests` POSTs over CONCURRENCY kept-alive connections, after one on each to open them.
 * Returns the rate, and the CPU time a request of this process (the load client) and, given the
 * server's PID, of each of the server's threads (its main thread first), over the timed requests
 * only: the TLS handshakes of the opening requests are not charged to them.
 */
export async function load(url, client, body, { requests = REQUESTS_PER_ROUND, serverPid } = {}) {
  const target = new URL(url);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: CONCURRENCY,
    ...client,
    rejectUnauthorized: false,
  });
  const send = () =>
    new Promise((resolve, reject) => {
      const outgoing = request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: INVOKE_PATH,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
          signal: AbortSignal.timeout(10_000),
        },
        (response) => {
          response.resume();
          response.on('end', () =>
            response.statusCode === 200
              ? resolve()
              : reject(new BenchError(`${url} answered ${response.statusCode}`)),
          );
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  try {
    // Warm connections first: the figure is requests over open connections.
    await Promise.all(Array.from({ length: CONCURRENCY }, send));
    const serverBefore = serverPid === undefined ? undefined : threadCpuMicros(serverPid);
    const clientBefore = process.cpuUsage();
    let issued = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (issued < requests) {
          issued++;
          await send();
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    const clientCpu = process.cpuUsage(clientBefore);
    const serverThreadsUs = [];
    if (serverBefore !== undefined) {
      for (const [tid, micros] of threadCpuMicros(serverPid)) {
        const perRequest = (micros - (serverBefore.get(tid) ?? 0)) / issued;
        if (tid === serverPid) serverThreadsUs.unshift(perRequest);
        else if (perRequest > 0) serverThreadsUs.push(perRequest);
      }
    }
    return {
      rate: (issued * 1000) / elapsedMs,
      clientUs: (clientCpu.user + clientCpu.system) / issued,
      serverThreadsUs,
    };
  } finally {
    agent.destroy();
  }
}
