import { createPrivateKey, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  GENESIS_HASH,
  appendEvents,
  type AuditEventInput,
} from '../../../src/core/audit/events.js';
import {
  receiptClaims,
  sha256Hex,
  signReceipt,
  type Receipt,
} from '../../../src/core/audit/receipts.js';
import { ReceiptSigners, verifyChain } from '../../../src/core/audit/verify.js';
import { createCertificateAuthority } from '../../../src/core/identity/pki.js';
import { openState, type StateStore } from '../../../src/core/state/database.js';
import { saveIdentity } from '../../../src/core/state/identity-repository.js';
import { savePeer } from '../../../src/core/state/trust-repository.js';
import { inboundEvent } from '../../helpers/audit-events.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * verifyChain and ReceiptSigners on real state files: node-a's trail, with receipts node-b
 * signed (outbound) and receipts node-a signed itself (inbound, from node-c).
 */

const SPIFFE = {
  a: 'spiffe://org-a.example/sark/node/node-a',
  b: 'spiffe://org-b.example/sark/node/node-b',
  c: 'spiffe://org-c.example/sark/node/node-c',
};

interface KeyPair {
  certificatePem: string;
  privateKey: KeyObject;
}

let keyA: KeyPair;
let keyB: KeyPair;
let keyOther: KeyPair;

async function keyPair(): Promise<KeyPair> {
  // A self-signed certificate is all the signer lookup needs: its public key.
  const material = await createCertificateAuthority({ days: 30, keyType: 'ec', now: new Date() });
  return {
    certificatePem: material.certificatePem,
    privateKey: createPrivateKey(material.privateKeyPem),
  };
}

beforeAll(async () => {
  [keyA, keyB, keyOther] = await Promise.all([keyPair(), keyPair(), keyPair()]);
});

const stores: StateStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

/** node-a's state: its identity, and node-b as a peer with a pinned certificate. */
function nodeAStore(): StateStore {
  const store = openState(join(tempDir('sark-fed-verify-'), 'state.db'), { create: true });
  stores.push(store);
  const now = new Date();
  store.write((db) => {
    saveIdentity(
      db,
      {
        nodeId: 'node-a',
        trustDomain: 'org-a.example',
        spiffeId: SPIFFE.a,
        certChainPem: keyA.certificatePem,
        keyPath: '/nonexistent/key.pem',
        endpoint: null,
        fingerprint: 'f'.repeat(64),
        notBefore: now.toISOString(),
        notAfter: now.toISOString(),
      },
      now,
    );
    savePeer(db, {
      nodeId: 'node-b',
      trustDomain: 'org-b.example',
      spiffeId: SPIFFE.b,
      endpoint: 'https://127.0.0.1:9',
      trustLevel: 'trusted',
      pinnedFingerprint: 'e'.repeat(64),
      certificatePem: keyB.certificatePem,
      trustExpiresAt: null,
      establishedAt: now.toISOString(),
      revokedAt: null,
      revokeReason: null,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    });
  });
  return store;
}

const ARGS = '{"sku":42}';

function call(
  index: number,
  direction: 'outbound' | 'inbound',
  extra: Partial<AuditEventInput> = {},
  receiptOverride?: (receipt: Receipt) => Receipt,
  signer?: KeyObject,
): AuditEventInput {
  const correlationId = `corr-${index}`;
  const [source, target] = direction === 'outbound' ? ['node-a', 'node-b'] : ['node-c', 'node-a'];
  const time = new Date(Date.parse('2030-01-01T00:00:00.000Z') + index * 1000).toISOString();
  let receipt = signReceipt(
    signer ?? (direction === 'outbound' ? keyB.privateKey : keyA.privateKey),
    {
      correlation_id: correlationId,
      source: direction === 'outbound' ? SPIFFE.a : SPIFFE.c,
      target: direction === 'outbound' ? SPIFFE.b : SPIFFE.a,
      principal: 'alice@org-a.example',
      resource: 'echo',
      capability: 'echo',
      request_sha256: sha256Hex(ARGS),
      outcome: 'success',
      result_sha256: sha256Hex(ARGS),
      timestamp: time,
    },
  );
  if (receiptOverride) receipt = receiptOverride(receipt);
  return inboundEvent({
    correlationId,
    time,
    direction,
    sourceNode: source as string,
    targetNode: target as string,
    durationUs: 1200,
    requestSha256: sha256Hex(ARGS),
    requestSize: ARGS.length,
    resultSha256: sha256Hex(ARGS),
    resultSize: ARGS.length,
    receipt,
    ...extra,
  });
}

