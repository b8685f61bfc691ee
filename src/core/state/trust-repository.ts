import type { SqliteDatabase } from './database.js';
import { statement } from './statements.js';

export type TrustLevel = 'untrusted' | 'pending' | 'trusted' | 'revoked';

export interface TrustAnchor {
  fingerprint: string;
  trustDomain: string;
  subject: string;
  certificateDer: Buffer;
  notAfter: string;
  addedAt: string;
}

export interface StoredRevocationList {
  issuer: string;
  authorityKeyId: string;
  crlNumber: string | null;
  thisUpdate: string;
  nextUpdate: string | null;
  revokedCount: number;
  der: Buffer;
  importedAt: string;
}

export interface Peer {
  nodeId: string;
  trustDomain: string;
  spiffeId: string;
  endpoint: string | null;
  trustLevel: TrustLevel;
  pinnedFingerprint: string | null;
  certificatePem: string | null;
  trustExpiresAt: string | null;
  establishedAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
  createdAt: string;
  updatedAt: string;
}

// ---- anchors ---------------------------------------------------------------------------------

export function listAnchors(db: SqliteDatabase, trustDomain?: string): TrustAnchor[] {
  const rows = (
    trustDomain === undefined
      ? statement(
          db,
          'SELECT * FROM trust_anchors ORDER BY trust_domain, subject, fingerprint',
        ).all()
      : db
          .prepare('SELECT * FROM trust_anchors WHERE trust_domain = ? ORDER BY fingerprint')
          .all(trustDomain)
  ) as AnchorRow[];
  return rows.map(anchorFromRow);
}

export function findAnchor(db: SqliteDatabase, fingerprint: string): TrustAnchor | undefined {
  const row = db.prepare('SELECT * FROM trust_anchors WHERE fingerprint = ?').get(fingerprint) as
    AnchorRow | undefined;
  return row ? anchorFromRow(row) : undefined;
}

export function insertAnchor(db: SqliteDatabase, anchor: TrustAnchor): void {
  db.prepare(
    `INSERT INTO trust_anchors (fingerprint, trust_domain, subject, certificate_der, not_after, added_at)
     VALUES (@fingerprint, @trustDomain, @subject, @certificateDer, @notAfter, @addedAt)`,
  ).run(anchor);
}

export function deleteAnchor(db: SqliteDatabase, fingerprint: string): boolean {
  return db.prepare('DELETE FROM trust_anchors WHERE fingerprint = ?').run(fingerprint).changes > 0;
}

// ---- revocation lists ------------------------------------------------------------------------

export function listRevocationLists(db: SqliteDatabase): StoredRevocationList[] {
  const rows = statement(
    db,
    'SELECT * FROM revocation_lists ORDER BY issuer, authority_key_id',
  ).all() as RevocationListRow[];
  return rows.map(revocationListFromRow);
}

export function findRevocationList(
  db: SqliteDatabase,
  issuer: string,
  authorityKeyId: string,
): StoredRevocationList | undefined {
  const row = db
    .prepare('SELECT * FROM revocation_lists WHERE issuer = ? AND authority_key_id = ?')
    .get(issuer, authorityKeyId) as RevocationListRow | undefined;
  return row ? revocationListFromRow(row) : undefined;
}

/** Stores a CRL, replacing the one of the same issuer. */
export function upsertRevocationList(db: SqliteDatabase, list: StoredRevocationList): void {
  db.prepare(
    `INSERT INTO revocation_lists (issuer, authority_key_id, crl_number, this_update, next_update,
       revoked_count, der, imported_at)
     VALUES (@issuer, @authorityKeyId, @crlNumber, @thisUpdate, @nextUpdate, @revokedCount, @der,
       @importedAt)
     ON CONFLICT (issuer, authority_key_id) DO UPDATE SET
       crl_number = excluded.crl_number, this_update = excluded.this_update,
       next_update = excluded.next_update, revoked_count = excluded.revoked_count,
       der = excluded.der, imported_at = excluded.imported_at`,
  ).run(list);
}

// ---- peers -----------------------------------------------------------------------------------

export function listPeers(db: SqliteDatabase, level?: TrustLevel): Peer[] {
  const rows = (
    level === undefined
      ? db.prepare('SELECT * FROM peers ORDER BY node_id').all()
      : db.prepare('SELECT * FROM peers WHERE trust_level = ? ORDER BY node_id').all(level)
  ) as PeerRow[];
  return rows.map(peerFromRow);
}

export function findPeer(db: SqliteDatabase, nodeId: string): Peer | undefined {
  const row = statement(db, 'SELECT * FROM peers WHERE node_id = ?').get(nodeId) as
    PeerRow | undefined;
  return row ? peerFromRow(row) : undefined;
}

