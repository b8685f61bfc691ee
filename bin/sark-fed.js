#!/usr/bin/env node
'use strict';
// Picks what to load (scripts/build.mjs builds both): a command line naming one command runs
// from that command's own CommonJS bundle, dist/cli/command-<name>.cjs, which reads one file;
// anything else (top-level help, --version, `help`, `completion`, a mistyped command) runs the
// CLI with every command, dist/cli/main.js, whose actions load their code lazily.
// CommonJS (bin/package.json) so that a one-shot command never starts the ES module loader.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

/** Global options that take a value: the word after them is not a command name. */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--state']);

/** The first word of the command line that is not a global option or its value. */
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
  return undefined;
}

const dist = join(__dirname, '..', 'dist', 'cli');
const word = commandWord(process.argv.slice(2));
const bundle = word && /^[a-z]+$/.test(word) ? join(dist, `command-${word}.cjs`) : undefined;

if (bundle && existsSync(bundle)) {
  require(bundle).run();
} else if (existsSync(join(dist, 'main.js'))) {
  import('../dist/cli/main.js').then((cli) => cli.run());
} else {
  process.stderr.write(
    'error: sark-fed is not built (no dist/cli/main.js)\nhint: run `npm run build` in the sark-fed checkout\n',
  );
  process.exitCode = 1;
}
