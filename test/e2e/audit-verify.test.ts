import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { chainHash, eventFromRow } from '../../src/core/audit/events.js';
import { runCli, type RunResult } from '../helpers/cli.js';
import type { TestNode } from '../helpers/federation.js';
import {
  copyState,
  invoke,
  openForTampering,
  runOnTerminal,
  setUpFederation,
} from './audit-setup.js';

/**
 * `audit verify` end to end: real calls between real nodes make the trails; each test tampers
 * with a copy of a state file through SQLite, as someone with write access to the file could
 * (the append-only triggers dropped first), and checks that verify names the first broken event
 * and exits 1.
 */

const SLOW_TEST_MS = 60_000;

interface VerifyJson {
  ok: boolean;
  events: number;
  firstSeq: number | null;
  lastSeq: number | null;
  headHash: string;
  receipts: { verified: number; invalid: number; unknownSigner: number; none: number };
  problems: Array<{
    seq: number;
    eventId: string;
    correlationId: string;
    code: string;
    message: string;
  }>;
  problemCount: number;
  unknownSigners: Array<{ nodeId: string; events: number; reason: string }>;
}

type Row = Parameters<typeof eventFromRow>[0];

let a: TestNode;
let b: TestNode;
let dir: string;
let copies = 0;
const CALLS = 5;

beforeAll(async () => {
  const fed = await setUpFederation();
  ({ a, b, dir } = fed);
  for (let call = 0; call < CALLS; call++) {
    const principal = call === 3 ? 'mallory@org-a.example' : 'alice@org-a.example';
    const { result } = await invoke(a, 'echo', 'echo', [
      '--args',
      JSON.stringify({ call }),
      '--principal',
      principal,
    ]);
    expect(result.code, result.stderr).toBe(call === 3 ? 6 : 0);
  }
  // The daemon's rows are committed before each answer: both trails are complete.
}, SLOW_TEST_MS);

/** A fresh copy of a node's state file, tampered with by `tamper`. */
function tampered(node: TestNode, tamper: (db: Database.Database) => void): string {
  const path = join(dir, `tampered-${++copies}.db`);
  copyState(node.state, path);
  const db = openForTampering(path);
  try {
    tamper(db);
  } finally {
    db.close();
  }
  return path;
}

function rowAt(db: Database.Database, seq: number): Row {
  return db.prepare('SELECT * FROM audit_events WHERE seq = ?').get(seq) as Row;
}

/** Recomputes prev_hash and hash from `fromSeq` on: a forger covering their tracks. */
function rehashFrom(db: Database.Database, fromSeq: number): void {
  let prev = (rowAt(db, fromSeq - 1)?.hash ?? '0'.repeat(64)) as string;
  const rows = db
    .prepare('SELECT * FROM audit_events WHERE seq >= ? ORDER BY seq')
    .all(fromSeq) as Row[];
  const update = db.prepare('UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?');
  for (const row of rows) {
    const hash = chainHash(prev, eventFromRow(row));
    update.run(prev, hash, row.seq);
    prev = hash;
  }
}

async function verify(state: string, json = false): Promise<RunResult> {
  return runCli(['--state', state, 'audit', 'verify', ...(json ? ['--json'] : [])]);
}

async function verifyJson(state: string, exitCode: number): Promise<VerifyJson> {
  const result = await verify(state, true);
  expect(result.code, result.stderr).toBe(exitCode);
  return JSON.parse(result.stdout) as VerifyJson;
}

/** Exit 1, and the error line names the first broken event: its seq, ID and correlation ID. */
function expectBrokenAt(result: RunResult, row: Row, what: RegExp): void {
  expect(result.code, result.stderr).toBe(1);
  const [error = '', hint = ''] = result.stderr.split('\n');
  expect(error).toContain(`error: the audit trail is broken at seq ${row.seq} `);
  expect(error).toContain(`(event ${row.event_id}, correlation ID ${row.correlation_id})`);
  expect(error).toMatch(what);
  expect(hint).toMatch(/^hint: /);
}

