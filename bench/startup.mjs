// CLI start-up: `sark-fed --version` and `sark-fed --help` against bare `node -e 0`, in one run
// on one machine, as ratios of median wall time. Target: at most 1.5× (DESIGN §1, §9).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BenchError, interleave, round2, suiteResult, summarize, timeProcess } from './lib.mjs';

export const name = 'startup';
export const description = 'CLI start-up time against bare `node -e 0`';

const TARGET_RATIO = 1.5;
const BIN = fileURLToPath(new URL('../bin/sark-fed.js', import.meta.url));
const BUILT_ENTRY = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

export async function run({ rounds, warmupRounds, timeLimitMs, onRound }) {
  if (!existsSync(BUILT_ENTRY)) {
    throw new BenchError(`${BUILT_ENTRY} is missing: run \`npm run build\` (npm run bench does)`);
  }
  // process.execPath for every subject: the same Node binary, and no shebang or PATH lookup in
  // the sark-fed figures that the baseline does not pay too.
  const subjects = [
    { label: 'node -e 0', args: ['-e', '0'], expectStdout: false },
    { label: 'sark-fed --version', args: [BIN, '--version'], expectStdout: true },
    { label: 'sark-fed --help', args: [BIN, '--help'], expectStdout: true },
  ].map((subject) => ({
    ...subject,
    measure: () => timeProcess({ ...subject, command: process.execPath }),
  }));

  const measured = await interleave({ subjects, rounds, warmupRounds, timeLimitMs, onRound });
  if (measured.rounds === 0) {
    throw new BenchError(`no round finished within ${timeLimitMs / 1000} s`);
  }
  const stats = measured.samples.map(summarize);
  const baseline = stats[0].medianMs;
  const rows = subjects.map((subject, index) => {
    const isBaseline = index === 0;
    const ratio = isBaseline ? null : round2(stats[index].medianMs / baseline);
    return {
      label: subject.label,
      ...stats[index],
      ratio,
      target: isBaseline ? null : TARGET_RATIO,
      verdict: isBaseline ? null : ratio <= TARGET_RATIO ? 'PASS' : 'FAIL',
      samplesMs: measured.samples[index].map(round2),
    };
  });
  return suiteResult({ name, description, measured, timeLimitMs, rows });
}
