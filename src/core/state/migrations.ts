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
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** PRAGMA application_id of a sark-fed state file: "SARF" in ASCII. */
export const APPLICATION_ID = 0x53415246;
