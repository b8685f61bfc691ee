import { canonicalJson } from '../protocol/canonical-json.js';
import type { SqliteDatabase } from './database.js';

export type MetricLabels = Readonly<Record<string, string>>;

/**
 * Adds to a counter kept in the state file (call inside StateStore.write). CLI processes live for
 * one command, so what they count (route lookups, discovery scans) is stored where the daemon's
 * /metrics can read it.
 */
export function incrementCounter(
  db: SqliteDatabase,
  name: string,
  labels: MetricLabels,
  by = 1,
): void {
  db.prepare(
    `INSERT INTO metric_counters (name, labels, value) VALUES (?, ?, ?)
     ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value`,
  ).run(name, canonicalJson(labels), by);
}

export function readCounters(
  db: SqliteDatabase,
  name: string,
): Array<{ labels: Record<string, string>; value: number }> {
  const rows = db
    .prepare('SELECT labels, value FROM metric_counters WHERE name = ? ORDER BY labels')
    .all(name) as Array<{ labels: string; value: number }>;
  return rows.map((row) => ({
    labels: JSON.parse(row.labels) as Record<string, string>,
    value: row.value,
  }));
}
