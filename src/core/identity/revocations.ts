import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { errnoOf, OperationError, UsageError } from '../errors.js';
import { summarizeCertificate } from './certificate.js';
import { certificateFingerprint } from './fingerprint.js';
import type { CertificateAuthority } from './pki.js';
import {
  REVOCATION_REASONS,
  REVOCATION_RECORD_FILE,
  type RevocationReason,
} from './revocation-reasons.js';

/**
 * The revocations a development CA has made, kept in its folder beside ca.pem and ca.key (as
 * `openssl ca` keeps index.txt): every CRL the CA writes lists all of them, so revoking one more
 * certificate never quietly drops an earlier one from the next CRL, and a CRL can be renewed
 * before its next update without the revoked certificates' files at hand.
 */
export interface RevocationEntry {
  /** Lower-case hex, as the CRL and `pki inspect` show it. */
  serialNumber: string;
  subject: string;
  revokedAt: string;
  reason: RevocationReason | null;
  /** The certificate file it was revoked from, as given then. */
  source: string;
}

export interface RevocationRecord {
  /** SHA-256 fingerprint of the CA certificate the record belongs to. */
  ca: string;
  revoked: RevocationEntry[];
}

const RecordFile = z
  .object({
    version: z.literal(1),
    ca: z.string().regex(/^[0-9a-f]{64}$/),
    revoked: z.array(
      z
        .object({
          serialNumber: z.string().regex(/^[0-9a-f]+$/),
          subject: z.string(),
          revokedAt: z.iso.datetime(),
          reason: z.enum(Object.keys(REVOCATION_REASONS) as [RevocationReason]).nullable(),
          source: z.string(),
        })
        .strict(),
    ),
  })
  .strict();

export function revocationRecordPath(caFolder: string): string {
  return join(caFolder, REVOCATION_RECORD_FILE);
}

/**
 * The CA's record, or an empty one when it has revoked nothing yet. A record that cannot be read,
 * is damaged, or belongs to another CA is refused: ignoring it would un-revoke certificates.
 */
export function readRevocationRecord(caFolder: string, ca: CertificateAuthority): RevocationRecord {
  const path = revocationRecordPath(caFolder);
  const fingerprint = certificateFingerprint(ca.certificateDer);
  if (!existsSync(path)) return emptyRevocationRecord(ca);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new OperationError('REVOCATIONS_UNREADABLE', `cannot read ${path} (${errnoOf(error)})`, {
      cause: error,
      hint: 'check the permissions of the CA folder',
    });
  }
  let parsed: z.infer<typeof RecordFile>;
  try {
    parsed = RecordFile.parse(JSON.parse(text));
  } catch {
    throw new UsageError('REVOCATIONS_DAMAGED', `${path} is not a revocation record of sark-fed`, {
      hint: `restore it from a backup: it lists what this CA revoked, and every CRL it writes repeats it`,
    });
  }
  if (parsed.ca !== fingerprint) {
    throw new UsageError('REVOCATIONS_OF_ANOTHER_CA', `${path} belongs to another CA`, {
      hint: 'move it away if this CA replaced that one; otherwise give the folder of the CA that made it',
    });
  }
  return { ca: parsed.ca, revoked: parsed.revoked };
}

/** The record of a CA that has revoked nothing yet. */
export function emptyRevocationRecord(ca: CertificateAuthority): RevocationRecord {
  return { ca: certificateFingerprint(ca.certificateDer), revoked: [] };
}

/** The record as written to the CA folder (pretty JSON, newest revocations last). */
export function revocationRecordText(record: RevocationRecord): string {
  return `${JSON.stringify({ version: 1, ca: record.ca, revoked: record.revoked }, null, 2)}\n`;
}

export interface RevocationRequest {
  der: Uint8Array;
  source: string;
}

export interface RevocationUpdate {
  record: RevocationRecord;
  /** The certificates this run revoked, in the order given. */
  added: RevocationEntry[];
  /** Certificates given again that the record already lists (kept with their first date). */
  already: RevocationEntry[];
}

/**
 * Adds certificates to the record. Each must have been issued by this CA and not be the CA
 * itself; one revoked before keeps its first date and reason.
 */
export function addRevocations(
  record: RevocationRecord,
  ca: CertificateAuthority,
  requests: readonly RevocationRequest[],
  reason: RevocationReason | null,
  now: Date,
): RevocationUpdate {
  const caCertificate = new NodeX509Certificate(ca.certificateDer);
  const bySerial = new Map(record.revoked.map((entry) => [entry.serialNumber, entry]));
  const added: RevocationEntry[] = [];
  const already: RevocationEntry[] = [];
  for (const { der, source } of requests) {
    // A self-signed CA "issued" itself: revoking it in its own CRL means nothing to a validator
    // (an anchor is trusted as such), so it is refused rather than written.
    if (Buffer.from(der).equals(Buffer.from(ca.certificateDer))) {
      throw new UsageError('REVOKES_ITSELF', `${source} is the CA's own certificate`, {
        hint: 'a CA cannot revoke itself in its CRL: to stop trusting it, each node removes the anchor (`sark-fed trust anchor remove`)',
      });
    }
    if (!new NodeX509Certificate(der).checkIssued(caCertificate)) {
      throw new UsageError('NOT_ISSUED_BY_CA', `${source} was not issued by this CA`, {
        hint: 'a CRL can only revoke certificates of the CA that signs it',
      });
    }
    const summary = summarizeCertificate(der);
    const known = bySerial.get(summary.serialNumber);
    if (known) {
      if (!already.includes(known) && !added.includes(known)) already.push(known);
      continue;
    }
    const entry: RevocationEntry = {
      serialNumber: summary.serialNumber,
      subject: summary.subject,
      revokedAt: now.toISOString(),
      reason,
      source,
    };
    bySerial.set(entry.serialNumber, entry);
    added.push(entry);
  }
  return { record: { ca: record.ca, revoked: [...record.revoked, ...added] }, added, already };
}
