import type { CatalogResource } from '../core/protocol/schemas.js';
import type { SqliteDatabase } from '../core/state/database.js';

/**
 * The catalog this node's daemon serves to itself, kept in the state file's `local_catalog`
 * table while the daemon runs, so that the CLI's `route` can offer the local node as a candidate
 * without calling it. One row a resource; `catalog` is the CatalogResource JSON of the wire.
 */
export function replaceLocalCatalog(
  db: SqliteDatabase,
  catalog: readonly CatalogResource[],
  now: Date,
): void {
  db.prepare('DELETE FROM local_catalog').run();
  const insert = db.prepare(
    'INSERT INTO local_catalog (resource_id, catalog, updated_at) VALUES (?, ?, ?)',
  );
  for (const resource of catalog) {
    insert.run(resource.id, JSON.stringify(resource), now.toISOString());
  }
}

export function clearLocalCatalog(db: SqliteDatabase): void {
  db.prepare('DELETE FROM local_catalog').run();
}
