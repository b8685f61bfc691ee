import type { SqliteDatabase } from '../state/database.js';
import { eventFromRow, type AuditRow } from './events.js';

/**
 * `audit export`: every event, oldest first, as JSON Lines or CSV. Rows are read with one
 * streaming statement and formatted one at a time, so the caller can write them out at the pace
 * of its reader without ever holding the trail in memory.
 */

export type ExportFormat = 'jsonl' | 'csv';

export const EXPORT_FORMATS: readonly ExportFormat[] = ['jsonl', 'csv'];

/** CSV columns: the audit_events columns of the state file (docs/state.md), in their order. */
export const CSV_COLUMNS = [
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
] as const;

type Row = AuditRow;

export interface ExportOptions {
  format: ExportFormat;
  /** ISO 8601 UTC: only events at or after it. */
  since?: string | undefined;
}

/**
 * The export as lines, each ending in its line break: for CSV the header first. The statement
 * stays open until the generator finishes or is returned, and the connection can run nothing
 * else meanwhile. Rows come as arrays of the columns in CSV_COLUMNS order (better-sqlite3's raw
 * mode): building an object per row in the addon took half of the export's time.
 */
export function* exportLines(db: SqliteDatabase, options: ExportOptions): Generator<string> {
  const columns = CSV_COLUMNS.join(', ');
  const statement =
    options.since === undefined
      ? db.prepare(`SELECT ${columns} FROM audit_events ORDER BY seq`)
      : db.prepare(`SELECT ${columns} FROM audit_events WHERE time >= ? ORDER BY seq`);
  statement.raw(true);
  const rows = (
    options.since === undefined ? statement.iterate() : statement.iterate(options.since)
  ) as Iterable<RawRow>;
  if (options.format === 'csv') {
    yield csvRecord(CSV_COLUMNS);
    for (const values of rows) yield csvRecord(values);
  } else {
    for (const values of rows) yield jsonLine(rowOf(values));
  }
}

/** A row's values in CSV_COLUMNS order. */
type RawRow = Array<string | number | null>;

/** The row object of a raw row. */
function rowOf(values: RawRow): Row {
  const row: Record<string, string | number | null> = {};
  CSV_COLUMNS.forEach((column, index) => {
    row[column] = values[index] ?? null;
  });
  return row as unknown as Row;
}

/** One event as a line of JSON: the shape of an event in `audit query --json`. */
export function jsonLine(row: Row): string {
  return `${JSON.stringify(eventFromRow(row))}\n`;
}

/** A record of RFC 4180: fields separated by commas, CRLF at the end. */
export function csvRecord(fields: ReadonlyArray<string | number | null>): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}

/**
 * A field of RFC 4180: quoted when it holds a comma, a semicolon, a double quote, CR or LF
 * (quotes doubled); null is the empty field.
 *
 * Spreadsheets execute a cell that starts with = + - @, a tab or a CR as a formula (OWASP "CSV
 * Injection"), and several of these columns carry strings another node chose: the principal it
 * sends, the resource and capability it asks for, its node ID, error codes. So a text field
 * starting with one of those characters gets a single quote in front (OWASP's advice), which
 * makes a spreadsheet show it as text; the field is then quoted as well. The semicolon is quoted
 * because spreadsheets in locales whose list separator is `;` split unquoted fields on it, which
 * would put a cell start in the middle of a value; RFC 4180 readers read a quoted field the same.
 *
 * Applied to every string, by type rather than by column: the integer columns (seq, status_code,
 * duration_us, the sizes; the table is STRICT, so they always come back as numbers) are never
 * touched, a negative number included, and the text the tool writes itself never starts with
 * those characters: UUIDs and SHA-256 hashes are hex, times are ISO 8601 starting with the year,
 * direction and outcome are fixed words, the receipt is a JSON object. Only values from outside
 * can change, and the JSON Lines export keeps them byte for byte.
 */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);
  if (FORMULA_START.test(value)) return `"'${value.replace(/"/g, '""')}"`;
  return /[",;\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** What a spreadsheet takes for the start of a formula (OWASP "CSV Injection"). */
const FORMULA_START = /^[=+\-@\t\r]/;