describe('audit verify', () => {
  it('an untampered trail verifies: every event, every receipt, exit 0', async () => {
    const result = await verify(a.state);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^events\t5 \(seq 1 to 5\)$/m);
    expect(result.stdout).toMatch(/^receipts\t5 verified, 0 invalid, 0 unknown signer/m);
    expect(result.stdout).toMatch(/^result\tok$/m);
    expect(result.stderr).toBe('✓ verified 5 events and 5 receipts\n');

    for (const node of [a, b]) {
      const report = await verifyJson(node.state, 0);
      expect(report).toMatchObject({
        ok: true,
        events: CALLS,
        firstSeq: 1,
        lastSeq: CALLS,
        receipts: { verified: CALLS, invalid: 0, unknownSigner: 0, none: 0 },
        problems: [],
        problemCount: 0,
        unknownSigners: [],
      });
      expect(report.headHash).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('detects a field changed in place, naming the altered event', async () => {
    let victim: Row | undefined;
    const path = tampered(a, (db) => {
      victim = rowAt(db, 3);
      db.prepare(
        "UPDATE audit_events SET principal = 'someone-else@org-a.example' WHERE seq = 3",
      ).run();
    });
    expectBrokenAt(await verify(path), victim as Row, /its content does not match its hash/);
    const report = await verifyJson(path, 1);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ seq: 3, code: 'HASH_MISMATCH' });
    // Its receipt no longer says what the event says, either.
    expect(report.problems[1]).toMatchObject({ seq: 3, code: 'RECEIPT_INVALID' });
    expect(report.problems[1]?.message).toMatch(/its principal is alice@org-a\.example/);

    // On a terminal: the summary, then a table of the problems.
    const shown = await runOnTerminal(['--state', path, 'audit', 'verify']);
    expect(shown.code).toBe(1);
    const lines = shown.stdout.split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'events     5 (seq 1 to 5)',
      'receipts   4 verified, 1 invalid, 0 unknown signer, 0 events without',
      expect.stringMatching(/^head hash  [0-9a-f]{64}$/),
      'result     2 problems',
    ]);
    expect(lines[5]).toMatch(/^SEQ\s+EVENT\s+CORRELATION\s+PROBLEM\s+DETAIL$/);
    expect(lines[6]).toMatch(
      new RegExp(
        `^3\\s+${victim?.event_id}\\s+${victim?.correlation_id}\\s+HASH_MISMATCH\\s+its content`,
      ),
    );
    expect(lines[7]).toMatch(/^3\s+.*RECEIPT_INVALID\s+its receipt does not verify/);
  });

  it('detects a deleted event: a gap in seq and a broken link', async () => {
    let after: Row | undefined;
    const path = tampered(a, (db) => {
      after = rowAt(db, 3);
      db.prepare('DELETE FROM audit_events WHERE seq = 2').run();
    });
    expectBrokenAt(await verify(path), after as Row, /seq 3 follows seq 1: 1 event is missing/);
    const report = await verifyJson(path, 1);
    expect(report.problems.map((problem) => [problem.seq, problem.code])).toEqual([
      [3, 'SEQ_GAP'],
      [3, 'BROKEN_LINK'],
    ]);
    expect(report.events).toBe(CALLS - 1);
  });

  it('detects the first event deleted', async () => {
    let second: Row | undefined;
    const path = tampered(a, (db) => {
      second = rowAt(db, 2);
      db.prepare('DELETE FROM audit_events WHERE seq = 1').run();
    });
    expectBrokenAt(await verify(path), second as Row, /the trail starts at seq 2/);
  });

  it('detects two events swapped (their seq exchanged)', async () => {
    let moved: Row | undefined;
    const path = tampered(a, (db) => {
      moved = rowAt(db, 3);
      db.prepare('UPDATE audit_events SET seq = -1 WHERE seq = 2').run();
      db.prepare('UPDATE audit_events SET seq = 2 WHERE seq = 3').run();
      db.prepare('UPDATE audit_events SET seq = 3 WHERE seq = -1').run();
    });
    // Now at seq 2: the event that was third, linked to the second.
    expectBrokenAt(
      await verify(path),
      { ...(moved as Row), seq: 2 },
      /its prev_hash is not the hash of the event before it \(seq 1\)/,
    );
  });

  it('detects two events whose contents were swapped', async () => {
    let second: Row | undefined;
    const path = tampered(a, (db) => {
      second = rowAt(db, 2);
      const third = rowAt(db, 3);
      const columns = Object.keys(second).filter((column) => column !== 'seq');
      const set = columns.map((column) => `${column} = @${column}`).join(', ');
      const update = db.prepare(`UPDATE audit_events SET ${set} WHERE seq = @target`);
      // event_id is unique: park the third row's under another name first.
      db.prepare("UPDATE audit_events SET event_id = 'parked' WHERE seq = 3").run();
      update.run({ ...third, target: 2 });
      update.run({ ...second, target: 3 });
    });
    const result = await verify(path, true);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as VerifyJson;
    expect(report.problems[0]).toMatchObject({ seq: 2, code: 'BROKEN_LINK' });
    expect(report.problems.some((problem) => problem.seq === 3)).toBe(true);
  });

  it('detects a receipt whose signature has one byte flipped, even with the chain rehashed', async () => {
    let victim: Row | undefined;
    const flip = (db: Database.Database) => {
      victim = rowAt(db, 4);
      const receipt = JSON.parse(victim.receipt as string) as { signature: string };
      const signature = Buffer.from(receipt.signature, 'base64url');
      signature[signature.length - 5] = (signature[signature.length - 5] as number) ^ 0x01;
      receipt.signature = signature.toString('base64url');
      db.prepare('UPDATE audit_events SET receipt = ? WHERE seq = 4').run(JSON.stringify(receipt));
    };
    const plain = tampered(a, flip);
    const report = await verifyJson(plain, 1);
    expect(report.problems.map((problem) => [problem.seq, problem.code])).toEqual([
      [4, 'HASH_MISMATCH'],
      [4, 'RECEIPT_INVALID'],
    ]);

    // A forger who recomputes every hash from there on still cannot forge node-b's signature.
    const rehashed = tampered(a, (db) => {
      flip(db);
      rehashFrom(db, 4);
    });
    const result = await verify(rehashed);
    expectBrokenAt(
      result,
      victim as Row,
      /its receipt does not verify: its signature does not verify against the certificate pinned for node-b/,
    );
    expect((await verifyJson(rehashed, 1)).problems).toHaveLength(1);
  });

  it("detects an inbound event rewritten with its chain rehashed: the serving node's own receipt disagrees", async () => {
    let victim: Row | undefined;
    const path = tampered(b, (db) => {
      victim = rowAt(db, 4);
      // The denied call, rewritten as a success.
      expect(victim.outcome).toBe('denied');
      db.prepare("UPDATE audit_events SET outcome = 'success' WHERE seq = 4").run();
      rehashFrom(db, 4);
    });
    expectBrokenAt(
      await verify(path),
      victim as Row,
      /its outcome is denied, the event's is success/,
    );
  });

  it('a receipt of a node no longer known is reported unchecked, not broken (exit 0)', async () => {
    // A peer's record deleted: the certificate it pinned is kept, and still checks its receipts.
    const removed = tampered(a, (db) => {
      db.prepare("DELETE FROM peers WHERE node_id = 'node-b'").run();
    });
    const kept = await verify(removed);
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stderr).toBe('✓ verified 5 events and 5 receipts\n');

    // No certificate of it at all (a file from before schema 7 kept none): unchecked.
    const path = tampered(a, (db) => {
      db.prepare("DELETE FROM peers WHERE node_id = 'node-b'").run();
      db.prepare("DELETE FROM retired_certificates WHERE node_id = 'node-b'").run();
    });
    const result = await verify(path);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      'warning: 5 receipts signed by node-b not checked: no certificate of node-b is known here',
    );
    expect((await verifyJson(path, 0)).unknownSigners).toEqual([
      { nodeId: 'node-b', events: 5, reason: 'no-certificate' },
    ]);
  });

  it('a receipt that is not JSON: verify lists it, and query, trace and export name the row and send to verify (exit 1, not an internal error)', async () => {
    let victim: Row | undefined;
    const path = tampered(a, (db) => {
      victim = rowAt(db, 2);
      db.prepare("UPDATE audit_events SET receipt = '{not json' WHERE seq = 2").run();
    });
    const row = victim as Row;
    expectBrokenAt(await verify(path), row, /it cannot be read back: its receipt is not JSON/);

    const commands = [
      ['audit', 'query'],
      ['audit', 'trace', row.correlation_id],
      ['audit', 'export'],
    ];
    for (const args of commands) {
      const result = await runCli(['--state', path, ...args]);
      expect(result.code, result.stderr).toBe(1);
      const [error = '', hint = ''] = result.stderr.trimEnd().split('\n').slice(-2);
      expect(error).toBe(
        `error: the audit event at seq 2 (event ${row.event_id}, correlation ID ${row.correlation_id}) cannot be read back: its receipt is not JSON (${jsonError('{not json')})`,
      );
      expect(hint).toMatch(
        /^hint: the trail was altered outside sark-fed: `sark-fed audit verify`/,
      );
      const json = await runCli(['--state', path, ...args, '--json']);
      expect(JSON.parse(json.stderr.trimEnd().split('\n').pop() ?? '')).toMatchObject({
        error: { code: 'AUDIT_EVENT_UNREADABLE', exitCode: 1 },
      });
    }
  });
});

/** What JSON.parse says about text that is not JSON. */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (error) {
    return (error as Error).message;
  }
  return '';
}
