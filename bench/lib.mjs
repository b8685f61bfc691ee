// Shared helpers for the benchmark suites: timing real processes, statistics, and the report
// (a table for people, one JSON document for scripts). Each suite is a module in bench/ that
// exports { name, description, run(options) } and returns the result shape documented in
// docs/benchmarks.md; run.mjs selects suites and prints what they return.
import { spawnSync } from 'node:child_process';
import { cpus, platform, arch, release } from 'node:os';
import { performance } from 'node:perf_hooks';

/** An error that ends the benchmark run with exit code 1 (a missed target never does). */
export class BenchError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BenchError';
  }
}

/**
 * Runs a command to completion and returns its wall time in milliseconds. The output is captured
 * (as a script calling the CLI would) and the run is checked, so a broken build cannot pass for a
 * fast one.
 */
export function timeProcess({ label, command, args, expectStdout = false }) {
  const started = performance.now();
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 16 * 1024 * 1024,
  });
  const elapsed = performance.now() - started;
  if (result.error) throw new BenchError(`${label}: ${result.error.message}`);
  if (result.status !== 0) {
    const stderr = result.stderr.toString().trim().split('\n').slice(0, 3).join(' / ');
    throw new BenchError(
      `${label} exited with ${result.status ?? result.signal}${stderr ? `: ${stderr}` : ''}`,
    );
  }
  if (expectStdout && result.stdout.length === 0) {
    throw new BenchError(`${label} printed nothing on stdout`);
  }
  return elapsed;
}

/**
 * Runs each subject once per round, round-robin, so machine noise lands on all of them alike.
 * The starting subject rotates each round, so none is always first after a pause. Warm-up rounds
 * are discarded. Stops early, and says so, when the time budget is spent. measure() may return a
 * number or a promise of one (servers, network clients).
 */
export async function interleave({
  subjects,
  rounds,
  warmupRounds,
  timeLimitMs,
  onRound = () => {},
}) {
  const samples = subjects.map(() => []);
  const started = performance.now();
  let completed = 0;
  let warmedUp = 0;
  let stoppedEarly = false;
  for (let round = 0; round < warmupRounds + rounds; round++) {
    if (performance.now() - started > timeLimitMs) {
      stoppedEarly = true;
      break;
    }
    const measured = round >= warmupRounds;
    for (let offset = 0; offset < subjects.length; offset++) {
      const index = (round + offset) % subjects.length;
      const value = await subjects[index].measure();
      if (measured) samples[index].push(value);
    }
    if (measured) completed++;
    else warmedUp++;
    onRound({ round: completed, rounds, warmup: !measured });
  }
  return {
    samples,
    rounds: completed,
    roundsRequested: rounds,
    warmupRounds: warmedUp,
    stoppedEarly,
    elapsedSeconds: round2((performance.now() - started) / 1000),
  };
}

/** The result shape every suite returns (docs/benchmarks.md), from interleave()'s outcome. */
export function suiteResult({ name, description, measured, timeLimitMs, rows, ...extra }) {
  return {
    suite: name,
    description,
    rounds: measured.rounds,
    roundsRequested: measured.roundsRequested,
    warmupRounds: measured.warmupRounds,
    stoppedEarly: measured.stoppedEarly,
    timeLimitSeconds: timeLimitMs / 1000,
    elapsedSeconds: measured.elapsedSeconds,
    ...extra,
    rows,
  };
}

/** Statistics of throughput samples (operations per second): the median, and the worst tenth. */
export function summarizeRates(values) {
  return {
    medianPerSecond: round2(quantile(values, 0.5)),
    p10PerSecond: round2(quantile(values, 0.1)),
    minPerSecond: round2(Math.min(...values)),
    maxPerSecond: round2(Math.max(...values)),
  };
}

/** The q-quantile (0..1) by linear interpolation between the closest ranks. */
export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower);
}

export function summarize(values) {
  return {
    medianMs: round2(quantile(values, 0.5)),
    p90Ms: round2(quantile(values, 0.9)),
    minMs: round2(Math.min(...values)),
    maxMs: round2(Math.max(...values)),
  };
}

export function round2(value) {
  return Math.round(value * 100) / 100;
}

