// The audit trail on a million events (issue 6), in one run on one state file:
//   - `sark-fed audit query --correlation-id X --json` wall time against the sqlite3 shell running
//     the same indexed query on the same file, and against `node -e 0`. Target: sark-fed at most
//     1.5 × sqlite3 + Node's start, i.e. (sark-fed − node -e 0) / sqlite3 ≤ 1.5; beside it the same
//     figure for bench/audit-floor.cjs, the smallest Node program giving the same answer.
//   - `sark-fed audit export` (jsonl and csv, to /dev/null) in events per second over the whole
//     file, with the exporting process's peak RSS, against the sqlite3 shell printing every row.
// The file is made once through the real CLI (`init`) and engine (appendEvents, bench/audit-
// driver.ts) and cached under the system's temporary folder: see docs/benchmarks.md.
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { BIN, cli, loadDriver, requireBuild } from './federation.mjs';
import {
  BenchError,
  interleave,
  round2,
  suiteResult,
  summarize,
  summarizeRates,
  timeProcess,
} from './lib.mjs';

export const name = 'audit';

/** Events in the generated file; SARK_BENCH_AUDIT_EVENTS makes a smaller one (to try the suite). */
const EVENTS = eventCount(process.env.SARK_BENCH_AUDIT_EVENTS);
export const description = `audit query and export on ${EVENTS.toLocaleString('en')} events against the sqlite3 shell`;

const BATCH = 10_000;
const QUERY_TARGET = 1.5;
/** The export reads the whole file: a few rounds are enough, and at least one always runs. */
const EXPORT_ROUNDS = 3;
/** Correlation IDs queried, from the middle of the file; round n queries the n-th (cycling). */
const QUERY_IDS = 50;
/** Where the generated files are kept between runs, one folder per schema and generator version. */
const CACHE_ROOT = join(tmpdir(), 'sark-fed-bench-audit');
const LOCAL = { nodeId: 'node-a', trustDomain: 'org-a.example' };
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
/** The smallest Node program giving the same answer (bench/audit-floor.cjs). */
const FLOOR_SCRIPT = fileURLToPath(new URL('./audit-floor.cjs', import.meta.url));
const FLOOR_LABEL = 'node audit-floor.cjs (better-sqlite3, same query)';

const QUERY_SQL = (id) =>
  `SELECT * FROM audit_events WHERE correlation_id = '${id}' ORDER BY time DESC, seq DESC`;

function eventCount(text) {
  if (text === undefined || text === '') return 1_000_000;
  if (!/^\d+$/.test(text) || Number(text) < 1000) {
    throw new BenchError(`SARK_BENCH_AUDIT_EVENTS expects a whole number ≥ 1000, not "${text}"`);
  }
  return Number(text);
}

