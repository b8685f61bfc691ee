// Runs the selected benchmark suites (all by default) and prints one report: a table, or one JSON
// document with --json. A missed target is reported, not failed: the exit code is 0 unless the
// benchmark itself could not run (1). See docs/benchmarks.md.
import { parseArgs } from 'node:util';
import { BenchError, machineInfo, renderText } from './lib.mjs';

/** Suite name → its module, imported only when selected. */
const SUITES = {
  startup: () => import('./startup.mjs'),
  trust: () => import('./trust.mjs'),
  invoke: () => import('./invoke.mjs'),
  mdns: () => import('./mdns.mjs'),
  audit: () => import('./audit.mjs'),
};

const USAGE = `Usage: node bench/run.mjs [suite...] [options]

Suites: ${Object.keys(SUITES).join(', ')} (default: all)

Options:
  --rounds <n>       measured rounds per suite (default 30)
  --warmup <n>       warm-up rounds, not measured (default 3)
  --time-limit <s>   stop a suite after this many seconds, even with rounds left (default 60)
  --json             print one JSON document instead of the table
  -h, --help         show this help
`;

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      rounds: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '3' },
      'time-limit': { type: 'string', default: '60' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const options = {
    rounds: wholeNumber('--rounds', values.rounds, 1),
    warmupRounds: wholeNumber('--warmup', values.warmup, 0),
    timeLimitMs: wholeNumber('--time-limit', values['time-limit'], 1) * 1000,
  };
  const unknown = positionals.filter((suite) => !(suite in SUITES));
  if (unknown.length > 0) {
    throw new BenchError(
      `unknown suite ${unknown.join(', ')}; known: ${Object.keys(SUITES).join(', ')}`,
    );
  }
  const selected = positionals.length > 0 ? [...new Set(positionals)] : Object.keys(SUITES);

  const machine = machineInfo();
  const suites = [];
  for (const suiteName of selected) {
    const suite = await SUITES[suiteName]();
    const result = await suite.run({ ...options, onRound: progress(suiteName) });
    if (process.stderr.isTTY) process.stderr.write('\r\u001b[K');
    if (result.stoppedEarly) {
      process.stderr.write(
        `warning: ${suiteName} stopped at the ${options.timeLimitMs / 1000} s time limit after ` +
          `${result.rounds} of ${result.roundsRequested} rounds\n`,
      );
    }
    suites.push(result);
  }

  const report = { machine, suites };
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderText(report));
}

function wholeNumber(flag, text, min) {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new BenchError(`${flag} expects a whole number of at least ${min}, not "${text}"`);
  }
  return Number(text);
}

/** A one-line counter on stderr when someone is watching; nothing in a pipe or a CI log. */
function progress(suiteName) {
  if (!process.stderr.isTTY) return () => {};
  return ({ round, rounds, warmup }) => {
    const text = warmup ? 'warming up' : `round ${round}/${rounds}`;
    process.stderr.write(`\r\u001b[K${suiteName}: ${text}`);
  };
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (process.stderr.isTTY) process.stderr.write('\r\u001b[K');
  const known = error instanceof BenchError || error?.code?.startsWith?.('ERR_PARSE_ARGS');
  process.stderr.write(`error: ${known ? error.message : (error?.stack ?? error)}\n`);
  process.exitCode = 1;
}
