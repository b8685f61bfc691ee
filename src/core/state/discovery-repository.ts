import type { DiscoveredNode, SightingSource } from '../discovery/types.js';
import { nodeSpiffeId } from '../identity/spiffe.js';
import type { SqliteDatabase } from './database.js';
import { findPeer, savePeer } from './trust-repository.js';

export type HealthStatus = 'online' | 'degraded' | 'offline';

/** One source's last sighting of a node, as stored. */
export interface Sighting {
  nodeId: string;
  /** The method; for the manual method, `manual` (`nodes add`) or `file` (a nodes file). */
  source: SightingSource;
  endpoint: string;
  trustDomain: string | null;
  fingerprint: string | null;
  seenAt: string;
  /** Null for `manual` and `file` entries, which stay until removed. */
  expiresAt: string | null;
}

export interface NodeHealth {
  nodeId: string;
  status: HealthStatus;
  latencyMs: number | null;
  detail: string | null;
  checkedAt: string;
}

/** What recording a scan did, for the scan's report. */
export interface RecordOutcome {
  /** Nodes seen for the first time, now recorded as untrusted peers. */
  added: string[];
  /** Sightings whose trust domain contradicts what this node already knows: not recorded. */
  conflicts: Array<{ nodeId: string; known: string; seen: string; source: SightingSource }>;
}

/** Sightings of these sources never expire by TTL: they stay until `nodes remove`. */
export function isWrittenDown(source: SightingSource): boolean {
  return source === 'manual' || source === 'file';
}

/**
 * Records sightings in one transaction (call inside StateStore.write): each is kept per source,
 * and a node seen with a trust domain for the first time becomes an untrusted peer. Discovery
 * never changes a trust decision, and never rebinds a known node to another trust domain. A
 * nodes file's entry never moves the endpoint of a node the operator recorded by hand: what was
 * typed with `nodes add` (a `manual` sighting) wins over a file.
 */
export function recordSightings(
  db: SqliteDatabase,
  sightings: readonly DiscoveredNode[],
  now: Date,
): RecordOutcome {
  const outcome: RecordOutcome = { added: [], conflicts: [] };
  const upsert = db.prepare(
    `INSERT INTO node_sightings (node_id, source, endpoint, trust_domain, fingerprint, seen_at,
       expires_at)
     VALUES (@nodeId, @source, @endpoint, @trustDomain, @fingerprint, @seenAt, @expiresAt)
     ON CONFLICT (node_id, source) DO UPDATE SET endpoint = excluded.endpoint,
       trust_domain = excluded.trust_domain, fingerprint = excluded.fingerprint,
       seen_at = excluded.seen_at, expires_at = excluded.expires_at`,
  );
  const handMade = db
    .prepare("SELECT endpoint FROM node_sightings WHERE node_id = ? AND source = 'manual'")
    .pluck();
  const stamp = now.toISOString();
  for (const node of sightings) {
    const known = findPeer(db, node.nodeId);
    if (known && node.trustDomain !== null && known.trustDomain !== node.trustDomain) {
      outcome.conflicts.push({
        nodeId: node.nodeId,
        known: known.trustDomain,
        seen: node.trustDomain,
        source: node.source,
      });
      continue;
    }
    upsert.run({
      nodeId: node.nodeId,
      source: node.source,
      endpoint: node.endpoint,
      trustDomain: node.trustDomain,
      fingerprint: node.fingerprint,
      seenAt: node.seenAt ?? stamp,
      expiresAt: isWrittenDown(node.source)
        ? null
        : new Date(now.getTime() + node.ttlSeconds * 1000).toISOString(),
    });
    // Where the operator said by hand the node is, when a file says otherwise. (A `manual`
    // sighting is only ever `nodes add`'s, or one a scan read back from this table.)
    const byHand =
      node.source === 'file' ? (handMade.get(node.nodeId) as string | undefined) : undefined;
    if (!known && node.trustDomain !== null) {
      savePeer(db, {
        nodeId: node.nodeId,
        trustDomain: node.trustDomain,
        spiffeId: nodeSpiffeId(node.trustDomain, node.nodeId),
        endpoint: byHand ?? node.endpoint,
        trustLevel: 'untrusted',
        pinnedFingerprint: null,
        certificatePem: null,
        trustExpiresAt: null,
        establishedAt: null,
        revokedAt: null,
        revokeReason: null,
        createdAt: stamp,
        updatedAt: stamp,
      });
      if (!outcome.added.includes(node.nodeId)) outcome.added.push(node.nodeId);
    } else if (
      known &&
      known.trustLevel === 'untrusted' &&
      known.endpoint !== node.endpoint &&
      byHand === undefined
    ) {
      // An untrusted node that moved: follow it. A trusted node's endpoint changes only through
      // `trust establish` or `nodes add`, so a spoofed announcement cannot redirect its traffic;
      // and a file does not move a node whose endpoint was recorded by hand.
      savePeer(db, { ...known, endpoint: node.endpoint, updatedAt: stamp });
    }
  }
  return outcome;
}