/** What the figures were measured on: they mean little without it. */
export function machineInfo() {
  const processors = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${platform()} ${release()} ${arch()}`,
    cpus: processors.length,
    cpuModel: processors[0]?.model.trim() ?? 'unknown',
  };
}

/**
 * The report for people. Each suite result has rows of { label, medianMs, p90Ms, ratio, target,
 * verdict }; the baseline row has no ratio.
 */
export function renderText(report) {
  const { machine } = report;
  const lines = [
    `sark-fed benchmarks, ${machine.date}`,
    `node ${machine.node}, ${machine.platform}, ${machine.cpus} × ${machine.cpuModel}`,
  ];
  for (const suite of report.suites) {
    lines.push('', `${suite.suite}: ${suite.description}`);
    const roundsNote = suite.stoppedEarly
      ? `${suite.rounds} of ${suite.roundsRequested} rounds (stopped at the ${suite.timeLimitSeconds} s time limit)`
      : `${suite.rounds} rounds`;
    lines.push(
      `${roundsNote} after ${suite.warmupRounds} warm-up, interleaved, ${suite.elapsedSeconds} s`,
    );
    // Rows are grouped by their unit, each group under its own header, in the order they come.
    for (const group of groupByUnit(suite.rows)) {
      lines.push('');
      if (group.unit === 'per second') lines.push(...throughputTable(group.rows));
      else if (group.unit === 'discovery') lines.push(...discoveryTable(group.rows));
      else lines.push(...latencyTable(group.rows));
    }
    if (suite.note) lines.push('', suite.note);
  }
  return `${lines.join('\n')}\n`;
}

function groupByUnit(rows) {
  const groups = [];
  for (const row of rows) {
    const unit = row.unit ?? 'ms';
    const last = groups[groups.length - 1];
    if (last && last.unit === unit) last.rows.push(row);
    else groups.push({ unit, rows: [row] });
  }
  return groups;
}

/** Rows measured in wall time per run: lower is better, and so is a lower ratio. */
function latencyTable(rows) {
  const header = ['', 'median ms', 'p90 ms', 'ratio', 'target', 'result'];
  return alignColumns([
    header,
    ...rows.map((row) => [
      row.label,
      row.medianMs.toFixed(1),
      row.p90Ms.toFixed(1),
      row.ratio === null ? 'baseline' : `${row.ratio.toFixed(2)}×`,
      row.target === null ? '' : `≤ ${row.target}×`,
      row.verdict ?? '',
    ]),
  ]);
}

/**
 * Rows measured in operations per second: higher is better, and so is a higher ratio. Rows that
 * carry CPU time a request (the invoke suite) get two more columns: the load client's and the
 * server's (all its threads).
 */
function throughputTable(rows) {
  const withCpu = rows.some((row) => row.cpuUsPerRequest);
  const header = ['', 'median /s', 'p10 /s', 'ratio', 'target', 'result'];
  if (withCpu) header.push('client µs', 'server µs');
  return alignColumns([
    header,
    ...rows.map((row) => {
      const cells = [
        row.label,
        row.medianPerSecond.toFixed(1),
        row.p10PerSecond.toFixed(1),
        row.ratio === null ? 'baseline' : `${row.ratio.toFixed(2)}×`,
        row.target === null ? '' : `≥ ${row.target}×`,
        row.verdict ?? '',
      ];
      if (withCpu) {
        cells.push(
          row.cpuUsPerRequest ? row.cpuUsPerRequest.client.toFixed(0) : '',
          row.cpuUsPerRequest ? row.cpuUsPerRequest.server.toFixed(0) : '',
        );
      }
      return cells;
    }),
  ]);
}

/**
 * Rows of a discovery: how many of the expected nodes each round found (the worst round, and in
 * how many rounds all of them), and how long it took against an absolute target in ms.
 */
function discoveryTable(rows) {
  const header = [
    '',
    'found (min)',
    'all found',
    'median ms',
    'p90 ms',
    'max ms',
    'ratio',
    'target',
    'result',
  ];
  return alignColumns([
    header,
    ...rows.map((row) => [
      row.label,
      `${row.foundMin}/${row.expected}`,
      `${row.roundsAllFound}/${row.samplesMs.length}`,
      row.medianMs.toFixed(1),
      row.p90Ms.toFixed(1),
      row.maxMs.toFixed(1),
      row.ratio === null ? 'baseline' : `${row.ratio.toFixed(2)}×`,
      row.targetMs === null ? '' : `≤ ${row.targetMs} ms`,
      row.verdict ?? '',
    ]),
  ]);
}

function alignColumns(rows) {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) =>
    row
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]),
      )
      .join('  ')
      .trimEnd(),
  );
}
