// Two builds of the daemon side by side, the method of the "with / without" table of
// docs/benchmarks.md (invoke). Each build serves the echo resource of the invoke benchmark from
// its own copy of one state file; rounds of keep-alive load go to the bare echo server and to
// each build in turn (the order rotating), and for each it prints the rate and the CPU time per
// request of the server's threads (/proc/<pid>/task/*/stat): the main thread, then the others.
//
// Usage: node bench/ab-daemon.mjs <dir-a> <dir-b> [--rounds 6] [--requests 3000]
//   where each dir holds a built sark-fed (bin/, dist/, package.json and node_modules or a link
//   to it), e.g. `mkdir /tmp/a && cp -r bin dist package.json /tmp/a && ln -s $PWD/node_modules
//   /tmp/a/`, then change the sources, build, and copy again to /tmp/b. Both must know the state
//   file's schema version (made by <dir-a>). At most 20 rounds; stops after 10 minutes.
import { mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BARE_SERVER, cli, setUpFederation, startProcess, stopProcess } from './federation.mjs';
import { INVOKE_BODY, load, serveArguments, writeEchoService } from './invoke.mjs';

const TIME_LIMIT_MS = 10 * 60_000;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '6' },
    requests: { type: 'string', default: '3000' },
  },
});
const rounds = Math.min(20, Number(values.rounds));
const requests = Math.min(20_000, Number(values.requests));
if (positionals.length !== 2 || !(rounds > 0) || !(requests > 0)) {
  console.error('usage: node bench/ab-daemon.mjs <dir-a> <dir-b> [--rounds n] [--requests n]');
  process.exit(2);
}
const builds = positionals.map((dir) => resolve(dir));

const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];

const folder = mkdtempSync(join(tmpdir(), 'sark-bench-ab-'));
const children = [];
try {
  const { a, b } = setUpFederation(folder);
  const { resources, policy } = writeEchoService(folder);
  // node-b's state, with node-a trusted: made through build A's daemon, then copied per build.
  const first = await startProcess(
    children,
    serveArguments(join(builds[0], 'bin/sark-fed.js'), b.state, resources, policy),
    /"msg":"listening".*"port":(\d+)/,
  );
  cli([
    '--state',
    a.state,
    'trust',
    'establish',
    `https://127.0.0.1:${first}`,
    '--fingerprint',
    b.fingerprint,
  ]);
  await stopProcess(children.pop());

  const subjects = [
    {
      label: 'bare https echo',
      pid: 0,
      port: await startProcess(children, [BARE_SERVER, b.cert, b.key], /^(\d+)$/m),
    },
  ];
  subjects[0].pid = children.at(-1).pid;
  for (const [index, build] of builds.entries()) {
    const state = join(folder, `b-${index}.db`);
    copyFileSync(b.state, state);
    const port = await startProcess(
      children,
      serveArguments(join(build, 'bin/sark-fed.js'), state, resources, policy),
      /"msg":"listening".*"port":(\d+)/,
    );
    subjects.push({ label: `${'AB'[index]}: ${build}`, pid: children.at(-1).pid, port });
  }
  const client = { cert: readFileSync(a.cert), key: readFileSync(a.key) };
  const rates = subjects.map(() => []);
  const started = Date.now();
  for (let round = 0; round < rounds && Date.now() - started < TIME_LIMIT_MS; round++) {
    for (let turn = 0; turn < subjects.length; turn++) {
      const index = (round + turn) % subjects.length;
      const subject = subjects[index];
      const { rate, serverThreadsUs } = await load(
        `https://127.0.0.1:${subject.port}`,
        client,
        INVOKE_BODY,
        { requests, serverPid: subject.pid },
      );
      const [main = 0, ...rest] = serverThreadsUs;
      const others = rest.filter((us) => us >= 5);
      rates[index].push(rate);
      console.log(
        `round ${round} ${subject.label}: ${rate.toFixed(0)}/s, µs a request: main ${main.toFixed(0)}` +
          (others.length ? `, other threads ${others.map((us) => us.toFixed(0)).join(' ')}` : ''),
      );
    }
  }
  const bare = median(rates[0]);
  for (const [index, subject] of subjects.entries()) {
    const rate = median(rates[index]);
    console.log(`median ${subject.label}: ${rate.toFixed(0)}/s, ${(rate / bare).toFixed(2)}× bare`);
  }
} finally {
  await Promise.all(children.map(stopProcess));
  rmSync(folder, { recursive: true, force: true });
}