function verify(store: StateStore, maxProblems?: number) {
  return store.read((db) =>
    verifyChain(db, ReceiptSigners.load(db), maxProblems === undefined ? {} : { maxProblems }),
  );
}

describe('verifyChain', () => {
  it('an empty trail is intact: no events, the genesis hash as its head', () => {
    expect(verify(nodeAStore())).toEqual({
      ok: true,
      events: 0,
      firstSeq: null,
      lastSeq: null,
      headHash: GENESIS_HASH,
      receipts: { verified: 0, invalid: 0, unknownSigner: 0, none: 0 },
      problems: [],
      problemCount: 0,
      unknownSigners: [],
    });
  });

  it("verifies outbound receipts against the peer's pinned certificate and inbound ones against this node's", () => {
    const store = nodeAStore();
    const appended = store.write((db) =>
      appendEvents(db, [
        call(1, 'outbound'),
        call(2, 'inbound'),
        call(3, 'outbound', { receipt: null, outcome: 'denied', statusCode: null }),
      ]),
    );
    expect(verify(store)).toMatchObject({
      ok: true,
      events: 3,
      firstSeq: 1,
      lastSeq: 3,
      headHash: appended[2]?.hash,
      receipts: { verified: 2, invalid: 0, unknownSigner: 0, none: 1 },
    });
  });

  it('refuses a receipt signed by another key', () => {
    const store = nodeAStore();
    store.write((db) =>
      appendEvents(db, [call(1, 'outbound', {}, undefined, keyOther.privateKey)]),
    );
    expect(verify(store).problems).toEqual([
      {
        seq: 1,
        eventId: expect.any(String) as string,
        correlationId: 'corr-1',
        code: 'RECEIPT_INVALID',
        message:
          'its receipt does not verify: its signature does not verify against the certificate pinned for node-b',
      },
    ]);
  });

  it.each([
    [
      'correlation_id',
      { correlationId: 'corr-other' },
      /its correlation_id is corr-1, the event's is corr-other/,
    ],
    ['principal', { principal: 'mallory@org-a.example' }, /its principal is alice@org-a\.example/],
    ['resource', { resource: 'stock' }, /its resource is echo, the event's is stock/],
    ['capability', { capability: 'lookup' }, /its capability is echo/],
    ['outcome', { outcome: 'error' as const }, /its outcome is success, the event's is error/],
    ['request_sha256', { requestSha256: 'b'.repeat(64) }, /its request_sha256 is/],
    ['result_sha256', { resultSha256: 'c'.repeat(64) }, /its result_sha256 is not the event's/],
    ['source', { sourceNode: 'node-z' }, /its source is node-a, the event's is node-z/],
  ])('refuses a well-signed receipt whose %s is not the event’s', (_field, extra, message) => {
    const store = nodeAStore();
    store.write((db) => appendEvents(db, [call(1, 'outbound', extra)]));
    const result = verify(store);
    expect(result.ok).toBe(false);
    expect(result.problems[0]?.code).toBe('RECEIPT_INVALID');
    expect(result.problems[0]?.message).toMatch(message);
  });

  it('counts a receipt signed before the pinned certificate was issued as unchecked: a renewal, not tampering', () => {
    const store = nodeAStore();
    // node-b signed it in 2020 with the key it had then; node-a now pins node-b's new certificate.
    const renewed = (receipt: Receipt) =>
      signReceipt(keyOther.privateKey, {
        ...receiptClaims(receipt),
        timestamp: '2020-01-01T00:00:00.000Z',
      });
    store.write((db) => appendEvents(db, [call(1, 'outbound', {}, renewed)]));
    const result = verify(store);
    expect(result.ok).toBe(true);
    expect(result.problems).toEqual([]);
    expect(result.receipts).toMatchObject({ verified: 0, invalid: 0, unknownSigner: 1 });
    expect(result.unknownSigners).toEqual([
      { nodeId: 'node-b', events: 1, reason: 'signed-before-certificate' },
    ]);
  });

  it('tells renewals from forgeries event by event in one trail (the issue date is read once)', () => {
    const store = nodeAStore();
    const signedBy = (timestamp: string) => (receipt: Receipt) =>
      signReceipt(keyOther.privateKey, { ...receiptClaims(receipt), timestamp });
    store.write((db) =>
      appendEvents(db, [
        call(1, 'outbound', {}, signedBy('2020-01-01T00:00:00.000Z')),
        call(2, 'outbound', {}, signedBy('2020-06-01T00:00:00.000Z')),
        // The wrong key, after the pinned certificate was issued: not a renewal.
        call(3, 'outbound', {}, (receipt) =>
          signReceipt(keyOther.privateKey, receiptClaims(receipt)),
        ),
        call(4, 'outbound', {}, signedBy('2021-01-01T00:00:00.000Z')),
      ]),
    );
    const result = verify(store);
    expect(result.receipts).toMatchObject({ verified: 0, invalid: 1, unknownSigner: 3 });
    expect(result.problems.map((problem) => [problem.seq, problem.code])).toEqual([
      [3, 'RECEIPT_INVALID'],
    ]);
  });

  /** node-b's certificate pinned again (trust established with its renewed one) at `when`. */
  function repinNodeB(store: StateStore, key: KeyPair, fingerprint: string, when: string): void {
    store.write((db) =>
      savePeer(db, {
        nodeId: 'node-b',
        trustDomain: 'org-b.example',
        spiffeId: SPIFFE.b,
        endpoint: 'https://127.0.0.1:9',
        trustLevel: 'trusted',
        pinnedFingerprint: fingerprint,
        certificatePem: key.certificatePem,
        trustExpiresAt: null,
        establishedAt: when,
        revokedAt: null,
        revokeReason: null,
        createdAt: when,
        updatedAt: when,
      }),
    );
  }

  it('verifies receipts signed before a renewal against the certificate it replaced, on both sides', () => {
    const store = nodeAStore();
    store.write((db) => appendEvents(db, [call(1, 'outbound'), call(2, 'inbound')]));
    // node-b renews its key and trust is established again; node-a renews its own certificate.
    repinNodeB(store, keyOther, 'd'.repeat(64), new Date().toISOString());
    store.write((db) => {
      const now = new Date();
      saveIdentity(
        db,
        {
          nodeId: 'node-a',
          trustDomain: 'org-a.example',
          spiffeId: SPIFFE.a,
          certChainPem: keyOther.certificatePem,
          keyPath: '/nonexistent/key.pem',
          endpoint: null,
          fingerprint: 'c'.repeat(64),
          notBefore: now.toISOString(),
          notAfter: now.toISOString(),
        },
        now,
      );
    });
    // After the renewals, a receipt signed with the key neither node holds any more: forged.
    store.write((db) => appendEvents(db, [call(3, 'outbound', {}, undefined, keyA.privateKey)]));
    const result = verify(store);
    expect(result.receipts).toMatchObject({ verified: 2, invalid: 1, unknownSigner: 0 });
    expect(result.problems.map((problem) => [problem.seq, problem.message])).toEqual([
      [
        3,
        'its receipt does not verify: its signature does not verify against the certificate pinned for node-b nor 1 certificate it replaced',
      ],
    ]);
    expect(
      store.read((db) =>
        db.prepare('SELECT node_id, fingerprint FROM retired_certificates ORDER BY node_id').all(),
      ),
    ).toEqual([
      { node_id: 'node-a', fingerprint: 'f'.repeat(64) },
      { node_id: 'node-b', fingerprint: 'e'.repeat(64) },
    ]);
  });

  it('keeps verifying the receipts of a peer whose record was deleted', () => {
    const store = nodeAStore();
    store.write((db) => appendEvents(db, [call(1, 'outbound')]));
    store.write((db) => db.prepare("DELETE FROM peers WHERE node_id = 'node-b'").run());
    expect(verify(store)).toMatchObject({ ok: true, receipts: { verified: 1, unknownSigner: 0 } });
  });

  it('without the replaced certificate (renewed before schema 7), counts a receipt signed before the new one was taken up as unchecked, however far its notBefore is backdated', () => {
    const store = nodeAStore();
    // Signed with node-b's old key in 2030, after the new certificate's notBefore (today, less
    // the backdating) but before node-a pinned it (2031).
    store.write((db) => appendEvents(db, [call(1, 'outbound')]));
    repinNodeB(store, keyOther, 'd'.repeat(64), '2031-01-01T00:00:00.000Z');
    store.write((db) => db.prepare('DELETE FROM retired_certificates').run());
    const result = verify(store);
    expect(result).toMatchObject({
      ok: true,
      receipts: { verified: 0, invalid: 0, unknownSigner: 1 },
      unknownSigners: [{ nodeId: 'node-b', events: 1, reason: 'signed-before-certificate' }],
    });
  });

  it('accepts the receipt of a body refused unread (no principal, the hash of no bytes)', () => {
    const store = nodeAStore();
    const unread = call(
      1,
      'outbound',
      { outcome: 'error', statusCode: 413, errorCode: 'BODY_TOO_LARGE', resultSha256: null },
      (receipt) =>
        signReceipt(keyB.privateKey, {
          ...receiptClaims(receipt),
          principal: '',
          resource: '-',
          capability: '-',
          request_sha256: sha256Hex(''),
          outcome: 'error',
          result_sha256: null,
        }),
    );
    store.write((db) => appendEvents(db, [unread]));
    expect(verify(store)).toMatchObject({ ok: true, receipts: { verified: 1 } });
  });

  it('counts receipts of a node without a known certificate as unchecked, not as problems', () => {
    const store = nodeAStore();
    store.write((db) =>
      appendEvents(db, [
        call(1, 'outbound', { targetNode: 'node-q' }),
        call(2, 'outbound', { targetNode: 'node-q' }),
      ]),
    );
    expect(verify(store)).toMatchObject({
      ok: true,
      receipts: { verified: 0, unknownSigner: 2 },
      unknownSigners: [{ nodeId: 'node-q', events: 2, reason: 'no-certificate' }],
    });
  });

  it('checks each row on its own: one altered row is one problem, not a cascade', () => {
    const store = nodeAStore();
    store.write((db) =>
      appendEvents(
        db,
        [1, 2, 3, 4].map((index) => call(index, 'outbound', { receipt: null })),
      ),
    );
    store.db.exec('DROP TRIGGER audit_events_no_update');
    store.db.prepare('UPDATE audit_events SET duration_us = 1 WHERE seq = 2').run();
    const result = verify(store);
    expect(result.problems.map((problem) => [problem.seq, problem.code])).toEqual([
      [2, 'HASH_MISMATCH'],
    ]);
  });

  it('reports a row it cannot read back, and keeps going', () => {
    const store = nodeAStore();
    store.write((db) => appendEvents(db, [call(1, 'outbound'), call(2, 'outbound')]));
    store.db.exec('DROP TRIGGER audit_events_no_update');
    store.db.prepare("UPDATE audit_events SET receipt = '{not json' WHERE seq = 1").run();
    const result = verify(store);
    expect(result.problems.map((problem) => [problem.seq, problem.code])).toEqual([
      [1, 'UNREADABLE'],
    ]);
    expect(result.receipts.verified).toBe(1);
  });

  it('keeps up to maxProblems problems and counts them all', () => {
    const store = nodeAStore();
    store.write((db) =>
      appendEvents(
        db,
        [1, 2, 3, 4, 5].map((index) => call(index, 'outbound', { receipt: null })),
      ),
    );
    store.db.exec('DROP TRIGGER audit_events_no_update');
    store.db.prepare("UPDATE audit_events SET principal = 'x'").run();
    const result = verify(store, 2);
    expect(result.problemCount).toBe(5);
    expect(result.problems.map((problem) => problem.seq)).toEqual([1, 2]);
  });
});
