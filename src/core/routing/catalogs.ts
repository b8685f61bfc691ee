import type { CatalogResource } from '../protocol/schemas.js';
import type { SqliteDatabase } from '../state/database.js';
import { readCatalogResource } from './wire.js';

/**
 * The route cache (DESIGN §6): what each peer's `resources` endpoint listed for this node, one
 * row per resource, kept until its TTL runs out. A row for the resource ID `*` (which no real
 * resource can carry) records when the whole listing was fetched and which IDs it held, so that
 * "this peer does not serve X" is cached as well as "it does".
 */
export const LISTING_ROW = '*';

/** How long a peer's catalog is trusted before it is asked again. */
export const CATALOG_TTL_MS = 60_000;

export interface CachedListing {
  /** The peer's resources by ID, as it listed them for this node. */
  resources: Map<string, CatalogResource>;
  fetchedAt: string;
  expiresAt: string;
  /**
   * How long the fetch took, in ms: the latency route ranks by when no health check measured
   * one, kept so that every command ranks a node alike while its listing is cached (a command
   * that fetched one listing and read another from the cache ranked the fetched one first).
   */
  latencyMs: number | null;
}

/** The unexpired listing cached for a peer, or undefined when it must be fetched. */
export function cachedListing(
  db: SqliteDatabase,
  nodeId: string,
  now: Date,
): CachedListing | undefined {
  const rows = db
    .prepare(
      'SELECT resource_id, catalog, fetched_at, expires_at FROM peer_catalogs WHERE node_id = ?',
    )
    .all(nodeId) as Array<{
    resource_id: string;
    catalog: string;
    fetched_at: string;
    expires_at: string;
  }>;
  const marker = rows.find((row) => row.resource_id === LISTING_ROW);
  if (!marker || marker.expires_at <= now.toISOString()) return undefined;
  const resources = new Map<string, CatalogResource>();
  for (const row of rows) {
    if (row.resource_id === LISTING_ROW) continue;
    const parsed = parseCatalog(row.catalog);
    if (parsed) resources.set(parsed.id, parsed);
  }
  return {
    resources,
    fetchedAt: marker.fetched_at,
    expiresAt: marker.expires_at,
    latencyMs: markerLatency(marker.catalog),
  };
}

/**
 * The listing row's JSON: `{"ids": [...], "latencyMs": n}`; before the latency was kept, a bare
 * array of IDs (no latency).
 */
function markerLatency(text: string): number | null {
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    const latency = (value as { latencyMs?: unknown }).latencyMs;
    return typeof latency === 'number' && Number.isFinite(latency) && latency >= 0 ? latency : null;
  } catch {
    return null;
  }
}

/** Replaces a peer's cached listing (call inside StateStore.write). */
export function saveListing(
  db: SqliteDatabase,
  nodeId: string,
  resources: readonly CatalogResource[],
  now: Date,
  ttlMs = CATALOG_TTL_MS,
  latencyMs: number | null = null,
): void {
  const fetchedAt = now.toISOString();
  const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
  db.prepare('DELETE FROM peer_catalogs WHERE node_id = ?').run(nodeId);
  const insert = db.prepare(
    `INSERT INTO peer_catalogs (node_id, resource_id, catalog, fetched_at, expires_at)
     VALUES (?, ?, ?, ?, ?)`,
  );
  insert.run(
    nodeId,
    LISTING_ROW,
    JSON.stringify({ ids: resources.map((resource) => resource.id), latencyMs }),
    fetchedAt,
    expiresAt,
  );
  for (const resource of resources) {
    insert.run(nodeId, resource.id, JSON.stringify(resource), fetchedAt, expiresAt);
  }
}

/** Forgets a peer's listing, so the next route asks it again (it answered 404 for a resource). */
export function forgetListing(db: SqliteDatabase, nodeId: string): void {
  db.prepare('DELETE FROM peer_catalogs WHERE node_id = ?').run(nodeId);
}

/** One resource of a peer's cached listing, whatever its age (for idempotency with --node). */
export function cachedResource(
  db: SqliteDatabase,
  nodeId: string,
  resourceId: string,
): CatalogResource | undefined {
  const row = db
    .prepare('SELECT catalog FROM peer_catalogs WHERE node_id = ? AND resource_id = ?')
    .pluck()
    .get(nodeId, resourceId) as string | undefined;
  return row === undefined ? undefined : parseCatalog(row);
}

/** What this node's own daemon serves (it writes local_catalog when it starts). */
export function localResource(db: SqliteDatabase, resourceId: string): CatalogResource | undefined {
  const row = db
    .prepare('SELECT catalog FROM local_catalog WHERE resource_id = ?')
    .pluck()
    .get(resourceId) as string | undefined;
  return row === undefined ? undefined : parseCatalog(row, resourceId);
}

function parseCatalog(text: string, id?: string): CatalogResource | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    // The daemon may store the resource without repeating its ID; the row's key says it.
    const candidate =
      id !== undefined && value !== null && typeof value === 'object' && !('id' in value)
        ? { ...value, id }
        : value;
    return readCatalogResource(candidate);
  } catch {
    return undefined;
  }
}
