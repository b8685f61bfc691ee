import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, type AuditEventInput } from '../../src/core/audit/events.js';
import { sha256Hex, signReceipt } from '../../src/core/audit/receipts.js';
import { openState } from '../../src/core/state/database.js';
import { CLI_PATH, PROJECT_ROOT, cleanEnv, runCli, tempDir } from '../helpers/cli.js';

/**
 * `audit export` end to end on large trails: 200,000 events, streamed out by the real CLI into a
 * reader that takes its time (every line parsed), with the exporting process's peak memory
 * measured by /usr/bin/time and compared with that of a small export. The events are written
 * straight into a state file with appendEvents, in one transaction: making them through real
 * calls would take hours.
 */

const BIG = 200_000;
/**
 * The small export is large enough for V8 to have grown its young generation to full size (it
 * does so under a high allocation rate, whatever is kept): what remains is what the export keeps.
 */
const SMALL = 20_000;
const SLOW_TEST_MS = 300_000;
/**
 * How much more the big export may take at its peak than the small one. Measured here: 10-25 MiB
 * (V8's heap sizing settling at a higher plateau on a loaded machine; sampled during one export,
 * resident memory rises to it and stays flat). The big export writes ~190 MB more than the small
 * one, and stdout to a pipe is asynchronous in Node: a process that gathered the export, or wrote
 * without waiting for 'drain' in front of a slower reader, would exceed this three times over.
 */
const MEMORY_BOUND_KIB = 64 * 1024;

const START = Date.parse('2030-01-01T00:00:00.000Z');

let dir: string;
let bigState: string;
let smallState: string;
const awkward = {
  principal: 'O\'Brien, "ops"\nteam@org-a.example',
  errorCode: 'A,B',
};

/** An event as the invoker records one, with a real signed receipt. */
function makeEvents(count: number): AuditEventInput[] {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const receipt = signReceipt(privateKey, {
    correlation_id: randomUUID(),
    source: 'spiffe://org-a.example/sark/node/node-a',
    target: 'spiffe://org-b.example/sark/node/node-b',
    principal: 'alice@org-a.example',
    resource: 'echo',
    capability: 'echo',
    request_sha256: sha256Hex('{}'),
    outcome: 'success',
    result_sha256: sha256Hex('{}'),
    timestamp: '2030-01-01T00:00:00.000Z',
  });
  const events: AuditEventInput[] = [];
  for (let index = 0; index < count; index++) {
    const odd = index % 1000 === 7;
    events.push({
      correlationId: randomUUID(),
      time: new Date(START + index * 10).toISOString(),
      direction: index % 2 === 0 ? 'outbound' : 'inbound',
      sourceNode: 'node-a',
      targetNode: 'node-b',
      principal: odd ? awkward.principal : 'alice@org-a.example',
      resource: 'echo',
      capability: 'echo',
      outcome: odd ? 'error' : 'success',
      statusCode: 200,
      errorCode: odd ? awkward.errorCode : null,
      durationUs: 1000 + (index % 977),
      requestSha256: sha256Hex('{}'),
      requestSize: 2,
      resultSha256: odd ? null : sha256Hex('{}'),
      resultSize: odd ? null : 2,
      receipt: odd ? null : receipt,
    });
  }
  return events;
}

function makeState(name: string, count: number): string {
  const path = join(dir, name);
  const store = openState(path, { create: true });
  try {
    store.write((db) => appendEvents(db, makeEvents(count)));
  } finally {
    store.close();
  }
  return path;
}

interface Streamed {
  code: number;
  stderr: string;
  /** Peak resident set size of the CLI process, KiB, as /usr/bin/time measured it. */
  maxRssKib: number;
}

/**
 * Runs `audit export` under /usr/bin/time with stdout flowing into `consume`, chunk by chunk:
 * nothing here holds the whole export either.
 */
function exportStreaming(
  state: string,
  args: string[],
  consume: (chunk: string) => void,
): Promise<Streamed> {
  const timeFile = join(dir, `time-${randomUUID()}.txt`);
  return new Promise((resolve, reject) => {
    const child = spawn(
      '/usr/bin/time',
      [
        '-f',
        '%M',
        '-o',
        timeFile,
        process.execPath,
        CLI_PATH,
        '--state',
        state,
        'audit',
        'export',
        ...args,
      ],
      { cwd: PROJECT_ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const stderr: Buffer[] = [];
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => consume(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({
        code: code ?? -1,
        stderr: Buffer.concat(stderr).toString('utf8'),
        maxRssKib: Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()),
      });
    });
  });
}

/** Splits a stream of text into lines and hands each whole line to `line`. */
function lineReader(line: (text: string) => void): (chunk: string) => void {
  let rest = '';
  return (chunk) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const part of parts) line(part);
  };
}

interface JsonlCheck {
  lines: number;
  badLines: number;
  seqInOrder: boolean;
  awkward: number;
}

async function exportJsonl(state: string): Promise<Streamed & JsonlCheck> {
  const check: JsonlCheck = { lines: 0, badLines: 0, seqInOrder: true, awkward: 0 };
  let lastSeq = 0;
  const run = await exportStreaming(
    state,
    [],
    lineReader((text) => {
      check.lines++;
      try {
        const event = JSON.parse(text) as { seq: number; principal: string };
        if (event.seq !== lastSeq + 1) check.seqInOrder = false;
        lastSeq = event.seq;
        if (event.principal === awkward.principal) check.awkward++;
      } catch {
        check.badLines++;
      }
    }),
  );
  return { ...run, ...check };
}

