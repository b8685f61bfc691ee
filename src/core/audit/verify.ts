import { X509Certificate, verify, type KeyObject } from 'node:crypto';
import { signatureDigest } from '../identity/signing.js';
import { nodeIdOf, parseSpiffeId } from '../identity/spiffe.js';
import { canonicalJson } from '../protocol/canonical-json.js';
import type { SqliteDatabase } from '../state/database.js';
import { messageOf } from '../errors.js';
import { GENESIS_HASH, chainHash, eventFromRow, type AuditEvent, type AuditRow } from './events.js';
import { receiptClaims, sha256Hex, type Receipt } from './receipts.js';
import { UnreadableEventError } from './rows.js';
import { count } from '../plural.js';

/**
 * Checking what the audit trail holds (DESIGN §7): the hash chain row by row, and every stored
 * receipt against the certificate of the node that signed it. Nothing here writes.
 */

/** request_sha256 of a request the serving node refused without reading it: the hash of no bytes. */
const UNREAD_SHA256 = sha256Hex('');

/** What became of one event's receipt. */
export interface ReceiptCheck {
  /**
   * verified: signed by the serving node's certificate and saying what the event says;
   * invalid: it is not (reason says why); unknown-signer: no certificate of the serving node is
   * known here; none: the event carries no receipt (a refusal before calling, a call that got no
   * answer).
   */
  status: 'verified' | 'invalid' | 'unknown-signer' | 'none';
  /** Node ID of the node that must have signed it (the serving node), null without a receipt. */
  signer: string | null;
  reason: string | null;
}

interface Signer {
  nodeId: string;
  spiffeId: string;
  /**
   * Where the certificate comes from: this node's identity, the certificate pinned for a peer,
   * or one of them replaced since (retired_certificates, schema 7).
   */
  source: 'self' | 'pinned' | 'retired';
  certificatePem: string;
  /** When this state file took the certificate up (init, or trust established), if known. */
  heldSince: string | null;
}

/**
 * The certificates receipts are checked against: this node's own (it signs the receipts of the
 * calls it serves) and the certificate pinned for each peer. Public keys are parsed once.
 */
export class ReceiptSigners {
  private readonly keys = new Map<Signer, KeyObject | Error>();
  private readonly issued = new Map<Signer, number | undefined>();

  constructor(
    private readonly signers: ReadonlyMap<string, Signer>,
    private readonly retired: ReadonlyMap<string, readonly Signer[]> = new Map(),
  ) {}

  /** Reads this node's identity, every peer with a pinned certificate, and those they replaced. */
  static load(db: SqliteDatabase): ReceiptSigners {
    const signers = new Map<string, Signer>();
    const peers = db
      .prepare(
        `SELECT node_id, spiffe_id, certificate_pem, established_at FROM peers
         WHERE certificate_pem IS NOT NULL`,
      )
      .all() as Array<{
      node_id: string;
      spiffe_id: string;
      certificate_pem: string;
      established_at: string | null;
    }>;
    for (const peer of peers) {
      signers.set(peer.node_id, {
        nodeId: peer.node_id,
        spiffeId: peer.spiffe_id,
        source: 'pinned',
        certificatePem: peer.certificate_pem,
        heldSince: peer.established_at,
      });
    }
    const self = db
      .prepare('SELECT node_id, spiffe_id, cert_chain_pem, updated_at FROM identity WHERE id = 1')
      .get() as
      | { node_id: string; spiffe_id: string; cert_chain_pem: string; updated_at: string }
      | undefined;
    if (self) {
      signers.set(self.node_id, {
        nodeId: self.node_id,
        spiffeId: self.spiffe_id,
        source: 'self',
        certificatePem: self.cert_chain_pem,
        heldSince: self.updated_at,
      });
    }
    const retired = new Map<string, Signer[]>();
    const rows = db
      .prepare(
        `SELECT node_id, spiffe_id, certificate_pem FROM retired_certificates
         ORDER BY node_id, retired_at DESC`,
      )
      .all() as Array<{ node_id: string; spiffe_id: string; certificate_pem: string }>;
    for (const row of rows) {
      const list = retired.get(row.node_id) ?? [];
      list.push({
        nodeId: row.node_id,
        spiffeId: row.spiffe_id,
        source: 'retired',
        certificatePem: row.certificate_pem,
        heldSince: null,
      });
      retired.set(row.node_id, list);
    }
    return new ReceiptSigners(signers, retired);
  }

