// The least a Node program answering `audit query --correlation-id X --json` can do: CommonJS
// (no ES module loader), better-sqlite3 loaded directly, the same indexed query as the sqlite3
// baseline, the rows printed as JSON. bench/audit.mjs times it beside the CLI to show how much of
// the gap to the sqlite3 shell is Node and the SQLite binding rather than sark-fed.
// Usage: node bench/audit-floor.cjs <state file> <correlation id>
'use strict';
const Database = require('better-sqlite3');

const [file, correlationId] = process.argv.slice(2);
const db = new Database(file, { readonly: true, fileMustExist: true });
const rows = db
  .prepare('SELECT * FROM audit_events WHERE correlation_id = ? ORDER BY time DESC, seq DESC')
  .all(correlationId);
process.stdout.write(`${JSON.stringify(rows)}\n`);
