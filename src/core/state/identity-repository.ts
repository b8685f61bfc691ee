import type { NodeIdentity } from '../identity/node-identity.js';
import type { SqliteDatabase } from './database.js';

interface IdentityRow {
  node_id: string;
  trust_domain: string;
  spiffe_id: string;
  cert_chain_pem: string;
  key_path: string;
  endpoint: string | null;
  fingerprint: string;
  not_before: string;
  not_after: string;
}

export function loadIdentity(db: SqliteDatabase): NodeIdentity | undefined {
  const row = db.prepare('SELECT * FROM identity WHERE id = 1').get() as IdentityRow | undefined;
  if (!row) return undefined;
  return {
    nodeId: row.node_id,
    trustDomain: row.trust_domain,
    spiffeId: row.spiffe_id,
    certChainPem: row.cert_chain_pem,
    keyPath: row.key_path,
    endpoint: row.endpoint,
    fingerprint: row.fingerprint,
    notBefore: row.not_before,
    notAfter: row.not_after,
  };
}

/** Records the identity, replacing any previous one. Call inside StateStore.write. */
export function saveIdentity(db: SqliteDatabase, identity: NodeIdentity, now: Date): void {
  db.prepare(
    `INSERT INTO identity (id, node_id, trust_domain, spiffe_id, cert_chain_pem, key_path, endpoint,
       fingerprint, not_before, not_after, created_at, updated_at)
     VALUES (1, @nodeId, @trustDomain, @spiffeId, @certChainPem, @keyPath, @endpoint,
       @fingerprint, @notBefore, @notAfter, @now, @now)
     ON CONFLICT (id) DO UPDATE SET
       node_id = excluded.node_id, trust_domain = excluded.trust_domain,
       spiffe_id = excluded.spiffe_id, cert_chain_pem = excluded.cert_chain_pem,
       key_path = excluded.key_path, endpoint = excluded.endpoint,
       fingerprint = excluded.fingerprint, not_before = excluded.not_before,
       not_after = excluded.not_after, updated_at = excluded.updated_at`,
  ).run({ ...identity, now: now.toISOString() });
}
