import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, type AuditEventInput } from '../../src/core/audit/events.js';
import { CSV_COLUMNS } from '../../src/core/audit/export.js';
import { openState } from '../../src/core/state/database.js';
import { inboundEvent, receiptFixture } from '../helpers/audit-events.js';
import { cleanEnv, runCli, tempDir } from '../helpers/cli.js';

/**
 * `audit export --format csv` through the real CLI on a trail holding strings a peer chose to be
 * spreadsheet formulas (OWASP "CSV Injection"): those cells come out with a single quote in
 * front, every other cell exactly as the JSON Lines export has it. The CSV is read back with
 * Python's csv module, as a script of the operator's would.
 */

const HYPERLINK = '=HYPERLINK("http://x","y")';

let state: string;

function event(index: number, overrides: Partial<AuditEventInput>): AuditEventInput {
  return inboundEvent({
    correlationId: `018f0000-0000-7000-8000-00000000000${index}`,
    time: `2030-01-01T00:00:0${index}.000Z`,
    ...overrides,
  });
}

beforeAll(() => {
  state = join(tempDir('sark-fed-csv-injection-'), 'state.db');
  const store = openState(state, { create: true });
  try {
    store.write((db) =>
      appendEvents(db, [
        event(1, { principal: HYPERLINK, receipt: receiptFixture({ principal: HYPERLINK }) }),
        event(2, { principal: '-2+3', outcome: 'error', errorCode: '+CMD', resultSha256: null }),
        event(3, { principal: '@SUM(A1)', resource: '\tcalc', capability: '=1+1' }),
        event(4, { principal: 'alice@org-a.example', resource: 'a;b', errorCode: 'x=y' }),
        // Not something the daemon writes, but a number stays a number whatever its sign.
        event(5, { principal: 'bob', durationUs: -42, statusCode: 0 }),
      ]),
    );
  } finally {
    store.close();
  }
});

/** The records of a CSV text as Python's csv module (strict) reads them. */
function readCsv(text: string): string[][] {
  const python = spawnSync(
    'python3',
    ['-c', 'import csv, json, sys\nprint(json.dumps(list(csv.reader(sys.stdin, strict=True))))'],
    { input: text, env: cleanEnv(), encoding: 'utf8', timeout: 20_000 },
  );
  expect(python.status, python.stderr).toBe(0);
  return JSON.parse(python.stdout) as string[][];
}

/** An event of the JSON Lines export, keyed by CSV column. */
function byColumn(event: Record<string, unknown>): Record<string, string> {
  const camel = (column: string) =>
    column.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const row: Record<string, string> = {};
  for (const column of CSV_COLUMNS) {
    const value = event[camel(column)];
    row[column] =
      value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return row;
}

describe('audit export --format csv and spreadsheet formulas', () => {
  it('puts a quote in front of cells a spreadsheet would run, and leaves every other cell as the JSON has it', async () => {
    const csv = await runCli(['--state', state, 'audit', 'export', '--format', 'csv']);
    expect(csv.code, csv.stderr).toBe(0);
    const jsonl = await runCli(['--state', state, 'audit', 'export']);
    expect(jsonl.code, jsonl.stderr).toBe(0);

    const [header, ...records] = readCsv(csv.stdout);
    expect(header).toEqual([...CSV_COLUMNS]);
    const cells = records.map((record) =>
      Object.fromEntries(CSV_COLUMNS.map((column, index) => [column, record[index]])),
    );
    expect(cells.map((row) => row.principal)).toEqual([
      `'${HYPERLINK}`,
      "'-2+3",
      "'@SUM(A1)",
      'alice@org-a.example',
      'bob',
    ]);
    expect(cells[1]?.error_code).toBe("'+CMD");
    expect(cells[2]).toMatchObject({ resource: "'\tcalc", capability: "'=1+1" });
    expect(cells[3]).toMatchObject({ resource: 'a;b', error_code: 'x=y' });
    expect(cells[4]).toMatchObject({ duration_us: '-42', status_code: '0' });
    // The quoting shows in the raw text: no cell starts with = + - @ unquoted.
    expect(csv.stdout).toContain(`,"'=HYPERLINK(""http://x"",""y"")",`);
    expect(csv.stdout).toContain(`,"'-2+3",`);
    expect(csv.stdout).toContain(',"a;b",');
    expect(csv.stdout).toContain(',-42,');

    // Everything else is the stored value, as the faithful JSON Lines export has it; the
    // receipt is its JSON (the principal inside it is not at the start of the cell).
    const events = jsonl.stdout
      .trimEnd()
      .split('\n')
      .map((line) => byColumn(JSON.parse(line) as Record<string, unknown>));
    expect(events.map((row) => row.principal)).toEqual([
      HYPERLINK,
      '-2+3',
      '@SUM(A1)',
      'alice@org-a.example',
      'bob',
    ]);
    expect(cells).toHaveLength(events.length);
    const neutralised = new Set(['principal', 'error_code', 'resource', 'capability']);
    cells.forEach((row, index) => {
      const stored = events[index] as Record<string, string>;
      for (const column of CSV_COLUMNS) {
        const value = stored[column] as string;
        const expected =
          neutralised.has(column) && /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
        if (column === 'receipt' && value !== '') {
          expect(JSON.parse(row[column] as string)).toEqual(JSON.parse(value));
        } else {
          expect(row[column], `${column} of event ${index + 1}`).toBe(expected);
        }
      }
    });
    expect(cells[0]?.receipt).toContain(`"principal":"=HYPERLINK`);
  });
});
