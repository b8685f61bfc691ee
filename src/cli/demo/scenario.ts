import { mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InterruptedError,
  OperationError,
  SarkError,
  messageOf,
  type ErrorKind,
} from '../../core/errors.js';
import type { Environment } from '../../core/state/paths.js';
import type { CommandContext } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { colorLevel } from '../output/color.js';
import {
  cliEntryPoint,
  commandLine,
  DaemonStartError,
  runStep,
  shellQuote,
  startDaemon,
  type Daemon,
  type SpawnSettings,
  type StepOutcome,
} from './processes.js';
import { Transcript, type OutputChunk } from './transcript.js';

export interface DemoOptions {
  keep: boolean;
}

/** One command the demo ran, as the --json summary reports it (docs/json-output.md#demo). */
export interface StepRecord {
  stage: number;
  title: string;
  command: string;
  args: string[];
  exitCode: number | null;
  durationMs: number;
  background: boolean;
  pid: number | null;
}

interface NodePlan {
  nodeId: string;
  trustDomain: string;
  caDir: string;
  dir: string;
  state: string;
  /** Files of its daemon's --resources and --policy, when it serves anything. */
  serves?: { resources: string; policy: string };
}

const NODE_A: NodePlan = {
  nodeId: 'node-a',
  trustDomain: 'org-a.example',
  caDir: './ca-a',
  dir: './node-a',
  state: './node-a/state.db',
};
const NODE_B: NodePlan = {
  nodeId: 'node-b',
  trustDomain: 'org-b.example',
  caDir: './ca-b',
  dir: './node-b',
  state: './node-b/state.db',
  serves: { resources: './node-b/resources.yaml', policy: './node-b/policy.yaml' },
};
const NODES = [NODE_A, NODE_B] as const;

const RESOURCES_YAML = `resources:
  - id: echo
    description: returns its arguments
    capabilities:
      - id: echo
        backend: { type: echo }
`;

// node-a's principals may use echo on node-b; nothing else is allowed (deny by default).
const POLICY_YAML = `rules:
  - effect: allow
    nodes: [node-a]
    principals: ["*"]
    resources: [echo]
    capabilities: [echo]
`;

const INVOKE_ARGS = '{"message":"hello from org-a"}';

const STAGES = [
  'A development CA per organization',
  'A certificate for each node',
  "Each node records its identity and anchors the other organization's CA",
  'What node-b serves, and to whom',
  'Both daemons, on loopback',
  'Each node learns where the other answers (by hand: no multicast)',
  'Mutual trust, confirmed by fingerprint',
  'Route and invoke across organizations',
  'One call, in both audit trails',
] as const;

/** Bounded waits: a step that hangs, or a daemon that never listens, fails the demo. */
const STEP_TIMEOUT_MS = 60_000;
const LISTEN_TIMEOUT_MS = 20_000;

interface Failure {
  step: number;
  stdout: string;
  stderr: string;
}

/** The state of one run: what ran, what runs, what to clean up. */
class DemoRun {
  readonly steps: StepRecord[] = [];
  readonly daemons = new Map<string, Daemon>();
  stage = 0;
  correlationId: string | null = null;
  failed: Failure | null = null;

  constructor(
    readonly context: CommandContext,
    readonly dir: string,
    readonly settings: SpawnSettings,
    readonly transcript: Transcript,
  ) {}

  begin(stage: number): void {
    this.stage = stage;
    this.transcript.heading(stage, STAGES.length, STAGES[stage - 1] as string);
  }

  /** Runs one CLI command; any exit code but 0 fails the demo with that code. */
  async step(args: string[]): Promise<StepOutcome> {
    const record = this.record(args, false);
    this.transcript.command(record.command);
    const chunks: OutputChunk[] = [];
    let outcome: StepOutcome;
    try {
      outcome = await runStep(this.settings, args, STEP_TIMEOUT_MS, (chunk) => chunks.push(chunk));
    } finally {
      this.transcript.commandOutput(chunks);
    }
    record.exitCode = outcome.exitCode;
    record.durationMs = outcome.durationMs;
    if (outcome.exitCode !== 0) {
      this.failed = {
        step: this.steps.length - 1,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
      };
      throw stepFailed(this.stage, record, this.context.output.json);
    }
    return outcome;
  }

