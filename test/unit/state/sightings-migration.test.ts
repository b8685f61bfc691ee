import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { listSightings, recordSightings } from '../../../src/core/state/discovery-repository.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from '../../../src/core/state/migrations.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * Migration 8: node_sightings gains the `file` source (a nodes file's entries, kept apart from
 * what `nodes add` records). SQLite cannot alter a CHECK, so the table is rebuilt: a state file
 * of schema 7 keeps its sightings, all still `manual`.
 */

const opened: StateStore[] = [];
afterEach(() => {
  for (const store of opened.splice(0)) store.close();
});

const FP = 'ab'.repeat(32);

/** A state file as sark-fed of schema 7 left it, with a manual, an mDNS and a Consul sighting. */
function schema7File(): string {
  const path = join(tempDir(), 'state.db');
  const old = new Database(path);
  old.pragma('journal_mode = WAL');
  for (const migration of MIGRATIONS.slice(0, 7)) old.exec(migration);
  old.pragma(`application_id = ${APPLICATION_ID}`);
  old.pragma('user_version = 7');
  const insert = old.prepare(
    `INSERT INTO node_sightings (node_id, source, endpoint, trust_domain, fingerprint, seen_at,
       expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  insert.run(
    'node-b',
    'manual',
    'https://10.0.0.2:8443',
    'org-b.example',
    FP,
    '2026-11-26T02:00:00.000Z',
    null,
  );
  insert.run(
    'node-b',
    'mdns',
    'https://127.0.0.1:9443',
    'org-b.example',
    null,
    '2026-11-26T02:01:00.000Z',
    '2026-11-26T02:03:00.000Z',
  );
  insert.run(
    'node-d',
    'manual',
    'https://192.0.2.40:8443',
    null,
    null,
    '2026-11-26T02:02:00Z',
    null,
  );
  // Refused by schema 7 already: 'file' is new.
  expect(() =>
    insert.run('node-e', 'file', 'https://192.0.2.41:8443', null, null, '2026-11-26T02:02Z', null),
  ).toThrow(/CHECK constraint failed/);
  old.close();
  return path;
}

describe('migration 8: the file sighting source', () => {
  it('is the schema this sark-fed writes', () => {
    expect(SCHEMA_VERSION).toBe(8);
    expect(MIGRATIONS).toHaveLength(8);
  });

  it('keeps every sighting of a schema 7 file, as it was, its manual rows still manual', () => {
    const path = schema7File();
    const before = new Database(path, { readonly: true });
    const rows = before.prepare('SELECT * FROM node_sightings ORDER BY node_id, source').all();
    before.close();
    expect(rows).toHaveLength(3);

    const store = openState(path, { create: false });
    opened.push(store);
    expect(store.db.pragma('user_version', { simple: true })).toBe(8);
    expect(
      store.read((db) => db.prepare('SELECT * FROM node_sightings ORDER BY node_id, source').all()),
    ).toEqual(rows);
    expect(store.read((db) => listSightings(db).map((item) => item.source))).toEqual([
      'manual',
      'mdns',
      'manual',
    ]);
    expect(store.read((db) => db.pragma('integrity_check', { simple: true }))).toBe('ok');
    expect(store.read((db) => db.pragma('foreign_key_check'))).toEqual([]);
    // No table of the rebuild is left behind.
    expect(
      store.read((db) =>
        db
          .prepare("SELECT name FROM sqlite_schema WHERE name LIKE 'node_sightings%'")
          .pluck()
          .all(),
      ),
    ).toEqual(['node_sightings']);
  });

  it('accepts a file sighting beside a manual one of the same node; refuses an unknown source', () => {
    const store = openState(schema7File(), { create: false });
    opened.push(store);
    const now = new Date('2026-11-26T03:00:00.000Z');
    store.write((db) =>
      recordSightings(
        db,
        [
          {
            nodeId: 'node-b',
            endpoint: 'https://10.0.0.99:8443',
            trustDomain: null,
            fingerprint: null,
            source: 'file',
            ttlSeconds: 86_400,
          },
        ],
        now,
      ),
    );
    const sightings = store.read((db) => listSightings(db, 'node-b'));
    expect(sightings.map((item) => [item.source, item.endpoint, item.expiresAt])).toEqual([
      ['file', 'https://10.0.0.99:8443', null],
      ['manual', 'https://10.0.0.2:8443', null],
      ['mdns', 'https://127.0.0.1:9443', '2026-11-26T02:03:00.000Z'],
    ]);
    // Still STRICT, still one row per node and source, still a CHECK on the source.
    const insert = (source: string, endpoint: unknown = 'https://10.0.0.3:8443') =>
      store.write((db) =>
        db
          .prepare(
            `INSERT INTO node_sightings (node_id, source, endpoint, seen_at) VALUES (?, ?, ?, ?)`,
          )
          .run('node-b', source, endpoint, now.toISOString()),
      );
    expect(() => insert('carrier-pigeon')).toThrow(/CHECK constraint failed/);
    expect(() => insert('file')).toThrow(/UNIQUE constraint failed/);
    expect(() => insert('dns-sd', Buffer.from('x'))).toThrow(
      /cannot store BLOB value in TEXT column/,
    );
    expect(store.read((db) => listSightings(db, 'node-b'))).toHaveLength(3);
  });

  it('a new state file gets the same table', () => {
    const store = openState(join(tempDir(), 'state.db'), { create: true });
    opened.push(store);
    const sql = store.read(
      (db) =>
        db
          .prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'node_sightings'")
          .pluck()
          .get() as string,
    );
    expect(sql).toContain("CHECK (source IN ('mdns', 'dns-sd', 'consul', 'manual', 'file'))");
    expect(sql).toMatch(/\) STRICT$/);
  });
});
