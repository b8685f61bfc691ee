import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, type AuditEventInput } from '../../../src/core/audit/events.js';
import { CSV_COLUMNS, csvField, csvRecord, exportLines } from '../../../src/core/audit/export.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { inboundEvent, receiptFixture } from '../../helpers/audit-events.js';
import { tempDir } from '../../helpers/cli.js';

const stores: StateStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

function event(index: number, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return inboundEvent({
    correlationId: `c-${index}`,
    time: new Date(Date.parse('2030-01-01T00:00:00.000Z') + index * 1000).toISOString(),
    direction: 'outbound',
    durationUs: 1500,
    requestSha256: null,
    requestSize: null,
    resultSha256: null,
    resultSize: null,
    ...extra,
  });
}

function storeWith(events: AuditEventInput[]): StateStore {
  const store = openState(join(tempDir('sark-fed-export-'), 'state.db'), { create: true });
  stores.push(store);
  store.write((db) => appendEvents(db, events));
  return store;
}

describe('CSV fields (RFC 4180)', () => {
  it.each([
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['cr\r', '"cr\r"'],
    ['', ''],
    ['a;b', '"a;b"'],
    ['a=b', 'a=b'],
    ['alice@org-a.example', 'alice@org-a.example'],
    ['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z'],
  ])('writes %j as %j', (value, expected) => {
    expect(csvField(value)).toBe(expected);
  });

  // OWASP "CSV Injection": what a spreadsheet would run as a formula gets a quote in front.
  it.each([
    ['=1+1', `"'=1+1"`],
    ['+1', `"'+1"`],
    ['-2+3', `"'-2+3"`],
    ['@SUM(A1)', `"'@SUM(A1)"`],
    ['\t=1', `"'\t=1"`],
    ['\r=1', `"'\r=1"`],
    ['=HYPERLINK("http://x","y")', `"'=HYPERLINK(""http://x"",""y"")"`],
  ])('neutralises %j as %j', (value, expected) => {
    expect(csvField(value)).toBe(expected);
  });

  it('never alters a number, a negative one included', () => {
    expect(csvField(-5)).toBe('-5');
    expect(csvRecord([-1, '-1'])).toBe(`-1,"'-1"\r\n`);
  });

  it('writes numbers as they are and null as the empty field', () => {
    expect(csvField(0)).toBe('0');
    expect(csvField(1234567)).toBe('1234567');
    expect(csvField(null)).toBe('');
  });

  it('ends each record with CRLF', () => {
    expect(csvRecord(['a', null, 3, 'x,y'])).toBe('a,,3,"x,y"\r\n');
  });
});

describe('exportLines', () => {
  it('yields JSON Lines, oldest first, one event per line', () => {
    const store = storeWith([event(0), event(1), event(2)]);
    const lines = [...exportLines(store.db, { format: 'jsonl' })];
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line.endsWith('\n')).toBe(true);
    const parsed = lines.map((line) => JSON.parse(line) as { seq: number; correlationId: string });
    expect(parsed.map((item) => [item.seq, item.correlationId])).toEqual([
      [1, 'c-0'],
      [2, 'c-1'],
      [3, 'c-2'],
    ]);
  });

  it('yields a CSV header, then one record per event with the receipt as JSON', () => {
    const receipt = receiptFixture({
      correlation_id: 'c-1',
      result_sha256: null,
      timestamp: '2030-01-01T00:00:01.000Z',
      signature: 'c2ln',
    });
    const store = storeWith([event(0, { principal: 'o"brien, ops' }), event(1, { receipt })]);
    const lines = [...exportLines(store.db, { format: 'csv' })];
    expect(lines[0]).toBe(`${CSV_COLUMNS.join(',')}\r\n`);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain(',"o""brien, ops",');
    const quotedReceipt = `"${JSON.stringify(receipt).replace(/"/g, '""')}"`;
    expect(lines[2]).toContain(`,${quotedReceipt},`);
  });

  it('keeps the events at or after --since only', () => {
    const store = storeWith([event(0), event(1), event(2)]);
    const lines = [
      ...exportLines(store.db, { format: 'jsonl', since: '2030-01-01T00:00:01.000Z' }),
    ];
    expect(lines.map((line) => (JSON.parse(line) as { seq: number }).seq)).toEqual([2, 3]);
  });

  it('yields the header alone for an empty trail in CSV, nothing in JSON Lines', () => {
    const store = storeWith([]);
    expect([...exportLines(store.db, { format: 'csv' })]).toHaveLength(1);
    expect([...exportLines(store.db, { format: 'jsonl' })]).toEqual([]);
  });
});