  async serve(node: NodePlan): Promise<Daemon> {
    const args = ['--state', node.state, ...serveArgs(node, 0)];
    const record = this.record(args, true);
    this.transcript.command(`${record.command} &`);
    const daemon = await startDaemon(this.settings, node.nodeId, args, LISTEN_TIMEOUT_MS, (line) =>
      this.context.output.debug(`[${node.nodeId}] ${line}`),
    ).catch((error: unknown) => {
      if (error instanceof DaemonStartError) {
        this.transcript.output(error.log);
        this.failed = { step: this.steps.length - 1, stdout: '', stderr: error.log };
      }
      throw error;
    });
    this.daemons.set(node.nodeId, daemon);
    record.pid = daemon.pid;
    record.durationMs = daemon.startMs;
    this.transcript.output(`${daemon.listeningLine}\n`);
    this.transcript.comment(
      `${node.nodeId} answers at ${endpointOf(daemon)} (pid ${daemon.pid}), until the demo stops it`,
    );
    return daemon;
  }

  private record(args: string[], background: boolean): StepRecord {
    const record: StepRecord = {
      stage: this.stage,
      title: STAGES[this.stage - 1] as string,
      command: commandLine(args),
      args,
      exitCode: null,
      durationMs: 0,
      background,
      pid: null,
    };
    this.steps.push(record);
    return record;
  }
}

/**
 * `sark-fed demo`: two organizations, a CA and a node each, set up, federated and audited with
 * the real CLI in a temporary folder, every command shown as typed. Whatever happens, the daemons
 * are stopped and (without --keep) the folder removed; Ctrl-C or SIGTERM does the same, then 130.
 */
