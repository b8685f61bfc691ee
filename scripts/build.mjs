// Builds the CLI into dist/cli/: one bundled entry (main.js) plus chunks for what commands load
// lazily. Bundling saves Node 20 the resolution and loading of ~30 small modules on every start,
// which is most of what `sark-fed --help` costs beyond Node itself (docs/benchmarks.md).
// Type checking is `npm run typecheck`; esbuild only strips types.
import { build } from 'esbuild';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';

const { dependencies } = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
);
// commander is on every start-up path, so it is bundled; every other dependency is loaded lazily
// by the commands that need it, and better-sqlite3 carries a native addon that cannot be bundled.
const external = Object.keys(dependencies).filter((name) => name !== 'commander');

// Build beside the current output and swap it in at the end: a failed build leaves the previous
// one working, and CLI processes started during a build (tests, a running daemon's lazy imports)
// never find dist/ missing.
const root = new URL('../', import.meta.url);
const staging = new URL(`dist/.cli-${process.pid}/`, root);
const target = new URL('dist/cli/', root);
const retired = new URL(`dist/.old-${process.pid}/`, root);
rmSync(staging, { recursive: true, force: true });
await build({
  // The daemon's audit writer thread is an entry of its own: a Worker loads it by file.
  entryPoints: { main: 'src/cli/main.ts', 'audit-worker': 'src/node/audit-worker.ts' },
  outdir: staging.pathname,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  sourcemap: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // commander is CommonJS and requires node built-ins; give the ESM bundle a real require().
  banner: {
    js: "import { createRequire as __sarkCreateRequire } from 'node:module'; const require = __sarkCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

mkdirSync(new URL('dist/', root), { recursive: true });
if (existsSync(target)) renameSync(target, retired);
renameSync(staging, target);
rmSync(retired, { recursive: true, force: true });
