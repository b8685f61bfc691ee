import type { Statement } from 'better-sqlite3';
import type { SqliteDatabase } from './database.js';

const cache = new WeakMap<SqliteDatabase, Map<string, Statement>>();

/**
 * A prepared statement kept for the life of its connection. better-sqlite3's prepare() compiles
 * the SQL anew on every call (~20-40 µs here), which the daemon's per-request lookups and the
 * audit writer's per-batch inserts would otherwise pay every time (docs/benchmarks.md).
 */
export function statement(db: SqliteDatabase, sql: string): Statement {
  let statements = cache.get(db);
  if (!statements) {
    statements = new Map();
    cache.set(db, statements);
  }
  let prepared = statements.get(sql);
  if (!prepared) {
    prepared = db.prepare(sql);
    statements.set(sql, prepared);
  }
  return prepared;
}
