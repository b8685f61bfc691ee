import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, PROJECT_ROOT, cleanEnv, listDir, runCli, tempDir } from '../helpers/cli.js';

/**
 * `sark-fed demo` as an operator runs it (the built CLI): two organizations set up, federated
 * and audited by real CLI processes and real daemons, then everything stopped and removed. Each
 * run gets its own TMPDIR (where the demo makes its folder) and SARK_FED_HOME (the default state
 * location, which must stay untouched).
 */

/** A whole demo spawns some twenty CLI processes: bounded, generously for a loaded machine. */
const DEMO_MS = 240_000;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** Every stage heading and command line of a run, in order; <…> are the values of the run. */
const TRANSCRIPT = [
  '$ cd <dir>',
  '── 1/9 A development CA per organization',
  '$ sark-fed pki ca create --out ./ca-a --trust-domain org-a.example',
  '$ sark-fed pki ca create --out ./ca-b --trust-domain org-b.example',
  '── 2/9 A certificate for each node',
  '$ sark-fed pki issue --ca ./ca-a --node-id node-a --ip 127.0.0.1 --out ./node-a',
  '$ sark-fed pki issue --ca ./ca-b --node-id node-b --ip 127.0.0.1 --out ./node-b',
  "── 3/9 Each node records its identity and anchors the other organization's CA",
  '$ sark-fed --state ./node-a/state.db init --node-id node-a --trust-domain org-a.example --cert ./node-a/cert.pem --key ./node-a/key.pem --ca ./ca-a/ca.pem',
  '$ sark-fed --state ./node-b/state.db init --node-id node-b --trust-domain org-b.example --cert ./node-b/cert.pem --key ./node-b/key.pem --ca ./ca-b/ca.pem',
  '$ sark-fed --state ./node-a/state.db trust anchor add ./ca-b/ca.pem --trust-domain org-b.example',
  '$ sark-fed --state ./node-b/state.db trust anchor add ./ca-a/ca.pem --trust-domain org-a.example',
  '── 4/9 What node-b serves, and to whom',
  "$ cat > ./node-b/resources.yaml <<'EOF'",
  "$ cat > ./node-b/policy.yaml <<'EOF'",
  '── 5/9 Both daemons, on loopback',
  '$ sark-fed --state ./node-a/state.db serve --listen 127.0.0.1:0 &',
  '$ sark-fed --state ./node-b/state.db serve --listen 127.0.0.1:0 --resources ./node-b/resources.yaml --policy ./node-b/policy.yaml &',
  '── 6/9 Each node learns where the other answers (by hand: no multicast)',
  '$ sark-fed --state ./node-a/state.db nodes add node-b --endpoint https://127.0.0.1:<port> --trust-domain org-b.example',
  '$ sark-fed --state ./node-b/state.db nodes add node-a --endpoint https://127.0.0.1:<port> --trust-domain org-a.example',
  '── 7/9 Mutual trust, confirmed by fingerprint',
  '$ sark-fed --state ./node-b/state.db status --json',
  '$ sark-fed --state ./node-a/state.db trust establish node-b --fingerprint <fp>',
  '$ sark-fed --state ./node-b/state.db trust list',
  '── 8/9 Route and invoke across organizations',
  '$ sark-fed --state ./node-a/state.db route echo',
  `$ sark-fed --state ./node-a/state.db invoke echo echo --args '{"message":"hello from org-a"}'`,
  '── 9/9 One call, in both audit trails',
  '$ sark-fed --state ./node-a/state.db audit trace <uuid>',
  '$ sark-fed --state ./node-b/state.db audit trace <uuid>',
  '$ sark-fed --state ./node-a/state.db audit trace <uuid> --federated',
];