export async function runDemo(context: CommandContext, options: DemoOptions): Promise<void> {
  const { output, io } = context;
  // The transcript is the demo's output; with --json the summary takes stdout and the
  // transcript becomes progress on stderr (silenced by --quiet).
  const stream = output.json ? (output.options.quiet ? undefined : io.stderr) : io.stdout;
  const transcript = new Transcript(stream, output.json ? output.err : output.out);
  const colour = colorLevel(io.env, output.options.color, stream?.isTTY === true);

  const abort = new AbortController();
  const dir = temporaryFolder();
  const run = new DemoRun(
    context,
    dir,
    {
      entryPoint: cliEntryPoint(),
      cwd: dir,
      env: childEnvironment(io.env, colour, dir),
      signal: abort.signal,
    },
    transcript,
  );

  // Ctrl-C reaches the whole foreground process group: the step running, and the demo, which
  // then stops the daemons (in groups of their own: processes.ts) with one SIGTERM each, so they
  // shut down cleanly. A second signal stops waiting for anybody.
  const onSignal = () => {
    if (!abort.signal.aborted) abort.abort();
    else for (const daemon of run.daemons.values()) daemon.kill();
  };
  // Should this process end before cleaning up (`sark-fed demo | head` exits on EPIPE), no
  // daemon outlives it and, without --keep, no folder either: both can be done synchronously.
  const onExit = () => {
    for (const daemon of run.daemons.values()) daemon.kill();
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  process.on('exit', onExit);

  let failure: unknown;
  let completed = false;
  try {
    transcript.note(
      'sark-fed demo: two organizations, a CA and a node each, federated over mutual TLS on\n' +
        '127.0.0.1. Every step runs the real CLI, shown as you would type it, in a temporary folder:',
    );
    transcript.command(`cd ${shellQuote(dir)}`);
    await scenario(run);
    completed = true;
    transcript.success(
      'the demo worked: mutual trust between two organizations, one invocation, audited on both sides',
    );
  } catch (error) {
    failure = error;
  }
  try {
    // A signal that came after the last step still ends the run as interrupted (below).
    await cleanUp(run, options.keep, completed && !abort.signal.aborted);
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    process.off('exit', onExit);
  }
  if (abort.signal.aborted) {
    failure = new InterruptedError(
      options.keep
        ? 'interrupted; the daemons were stopped'
        : 'interrupted; the daemons were stopped and the folder removed',
    );
  }
  if (output.json) output.writeJson(summary(run, options.keep, failure));
  if (failure !== undefined) throw failure;
}

async function scenario(run: DemoRun): Promise<void> {
  run.begin(1);
  for (const node of NODES)
    await run.step([
      'pki',
      'ca',
      'create',
      '--out',
      node.caDir,
      '--trust-domain',
      node.trustDomain,
    ]);

  run.begin(2);
  for (const node of NODES) {
    await run.step([
      'pki',
      'issue',
      '--ca',
      node.caDir,
      '--node-id',
      node.nodeId,
      '--ip',
      '127.0.0.1',
      '--out',
      node.dir,
    ]);
  }

  run.begin(3);
  for (const node of NODES) {
    await run.step([
      '--state',
      node.state,
      'init',
      '--node-id',
      node.nodeId,
      '--trust-domain',
      node.trustDomain,
      '--cert',
      `${node.dir}/cert.pem`,
      '--key',
      `${node.dir}/key.pem`,
      '--ca',
      `${node.caDir}/ca.pem`,
    ]);
  }
  for (const [node, other] of [
    [NODE_A, NODE_B],
    [NODE_B, NODE_A],
  ] as const) {
    await run.step([
      '--state',
      node.state,
      'trust',
      'anchor',
      'add',
      `${other.caDir}/ca.pem`,
      '--trust-domain',
      other.trustDomain,
    ]);
  }

  run.begin(4);
  run.transcript.comment('node-b serves the built-in echo backend; its policy lets node-a use it');
  writeFile(run, NODE_B.serves?.resources as string, RESOURCES_YAML);
  writeFile(run, NODE_B.serves?.policy as string, POLICY_YAML);

  run.begin(5);
  for (const node of NODES) await run.serve(node);

  run.begin(6);
  for (const [node, other] of [
    [NODE_A, NODE_B],
    [NODE_B, NODE_A],
  ] as const) {
    await run.step([
      '--state',
      node.state,
      'nodes',
      'add',
      other.nodeId,
      '--endpoint',
      endpointOf(run.daemons.get(other.nodeId) as Daemon),
      '--trust-domain',
      other.trustDomain,
    ]);
  }

  run.begin(7);
  run.transcript.comment(
    "node-b's operator reads its fingerprint, and gives it to node-a's operator over a channel they trust",
  );
  const status = await run.step(['--state', NODE_B.state, 'status', '--json']);
  const fingerprint = (JSON.parse(status.stdout) as { fingerprint: string }).fingerprint;
  await run.step([
    '--state',
    NODE_A.state,
    'trust',
    'establish',
    NODE_B.nodeId,
    '--fingerprint',
    fingerprint,
  ]);
  run.transcript.comment('one establish proves both identities: node-b now trusts node-a too');
  await run.step(['--state', NODE_B.state, 'trust', 'list']);

  run.begin(8);
  await run.step(['--state', NODE_A.state, 'route', 'echo']);
  const invoked = await run.step([
    '--state',
    NODE_A.state,
    'invoke',
    'echo',
    'echo',
    '--args',
    INVOKE_ARGS,
  ]);
  const correlationId = /^correlation ID: (\S+)$/m.exec(invoked.stderr)?.[1];
  if (correlationId === undefined) {
    throw new OperationError('DEMO_NO_CORRELATION_ID', 'invoke printed no correlation ID', {
      hint: 'report it: `sark-fed invoke` always prints one on stderr',
    });
  }
  run.correlationId = correlationId;

  run.begin(9);
  run.transcript.comment(
    "the correlation ID finds the call in node-a's trail (outbound) and in node-b's (inbound)",
  );
  for (const node of NODES)
    await run.step(['--state', node.state, 'audit', 'trace', correlationId]);
  run.transcript.comment(
    'node-a asks node-b over mTLS for its side too: both events in one timeline, each receipt checked',
  );
  await run.step(['--state', NODES[0].state, 'audit', 'trace', correlationId, '--federated']);
}

function temporaryFolder(): string {
  try {
    return realpathSync(mkdtempSync(join(tmpdir(), 'sark-fed-demo-')));
  } catch (error) {
    throw new OperationError(
      'DEMO_NO_FOLDER',
      `cannot create a temporary folder in ${tmpdir()}: ${messageOf(error)}`,
      { hint: 'point TMPDIR at a writable folder', cause: error },
    );
  }
}

function writeFile(run: DemoRun, path: string, text: string): void {
  run.transcript.command(`cat > ${path} <<'EOF'`);
  run.transcript.output(`${text}EOF\n`);
  writeFileSync(join(run.dir, path), text, { mode: 0o644 });
}

function serveArgs(node: NodePlan, port: number): string[] {
  return [
    'serve',
    '--listen',
    `127.0.0.1:${port}`,
    ...(node.serves ? ['--resources', node.serves.resources, '--policy', node.serves.policy] : []),
  ];
}

function endpointOf(daemon: Daemon): string {
  const host = daemon.host.includes(':') ? `[${daemon.host}]` : daemon.host;
  return `https://${host}:${daemon.port}`;
}

/**
 * Stops every daemon (SIGTERM, then SIGKILL after a bounded wait) and removes the folder, or
 * with --keep says what is kept: the commands to run the federation again only after a complete
 * run, since before trust was established they would only meet "no route".
 */
async function cleanUp(run: DemoRun, keep: boolean, completed: boolean): Promise<void> {
  const { transcript } = run;
  const daemons = [...run.daemons.values()];
  const stopped = await Promise.all(
    daemons.map(async (daemon) => ({ daemon, code: await daemon.stop() })),
  );
  for (const { daemon, code } of stopped) {
    const record = run.steps.find((step) => step.pid === daemon.pid);
    if (record) record.exitCode = code;
    transcript.success(
      `stopped ${daemon.nodeId}'s daemon (pid ${daemon.pid}, exit ${code ?? 'by signal'})`,
    );
  }
  if (!keep) {
    try {
      rmSync(run.dir, { recursive: true, force: true });
      transcript.success(`removed ${run.dir}`);
    } catch (error) {
      run.context.output.warn(`could not remove ${run.dir}: ${messageOf(error)}`);
    }
    return;
  }
  if (!completed) {
    keptUnfinished(run);
    return;
  }
  transcript.note(`kept ${run.dir}`);
  transcript.comment('to run the daemons again on the same ports, call node-b, and stop them:');
  transcript.command(`cd ${shellQuote(run.dir)}`);
  for (const node of NODES) {
    const daemon = run.daemons.get(node.nodeId) as Daemon;
    transcript.command(
      `${commandLine(['--state', node.state, ...serveArgs(node, daemon.port)])} &`,
    );
  }
  transcript.command(
    commandLine(['--state', NODE_A.state, 'invoke', 'echo', 'echo', '--args', INVOKE_ARGS]),
  );
  transcript.command('kill %1 %2');
  transcript.comment(`and to remove it: rm -rf ${shellQuote(run.dir)}`);
}

/** What --keep kept of a run that failed or was interrupted, and how far it had come. */
function keptUnfinished(run: DemoRun): void {
  const { transcript } = run;
  let contents: string[] = [];
  try {
    contents = readdirSync(run.dir).sort();
  } catch {
    // Described by its path alone, then.
  }
  transcript.note(
    `kept ${run.dir}${contents.length > 0 ? ` (${contents.join(', ')})` : ''}, as the run left it`,
  );
  // A daemon counts once it listened; any other step once it exited 0.
  const done = run.steps.filter((step) =>
    step.background ? step.pid !== null : step.exitCode === 0,
  );
  const last = done.at(-1);
  transcript.comment(
    last === undefined
      ? 'the run stopped before its first step finished'
      : `the run stopped before it finished; the last step done was stage ${last.stage}/${STAGES.length} (${last.title}): ${last.command}`,
  );
  transcript.comment(
    'the folder holds only what was set up until then: run `sark-fed demo --keep` again for a complete federation',
  );
  transcript.comment(`and to remove it: rm -rf ${shellQuote(run.dir)}`);
}

function summary(run: DemoRun, keep: boolean, failure: unknown) {
  return {
    ok: failure === undefined,
    exitCode: failure === undefined ? 0 : exitCodeOf(failure),
    folder: run.dir,
    kept: keep,
    correlationId: run.correlationId,
    nodes: NODES.map((node) => {
      const daemon = run.daemons.get(node.nodeId);
      return {
        nodeId: node.nodeId,
        trustDomain: node.trustDomain,
        statePath: join(run.dir, node.state),
        endpoint: daemon ? endpointOf(daemon) : null,
        pid: daemon?.pid ?? null,
      };
    }),
    steps: run.steps,
    failed: run.failed,
  };
}

function exitCodeOf(error: unknown): number {
  if (!(error instanceof SarkError)) return 1;
  return EXIT_CODES.find((entry) => entry.kind === error.kind)?.code ?? 1;
}

/** A failed step ends the demo with the step's own exit code (1 when it has none of ours). */
function stepFailed(stage: number, record: StepRecord, json: boolean): SarkError {
  const kind: ErrorKind =
    EXIT_CODES.find((entry) => entry.code === record.exitCode)?.kind ?? 'failed';
  return new SarkError(
    kind,
    'DEMO_STEP_FAILED',
    `stage ${stage} (${record.title}) failed: \`${record.command}\` exited with ${
      record.exitCode ?? 'a signal'
    }`,
    {
      hint: `${
        json ? 'its output is under "failed" in the summary on stdout' : 'its output is above'
      }; \`sark-fed demo --keep\` keeps the folder to look into`,
    },
  );
}

/**
 * The children's environment: the operator's, without sark-fed settings (SARK_FED_*,
 * FEDERATION_*) that could point them at the operator's own state or change their behaviour;
 * SARK_FED_HOME inside the demo folder, so even a default state file would land there. Their
 * output is a pipe, written as for a terminal (SARK_FED_FORCE_TTY): colour is forced when the
 * transcript is coloured, and off otherwise.
 */
function childEnvironment(env: Environment, colour: number, dir: string): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || /^(SARK_FED_|FEDERATION_)/.test(name)) continue;
    if (name === 'NO_COLOR' || name === 'FORCE_COLOR') continue;
    result[name] = value;
  }
  result.SARK_FED_HOME = dir;
  // Tables and records as the operator would see them at a terminal, not a pipe's TSV.
  result.SARK_FED_FORCE_TTY = '1';
  if (colour > 0) result.FORCE_COLOR = String(colour);
  else result.NO_COLOR = '1';
  return result;
}