export function listSightings(db: SqliteDatabase, nodeId?: string): Sighting[] {
  const rows = (
    nodeId === undefined
      ? db.prepare('SELECT * FROM node_sightings ORDER BY node_id, source').all()
      : db.prepare('SELECT * FROM node_sightings WHERE node_id = ? ORDER BY source').all(nodeId)
  ) as SightingRow[];
  return rows.map(sightingFromRow);
}

/** Cached sightings of these sources still within their TTL (manual and file ones always are). */
export function freshSightings(
  db: SqliteDatabase,
  sources: readonly SightingSource[],
  now: Date,
): Sighting[] {
  const stamp = now.toISOString();
  return listSightings(db).filter(
    (sighting) =>
      sources.includes(sighting.source) &&
      (sighting.expiresAt === null || sighting.expiresAt > stamp),
  );
}

/** Removes a node's sightings (all, or one source's); returns how many rows went. */
export function deleteSightings(
  db: SqliteDatabase,
  nodeId: string,
  source?: SightingSource,
): number {
  const result =
    source === undefined
      ? db.prepare('DELETE FROM node_sightings WHERE node_id = ?').run(nodeId)
      : db
          .prepare('DELETE FROM node_sightings WHERE node_id = ? AND source = ?')
          .run(nodeId, source);
  return result.changes;
}

export function saveHealth(db: SqliteDatabase, health: NodeHealth): void {
  db.prepare(
    `INSERT INTO node_health (node_id, status, latency_ms, detail, checked_at)
     VALUES (@nodeId, @status, @latencyMs, @detail, @checkedAt)
     ON CONFLICT (node_id) DO UPDATE SET status = excluded.status,
       latency_ms = excluded.latency_ms, detail = excluded.detail, checked_at = excluded.checked_at`,
  ).run(health);
}

export function deleteHealth(db: SqliteDatabase, nodeId: string): boolean {
  return db.prepare('DELETE FROM node_health WHERE node_id = ?').run(nodeId).changes > 0;
}

export function listHealth(db: SqliteDatabase): NodeHealth[] {
  return (db.prepare('SELECT * FROM node_health ORDER BY node_id').all() as HealthRow[]).map(
    (row) => ({
      nodeId: row.node_id,
      status: row.status,
      latencyMs: row.latency_ms,
      detail: row.detail,
      checkedAt: row.checked_at,
    }),
  );
}

interface SightingRow {
  node_id: string;
  source: SightingSource;
  endpoint: string;
  trust_domain: string | null;
  fingerprint: string | null;
  seen_at: string;
  expires_at: string | null;
}

interface HealthRow {
  node_id: string;
  status: HealthStatus;
  latency_ms: number | null;
  detail: string | null;
  checked_at: string;
}

function sightingFromRow(row: SightingRow): Sighting {
  return {
    nodeId: row.node_id,
    source: row.source,
    endpoint: row.endpoint,
    trustDomain: row.trust_domain,
    fingerprint: row.fingerprint,
    seenAt: row.seen_at,
    expiresAt: row.expires_at,
  };
}