function transcriptPattern(line: string): RegExp {
  const escaped = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^${escaped
      .replace('<dir>', '(/\\S+)')
      .replace('<port>', '\\d+')
      .replace('<fp>', '[0-9a-f]{64}')
      .replace('<uuid>', UUID)}$`,
  );
}

/** The folders of one run: TMPDIR for its work folder, SARK_FED_HOME that must stay empty. */
function isolation(): { tmp: string; home: string; env: Record<string, string> } {
  const tmp = tempDir('sark-fed-demo-tmp-');
  const home = tempDir('sark-fed-demo-home-');
  return { tmp, home, env: { TMPDIR: tmp, SARK_FED_HOME: home } };
}

function expectUntouched(home: string): void {
  expect(listDir(home)).toEqual([]);
  // Nor the fallback location under HOME.
  expect(existsSync(join(cleanEnv().HOME as string, '.local', 'state', 'sark-fed'))).toBe(false);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function daemonPids(transcript: string): number[] {
  return [
    ...transcript.matchAll(/^# node-[ab] answers at https:\/\/127\.0\.0\.1:\d+ \(pid (\d+)\)/gm),
  ].map((match) => Number(match[1]));
}

/** The output a command printed: the lines after its `$` line, up to the demo's next line. */
function outputOf(transcript: string, commandLine: RegExp): string {
  const lines = transcript.split('\n');
  const start = lines.findIndex((line) => commandLine.test(line));
  expect(start, `no line matches ${commandLine}`).toBeGreaterThanOrEqual(0);
  const rest = lines.slice(start + 1);
  // Up to what the demo itself prints next (a trace has blank lines of its own).
  const end = rest.findIndex((line) => /^(\$ |# |── |✓ )/.test(line));
  return rest
    .slice(0, end === -1 ? undefined : end)
    .join('\n')
    .trimEnd();
}

/**
 * A script loaded into every node process the demo starts (NODE_OPTIONS=--require): `trust
 * establish` fails as a trust failure (exit 3).
 */
function failingEstablish(): string {
  const preload = join(tempDir('sark-fed-demo-preload-'), 'fail-establish.cjs');
  writeFileSync(
    preload,
    "if (process.argv.includes('establish')) { process.stderr.write('error: refused for the test\\n'); process.exit(3); }\n",
  );
  return preload;
}

describe('sark-fed demo', () => {
  it(
    'runs the two-organization federation with the real CLI, stage by stage, then stops its daemons and removes its folder',
    async () => {
      const { tmp, home, env } = isolation();
      const result = await runCli(['demo'], { env, timeoutMs: DEMO_MS });
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      expect(result.stderr).toBe('');
      const { stdout } = result;

      const shown = stdout.split('\n').filter((line) => /^(\$ |── )/.test(line));
      // The commands --keep prints at the end are not part of a plain run.
      expect(shown).toHaveLength(TRANSCRIPT.length);
      TRANSCRIPT.forEach((expected, index) =>
        expect(shown[index]).toMatch(transcriptPattern(expected)),
      );

      // The fingerprint given to trust establish is the one node-b's status printed, in full.
      const statusFingerprint = /"fingerprint": "([0-9a-f]{64})"/.exec(stdout)?.[1];
      expect(stdout).toContain(`trust establish node-b --fingerprint ${statusFingerprint}\n`);
      expect(stdout).toContain(
        '✓ mutual trust established with spiffe://org-b.example/sark/node/node-b',
      );
      // node-b trusts node-a after that one establish.
      expect(outputOf(stdout, /trust list$/)).toMatch(/^node-a\s+org-a\.example\s+trusted\s/m);

      // The route goes to node-b; the invoke's correlation ID, then its result.
      expect(outputOf(stdout, /route echo$/)).toMatch(/^node-b\s+chosen\s/m);
      const correlationId = new RegExp(
        `^correlation ID: (${UUID})\\n\\{\\n  "message": "hello from org-a"\\n\\}$`,
        'm',
      ).exec(stdout)?.[1];
      expect(correlationId).toBeDefined();

      // Both sides' trails hold the call under that correlation ID.
      const traceA = outputOf(
        stdout,
        new RegExp(`node-a/state\\.db audit trace ${correlationId}$`),
      );
      const traceB = outputOf(
        stdout,
        new RegExp(`node-b/state\\.db audit trace ${correlationId}$`),
      );
      // Written as for a terminal (SARK_FED_FORCE_TTY): the hop, then its event, receipt checked.
      expect(traceA).toMatch(/^1\. node-a → node-b\s+echo\/echo\s+success\s+200\b/m);
      expect(traceA).toMatch(/└─ outbound \(node-a\).*success.*✓ verified/);
      expect(traceB).toMatch(/└─ inbound \(node-b\).*success.*✓ verified/);
      // node-a's federated trace holds both sides, each receipt verified.
      const federated = outputOf(
        stdout,
        new RegExp(`node-a/state\\.db audit trace ${correlationId} --federated$`),
      );
      expect(federated).toMatch(/outbound \(node-a\).*✓ verified/);
      expect(federated).toMatch(/inbound \(node-b\).*✓ verified/);
      expect(federated).not.toContain('✗');
      expect(stdout).toContain('✓ the demo worked');

      // Cleaned up: both daemons gone, the folder removed, the operator's state untouched.
      const pids = daemonPids(stdout);
      expect(pids).toHaveLength(2);
      for (const pid of pids) {
        expect(stdout).toMatch(
          new RegExp(`^✓ stopped node-[ab]'s daemon \\(pid ${pid}, exit 0\\)$`, 'm'),
        );
        expect(alive(pid), `daemon ${pid} still runs`).toBe(false);
      }
      const folder = transcriptPattern(TRANSCRIPT[0] as string).exec(
        shown[0] as string,
      )?.[1] as string;
      expect(folder.startsWith(tmp)).toBe(true);
      expect(stdout).toContain(`✓ removed ${folder}\n`);
      expect(existsSync(folder)).toBe(false);
      expect(listDir(tmp)).toEqual([]);
      expectUntouched(home);
    },
    DEMO_MS,
  );

  it(
    '--keep --json: one summary document on stdout; the folder stays, the daemons do not',
    async () => {
      const { tmp, home, env } = isolation();
      const result = await runCli(['demo', '--keep', '--json', '--quiet'], {
        env,
        timeoutMs: DEMO_MS,
      });
      expect(result.code, `${result.stderr}\n${result.stdout}`).toBe(0);
      expect(result.stderr).toBe('');
      const summary = JSON.parse(result.stdout) as DemoSummary;
      expect(summary).toMatchObject({ ok: true, exitCode: 0, kept: true, failed: null });
      expect(summary.correlationId).toMatch(new RegExp(`^${UUID}$`));
      expect(summary.folder.startsWith(tmp)).toBe(true);

      expect(summary.nodes.map((node) => [node.nodeId, node.trustDomain])).toEqual([
        ['node-a', 'org-a.example'],
        ['node-b', 'org-b.example'],
      ]);
      for (const node of summary.nodes) {
        expect(node.statePath).toBe(join(summary.folder, node.nodeId, 'state.db'));
        expect(node.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        expect(alive(node.pid as number), `daemon ${node.pid} still runs`).toBe(false);
      }

      // Every command shown in a plain run, in order, each with its exit code and duration.
      const commands = TRANSCRIPT.filter((line) => line.startsWith('$ sark-fed')).map((line) =>
        line.replace(/^\$ /, '').replace(/ &$/, ''),
      );
      expect(summary.steps).toHaveLength(commands.length);
      summary.steps.forEach((step, index) => {
        expect(step.command).toMatch(transcriptPattern(commands[index] as string));
        expect(step.args.join(' ')).toBe(step.command.replace(/^sark-fed /, '').replace(/'/g, ''));
        expect(step.exitCode).toBe(0);
        expect(step.durationMs).toBeGreaterThanOrEqual(0);
        expect(step.stage).toBeGreaterThanOrEqual(1);
        expect(step.stage).toBeLessThanOrEqual(9);
        expect(typeof step.title).toBe('string');
        const serve = step.args.includes('serve');
        expect(step.background).toBe(serve);
        expect(step.pid === null).toBe(!serve);
      });
      expect(summary.steps.filter((step) => step.background).map((step) => step.pid)).toEqual(
        summary.nodes.map((node) => node.pid),
      );
      expect(summary.steps.at(-1)?.args.slice(-2)).toEqual([summary.correlationId, '--federated']);

      // Kept: the certificates, keys and state files of both organizations.
      expect(listDir(tmp)).toEqual([summary.folder.slice(tmp.length + 1)]);
      expect(listDir(summary.folder)).toEqual(['ca-a', 'ca-b', 'node-a', 'node-b']);
      for (const node of ['node-a', 'node-b'])
        expect(listDir(join(summary.folder, node))).toEqual(
          expect.arrayContaining(['cert.pem', 'key.pem', 'state.db']),
        );
      expectUntouched(home);
    },
    DEMO_MS,
  );

  it(
    'a failing step ends the demo with its exit code, names the stage, and still cleans up',
    async () => {
      const { tmp, home, env } = isolation();
      const preload = failingEstablish();
      const result = await runCli(['demo', '--json'], {
        env: { ...env, NODE_OPTIONS: `--require ${preload}` },
        timeoutMs: DEMO_MS,
      });
      expect(result.code, result.stderr).toBe(3);
      const errorLine = result.stderr.trimEnd().split('\n').at(-1) as string;
      const { error } = JSON.parse(errorLine) as {
        error: { code: string; message: string; exitCode: number };
      };
      expect(error).toMatchObject({ code: 'DEMO_STEP_FAILED', exitCode: 3 });
      expect(error.message).toMatch(
        /^stage 7 \(Mutual trust, confirmed by fingerprint\) failed: `sark-fed --state \.\/node-a\/state\.db trust establish node-b --fingerprint [0-9a-f]{64}` exited with 3$/,
      );
      // With --json the transcript is on stderr, the failed command's output in it.
      expect(result.stderr).toMatch(
        /trust establish node-b --fingerprint [0-9a-f]{64}\nerror: refused for the test\n/,
      );

      const summary = JSON.parse(result.stdout) as DemoSummary;
      expect(summary).toMatchObject({ ok: false, exitCode: 3, kept: false, correlationId: null });
      expect(summary.failed).toEqual({
        step: summary.steps.length - 1,
        stdout: '',
        stderr: 'error: refused for the test\n',
      });
      expect(summary.steps.at(-1)).toMatchObject({ stage: 7, exitCode: 3 });
      for (const node of summary.nodes) expect(alive(node.pid as number)).toBe(false);
      expect(listDir(tmp)).toEqual([]);
      expectUntouched(home);
    },
    DEMO_MS,
  );

  it(
    'Ctrl-C at the terminal once the daemons run: they shut down cleanly (exit 0), the folder is removed, exit 130',
    async () => {
      const { tmp, home, env } = isolation();
      const demo = startDemo(['demo'], env);
      try {
        await demo.daemonsUp;
        const pids = daemonPids(demo.stdout());
        // A terminal's Ctrl-C goes to its whole foreground process group, the demo's children
        // included: the demo runs in a group of its own here, and the test signals all of it.
        process.kill(-demo.pid, 'SIGINT');
        const code = await demo.exit();

        expect(code, demo.output()).toBe(130);
        expect(demo.stderr()).toBe(
          'error: interrupted; the daemons were stopped and the folder removed\n',
        );
        // Each daemon got one signal, the demo's SIGTERM, and shut down as it does on one.
        for (const pid of pids) {
          expect(demo.stdout()).toMatch(
            new RegExp(`^✓ stopped node-[ab]'s daemon \\(pid ${pid}, exit 0\\)$`, 'm'),
          );
          expect(alive(pid), `daemon ${pid} still runs`).toBe(false);
        }
        expect(demo.stdout()).toMatch(/^✓ removed \//m);
        expect(listDir(tmp)).toEqual([]);
        expectUntouched(home);
      } finally {
        demo.killAll();
      }
    },
    DEMO_MS,
  );

  it.each([['SIGTERM'], ['SIGHUP']] as const)(
    '%s to the demo alone, with --keep: no daemon survives, the folder is kept, and it says where the run stopped rather than how to run it again',
    async (signal) => {
      const { tmp, home, env } = isolation();
      const demo = startDemo(['demo', '--keep'], env);
      try {
        await demo.daemonsUp;
        const pids = daemonPids(demo.stdout());
        process.kill(demo.pid, signal);
        const code = await demo.exit();

        expect(code, demo.output()).toBe(130);
        expect(demo.stderr()).toBe('error: interrupted; the daemons were stopped\n');
        for (const pid of pids) {
          expect(demo.stdout()).toMatch(
            new RegExp(`^✓ stopped node-[ab]'s daemon \\(pid ${pid}, exit 0\\)$`, 'm'),
          );
          expect(alive(pid), `daemon ${pid} still runs`).toBe(false);
        }
        const [folder] = listDir(tmp);
        expect(folder).toBeDefined();
        const path = join(tmp, folder as string);
        expect(listDir(path)).toEqual(['ca-a', 'ca-b', 'node-a', 'node-b']);
        const stdout = demo.stdout();
        expect(stdout).toContain(
          `\nkept ${path} (ca-a, ca-b, node-a, node-b), as the run left it\n`,
        );
        // Both daemons had listened: the last step done is that, or one after it.
        expect(stdout).toMatch(
          /^# the run stopped before it finished; the last step done was stage [5-9]\/9 \(.+\): sark-fed --state \.\/node-[ab]\/state\.db \S+/m,
        );
        expect(stdout).toMatch(
          /^# the folder holds only what was set up until then: run `sark-fed demo --keep` again/m,
        );
        expect(stdout).not.toContain('to run the daemons again');
        expect(stdout).not.toContain('kill %1 %2');
        expectUntouched(home);
      } finally {
        demo.killAll();
      }
    },
    DEMO_MS,
  );

  it(
    'a failing step with --keep keeps the folder and names the last step done, without the commands to run it again',
    async () => {
      const { tmp, home, env } = isolation();
      const preload = failingEstablish();
      const result = await runCli(['demo', '--keep'], {
        env: { ...env, NODE_OPTIONS: `--require ${preload}` },
        timeoutMs: DEMO_MS,
      });
      expect(result.code, result.stderr).toBe(3);
      expect(result.stdout).toMatch(/^✓ stopped node-a's daemon \(pid \d+, exit 0\)$/m);
      expect(result.stdout).toMatch(
        /^# the run stopped before it finished; the last step done was stage 7\/9 \(Mutual trust, confirmed by fingerprint\): sark-fed --state \.\/node-b\/state\.db status --json$/m,
      );
      expect(result.stdout).not.toContain('to run the daemons again');
      const [folder] = listDir(tmp);
      expect(result.stdout).toContain(`kept ${join(tmp, folder as string)} (`);
      for (const pid of daemonPids(result.stdout)) expect(alive(pid)).toBe(false);
      expectUntouched(home);
    },
    DEMO_MS,
  );
});

interface RunningDemo {
  pid: number;
  stdout(): string;
  stderr(): string;
  output(): string;
  /** Resolves once the transcript shows both daemons' PIDs; rejects if the demo ends first. */
  daemonsUp: Promise<void>;
  /** The demo's exit code (bounded: SIGKILL to its group after DEMO_MS / 2). */
  exit(): Promise<number | null>;
  /** SIGKILL to whatever of the demo and its daemons still runs: a failed test leaves nothing. */
  killAll(): void;
}

/** `sark-fed demo` in a process group of its own, as a terminal's foreground job is. */
function startDemo(args: string[], env: Record<string, string>): RunningDemo {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    cwd: PROJECT_ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid as number;
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const daemonsUp = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the daemons did not come up:\n${stdout}\n${stderr}`)),
      DEMO_MS / 2,
    );
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      if (daemonPids(stdout).length === 2) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the demo ended early:\n${stdout}\n${stderr}`));
    });
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone already.
    }
  };
  return {
    pid,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => `${stdout}\n${stderr}`,
    daemonsUp,
    async exit() {
      const killer = setTimeout(() => signalGroup('SIGKILL'), DEMO_MS / 2);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
    killAll() {
      signalGroup('SIGKILL');
      for (const daemon of daemonPids(stdout)) {
        try {
          process.kill(daemon, 'SIGKILL');
        } catch {
          // Stopped already, as it should be.
        }
      }
    },
  };
}

interface DemoSummary {
  ok: boolean;
  exitCode: number;
  folder: string;
  kept: boolean;
  correlationId: string | null;
  nodes: Array<{
    nodeId: string;
    trustDomain: string;
    statePath: string;
    endpoint: string | null;
    pid: number | null;
  }>;
  steps: Array<{
    stage: number;
    title: string;
    command: string;
    args: string[];
    exitCode: number | null;
    durationMs: number;
    background: boolean;
    pid: number | null;
  }>;
  failed: { step: number; stdout: string; stderr: string } | null;
}
