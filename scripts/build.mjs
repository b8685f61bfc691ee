// Builds the CLI into dist/cli/, in two forms that bin/sark-fed.js chooses between:
//   - command-<name>.cjs, one CommonJS bundle per top-level command (but `help` and `completion`,
//     which read the whole tree), holding that command and everything it runs, dependencies
//     included: a one-shot `sark-fed invoke` reads one file instead of ~40 ES modules, and Node
//     20's ES module loader costs about a millisecond per module on these machines, more than
//     compiling the code itself (docs/benchmarks.md, invoke and audit).
//   - main.js plus chunks: every command, each action loading its code lazily, for top-level help,
//     `--version`, `help`, `completion` and mistyped commands; also the audit writer thread.
// Type checking is `npm run typecheck`; esbuild only strips types.
import { build } from 'esbuild';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
  entryPoints: { main: 'src/cli/main.ts' },
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

/**
 * commander requires node:child_process when it loads, for executable subcommands, which sark-fed
 * does not have; Node compiles that module on demand, ~5 ms of every command that starts no
 * process (`audit query`, `status`). In the bundles, commander gets it on first use instead.
 */
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(build) {
    build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer)
        ? { path: 'child_process', namespace: 'lazy-child-process' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
      contents:
        "let loaded; module.exports = new Proxy({}, { get: (_, key) => (loaded ??= require('node:child_process'))[key] });",
      loader: 'js',
    }));
  },
};

// The top-level commands, from the list the CLI itself uses.
const allCommands = readFileSync(new URL('src/cli/commands/all.ts', root), 'utf8');
const commandNames = [...allCommands.matchAll(/\['([a-z]+)', register([A-Za-z]+)\]/g)].map(
  ([, name, registerName]) => ({ name, registerName: `register${registerName}` }),
);
if (commandNames.length === 0) throw new Error('found no commands in src/cli/commands/all.ts');
const WHOLE_TREE_COMMANDS = new Set(['help', 'completion']);
/**
 * A command line without a command (`--version`, `--help`, nothing) runs from a bundle of the
 * whole command tree in which every lazily imported module, that is every action, is replaced by
 * one that throws: none runs without a command, and the bundle stays the size of the tree.
 */
const actionsLeftOut = {
  name: 'actions-left-out',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) =>
      args.kind === 'dynamic-import'
        ? { path: args.path, namespace: 'action-left-out' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'action-left-out' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`internal: ${args.path} is not in the bundle for command lines without a command`)});`,
      loader: 'js',
    }));
  },
};

/** One CommonJS bundle whose entry exports run(). */
function commonJsBundle({ name, contents, plugins = [] }) {
  return build({
    stdin: {
      contents,
      resolveDir: fileURLToPath(root),
      sourcefile: `${name}.ts`,
      loader: 'ts',
    },
    outfile: fileURLToPath(new URL(`${name}.cjs`, staging)),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // Dependencies are bundled (evaluated only when first used, where the source imports them
    // lazily), better-sqlite3's JavaScript too (its dozen files cost ~5 ms to load one by one;
    // src/core/state/database.ts hands it its addon by path), except `bindings`, which it asks
    // only when that path is missing and which must resolve from node_modules; and except the
    // prompt library and zod: only some runs use them,
    // and bundled they would be most of every bundle's size (@inquirer/prompts brings an editor
    // with its own character-set tables). @inquirer/prompts is an ES module, which a bundle loads
    // with require() (Node >= 20.19, package.json engines); only its named exports are used, the
    // only kind esbuild's interop passes through unchanged from a require()d ES module (ora's
    // default export would arrive as its namespace: ora is bundled).
    external: ['bindings', '@inquirer/prompts', 'zod'],
    // import() of a bundled module or a Node built-in becomes a require(): one CommonJS file
    // never starts the ES module loader.
    supported: { 'dynamic-import': false },
    // Modules locate files (package.json, the audit writer thread) from their own URL.
    define: { 'import.meta.url': '__sarkModuleUrl' },
    plugins: [lazyChildProcessForCommander, ...plugins],
    banner: {
      js: "const __sarkModuleUrl = require('node:url').pathToFileURL(__filename).href;",
    },
    // No source maps: the bundles' maps would add ~25 MB to the package, and the bundles are
    // plain, unminified code with a comment naming each source file.
    logLevel: 'warning',
  });
}

await Promise.all([
  ...commandNames
    .filter(({ name }) => !WHOLE_TREE_COMMANDS.has(name))
    .map(({ name, registerName }) =>
      commonJsBundle({
        name: `command-${name}`,
        contents: [
          "import { runProcess } from './src/cli/cli.js';",
          `import { ${registerName} } from './src/cli/commands/${name}.js';`,
          `export const run = () => runProcess([['${name}', ${registerName}]]);`,
        ].join('\n'),
      }),
    ),
  commonJsBundle({
    name: 'no-command',
    contents: "export { run } from './src/cli/main.js';",
    plugins: [actionsLeftOut],
  }),
]);

mkdirSync(new URL('dist/', root), { recursive: true });
if (existsSync(target)) renameSync(target, retired);
renameSync(staging, target);
rmSync(retired, { recursive: true, force: true });