  /** Whether a certificate of this node is held here (its own, or one pinned for a peer). */
  holds(nodeId: string): boolean {
    return this.signers.has(nodeId);
  }

  /**
   * Checks the receipt an event carries. The serving node (the event's target) signs every
   * receipt, whichever side recorded the event: an outbound event holds the receipt the peer
   * returned, an inbound one the receipt this node issued. The certificate held now is tried
   * first, then those it replaced, newest first: receipts signed before a renewal verify too.
   */
  check(event: AuditEvent): ReceiptCheck {
    const receipt = event.receipt;
    if (receipt === null) return { status: 'none', signer: null, reason: null };
    const signerId = event.targetNode;
    const current = this.signers.get(signerId);
    const earlier = this.retired.get(signerId) ?? [];
    if (!current && earlier.length === 0) {
      return {
        status: 'unknown-signer',
        signer: signerId,
        reason: `no certificate of ${signerId} is known here`,
      };
    }
    let unreadable: string | undefined;
    for (const signer of current ? [current, ...earlier] : earlier) {
      const key = this.publicKey(signer);
      if (key instanceof Error) {
        unreadable ??= `the certificate of ${signerId} cannot be read (${key.message})`;
        continue;
      }
      if (!signatureMatches(receipt, key)) continue;
      const mismatch = claimMismatch(receipt, event, signer);
      if (mismatch) return { status: 'invalid', signer: signerId, reason: mismatch };
      return { status: 'verified', signer: signerId, reason: null };
    }
    if (current === undefined) {
      return {
        status: 'invalid',
        signer: signerId,
        reason: `its signature does not verify against any certificate ${signerId} held`,
      };
    }
    if (unreadable !== undefined && this.publicKey(current) instanceof Error) {
      return { status: 'invalid', signer: signerId, reason: unreadable };
    }
    const whose =
      current.source === 'self'
        ? "this node's certificate"
        : `the certificate pinned for ${signerId}`;
    // Signed before the certificate held now was taken up here, by one this state file does not
    // hold (a renewal from before schema 7 kept the certificates it replaced): not evidence of
    // tampering. Altering the timestamp to pass for it breaks the event's hash.
    const heldSince = this.heldSince(current);
    if (heldSince !== undefined && Date.parse(receipt.timestamp) < heldSince) {
      return {
        status: 'unknown-signer',
        signer: signerId,
        reason: `signed at ${receipt.timestamp}, before ${whose} was taken up here (${new Date(heldSince).toISOString()}): the certificate that signed it is not held`,
      };
    }
    return {
      status: 'invalid',
      signer: signerId,
      reason:
        `its signature does not verify against ${whose}` +
        (earlier.length > 0 ? ` nor ${count(earlier.length, 'certificate')} it replaced` : ''),
    };
  }

  /**
   * Since when the signer's current certificate signs here: the later of its notBefore (which a
   * CA backdates: pki issue by 5 minutes) and when this state file took it up (init, or trust
   * established with it), parsed once per signer: a trail from before a key renewal asks for
   * every receipt the old key signed, and parsing the certificate each time made `audit verify`
   * of a million such events take minutes.
   */
  private heldSince(signer: Signer): number | undefined {
    if (!this.issued.has(signer)) {
      let since: number | undefined;
      try {
        since = Date.parse(new X509Certificate(signer.certificatePem).validFrom);
      } catch {
        since = undefined;
      }
      const recorded = signer.heldSince === null ? Number.NaN : Date.parse(signer.heldSince);
      if (!Number.isNaN(recorded)) since = Math.max(since ?? recorded, recorded);
      this.issued.set(signer, since);
    }
    return this.issued.get(signer);
  }

