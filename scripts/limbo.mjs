// Runs the x509-limbo cases of test/fixtures/limbo (a copy of ../shared/limbo) through our certificate path validator
// (src/core/trust) and reports where it disagrees with the suite.
//
//   npm run limbo [-- --file <limbo.json>] [--verbose]
//
// Prints one line per disagreement and per skipped case (with the reason), then the totals.
// Exits 1 when a case the suite expects to FAIL is accepted (among the cases not skipped).
import { build } from 'esbuild';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const fileIndex = args.indexOf('--file');
const file =
  fileIndex === -1
    ? new URL('../test/fixtures/limbo/limbo-subset.json', import.meta.url)
    : new URL(args[fileIndex + 1], pathToFileURL(`${process.cwd()}/`));
const verbose = args.includes('--verbose');

// Bundle the TypeScript harness on the fly (esbuild only strips types) and import it.
const bundle = await build({
  entryPoints: [new URL('../src/core/trust/limbo-harness.ts', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  write: false,
  logLevel: 'warning',
});
const folder = mkdtempSync(join(tmpdir(), 'sark-limbo-'));
let harness;
try {
  const entry = join(folder, 'limbo-harness.mjs');
  writeFileSync(entry, bundle.outputFiles[0].text);
  harness = await import(pathToFileURL(entry).href);
} finally {
  rmSync(folder, { recursive: true, force: true });
}

const limbo = JSON.parse(readFileSync(file, 'utf8'));
const started = performance.now();
const summary = harness.runLimbo(limbo.testcases);
const elapsed = performance.now() - started;

const out = (line) => process.stdout.write(`${line}\n`);
for (const result of summary.results) {
  if (result.outcome === 'accepted-expected-failure') {
    out(`ACCEPTED (expected FAILURE)  ${result.id}`);
  } else if (result.outcome === 'rejected-expected-success') {
    out(`REJECTED (expected SUCCESS)  ${result.id}: ${result.detail}`);
  } else if (result.outcome === 'skipped') {
    out(`SKIPPED                      ${result.id}: ${result.detail}`);
  } else if (verbose) {
    out(
      `agree (${result.expected.toLowerCase()})${' '.repeat(16 - result.expected.length)}${result.id}: ${result.detail}`,
    );
  }
}
const slowest = [...summary.results].sort((a, b) => b.durationMs - a.durationMs)[0];
out('');
out(`cases:     ${summary.total}`);
out(`agree:     ${summary.agree}`);
out(`disagree:  ${summary.acceptedExpectedFailure + summary.rejectedExpectedSuccess}`);
out(`  accepted but expected FAILURE: ${summary.acceptedExpectedFailure}`);
out(`  rejected but expected SUCCESS: ${summary.rejectedExpectedSuccess}`);
out(`skipped:   ${summary.skipped}`);
out(
  `time:      ${elapsed.toFixed(0)} ms (slowest case ${slowest?.id ?? '-'}: ${slowest?.durationMs.toFixed(1) ?? 0} ms)`,
);
process.exitCode = summary.acceptedExpectedFailure > 0 ? 1 : 0;
