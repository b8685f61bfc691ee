import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, PROJECT_ROOT, cleanEnv, expectRefusal, expectSuccess } from '../helpers/cli.js';
import type { TestNode } from '../helpers/federation.js';
import { invoke, setUpFederation } from './audit-setup.js';

/**
 * `audit query --follow` as an operator watches calls arrive: a real `sark-fed` process following
 * node-b's trail while node-a calls node-b's real daemon, which records each call it serves.
 */

const SLOW_TEST_MS = 60_000;

let a: TestNode;
let b: TestNode;

beforeAll(async () => {
  ({ a, b } = await setUpFederation());
  for (const principal of ['alice@org-a.example', 'bob@org-a.example', 'carol@org-a.example']) {
    expectSuccess((await invoke(a, 'echo', 'echo', ['--principal', principal])).result);
  }
}, SLOW_TEST_MS);

interface Follower {
  /** The lines printed on stdout so far. */
  lines(): string[];
  /** Resolves once `count` lines have been printed (at most 15 s). */
  waitForLines(count: number): Promise<string[]>;
  /** SIGINT, as Ctrl-C sends it (or SIGTERM): resolves with the exit code and stderr. */
  interrupt(signal?: NodeJS.Signals): Promise<{ code: number | null; stderr: string }>;
}

/** `sark-fed --state <node's> audit query --follow ...args`, running until interrupted. */
function follow(node: TestNode, args: string[], env: Record<string, string> = {}): Follower {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [CLI_PATH, '--state', node.state, 'audit', 'query', '--follow', ...args],
    { cwd: PROJECT_ROOT, env: cleanEnv(env) },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  // Never outlives the test, whatever happens in it.
  const killer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const lines = () => stdout.split('\n').filter((line) => line !== '');
  return {
    lines,
    async waitForLines(count) {
      const deadline = Date.now() + 15_000;
      while (lines().length < count) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`${lines().length} of ${count} lines; stderr: ${stderr}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return lines();
    },
    async interrupt(signal = 'SIGINT') {
      child.kill(signal);
      const code = await exited;
      clearTimeout(killer);
      return { code, stderr };
    },
  };
}

interface EventLine {
  seq: number;
  correlationId: string;
  direction: string;
  principal: string;
  outcome: string;
}

describe('audit query --follow', () => {
  it(
    'prints the newest events oldest first, then each matching call as node-b records it, until Ctrl-C (exit 130, silently)',
    async () => {
      const all = follow(b, ['--json', '--limit', '2']);
      const denied = follow(b, ['--outcome', 'denied']);
      // The last two of the three calls so far, oldest first, as NDJSON lines.
      const backlog = (await all.waitForLines(2)).map((line) => JSON.parse(line) as EventLine);
      expect(backlog.map((event) => event.principal)).toEqual([
        'bob@org-a.example',
        'carol@org-a.example',
      ]);
      expect(backlog[0]?.seq).toBeLessThan(backlog[1]?.seq as number);

      const allowed = randomUUID();
      expectSuccess(
        (
          await invoke(a, 'echo', 'echo', [
            '--principal',
            'dave@org-a.example',
            '--correlation-id',
            allowed,
          ])
        ).result,
      );
      const refused = await invoke(a, 'echo', 'echo', ['--principal', 'mallory@org-a.example']);
      expect(refused.result.code).toBe(6);

      const followed = (await all.waitForLines(4)).slice(2).map((l) => JSON.parse(l) as EventLine);
      expect(followed).toEqual([
        expect.objectContaining({
          correlationId: allowed,
          direction: 'inbound',
          principal: 'dave@org-a.example',
          outcome: 'success',
        }),
        expect.objectContaining({ correlationId: refused.correlationId, outcome: 'denied' }),
      ]);
      // In a pipe without --json: the query's tab-separated fields, the denied call only.
      const [row] = await denied.waitForLines(1);
      expect(row?.split('\t')).toEqual([
        expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        refused.correlationId,
        'inbound',
        'node-a',
        'node-b',
        'mallory@org-a.example',
        'echo/echo',
        'denied',
        expect.stringMatching(/^\d+$/),
        'POLICY_DENIED',
      ]);

      // For a person (stdout a terminal, as SARK_FED_FORCE_TTY makes it): one line an event,
      // the query table's columns, the whole correlation ID last to copy into `audit trace`.
      const watching = follow(b, ['--limit', '1'], { SARK_FED_FORCE_TTY: '1' });
      const [line] = await watching.waitForLines(1);
      expect(line).toMatch(
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}  inbound   node-a → node-b  mallory@org-a\\.example  echo/echo  denied  POLICY_DENIED  \\S+ [µm]?s  ${refused.correlationId}$`,
        ),
      );

      // Ctrl-C (or SIGTERM) is how following ends, as for `tail -f`: exit 130 (interrupted),
      // and nothing on stderr but the line said when following began: no error, in JSON or not.
      const stops: Array<[Follower, NodeJS.Signals]> = [
        [all, 'SIGINT'],
        [denied, 'SIGTERM'],
        [watching, 'SIGINT'],
      ];
      for (const [follower, signal] of stops) {
        const stopped = await follower.interrupt(signal);
        expect(stopped.code, stopped.stderr).toBe(130);
        expect(stopped.stderr).toBe(
          'following the audit trail: new events are printed as they are recorded (Ctrl-C stops)\n',
        );
      }
      expect(all.lines()).toHaveLength(4);
      expect(denied.lines()).toHaveLength(1);
    },
    SLOW_TEST_MS,
  );

  it('refuses --federated and --until with it (exit 2), before reading anything', async () => {
    expectRefusal(await b.cli(['audit', 'query', '--follow', '--federated']), 2, {
      message: "--follow reads this node's trail only",
      hint: /leave out --federated/,
    });
    expectRefusal(await b.cli(['audit', 'query', '--follow', '--until', '1h']), 2, {
      message: '--follow prints events as they come: --until would end it',
      hint: /leave out --until/,
    });
  });
});