  private publicKey(signer: Signer): KeyObject | Error {
    let key = this.keys.get(signer);
    if (key === undefined) {
      try {
        key = new X509Certificate(signer.certificatePem).publicKey;
      } catch (error) {
        key = new Error(messageOf(error));
      }
      this.keys.set(signer, key);
    }
    return key;
  }
}

function signatureMatches(receipt: Receipt, key: KeyObject): boolean {
  try {
    return verify(
      signatureDigest(key),
      Buffer.from(canonicalJson(receiptClaims(receipt))),
      key,
      Buffer.from(receipt.signature, 'base64url'),
    );
  } catch {
    return false;
  }
}

/** Why a well-signed receipt does not describe the event that holds it, or undefined. */
function claimMismatch(receipt: Receipt, event: AuditEvent, signer: Signer): string | undefined {
  const expected: Array<[field: string, got: unknown, want: unknown]> = [
    ['correlation_id', receipt.correlation_id, event.correlationId],
    ['target', receipt.target, signer.spiffeId],
    ['source', nodeOf(receipt.source), event.sourceNode],
    ['outcome', receipt.outcome, event.outcome],
  ];
  // A body refused unread is receipted with no principal and the hash of no bytes, while the
  // caller's event names what it sent: the same statement (see `invoke`, receipts).
  const unread =
    receipt.outcome !== 'success' &&
    receipt.principal === '' &&
    receipt.request_sha256 === UNREAD_SHA256;
  if (!unread) {
    expected.push(
      ['principal', receipt.principal, event.principal],
      ['resource', receipt.resource, event.resource],
      ['capability', receipt.capability, event.capability],
      ['request_sha256', receipt.request_sha256, event.requestSha256],
    );
  }
  for (const [field, got, want] of expected) {
    if (got !== want) return `its ${field} is ${String(got)}, the event's is ${String(want)}`;
  }
  if (
    receipt.result_sha256 !== null &&
    event.resultSha256 !== null &&
    receipt.result_sha256 !== event.resultSha256
  ) {
    return "its result_sha256 is not the event's";
  }
  return undefined;
}

/** The node ID a node SPIFFE ID names; the ID itself when it names none (so it cannot match). */
function nodeOf(spiffeId: string): string {
  const parsed = parseSpiffeId(spiffeId);
  if ('error' in parsed) return spiffeId;
  return nodeIdOf(parsed) ?? spiffeId;
}

// ---- the chain -------------------------------------------------------------------------------

export type ChainProblemCode =
  'SEQ_GAP' | 'BROKEN_LINK' | 'HASH_MISMATCH' | 'UNREADABLE' | 'RECEIPT_INVALID';

export interface ChainProblem {
  seq: number;
  eventId: string;
  correlationId: string;
  code: ChainProblemCode;
  message: string;
}

export interface ChainVerification {
  /** True when no problem was found (receipts of unknown signers are not problems). */
  ok: boolean;
  events: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** The hash of the last event: what a later verification can be compared with. */
  headHash: string;
  receipts: { verified: number; invalid: number; unknownSigner: number; none: number };
  /** Every problem up to maxProblems, in seq order: the first is the first broken event. */
  problems: ChainProblem[];
  problemCount: number;
  /**
   * Events whose receipt could not be checked: their signer, how many (no problem), and why: no
   * certificate of the signer is held here, or the one held was issued after the receipts were
   * signed (the signer renewed its key since).
   */
  unknownSigners: Array<{
    nodeId: string;
    events: number;
    reason: 'no-certificate' | 'signed-before-certificate';
  }>;
}

export interface VerifyOptions {
  /** How many problems to keep for the report (all are counted). */
  maxProblems?: number;
}