beforeAll(() => {
  dir = tempDir('sark-fed-audit-export-');
  bigState = makeState('big.db', BIG);
  smallState = makeState('small.db', SMALL);
}, SLOW_TEST_MS);

describe('audit export', () => {
  it(
    `streams ${BIG} events as JSON Lines, oldest first, in memory no larger than a small export's`,
    async () => {
      const small = await exportJsonl(smallState);
      expect(small.code, small.stderr).toBe(0);
      expect(small).toMatchObject({ lines: SMALL, badLines: 0, seqInOrder: true });

      const big = await exportJsonl(bigState);
      expect(big.code, big.stderr).toBe(0);
      expect(big.stderr).toBe(`exported ${BIG} events\n`);
      expect(big).toMatchObject({ lines: BIG, badLines: 0, seqInOrder: true, awkward: BIG / 1000 });

      expect(small.maxRssKib).toBeGreaterThan(0);
      expect(
        big.maxRssKib - small.maxRssKib,
        `peak RSS: ${small.maxRssKib} KiB for ${SMALL} events, ${big.maxRssKib} KiB for ${BIG}`,
      ).toBeLessThan(MEMORY_BOUND_KIB);
    },
    SLOW_TEST_MS,
  );

  it(
    `writes CSV that Python's csv module reads back: a header, ${BIG} records, receipts as JSON`,
    async () => {
      const python = spawn(
        'python3',
        [
          '-c',
          [
            'import csv, json, sys',
            'reader = csv.reader(sys.stdin, strict=True)',
            'header = next(reader)',
            'count = receipts = awkward = 0',
            'widths = set()',
            'for record in reader:',
            '    count += 1',
            '    widths.add(len(record))',
            '    row = dict(zip(header, record))',
            '    if row["receipt"]:',
            '        receipts += 1',
            '        assert json.loads(row["receipt"])["signature"]',
            '    if row["principal"] != "alice@org-a.example":',
            '        awkward += 1',
            '        assert row["principal"] == sys.argv[1], row["principal"]',
            '        assert row["error_code"] == "A,B" and row["result_sha256"] == ""',
            'print(json.dumps({"header": header, "count": count, "receipts": receipts, "awkward": awkward, "widths": sorted(widths)}))',
          ].join('\n'),
          awkward.principal,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'], env: cleanEnv() },
      );
      let pythonOut = '';
      let pythonErr = '';
      python.stdout.on('data', (chunk: Buffer) => (pythonOut += chunk.toString('utf8')));
      python.stderr.on('data', (chunk: Buffer) => (pythonErr += chunk.toString('utf8')));
      const pythonDone = new Promise<number>((resolve) =>
        python.on('close', (code) => resolve(code ?? -1)),
      );
      const run = await exportStreaming(bigState, ['--format', 'csv'], (chunk) =>
        python.stdin.write(chunk),
      );
      python.stdin.end();
      expect(run.code, run.stderr).toBe(0);
      expect(await pythonDone, pythonErr).toBe(0);
      const parsed = JSON.parse(pythonOut) as {
        header: string[];
        count: number;
        receipts: number;
        awkward: number;
        widths: number[];
      };
      expect(parsed.header).toEqual([
        'seq',
        'event_id',
        'correlation_id',
        'time',
        'direction',
        'source_node',
        'target_node',
        'principal',
        'resource',
        'capability',
        'outcome',
        'status_code',
        'error_code',
        'duration_us',
        'request_sha256',
        'request_size',
        'result_sha256',
        'result_size',
        'receipt',
        'prev_hash',
        'hash',
      ]);
      expect(parsed).toMatchObject({
        count: BIG,
        receipts: BIG - BIG / 1000,
        awkward: BIG / 1000,
        widths: [21],
      });
    },
    SLOW_TEST_MS,
  );

  it('--since keeps the events from that time on; each line is an event as query --json shows it', async () => {
    // Events are 10 ms apart from START: the last ten.
    const since = new Date(START + (SMALL - 10) * 10).toISOString();
    const result = await runCli(['--state', smallState, 'audit', 'export', '--since', since]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(10);
    const first = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(first).toMatchObject({ seq: SMALL - 9, time: since });
    expect(Object.keys(first)).toEqual([
      'seq',
      'eventId',
      'correlationId',
      'time',
      'direction',
      'sourceNode',
      'targetNode',
      'principal',
      'resource',
      'capability',
      'outcome',
      'statusCode',
      'errorCode',
      'durationUs',
      'requestSha256',
      'requestSize',
      'resultSha256',
      'resultSize',
      'receipt',
      'prevHash',
      'hash',
    ]);
    const query = await runCli(['--state', smallState, 'audit', 'query', '--limit', '1', '--json']);
    const { events } = JSON.parse(query.stdout) as { events: Array<Record<string, unknown>> };
    const { origin: _origin, ...newest } = events[0] as Record<string, unknown>;
    expect(JSON.parse(lines[9] as string)).toEqual(newest);
  });

  it('refuses an unknown format (exit 2) and exports an empty trail as nothing', async () => {
    const bad = await runCli(['--state', smallState, 'audit', 'export', '--format', 'xml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are jsonl, csv/);
    const none = await runCli([
      '--state',
      smallState,
      'audit',
      'export',
      '--format',
      'csv',
      '--since',
      '2031-01-01',
    ]);
    expect(none.code, none.stderr).toBe(0);
    // The header alone.
    expect(none.stdout.split('\r\n')).toEqual([expect.stringMatching(/^seq,event_id,/), '']);
  });
});