export function deletePeer(db: SqliteDatabase, nodeId: string): boolean {
  return db.prepare('DELETE FROM peers WHERE node_id = ?').run(nodeId).changes > 0;
}

/** Inserts or replaces every column of a peer. Call inside StateStore.write. */
export function savePeer(db: SqliteDatabase, peer: Peer): void {
  db.prepare(
    `INSERT INTO peers (node_id, trust_domain, spiffe_id, endpoint, trust_level, pinned_fingerprint,
       certificate_pem, trust_expires_at, established_at, revoked_at, revoke_reason, created_at,
       updated_at)
     VALUES (@nodeId, @trustDomain, @spiffeId, @endpoint, @trustLevel, @pinnedFingerprint,
       @certificatePem, @trustExpiresAt, @establishedAt, @revokedAt, @revokeReason, @createdAt,
       @updatedAt)
     ON CONFLICT (node_id) DO UPDATE SET
       trust_domain = excluded.trust_domain, spiffe_id = excluded.spiffe_id,
       endpoint = excluded.endpoint, trust_level = excluded.trust_level,
       pinned_fingerprint = excluded.pinned_fingerprint, certificate_pem = excluded.certificate_pem,
       trust_expires_at = excluded.trust_expires_at, established_at = excluded.established_at,
       revoked_at = excluded.revoked_at, revoke_reason = excluded.revoke_reason,
       updated_at = excluded.updated_at`,
  ).run(peer);
}

export interface TrustCounts {
  anchors: number;
  revocationLists: number;
  peers: Record<TrustLevel, number>;
}

/** How many anchors, CRLs and peers at each trust level the state file holds (for `status`). */
export function countTrust(db: SqliteDatabase): TrustCounts {
  const peers: Record<TrustLevel, number> = { trusted: 0, pending: 0, untrusted: 0, revoked: 0 };
  const rows = db
    .prepare('SELECT trust_level AS level, count(*) AS n FROM peers GROUP BY trust_level')
    .all() as { level: TrustLevel; n: number }[];
  for (const row of rows) peers[row.level] = row.n;
  const count = (table: string) =>
    (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  return { anchors: count('trust_anchors'), revocationLists: count('revocation_lists'), peers };
}

// ---- settings --------------------------------------------------------------------------------

export function getSetting(db: SqliteDatabase, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as
    { value: string } | undefined;
  return row?.value;
}

export function setSetting(db: SqliteDatabase, key: string, value: string): void {
  db.prepare(
    'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  ).run(key, value);
}

// ---- rows ------------------------------------------------------------------------------------

interface AnchorRow {
  fingerprint: string;
  trust_domain: string;
  subject: string;
  certificate_der: Buffer;
  not_after: string;
  added_at: string;
}

interface RevocationListRow {
  issuer: string;
  authority_key_id: string;
  crl_number: string | null;
  this_update: string;
  next_update: string | null;
  revoked_count: number;
  der: Buffer;
  imported_at: string;
}

interface PeerRow {
  node_id: string;
  trust_domain: string;
  spiffe_id: string;
  endpoint: string | null;
  trust_level: TrustLevel;
  pinned_fingerprint: string | null;
  certificate_pem: string | null;
  trust_expires_at: string | null;
  established_at: string | null;
  revoked_at: string | null;
  revoke_reason: string | null;
  created_at: string;
  updated_at: string;
}

function anchorFromRow(row: AnchorRow): TrustAnchor {
  return {
    fingerprint: row.fingerprint,
    trustDomain: row.trust_domain,
    subject: row.subject,
    certificateDer: row.certificate_der,
    notAfter: row.not_after,
    addedAt: row.added_at,
  };
}

function revocationListFromRow(row: RevocationListRow): StoredRevocationList {
  return {
    issuer: row.issuer,
    authorityKeyId: row.authority_key_id,
    crlNumber: row.crl_number,
    thisUpdate: row.this_update,
    nextUpdate: row.next_update,
    revokedCount: row.revoked_count,
    der: row.der,
    importedAt: row.imported_at,
  };
}

function peerFromRow(row: PeerRow): Peer {
  return {
    nodeId: row.node_id,
    trustDomain: row.trust_domain,
    spiffeId: row.spiffe_id,
    endpoint: row.endpoint,
    trustLevel: row.trust_level,
    pinnedFingerprint: row.pinned_fingerprint,
    certificatePem: row.certificate_pem,
    trustExpiresAt: row.trust_expires_at,
    establishedAt: row.established_at,
    revokedAt: row.revoked_at,
    revokeReason: row.revoke_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
