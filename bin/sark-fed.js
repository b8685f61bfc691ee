#!/usr/bin/env node
'use strict';
// Picks what to load (scripts/build.mjs builds all three):
//   - a command line naming a command runs from that command's own CommonJS bundle,
//     dist/cli/command-<name>.cjs: one file holding the command and everything it runs;
//   - one without a command (`--version`, `--help`, nothing) from dist/cli/no-command.cjs, the
//     command tree without the actions;
//   - anything else (`help`, `completion`, a mistyped command, a `--` before the command) from
//     the CLI with every command, dist/cli/main.js, whose actions load their code lazily.
// CommonJS (bin/package.json) so that the first two never start the ES module loader.
const {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} = require('node:fs');
const Module = require('node:module');
const { basename, dirname, join } = require('node:path');
const vm = require('node:vm');

/** Global options that take a value: the word after them is not a command name. */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--state']);

/**
 * The first word of the command line that is not a global option or its value; '' when there
 * is none; undefined when a `--` comes first (what follows is for the full CLI to make out).
 */
function commandWord(args) {
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === '--') return undefined;
    if (GLOBAL_OPTIONS_WITH_VALUE.has(arg)) {
      index++;
      continue;
    }
    if (!arg.startsWith('-')) return arg;
  }
  return '';
}

/**
 * Loads a bundle as require() would, but with V8's code cache: compiling a bundle and the
 * functions a command calls is a tenth of a one-shot command's time on these machines, and Node
 * 20 has no compile cache of its own (module.enableCompileCache() came in Node 22). The cache
 * lives beside the bundle, like Python's __pycache__: written once, after the first run, where
 * the package folder is writable; elsewhere every run compiles, as a plain require() would. Its
 * name carries the bundle's size and time and Node's version, because V8 checks only a cache's
 * source length before using it.
 */
function loadBundle(file) {
  const source = readFileSync(file, 'utf8');
  const { size, mtimeMs } = statSync(file);
  const cacheDir = join(dirname(file), '.v8-cache');
  const cacheFile = join(
    cacheDir,
    `${basename(file)}-${size}-${Math.trunc(mtimeMs)}-${process.version}`,
  );
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  // The bundle is esbuild's CommonJS output: it needs only exports, require, module.exports.
  const bundle = { exports: {} };
  script
    .runInThisContext()
    .call(bundle.exports, bundle.exports, Module.createRequire(file), bundle, file, dirname(file));
  const saveCache = () => {
    if (cachedData !== undefined && !script.cachedDataRejected) return;
    // Written aside and renamed: a concurrent run reads a whole cache or none.
    const partial = `${cacheFile}.${process.pid}`;
    try {
      mkdirSync(cacheDir, { recursive: true });
      writeFileSync(partial, script.createCachedData());
      renameSync(partial, cacheFile);
    } catch {
      // A read-only install (no cache: every run compiles), or a full disk.
      rmSync(partial, { force: true });
    }
  };
  return { exports: bundle.exports, saveCache };
}

const dist = join(__dirname, '..', 'dist', 'cli');
const word = commandWord(process.argv.slice(2));
const bundleFile =
  word === ''
    ? join(dist, 'no-command.cjs')
    : word && /^[a-z]+$/.test(word)
      ? join(dist, `command-${word}.cjs`)
      : undefined;

if (bundleFile && existsSync(bundleFile)) {
  const bundle = loadBundle(bundleFile);
  // After the command, so that the cache holds every function it ran.
  bundle.exports.run().then(bundle.saveCache);
} else if (existsSync(join(dist, 'main.js'))) {
  import('../dist/cli/main.js').then((cli) => cli.run());
} else {
  process.stderr.write(
    'error: sark-fed is not built (no dist/cli/main.js)\nhint: run `npm run build` in the sark-fed checkout\n',
  );
  process.exitCode = 1;
}
