import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents } from '../../../src/core/audit/events.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from '../../../src/core/state/migrations.js';
import {
  deleteAnchor,
  deletePeer,
  insertAnchor,
  listAnchors,
  listPeers,
  savePeer,
  upsertRevocationList,
  type Peer,
  type TrustAnchor,
} from '../../../src/core/state/trust-repository.js';
import { TrustView } from '../../../src/node/trust-view.js';
import { inboundEvent } from '../../helpers/audit-events.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * The daemon's trust view on a real state file, with a second connection standing for the CLI
 * and for the daemon's audit writer thread (each its own connection, as in `serve`).
 */

const opened: StateStore[] = [];
afterEach(() => {
  for (const store of opened.splice(0)) store.close();
});

function twoConnections(): { daemon: StateStore; other: StateStore } {
  const path = join(tempDir(), 'state.db');
  const daemon = openState(path, { create: true });
  const other = openState(path, { create: false });
  opened.push(daemon, other);
  return { daemon, other };
}

const anchor = (fingerprint: string): TrustAnchor => ({
  fingerprint,
  trustDomain: 'org-a.example',
  subject: 'CN=org-a CA',
  certificateDer: Buffer.from(fingerprint),
  notAfter: '2030-01-01T00:00:00.000Z',
  addedAt: '2026-11-26T00:00:00.000Z',
});

const peer = (trustLevel: Peer['trustLevel']): Peer => ({
  nodeId: 'node-a',
  trustDomain: 'org-a.example',
  spiffeId: 'spiffe://org-a.example/sark/node/node-a',
  endpoint: 'https://127.0.0.1:7443',
  trustLevel,
  pinnedFingerprint: 'f'.repeat(64),
  certificatePem: null,
  trustExpiresAt: null,
  establishedAt: null,
  revokedAt: null,
  revokeReason: null,
  createdAt: '2026-11-26T00:00:00.000Z',
  updatedAt: '2026-11-26T00:00:00.000Z',
});

const auditEvent = inboundEvent();

const revision = (store: StateStore) =>
  store.read((db) => db.prepare('SELECT revision FROM trust_revision').pluck().get());

/** Records the SQL every read of the store prepares (statement() caches per connection object). */
function recordReads(store: StateStore): string[] {
  const prepared: string[] = [];
  const read = store.read.bind(store);
  store.read = (fn) =>
    read((db) =>
      fn(
        new Proxy(db, {
          get(target, property) {
            if (property === 'prepare') {
              return (sql: string) => {
                prepared.push(sql.trim());
                return target.prepare(sql);
              };
            }
            const value: unknown = Reflect.get(target, property);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
      ),
    );
  return prepared;
}

describe('trust_revision (migration 5)', () => {
  it('is bumped by every change to anchors, CRLs and peers, and by nothing else', () => {
    const { daemon } = twoConnections();
    expect(revision(daemon)).toBe(0);
    const changes: Array<(db: Parameters<Parameters<StateStore['write']>[0]>[0]) => unknown> = [
      (db) => insertAnchor(db, anchor('a1')),
      (db) => deleteAnchor(db, 'a1'),
      (db) =>
        upsertRevocationList(db, {
          issuer: 'CN=org-a CA',
          authorityKeyId: 'k1',
          crlNumber: '1',
          thisUpdate: '2026-11-26T00:00:00.000Z',
          nextUpdate: null,
          revokedCount: 0,
          der: Buffer.from('crl-1'),
          importedAt: '2026-11-26T00:00:00.000Z',
        }),
      (db) => savePeer(db, peer('trusted')),
      (db) => savePeer(db, peer('revoked')), // an upsert: an UPDATE
      (db) => deletePeer(db, 'node-a'),
    ];
    for (const [index, change] of changes.entries()) {
      daemon.write(change);
      expect(revision(daemon)).toBe(index + 1);
    }
    daemon.write((db) => appendEvents(db, [auditEvent]));
    expect(revision(daemon)).toBe(changes.length);
  });

  it('is added to a schema 4 file on open, its anchors, peers and audit rows kept', () => {
    const path = join(tempDir(), 'state.db');
    // A state file as sark-fed 4 left it: migrations 1-4, with trust and an audit row.
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    for (const migration of MIGRATIONS.slice(0, 4)) old.exec(migration);
    old.pragma(`application_id = ${APPLICATION_ID}`);
    old.pragma('user_version = 4');
    insertAnchor(old, anchor('a1'));
    savePeer(old, peer('trusted'));
    appendEvents(old, [auditEvent]);
    old.close();

    const store = openState(path, { create: false });
    opened.push(store);
    expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(revision(store)).toBe(0);
    expect(store.read((db) => listAnchors(db).map((kept) => kept.fingerprint))).toEqual(['a1']);
    expect(store.read((db) => listPeers(db).map((kept) => kept.trustLevel))).toEqual(['trusted']);
    expect(store.read((db) => db.prepare('SELECT count(*) FROM audit_events').pluck().get())).toBe(
      1,
    );
    store.write((db) => deleteAnchor(db, 'a1'));
    expect(revision(store)).toBe(1);
  });
});

describe("the daemon's trust view", () => {
  it('re-reads anchors and CRLs when another connection changed them, not after audit commits', () => {
    const { daemon, other } = twoConnections();
    other.write((db) => insertAnchor(db, anchor('a1')));
    const view = new TrustView(daemon);
    const first = view.refresh();
    expect(view.anchorsFor('org-a.example')).toEqual([Buffer.from('a1')]);

    const prepared = recordReads(daemon);
    for (let commit = 0; commit < 3; commit++) {
      other.write((db) => appendEvents(db, [auditEvent]));
      expect(view.refresh()).toBe(first);
    }
    expect(prepared.filter((sql) => /trust_anchors|revocation_lists/.test(sql))).toEqual([]);
    expect(prepared).toContain('SELECT revision FROM trust_revision');

    other.write((db) => insertAnchor(db, anchor('a2')));
    expect(view.refresh()).not.toBe(first);
    expect(view.anchorsFor('org-a.example')).toHaveLength(2);
    expect(prepared.some((sql) => sql.includes('trust_anchors'))).toBe(true);
  });

  it('sees a peer revoked by another connection on the next refresh', () => {
    const { daemon, other } = twoConnections();
    other.write((db) => savePeer(db, peer('trusted')));
    const view = new TrustView(daemon);
    view.refresh();
    expect(view.peer('node-a')?.trustLevel).toBe('trusted');
    other.write((db) => appendEvents(db, [auditEvent]));
    view.refresh();
    expect(view.peer('node-a')?.trustLevel).toBe('trusted');
    other.write((db) => savePeer(db, { ...peer('revoked'), revokeReason: 'key compromise' }));
    view.refresh();
    expect(view.peer('node-a')?.trustLevel).toBe('revoked');
  });
});