export async function run({ rounds, warmupRounds, timeLimitMs, onRound }) {
  requireBuild();
  const sqliteVersion = requireSqlite3();
  requireCommand(['audit', 'query'], 'issue 6');
  requireCommand(['audit', 'export'], 'issue 6');

  const driver = await loadDriver('./audit-driver.ts');
  const dataset = cachedDataset(driver, () => onRound({ round: 0, rounds, warmup: true }));
  const state = dataset.statePath;

  const ids = middleCorrelationIds(state, QUERY_IDS);
  const plan = sqlite3(state, ['-readonly'], `EXPLAIN QUERY PLAN ${QUERY_SQL(ids[0])}`)
    .split('\n')
    .map((line) => line.replace(/^[\s|`-]+/, '').trim())
    .filter((line) => line !== '' && line !== 'QUERY PLAN');
  const usesIndex = plan.some((line) => line.includes('USING INDEX audit_by_correlation'));
  checkQueryAnswer(state, ids[0]);
  checkExport(state);

  // --- audit query: four processes a round, each given the round's correlation ID ---
  const next = () => {
    let call = 0;
    return () => ids[call++ % ids.length];
  };
  const querySubjects = [
    {
      label: 'sqlite3 -readonly -json (same query)',
      id: next(),
      run: (id) => sqliteQuery(state, id),
    },
    {
      label: 'node -e 0',
      id: next(),
      run: () => timeProcess({ label: 'node -e 0', command: process.execPath, args: ['-e', '0'] }),
    },
    {
      label: 'sark-fed --version',
      id: next(),
      run: () =>
        timeProcess({
          label: 'sark-fed --version',
          command: process.execPath,
          args: [BIN, '--version'],
          expectStdout: true,
        }),
    },
    {
      label: 'sark-fed audit query --correlation-id X --json',
      id: next(),
      run: (id) =>
        timeCapture(
          'sark-fed audit query',
          process.execPath,
          [BIN, '--state', state, 'audit', 'query', '--correlation-id', id, '--json'],
          id,
        ),
    },
    {
      label: FLOOR_LABEL,
      id: next(),
      run: (id) => timeCapture(FLOOR_LABEL, process.execPath, [FLOOR_SCRIPT, state, id], id),
    },
  ].map((subject) => ({ ...subject, measure: () => subject.run(subject.id()) }));
  const queried = await interleave({
    subjects: querySubjects,
    rounds,
    warmupRounds,
    timeLimitMs,
    onRound,
  });
  if (queried.rounds === 0) {
    throw new BenchError(`no round finished within ${timeLimitMs / 1000} s`);
  }

  // --- audit export: the whole file, to /dev/null, against sqlite3 printing every row ---
  warmPageCache(state);
  const rss = new Map();
  const exporting = (label, command, args) => ({
    label,
    measure: () => {
      const { ms, peakKiB } = timeToDevNull(label, command, args);
      if (peakKiB !== null) rss.set(label, [...(rss.get(label) ?? []), peakKiB]);
      return (dataset.meta.events * 1000) / ms;
    },
  });
  const allRows = 'SELECT * FROM audit_events ORDER BY seq';
  const exportSubjects = [
    exporting('sqlite3 -readonly -json, every row', 'sqlite3', [
      '-readonly',
      '-json',
      state,
      allRows,
    ]),
    exporting('sark-fed audit export --format jsonl > /dev/null', process.execPath, [
      BIN,
      '--state',
      state,
      'audit',
      'export',
      '--format',
      'jsonl',
    ]),
    exporting('sqlite3 -readonly -csv -header, every row', 'sqlite3', [
      '-readonly',
      '-csv',
      '-header',
      state,
      allRows,
    ]),
    exporting('sark-fed audit export --format csv > /dev/null', process.execPath, [
      BIN,
      '--state',
      state,
      'audit',
      'export',
      '--format',
      'csv',
    ]),
  ];
  const exportRounds = Math.min(rounds, EXPORT_ROUNDS);
  const exported = await interleave({
    subjects: exportSubjects,
    rounds: exportRounds,
    warmupRounds: 0,
    // What is left of the suite's time; the first round always runs.
    timeLimitMs: Math.max(1, timeLimitMs - queried.elapsedSeconds * 1000),
    onRound,
  });

  const rows = [...queryRows(querySubjects, queried), ...exportRows(exportSubjects, exported, rss)];
  const mib = (kib) => (kib / 1024).toFixed(0);
  const peaks = exportSubjects.map((subject) => {
    const values = rss.get(subject.label);
    return values
      ? `${subject.label.replace(/ > \/dev\/null|, every row/, '')} ${mib(Math.max(...values))} MiB`
      : null;
  });
  const note = [
    `state file: ${state} (${dataset.meta.events.toLocaleString('en')} events, ` +
      `${dataset.meta.correlationIds.toLocaleString('en')} correlation IDs, ` +
      `${(statSync(state).size / 2 ** 30).toFixed(2)} GiB, ${dataset.meta.firstTime} to ${dataset.meta.lastTime}); ` +
      `${dataset.reused ? 'reused from the cache, generated' : 'generated by this run'} in ` +
      `${dataset.meta.generationSeconds} s (${BATCH.toLocaleString('en')} rows a transaction)` +
      `${dataset.reused ? ` on ${dataset.meta.generatedAt}` : ''}`,
    `sqlite3 ${sqliteVersion} query plan: ${plan.join('; ')}` +
      (usesIndex ? '' : '  <- WARNING: not the audit_by_correlation index'),
    'X: a different correlation ID from the middle of the file each round, the same for every subject',
    `"− node -e 0": per round, the time minus node -e 0's; its ratio is to sqlite3 (target ≤ ${QUERY_TARGET}× for sark-fed)`,
    `${FLOOR_LABEL}: CommonJS, better-sqlite3 and the query alone, the floor for any Node program`,
    `export: ${exported.rounds} of ${exportRounds} rounds, ${exported.elapsedSeconds} s; ` +
      (TIME
        ? `peak RSS (/usr/bin/time -f %M, max over rounds): ${peaks.filter(Boolean).join(', ')}`
        : 'peak RSS: none (/usr/bin/time is not installed)'),
  ].join('\n');

  return suiteResult({
    name,
    description,
    measured: {
      ...queried,
      stoppedEarly: queried.stoppedEarly,
      elapsedSeconds: round2(queried.elapsedSeconds + exported.elapsedSeconds),
    },
    timeLimitMs,
    rows,
    note,
    stateFile: state,
    dataset: { ...dataset.meta, reused: dataset.reused, sizeBytes: statSync(state).size },
    sqlite3: sqliteVersion,
    queryPlan: plan,
    queryPlanUsesIndex: usesIndex,
    exportRounds: exported.rounds,
    exportRoundsRequested: exportRounds,
    exportStoppedEarly: exported.stoppedEarly,
  });
}

function queryRows(subjects, measured) {
  const [, node, , query, floor] = measured.samples;
  // Paired: each round's time less the same round's node -e 0.
  const beyondNode = query.map((ms, index) => ms - node[index]);
  const floorBeyondNode = floor.map((ms, index) => ms - node[index]);
  const beyondFloor = query.map((ms, index) => ms - floor[index]);
  const stats = measured.samples.map(summarize);
  const baseline = stats[0].medianMs;
  const rows = subjects.map((subject, index) => ({
    label: subject.label,
    unit: 'ms',
    ...stats[index],
    ratio: index === 0 ? null : round2(stats[index].medianMs / baseline),
    target: null,
    verdict: null,
    samplesMs: measured.samples[index].map(round2),
  }));
  const derived = summarize(beyondNode);
  const ratio = round2(derived.medianMs / baseline);
  rows.push({
    label: 'sark-fed audit query − node -e 0',
    unit: 'ms',
    ...derived,
    ratio,
    target: QUERY_TARGET,
    verdict: ratio <= QUERY_TARGET ? 'PASS' : 'FAIL',
    samplesMs: beyondNode.map(round2),
  });
  // No target: what the same row would be for the smallest Node program doing the query.
  const floorDerived = summarize(floorBeyondNode);
  rows.push({
    label: `${FLOOR_LABEL} − node -e 0`,
    unit: 'ms',
    ...floorDerived,
    ratio: round2(floorDerived.medianMs / baseline),
    target: null,
    verdict: null,
    samplesMs: floorBeyondNode.map(round2),
  });
  // Also no target: sark-fed's own work, beyond what any Node program doing the query spends.
  const ownDerived = summarize(beyondFloor);
  rows.push({
    label: 'sark-fed audit query − node audit-floor.cjs',
    unit: 'ms',
    ...ownDerived,
    ratio: round2(ownDerived.medianMs / baseline),
    target: null,
    verdict: null,
    samplesMs: beyondFloor.map(round2),
  });
  return rows;
}

function exportRows(subjects, measured, rss) {
  const stats = measured.samples.map(summarizeRates);
  return subjects.map((subject, index) => {
    const isBaseline = index % 2 === 0;
    const peaks = rss.get(subject.label) ?? [];
    return {
      label: subject.label,
      unit: 'per second',
      ...stats[index],
      ratio: isBaseline
        ? null
        : round2(stats[index].medianPerSecond / stats[index - 1].medianPerSecond),
      target: null,
      verdict: null,
      samplesPerSecond: measured.samples[index].map(round2),
      peakRssKiB: peaks.length > 0 ? Math.max(...peaks) : null,
      samplesRssKiB: peaks,
    };
  });
}

/** The sqlite3 shell's version, or a BenchError naming the package to install. */
function requireSqlite3() {
  const probe = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new BenchError(
      'the sqlite3 shell is missing (the audit baseline): install the sqlite3 package ' +
        '(apt-get install sqlite3)',
    );
  }
  return probe.stdout.split(' ')[0];
}

/** `<command> --help` of a CLI without the command prints the general help: look for its own. */
function requireCommand(words, issue) {
  const help = spawnSync(process.execPath, [BIN, ...words, '--help'], { encoding: 'utf8' });
  if (!help.stdout.includes(`Usage: sark-fed ${words.join(' ')}`)) {
    throw new BenchError(
      `\`sark-fed ${words.join(' ')}\` is not built (${issue}): nothing to measure`,
    );
  }
}

function sqlite3(state, flags, sql) {
  const result = spawnSync('sqlite3', [...flags, state, sql], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new BenchError(`sqlite3 ${flags.join(' ')} "${sql}": ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/**
 * The generated state file, from the cache when a complete one is there; otherwise generated
 * now (into a folder of this process's, renamed into place once complete, so that an interrupted
 * run never leaves a partial file that looks complete).
 */
function cachedDataset(driver, onProgress) {
  const key = `schema${driver.SCHEMA_VERSION}-gen${driver.GENERATOR_VERSION}-${EVENTS}`;
  const folder = join(CACHE_ROOT, key);
  const statePath = join(folder, 'state.db');
  const metaPath = join(folder, 'meta.json');
  if (existsSync(metaPath) && existsSync(statePath)) {
    return { statePath, meta: JSON.parse(readFileSync(metaPath, 'utf8')), reused: true };
  }
  mkdirSync(CACHE_ROOT, { recursive: true });
  removeAbandoned(key);
  const partial = join(CACHE_ROOT, `${key}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  try {
    // One node made with the real CLI, as an operator would: a CA, its certificate, `init`.
    const ca = join(partial, 'ca');
    const node = join(partial, LOCAL.nodeId);
    cli(['pki', 'ca', 'create', '--out', ca, '--trust-domain', LOCAL.trustDomain]);
    cli([
      'pki',
      'issue',
      '--ca',
      ca,
      '--node-id',
      LOCAL.nodeId,
      '--ip',
      '127.0.0.1',
      '--out',
      node,
    ]);
    const state = join(partial, 'state.db');
    cli([
      '--state',
      state,
      'init',
      '--node-id',
      LOCAL.nodeId,
      '--trust-domain',
      LOCAL.trustDomain,
      '--cert',
      join(node, 'cert.pem'),
      '--key',
      join(node, 'key.pem'),
    ]);
    const started = performance.now();
    const summary = driver.generate({
      statePath: state,
      local: LOCAL,
      events: EVENTS,
      batch: BATCH,
      end: new Date(),
      onBatch: onProgress,
    });
    const meta = {
      ...summary,
      schemaVersion: driver.SCHEMA_VERSION,
      generatorVersion: driver.GENERATOR_VERSION,
      generatedAt: new Date().toISOString(),
      generationSeconds: round2((performance.now() - started) / 1000),
    };
    writeFileSync(join(partial, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
    // The writes of the generation out of the kernel's dirty pages before anything is timed: the
    // first run after generating once measured the sqlite3 query at 215 ms instead of 12.
    spawnSync('sync');
    try {
      renameSync(partial, folder);
    } catch (error) {
      // Another run finished first: its file is as good as this one.
      if (!['EEXIST', 'ENOTEMPTY'].includes(error.code)) throw error;
      rmSync(partial, { recursive: true, force: true });
      return { statePath, meta: JSON.parse(readFileSync(metaPath, 'utf8')), reused: true };
    }
    return { statePath, meta, reused: false };
  } catch (error) {
    rmSync(partial, { recursive: true, force: true });
    throw error;
  }
}

/** Partial folders of runs that were interrupted (their process is gone): a gigabyte each. */
function removeAbandoned(key) {
  for (const entry of readdirSync(CACHE_ROOT)) {
    const match = /\.partial-(\d+)$/.exec(entry);
    if (!match || !entry.startsWith(key)) continue;
    if (!isRunning(Number(match[1])))
      rmSync(join(CACHE_ROOT, entry), { recursive: true, force: true });
  }
}

function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** `count` correlation IDs spread over the middle fifth of the file (by position in the chain). */
function middleCorrelationIds(state, count) {
  const total = Number(sqlite3(state, ['-readonly'], 'SELECT max(seq) FROM audit_events').trim());
  const seqs = Array.from({ length: count }, (_, index) =>
    Math.floor(total * 0.4 + (index * total * 0.2) / count),
  );
  const ids = sqlite3(
    state,
    ['-readonly'],
    `SELECT correlation_id FROM audit_events WHERE seq IN (${seqs.join(',')}) ORDER BY seq`,
  )
    .trim()
    .split('\n');
  if (ids.length !== count) throw new BenchError(`${state} has fewer events than expected`);
  return ids;
}

/** Once, before measuring: sark-fed and sqlite3 answer the query with the same events. */
function checkQueryAnswer(state, id) {
  const expected = JSON.parse(sqlite3(state, ['-readonly', '-json'], QUERY_SQL(id)) || '[]');
  const result = spawnSync(
    process.execPath,
    [BIN, '--state', state, 'audit', 'query', '--correlation-id', id, '--json'],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) {
    throw new BenchError(`sark-fed audit query exited ${result.status}: ${result.stderr.trim()}`);
  }
  const text = result.stdout;
  const found = expected.filter((row) => text.includes(row.event_id)).length;
  if (expected.length === 0 || found !== expected.length) {
    throw new BenchError(
      `sark-fed audit query --correlation-id ${id} printed ${found} of the ${expected.length} events sqlite3 finds`,
    );
  }
}

/**
 * Once, before measuring: an export of the last events (--since) has as many lines as sqlite3
 * counts, and jsonl lines are JSON. The measured runs write to /dev/null, where nothing is seen.
 */
function checkExport(state) {
  const since = sqlite3(
    state,
    ['-readonly'],
    'SELECT time FROM audit_events WHERE seq = (SELECT max(seq) - 999 FROM audit_events)',
  ).trim();
  const count = Number(
    sqlite3(
      state,
      ['-readonly'],
      `SELECT count(*) FROM audit_events WHERE time >= '${since}'`,
    ).trim(),
  );
  for (const format of ['jsonl', 'csv']) {
    const result = spawnSync(
      process.execPath,
      [BIN, '--state', state, 'audit', 'export', '--format', format, '--since', since],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    if (result.status !== 0) {
      throw new BenchError(
        `sark-fed audit export --format ${format} exited ${result.status}: ${result.stderr.trim()}`,
      );
    }
    const lines = result.stdout.split('\n').filter((line) => line !== '');
    const header = format === 'csv' ? 1 : 0;
    if (lines.length !== count + header && lines.length !== count) {
      throw new BenchError(
        `sark-fed audit export --format ${format} --since ${since} printed ${lines.length} lines for ${count} events`,
      );
    }
    if (format === 'jsonl') {
      try {
        for (const line of lines) JSON.parse(line);
      } catch {
        throw new BenchError(
          'sark-fed audit export --format jsonl printed a line that is not JSON',
        );
      }
    }
  }
}

/** The indexed query in the sqlite3 shell: one process, output captured, the row checked. */
function sqliteQuery(state, id) {
  return timeCapture(
    'sqlite3 -readonly -json',
    'sqlite3',
    ['-readonly', '-json', state, QUERY_SQL(id)],
    id,
  );
}

/** Wall time of one process whose output (captured, as a script would) must contain `needle`. */
function timeCapture(label, command, args, needle) {
  const started = performance.now();
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  const elapsed = performance.now() - started;
  if (result.error) throw new BenchError(`${label}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new BenchError(
      `${label} exited with ${result.status ?? result.signal}: ${result.stderr.toString().trim()}`,
    );
  }
  if (!result.stdout.includes(needle)) throw new BenchError(`${label} did not print ${needle}`);
  return elapsed;
}

/**
 * Wall time of one process with its stdout to /dev/null, and its peak RSS in KiB when
 * /usr/bin/time is there to report it (its own start, a fork and an exec, is within noise here).
 */
function timeToDevNull(label, command, args) {
  const sink = openSync('/dev/null', 'w');
  const rssFile = join(tmpdir(), `sark-bench-audit-rss-${process.pid}`);
  const [program, programArgs] = TIME
    ? [TIME, ['-f', '%M', '-o', rssFile, command, ...args]]
    : [command, args];
  try {
    const started = performance.now();
    const result = spawnSync(program, programArgs, { stdio: ['ignore', sink, 'pipe'] });
    const ms = performance.now() - started;
    if (result.error) throw new BenchError(`${label}: ${result.error.message}`);
    if (result.status !== 0) {
      throw new BenchError(
        `${label} exited with ${result.status ?? result.signal}: ${result.stderr.toString().trim()}`,
      );
    }
    const peakKiB = TIME ? Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) : null;
    return { ms, peakKiB: Number.isFinite(peakKiB) ? peakKiB : null };
  } finally {
    closeSync(sink);
    rmSync(rssFile, { force: true });
  }
}

/** Reads the whole file once, untimed, so that no export round pays for the disk alone. */
function warmPageCache(path) {
  const fd = openSync(path, 'r');
  const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
  try {
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}
