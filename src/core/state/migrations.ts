/**
 * Schema migrations, applied in order inside one BEGIN IMMEDIATE transaction. The index + 1 of a
 * migration is the `user_version` it leaves behind. Never edit a released migration: append one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the local node identity (a single row).
  `
  CREATE TABLE identity (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    node_id        TEXT NOT NULL,
    trust_domain   TEXT NOT NULL,
    spiffe_id      TEXT NOT NULL,
    cert_chain_pem TEXT NOT NULL,
    key_path       TEXT NOT NULL,
    endpoint       TEXT,
    fingerprint    TEXT NOT NULL,
    not_before     TEXT NOT NULL,
    not_after      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
  ) STRICT;
  `,
  // 2: trust anchors (each bound to one trust domain), imported CRLs, known peers and their
  // trust decisions, and node settings.
  `
  CREATE TABLE trust_anchors (
    fingerprint     TEXT PRIMARY KEY,
    trust_domain    TEXT NOT NULL,
    subject         TEXT NOT NULL,
    certificate_der BLOB NOT NULL,
    not_after       TEXT NOT NULL,
    added_at        TEXT NOT NULL
  ) STRICT;
  CREATE INDEX trust_anchors_by_domain ON trust_anchors (trust_domain);

  CREATE TABLE revocation_lists (
    issuer           TEXT NOT NULL,
    authority_key_id TEXT NOT NULL,
    crl_number       TEXT,
    this_update      TEXT NOT NULL,
    next_update      TEXT,
    revoked_count    INTEGER NOT NULL,
    der              BLOB NOT NULL,
    imported_at      TEXT NOT NULL,
    PRIMARY KEY (issuer, authority_key_id)
  ) STRICT;

  CREATE TABLE peers (
    node_id            TEXT PRIMARY KEY,
    trust_domain       TEXT NOT NULL,
    spiffe_id          TEXT NOT NULL,
    endpoint           TEXT,
    trust_level        TEXT NOT NULL DEFAULT 'untrusted'
                       CHECK (trust_level IN ('untrusted', 'pending', 'trusted', 'revoked')),
    pinned_fingerprint TEXT,
    certificate_pem    TEXT,
    trust_expires_at   TEXT,
    established_at     TEXT,
    revoked_at         TEXT,
    revoke_reason      TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
  ) STRICT;

  CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT;
  `,
  // 3: discovery: every sighting of a node by each method (kept per source, cached until its
  // TTL runs out; manual entries never expire), and the last health check of each node.
  `
  CREATE TABLE node_sightings (
    node_id      TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('mdns', 'dns-sd', 'consul', 'manual')),
    endpoint     TEXT NOT NULL,
    trust_domain TEXT,
    fingerprint  TEXT,
    seen_at      TEXT NOT NULL,
    expires_at   TEXT,
    PRIMARY KEY (node_id, source)
  ) STRICT;

  CREATE TABLE node_health (
    node_id    TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('online', 'degraded', 'offline')),
    latency_ms REAL,
    detail     TEXT,
    checked_at TEXT NOT NULL
  ) STRICT;
  `,
  // 4: invocation. The audit trail (append-only: triggers refuse UPDATE and DELETE; each row
  // hash-chained to the one before), circuit breakers shared by every process, the catalogs
  // peers advertise (the route cache) and the catalog this node's daemon serves.
  `
  CREATE TABLE audit_events (
    seq             INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    correlation_id  TEXT NOT NULL,
    time            TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    source_node     TEXT NOT NULL,
    target_node     TEXT NOT NULL,
    principal       TEXT NOT NULL,
    resource        TEXT NOT NULL,
    capability      TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'error', 'timeout')),
    status_code     INTEGER,
    error_code      TEXT,
    duration_us     INTEGER NOT NULL,
    request_sha256  TEXT,
    request_size    INTEGER,
    result_sha256   TEXT,
    result_size     INTEGER,
    receipt         TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
  ) STRICT;
  CREATE INDEX audit_by_correlation ON audit_events (correlation_id);
  CREATE INDEX audit_by_principal ON audit_events (principal, time);
  CREATE INDEX audit_by_resource ON audit_events (resource, capability, time);
  CREATE INDEX audit_by_source ON audit_events (source_node, time);
  CREATE INDEX audit_by_target ON audit_events (target_node, time);
  CREATE INDEX audit_by_time ON audit_events (time);
  CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
  CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

  CREATE TABLE circuit_breakers (
    node_id              TEXT PRIMARY KEY,
    state                TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    opened_at            TEXT,
    trial_started_at     TEXT,
    last_failure         TEXT,
    updated_at           TEXT NOT NULL
  ) STRICT;

  CREATE TABLE peer_catalogs (
    node_id     TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    catalog     TEXT NOT NULL,
    fetched_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (node_id, resource_id)
  ) STRICT;

  CREATE TABLE local_catalog (
    resource_id TEXT PRIMARY KEY,
    catalog     TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  ) STRICT;

  -- Counters of what short-lived CLI processes do (route lookups, discovery scans), kept here so
  -- that the daemon's /metrics can report them.
  CREATE TABLE metric_counters (
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (name, labels)
  ) STRICT;
  `,
  // 5: a revision number of everything peer authentication reads (anchors, CRLs, peers), kept
  // by triggers. The daemon notices other connections' commits by PRAGMA data_version, and its
  // own audit writer thread commits every few milliseconds: with this number it re-reads anchors
  // and CRLs only when one of these tables changed, not after every audit commit.
  `
  CREATE TABLE trust_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
  ) STRICT;
  INSERT INTO trust_revision (id, revision) VALUES (1, 0);
  CREATE TRIGGER trust_anchors_insert_revision AFTER INSERT ON trust_anchors
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER trust_anchors_update_revision AFTER UPDATE ON trust_anchors
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER trust_anchors_delete_revision AFTER DELETE ON trust_anchors
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER revocation_lists_insert_revision AFTER INSERT ON revocation_lists
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER revocation_lists_update_revision AFTER UPDATE ON revocation_lists
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER revocation_lists_delete_revision AFTER DELETE ON revocation_lists
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER peers_insert_revision AFTER INSERT ON peers
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER peers_update_revision AFTER UPDATE ON peers
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  CREATE TRIGGER peers_delete_revision AFTER DELETE ON peers
    BEGIN UPDATE trust_revision SET revision = revision + 1; END;
  `,
  // 6: the audit events that did not succeed, by outcome and time: `audit query --outcome
  // denied` walked the time index through every success to find them (seconds on a million
  // events). A partial index: successes, nearly every row the daemon writes, never enter it.
  `
  CREATE INDEX audit_unsuccessful ON audit_events (outcome, time) WHERE outcome <> 'success';
  `,
  // 7: the certificates this node and its peers held before: a renewal (init with a new
  // certificate, trust established again with a peer's new one) replaced the one the receipts
  // of earlier calls were signed with, and `audit verify` could no longer check them (nor tell
  // them, within a certificate's backdated notBefore, from forgeries). Triggers keep it, so no
  // writer of identity or peers can forget to.
  `
  CREATE TABLE retired_certificates (
    node_id         TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    spiffe_id       TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    retired_at      TEXT NOT NULL,
    PRIMARY KEY (node_id, fingerprint)
  ) STRICT;

  CREATE TRIGGER identity_retires_certificate AFTER UPDATE ON identity
    WHEN OLD.fingerprint IS NOT NEW.fingerprint
    BEGIN
      INSERT OR IGNORE INTO retired_certificates
        VALUES (OLD.node_id, OLD.fingerprint, OLD.spiffe_id, OLD.cert_chain_pem,
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    END;
  CREATE TRIGGER peers_retire_certificate AFTER UPDATE ON peers
    WHEN OLD.certificate_pem IS NOT NULL AND OLD.pinned_fingerprint IS NOT NULL
      AND OLD.pinned_fingerprint IS NOT NEW.pinned_fingerprint
    BEGIN
      INSERT OR IGNORE INTO retired_certificates
        VALUES (OLD.node_id, OLD.pinned_fingerprint, OLD.spiffe_id, OLD.certificate_pem,
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    END;
  CREATE TRIGGER peers_delete_retires_certificate AFTER DELETE ON peers
    WHEN OLD.certificate_pem IS NOT NULL AND OLD.pinned_fingerprint IS NOT NULL
    BEGIN
      INSERT OR IGNORE INTO retired_certificates
        VALUES (OLD.node_id, OLD.pinned_fingerprint, OLD.spiffe_id, OLD.certificate_pem,
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    END;
  `,
  // 8: a sighting kind of its own for nodes files. A scan that read a nodes file (--file,
  // FEDERATION_NODES) saved its entries as 'manual' sightings, the kind `nodes add` records, and
  // a node has one sighting per source: a file replaced what the operator typed with `nodes add`
  // (endpoint, trust domain, fingerprint), and the other way round. File entries are now
  // 'file' sightings. SQLite cannot alter a CHECK constraint, so the table is rebuilt
  // (https://sqlite.org/lang_altertable.html#otheralter): nothing refers to it (no foreign key,
  // index, trigger or view besides its primary key). Existing rows keep their source: which
  // 'manual' rows came from a file is not recorded, so they all stay 'manual' (added by hand).
  `
  CREATE TABLE node_sightings_new (
    node_id      TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('mdns', 'dns-sd', 'consul', 'manual', 'file')),
    endpoint     TEXT NOT NULL,
    trust_domain TEXT,
    fingerprint  TEXT,
    seen_at      TEXT NOT NULL,
    expires_at   TEXT,
    PRIMARY KEY (node_id, source)
  ) STRICT;
  INSERT INTO node_sightings_new
      (node_id, source, endpoint, trust_domain, fingerprint, seen_at, expires_at)
    SELECT node_id, source, endpoint, trust_domain, fingerprint, seen_at, expires_at
    FROM node_sightings;
  DROP TABLE node_sightings;
  ALTER TABLE node_sightings_new RENAME TO node_sightings;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** PRAGMA application_id of a sark-fed state file: "SARF" in ASCII. */
export const APPLICATION_ID = 0x53415246;