type Row = AuditRow;

/**
 * Walks the whole trail in seq order with one streaming statement (constant memory): each row's
 * hash is recomputed from its prev_hash and content, its prev_hash must be the previous row's hash
 * (the genesis hash for the first), seq must go up by one from 1 (a deleted row leaves a gap), and
 * its receipt must verify. Each row is checked on its own, so one altered row is reported once,
 * not as the start of a cascade.
 */
export function verifyChain(
  db: SqliteDatabase,
  signers: ReceiptSigners,
  options: VerifyOptions = {},
): ChainVerification {
  const maxProblems = options.maxProblems ?? 100;
  const result: ChainVerification = {
    ok: true,
    events: 0,
    firstSeq: null,
    lastSeq: null,
    headHash: GENESIS_HASH,
    receipts: { verified: 0, invalid: 0, unknownSigner: 0, none: 0 },
    problems: [],
    problemCount: 0,
    unknownSigners: [],
  };
  const unknown = new Map<string, number>();
  let previousSeq = 0;
  let previousHash = GENESIS_HASH;
  const report = (row: Row, code: ChainProblemCode, message: string) => {
    result.problemCount++;
    if (result.problems.length < maxProblems) {
      result.problems.push({
        seq: row.seq,
        eventId: row.event_id,
        correlationId: row.correlation_id,
        code,
        message,
      });
    }
  };

  const rows = db.prepare('SELECT * FROM audit_events ORDER BY seq').iterate() as Iterable<Row>;
  for (const row of rows) {
    result.events++;
    result.firstSeq ??= row.seq;
    if (row.seq !== previousSeq + 1) {
      const missing = row.seq - previousSeq - 1;
      report(
        row,
        'SEQ_GAP',
        previousSeq === 0
          ? `the trail starts at seq ${row.seq}: ${count(missing, 'earlier event')} ${missing === 1 ? 'is' : 'are'} missing`
          : `seq ${row.seq} follows seq ${previousSeq}: ${count(missing, 'event')} ${missing === 1 ? 'is' : 'are'} missing`,
      );
    }
    if (row.prev_hash !== previousHash) {
      report(
        row,
        'BROKEN_LINK',
        previousSeq === 0
          ? 'its prev_hash is not the genesis hash, though no event comes before it'
          : `its prev_hash is not the hash of the event before it (seq ${previousSeq})`,
      );
    }
    let event: AuditEvent | undefined;
    try {
      event = eventFromRow(row);
      if (chainHash(row.prev_hash, event) !== row.hash) {
        report(row, 'HASH_MISMATCH', 'its content does not match its hash: it was altered');
      }
    } catch (error) {
      const reason = error instanceof UnreadableEventError ? error.reason : messageOf(error);
      report(row, 'UNREADABLE', `it cannot be read back: ${reason}`);
    }
    if (event) {
      const check = signers.check(event);
      if (check.status === 'verified') result.receipts.verified++;
      else if (check.status === 'none') result.receipts.none++;
      else if (check.status === 'unknown-signer') {
        result.receipts.unknownSigner++;
        const signer = check.signer as string;
        unknown.set(signer, (unknown.get(signer) ?? 0) + 1);
      } else {
        result.receipts.invalid++;
        report(row, 'RECEIPT_INVALID', `its receipt does not verify: ${check.reason ?? ''}`);
      }
    }
    previousSeq = row.seq;
    previousHash = row.hash;
  }
  result.lastSeq = result.events === 0 ? null : previousSeq;
  result.headHash = previousHash;
  result.ok = result.problemCount === 0;
  result.unknownSigners = [...unknown]
    .map(([nodeId, events]) => ({
      nodeId,
      events,
      // A signer either has a certificate held here or not, for the whole walk.
      reason: signers.holds(nodeId)
        ? ('signed-before-certificate' as const)
        : ('no-certificate' as const),
    }))
    .sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  return result;
}
