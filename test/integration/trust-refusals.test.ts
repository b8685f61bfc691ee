import Database from 'better-sqlite3';
import { randomBytes, randomUUID, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateFingerprint } from '../../src/core/identity/fingerprint.js';
import { readPrivateKeyFile } from '../../src/core/identity/keys.js';
import type { NodeIdentity } from '../../src/core/identity/node-identity.js';
import { pemBlocks } from '../../src/core/identity/pem.js';
import { canonicalJson } from '../../src/core/protocol/canonical-json.js';
import { PATHS } from '../../src/core/protocol/constants.js';
import { openState } from '../../src/core/state/database.js';
import { saveIdentity } from '../../src/core/state/identity-repository.js';
import { savePeer } from '../../src/core/state/trust-repository.js';
import { signTrustStatement, type TrustStatement } from '../../src/core/trust/trust-statement.js';
import { startDaemon, type RunningDaemon } from '../../src/node/daemon.js';
import type { Logger } from '../../src/node/logger.js';
import { expectRefusal, expectSuccess, runCli, tempDir, type RunResult } from '../helpers/cli.js';
import {
  asCa,
  EKU,
  hoursFromNow,
  issueLeaf,
  loadCa,
  writeLeaf,
  type IssuedLeaf,
  type TestCa,
} from '../helpers/certs.js';
import { createCa, issueNode } from '../helpers/pki.js';
import { MtlsConnection, type Reply } from './mtls-client.js';

/**
 * Every refusal of issue 3, against a real daemon (in-process `startDaemon`, so that its clock
 * can be moved) over real mutual TLS on 127.0.0.1. Each refusal must answer the documented
 * status and error code, leave the daemon serving, and leave its state file as it was.
 */

const TD_A = 'org-a.example';
const TD_B = 'org-b.example';
const spiffe = (trustDomain: string, nodeId: string) =>
  `spiffe://${trustDomain}/sark/node/${nodeId}`;

interface Credentials {
  certPem: string;
  keyPem: string;
  privateKey: KeyObject;
  spiffeId: string;
}

const root = tempDir('sark-fed-refusals-');
const logs: Array<Record<string, unknown>> = [];
const logger: Logger = {
  info: (msg, fields) => logs.push({ level: 'info', msg, ...fields }),
  warn: (msg, fields) => logs.push({ level: 'warn', msg, ...fields }),
  error: (msg, fields) => logs.push({ level: 'error', msg, ...fields }),
};
/** The responder's clock runs this many milliseconds ahead of the real one. */
let clockOffset = 0;
const daemons: RunningDaemon[] = [];
const connections: MtlsConnection[] = [];

let caA: TestCa;
let caB: TestCa;
let caOther: TestCa;
let caADir: string;
let daemon: RunningDaemon;
let daemonState: string;
let initiatorState: string;
let nodeA: Credentials;
let nodeC: Credentials;
let nodeR: Credentials & { certPath: string; dir: string };
let nodeAatB: Credentials;
let nodeU: { dir: string; certPath: string; keyPath: string };

function cli(state: string, args: string[]): Promise<RunResult> {
  return runCli(['--state', state, ...args]);
}

function credentialsOf(dir: string, spiffeId: string): Credentials {
  const certPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const keyPem = readFileSync(join(dir, 'key.pem'), 'utf8');
  return { certPem, keyPem, privateKey: readPrivateKeyFile(join(dir, 'key.pem')), spiffeId };
}

function connect(credentials?: { certPem: string; keyPem: string }, port = daemon.port) {
  const connection = new MtlsConnection(port, credentials);
  connections.push(connection);
  return connection;
}

/** Every row of every table, in a stable order: equal snapshots mean nothing was written. */
function snapshot(path: string): string {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
      .pluck()
      .all() as string[];
    const dump: Record<string, unknown[]> = {};
    for (const table of tables) {
      dump[table] = db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).raw().all();
    }
    dump.user_version = [db.pragma('user_version', { simple: true })];
    return JSON.stringify(dump);
  } finally {
    db.close();
  }
}

function peerRow(nodeId: string): Record<string, unknown> | undefined {
  const db = new Database(daemonState, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT * FROM peers WHERE node_id = ?').get(nodeId) as
      Record<string, unknown> | undefined;
  } finally {
    db.close();
  }
}

function expectError(reply: Reply, status: number, code: string): void {
  expect(reply.status, JSON.stringify(reply.body)).toBe(status);
  expect(reply.body.error?.code, JSON.stringify(reply.body)).toBe(code);
  expect(reply.body.error?.message).toEqual(expect.any(String));
  expect((reply.body.error as { correlation_id?: string }).correlation_id).toMatch(
    /^[0-9a-f-]{36}$/,
  );
}

/** A well-behaved client still gets answers: the refusal did not take the daemon down. */
async function expectStillServing(): Promise<void> {
  const probe = connect(nodeC);
  const info = await probe.send('GET', PATHS.info);
  expect(info.status).toBe(200);
  expect(info.body.node_id).toBe('node-d');
  const challenge = await probe.send('POST', PATHS.challenge, {});
  expect(challenge.status).toBe(200);
  probe.close();
}

function statement(
  nonce: string,
  initiator: string,
  tlsBinding: string,
  responder = daemon.identity.spiffeId,
): TrustStatement {
  return {
    purpose: 'sark-fed/trust-establish/v1',
    role: 'initiator',
    nonce,
    initiator,
    responder,
    tls_binding: tlsBinding,
  };
}

interface Challenge {
  challenge_id: string;
  nonce: string;
  expires_at: string;
  node_id: string;
}

async function challengeOver(connection: MtlsConnection): Promise<Challenge> {
  const reply = await connection.send('POST', PATHS.challenge, {});
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  return reply.body as unknown as Challenge;
}

/** The initiator's answer, signed as a real initiator signs it unless told otherwise. */
function answer(
  challenge: Challenge,
  signer: Credentials,
  overrides: { initiator?: string; responder?: string; key?: KeyObject; binding?: string } = {},
) {
  return (binding: string) => ({
    challenge_id: challenge.challenge_id,
    signature: signTrustStatement(
      overrides.key ?? signer.privateKey,
      statement(
        challenge.nonce,
        overrides.initiator ?? signer.spiffeId,
        overrides.binding ?? binding,
        overrides.responder,
      ),
    ),
    counter_nonce: randomBytes(32).toString('base64url'),
  });
}

/**
 * Presents a client certificate and expects it refused with `code` on an open endpoint, on the
 * challenge endpoint and on the establish endpoint (before any body is looked at), with the
 * daemon still serving and its state unchanged.
 */
async function expectCertificateRefused(
  credentials: { certPem: string; keyPem: string } | undefined,
  code: string,
  status = 403,
): Promise<void> {
  const before = snapshot(daemonState);
  const connection = connect(credentials);
  expectError(await connection.send('GET', PATHS.info), status, code);
  expectError(await connection.send('POST', PATHS.challenge, {}), status, code);
  expectError(
    await connection.send('POST', PATHS.trust, {
      challenge_id: randomUUID(),
      signature: randomBytes(64).toString('base64url'),
      counter_nonce: randomBytes(32).toString('base64url'),
    }),
    status,
    code,
  );
  expectError(await connection.send('GET', PATHS.resources), status, code);
  connection.close();
  await expectStillServing();
  expect(snapshot(daemonState)).toBe(before);
}

/** Starts a daemon presenting `leaf` as its own certificate, whatever its profile. */
async function daemonPresenting(
  name: string,
  leaf: IssuedLeaf,
  nodeId: string,
  trustDomain: string,
): Promise<RunningDaemon> {
  const files = writeLeaf(join(root, name), leaf);
  const state = join(root, name, 'state.db');
  const certificate = new X509Certificate(leaf.der);
  const identity: NodeIdentity = {
    nodeId,
    trustDomain,
    spiffeId: spiffe(trustDomain, nodeId),
    certChainPem: leaf.certPem,
    keyPath: files.keyPath,
    endpoint: null,
    fingerprint: certificateFingerprint(leaf.der),
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: new Date(certificate.validTo).toISOString(),
  };
  // Written with the core directly: `sark-fed init` rightly refuses such a certificate.
  const store = openState(state, { create: true });
  try {
    store.write((db) => saveIdentity(db, identity, new Date()));
  } finally {
    store.close();
  }
  return startExtraDaemon(state);
}

async function startExtraDaemon(statePath: string): Promise<RunningDaemon> {
  const running = await startDaemon({
    statePath,
    host: '127.0.0.1',
    port: 0,
    requireApproval: false,
    version: 'test',
    logger,
  });
  daemons.push(running);
  return running;
}

beforeAll(async () => {
  caADir = join(root, 'ca-a');
  const caBDir = join(root, 'ca-b');
  const caOtherDir = join(root, 'ca-a-other');
  await Promise.all([
    createCa(caADir, ['--trust-domain', TD_A]),
    createCa(caBDir, ['--trust-domain', TD_B]),
    // Same trust domain name, another CA: never imported as an anchor anywhere.
    createCa(caOtherDir, ['--trust-domain', TD_A]),
  ]);
  [caA, caB, caOther] = [loadCa(caADir), loadCa(caBDir), loadCa(caOtherDir)];

  const dir = (name: string) => join(root, name);
  await Promise.all([
    issueNode(caADir, 'node-d', dir('node-d'), ['--ip', '127.0.0.1']),
    issueNode(caADir, 'node-a', dir('node-a'), ['--ip', '127.0.0.1']),
    issueNode(caADir, 'node-c', dir('node-c')),
    issueNode(caADir, 'node-r', dir('node-r'), ['--ip', '127.0.0.1']),
    // A genuine org-b certificate that claims a node ID org-a's node-a already holds.
    issueNode(caBDir, 'node-a', dir('node-a-at-b')),
    issueNode(caOtherDir, 'node-u', dir('node-u'), ['--ip', '127.0.0.1']),
  ]);
  nodeA = credentialsOf(dir('node-a'), spiffe(TD_A, 'node-a'));
  nodeC = credentialsOf(dir('node-c'), spiffe(TD_A, 'node-c'));
  nodeR = {
    ...credentialsOf(dir('node-r'), spiffe(TD_A, 'node-r')),
    certPath: join(dir('node-r'), 'cert.pem'),
    dir: dir('node-r'),
  };
  nodeAatB = credentialsOf(dir('node-a-at-b'), spiffe(TD_B, 'node-a'));
  nodeU = {
    dir: dir('node-u'),
    certPath: join(dir('node-u'), 'cert.pem'),
    keyPath: join(dir('node-u'), 'key.pem'),
  };

  // The responder (node-d) and the CLI initiator (node-a): org-a's CA anchors org-a, org-b's
  // CA anchors org-b, and nothing else.
  daemonState = join(root, 'node-d', 'state.db');
  initiatorState = join(root, 'node-a', 'state.db');
  const initOf = (state: string, nodeId: string) =>
    cli(state, [
      'init',
      '--node-id',
      nodeId,
      '--trust-domain',
      TD_A,
      '--cert',
      join(dir(nodeId), 'cert.pem'),
      '--key',
      join(dir(nodeId), 'key.pem'),
      '--ca',
      join(caADir, 'ca.pem'),
    ]);
  const nodeRState = join(dir('node-r'), 'state.db');
  const nodeUState = join(nodeU.dir, 'state.db');
  const inits = await Promise.all([
    initOf(daemonState, 'node-d'),
    initOf(initiatorState, 'node-a'),
    initOf(nodeRState, 'node-r'),
    cli(nodeUState, [
      'init',
      '--node-id',
      'node-u',
      '--trust-domain',
      TD_A,
      '--cert',
      nodeU.certPath,
      '--key',
      nodeU.keyPath,
    ]),
  ]);
  inits.forEach(expectSuccess);
  const anchors = await Promise.all(
    [daemonState, initiatorState].map((state) =>
      cli(state, ['trust', 'anchor', 'add', join(caBDir, 'ca.pem'), '--trust-domain', TD_B]),
    ),
  );
  anchors.forEach(expectSuccess);

  daemon = await startDaemon({
    statePath: daemonState,
    host: '127.0.0.1',
    port: 0,
    requireApproval: false,
    version: 'test',
    logger,
    now: () => new Date(Date.now() + clockOffset),
    timeouts: { headers: 10_000, request: 30_000, keepAlive: 60_000, shutdownGrace: 2_000 },
  });
  daemons.push(daemon);
});

afterAll(async () => {
  for (const connection of connections) connection.close();
  await Promise.all(daemons.map((running) => running.close()));
});

describe('the daemon on port 0', () => {
  it('listens on 127.0.0.1 at the port the kernel chose and answers a valid client', async () => {
    expect(daemon.host).toBe('127.0.0.1');
    expect(daemon.port).toBeGreaterThan(0);
    expect(daemon.identity.spiffeId).toBe(spiffe(TD_A, 'node-d'));
    await expectStillServing();
  });
});

describe('client certificate refusals', () => {
  it('refuses a client that presents no certificate', async () => {
    await expectCertificateRefused(undefined, 'NO_CLIENT_CERTIFICATE', 401);
  });

  it('refuses an expired client certificate', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-old')],
      notBefore: hoursFromNow(-48),
      notAfter: hoursFromNow(-1),
    });
    await expectCertificateRefused(leaf, 'CERT_EXPIRED');
  });

  it('refuses a client certificate that is not yet valid', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-early')],
      notBefore: hoursFromNow(1),
      notAfter: hoursFromNow(48),
    });
    await expectCertificateRefused(leaf, 'CERT_NOT_YET_VALID');
  });

  it('refuses a certificate whose EKU allows serverAuth but not clientAuth', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-server-only')],
      ekus: [EKU.serverAuth],
    });
    await expectCertificateRefused(leaf, 'BAD_EKU');
  });

  it('refuses a code-signing certificate', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-codesign')],
      ekus: [EKU.codeSigning],
    });
    await expectCertificateRefused(leaf, 'BAD_EKU');
  });

  it("refuses the anchored CA's own certificate and key used as a client certificate", async () => {
    // Its only SPIFFE ID names the trust domain, not a node: refused before path building.
    await expectCertificateRefused(
      { certPem: caA.certificatePem, keyPem: caA.keyPem },
      'BAD_SPIFFE_ID',
    );
  });

  it('refuses a CA certificate that carries a node SPIFFE ID', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-sub-ca')],
      ca: true,
    });
    await expectCertificateRefused(leaf, 'CA_AS_LEAF');
  });

  it("refuses a chain through an intermediate CA that the anchor's path length forbids", async () => {
    // `pki ca create` makes CAs with pathLen 0: they sign node certificates directly.
    const intermediate = await issueLeaf({ issuer: caA, uris: [`spiffe://${TD_A}`], ca: true });
    const leaf = await issueLeaf({
      issuer: asCa(intermediate),
      uris: [spiffe(TD_A, 'node-deep')],
    });
    await expectCertificateRefused(
      { certPem: leaf.certPem + intermediate.certPem, keyPem: leaf.keyPem },
      'PATH_LEN',
    );
  });

  it("refuses an org-b node certificate issued by org-a's anchored CA", async () => {
    // Anchors of org-a never vouch for org-b: the chain must end at an org-b anchor, and the
    // only certificate that could sign it belongs to org-a.
    const leaf = await issueLeaf({ issuer: caA, uris: [spiffe(TD_B, 'node-b-forged')] });
    await expectCertificateRefused(leaf, 'UNKNOWN_ISSUER');
  });

  it('refuses a certificate of a trust domain that has no anchor here', async () => {
    const leaf = await issueLeaf({ issuer: caA, uris: [spiffe('org-z.example', 'node-z')] });
    await expectCertificateRefused(leaf, 'UNKNOWN_TRUST_DOMAIN');
  });

  it('refuses a node certificate from an unknown CA of the same trust domain', async () => {
    // The CA has the same name as org-a's anchor; only its key differs.
    expect(caOther.subject).toBe(caA.subject);
    const leaf = await issueLeaf({ issuer: caOther, uris: [spiffe(TD_A, 'node-stranger')] });
    await expectCertificateRefused(leaf, 'UNKNOWN_ISSUER');
  });

  it('refuses a node certificate from an unknown CA that sends its CA along', async () => {
    // The stranger CA, sent as an intermediate, bears the anchor's name but not its signature.
    const leaf = await issueLeaf({ issuer: caOther, uris: [spiffe(TD_A, 'node-stranger2')] });
    await expectCertificateRefused(
      { certPem: leaf.certPem + caOther.certificatePem, keyPem: leaf.keyPem },
      'BAD_SIGNATURE',
    );
  });

  it("refuses a certificate with the anchor's name and key identifier but another key's signature", async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-forged')],
      signingKey: caOther.privateKey,
    });
    await expectCertificateRefused(leaf, 'BAD_SIGNATURE');
  });

  it('refuses a SPIFFE ID that does not name a sark node', async () => {
    const leaf = await issueLeaf({ issuer: caA, uris: [`spiffe://${TD_A}/sark/workload/node-w`] });
    await expectCertificateRefused(leaf, 'BAD_SPIFFE_ID');
  });

  it('refuses a certificate that claims two SPIFFE IDs', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-two'), spiffe(TD_A, 'node-d')],
    });
    await expectCertificateRefused(leaf, 'BAD_SPIFFE_ID');
  });

  it('refuses, on an open connection and without a restart, a certificate revoked by a CRL imported meanwhile', async () => {
    const connection = connect(nodeR);
    expect((await connection.send('GET', PATHS.info)).status).toBe(200);
    const firstSocket = connection.socket;

    const crlPath = join(root, 'crl-a.pem');
    expectSuccess(
      await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        caADir,
        '--revoke',
        nodeR.certPath,
        '--out',
        crlPath,
      ]),
    );
    expectSuccess(await cli(daemonState, ['trust', 'crl', 'import', crlPath]));
    const before = snapshot(daemonState);

    const refused = await connection.send('GET', PATHS.info);
    expect(refused.socket).toBe(firstSocket);
    expectError(refused, 403, 'REVOKED');
    await expectCertificateRefused(nodeR, 'REVOKED');
    expect(snapshot(daemonState)).toBe(before);
  });
});

describe('challenge refusals', () => {
  it('establishes trust with a well-behaved initiator over one connection (the baseline)', async () => {
    const connection = connect(nodeA);
    // The daemon's clock is this process's (clockOffset is 0 here): it issued the challenge
    // between these two readings, to expire 60 s after.
    const askedAt = Date.now();
    const challenge = await challengeOver(connection);
    const answeredAt = Date.now();
    expect(challenge.node_id).toBe('node-d');
    const expiresAt = new Date(challenge.expires_at).getTime();
    expect(expiresAt).toBeGreaterThanOrEqual(askedAt + 60_000);
    expect(expiresAt).toBeLessThanOrEqual(answeredAt + 60_000);
    const challengeSocket = connection.socket;

    const counterNonce = randomBytes(32).toString('base64url');
    let signed: TrustStatement | undefined;
    const reply = await connection.send('POST', PATHS.trust, (binding: string) => {
      signed = statement(challenge.nonce, nodeA.spiffeId, binding);
      return {
        challenge_id: challenge.challenge_id,
        signature: signTrustStatement(nodeA.privateKey, signed),
        counter_nonce: counterNonce,
      };
    });
    expect(reply.socket).toBe(challengeSocket);
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    expect(reply.body).toMatchObject({ status: 'trusted', node_id: 'node-d' });

    // The responder proved its key for this very session, over the initiator's counter-nonce.
    const responderStatement = { ...signed, role: 'responder', nonce: counterNonce };
    const responderKey = new X509Certificate(
      (pemBlocks(daemon.identity.certChainPem)[0] as { der: Buffer }).der,
    ).publicKey;
    expect(
      verify(
        'sha256',
        Buffer.from(canonicalJson(responderStatement)),
        responderKey,
        Buffer.from(reply.body.signature as string, 'base64url'),
      ),
    ).toBe(true);
    expect(peerRow('node-a')).toMatchObject({
      trust_level: 'trusted',
      spiffe_id: nodeA.spiffeId,
      pinned_fingerprint: certificateFingerprint(
        (pemBlocks(nodeA.certPem)[0] as { der: Buffer }).der,
      ),
    });
    expect((await connection.send('GET', PATHS.resources)).status).toBe(200);
  });

  it('refuses a replayed challenge answer, on the same connection and on another', async () => {
    const connection = connect(nodeA);
    const challenge = await challengeOver(connection);
    const binding = connection.binding();
    const body = answer(challenge, nodeA)(binding);
    expect((await connection.send('POST', PATHS.trust, body)).status).toBe(200);
    const before = snapshot(daemonState);

    expectError(await connection.send('POST', PATHS.trust, body), 400, 'CHALLENGE_REPLAYED');
    const other = connect(nodeA);
    await other.send('GET', PATHS.info);
    expectError(
      await other.send('POST', PATHS.trust, {
        ...body,
        signature: signTrustStatement(
          nodeA.privateKey,
          statement(challenge.nonce, nodeA.spiffeId, other.binding()),
        ),
      }),
      400,
      'CHALLENGE_REPLAYED',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('lets a challenge answer one attempt only: a good answer after a bad one is a replay', async () => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    expectError(
      await connection.send(
        'POST',
        PATHS.trust,
        answer(challenge, nodeC, { key: nodeA.privateKey }),
      ),
      401,
      'BAD_SIGNATURE',
    );
    expectError(
      await connection.send('POST', PATHS.trust, answer(challenge, nodeC)),
      400,
      'CHALLENGE_REPLAYED',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses an expired challenge', async () => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    clockOffset = 61_000;
    try {
      expectError(
        await connection.send('POST', PATHS.trust, answer(challenge, nodeC)),
        400,
        'CHALLENGE_EXPIRED',
      );
      await expectStillServing();
    } finally {
      clockOffset = 0;
    }
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses an answer to a challenge issued to another node', async () => {
    const before = snapshot(daemonState);
    const forC = await challengeOver(connect(nodeC));
    const connection = connect(nodeA);
    expectError(
      await connection.send('POST', PATHS.trust, answer(forC, nodeA)),
      403,
      'CHALLENGE_NOT_YOURS',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a signature bound to another TLS connection (a relayed signature)', async () => {
    const before = snapshot(daemonState);
    const first = connect(nodeC);
    const second = connect(nodeC);
    await first.send('GET', PATHS.info);
    const challenge = await challengeOver(second);
    expect(second.socket).not.toBe(first.socket);
    expect(first.binding()).not.toBe(second.binding());
    expectError(
      await second.send(
        'POST',
        PATHS.trust,
        answer(challenge, nodeC, { binding: first.binding() }),
      ),
      401,
      'BAD_SIGNATURE',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it("refuses a statement signed by a key other than the presented certificate's", async () => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    expectError(
      await connection.send(
        'POST',
        PATHS.trust,
        answer(challenge, nodeC, { key: nodeA.privateKey }),
      ),
      401,
      'BAD_SIGNATURE',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a statement that names another initiator than the certificate', async () => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    expectError(
      await connection.send(
        'POST',
        PATHS.trust,
        answer(challenge, nodeC, { initiator: nodeA.spiffeId }),
      ),
      401,
      'BAD_SIGNATURE',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a statement addressed to another responder', async () => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    expectError(
      await connection.send(
        'POST',
        PATHS.trust,
        answer(challenge, nodeC, { responder: spiffe(TD_A, 'node-x') }),
      ),
      401,
      'BAD_SIGNATURE',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  const good = (challenge: Challenge) => ({
    challenge_id: challenge.challenge_id,
    signature: randomBytes(64).toString('base64url'),
    counter_nonce: randomBytes(32).toString('base64url'),
  });
  const malformed: Array<
    [
      string,
      (challenge: Challenge) => unknown,
      { raw?: string; contentType?: string },
      number,
      string,
    ]
  > = [
    [
      'a signature that is not base64url',
      (c) => ({ ...good(c), signature: 'not base64!' }),
      {},
      400,
      'INVALID_BODY',
    ],
    [
      'a counter-nonce that is not base64url',
      (c) => ({ ...good(c), counter_nonce: '$$$' }),
      {},
      400,
      'INVALID_BODY',
    ],
    ['a missing signature', (c) => ({ ...good(c), signature: undefined }), {}, 400, 'INVALID_BODY'],
    [
      'a missing challenge ID',
      (c) => ({ ...good(c), challenge_id: undefined }),
      {},
      400,
      'INVALID_BODY',
    ],
    ['an empty body', () => undefined, {}, 400, 'INVALID_BODY'],
    ['an extra field', (c) => ({ ...good(c), admin: true }), {}, 400, 'INVALID_BODY'],
    [
      'a challenge ID that is not a UUID',
      (c) => ({ ...good(c), challenge_id: 'abc' }),
      {},
      400,
      'INVALID_BODY',
    ],
    [
      'a body that is not JSON',
      () => undefined,
      { raw: '{"challenge_id":' },
      400,
      'MALFORMED_JSON',
    ],
    [
      'a body that is not declared as JSON',
      (c) => good(c),
      { contentType: 'text/plain' },
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a challenge ID that was never issued',
      (c) => ({ ...good(c), challenge_id: randomUUID() }),
      {},
      400,
      'CHALLENGE_UNKNOWN',
    ],
    [
      'a signature that is well-formed base64url but signs nothing',
      (c) => good(c),
      {},
      401,
      'BAD_SIGNATURE',
    ],
  ];
  it.each(malformed)('refuses %s', async (_name, build, options, status, code) => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    const body = build(challenge);
    const raw = options.raw ?? (options.contentType ? JSON.stringify(body) : undefined);
    expectError(
      await connection.send('POST', PATHS.trust, body, {
        ...(raw === undefined ? {} : { raw }),
        ...(options.contentType ? { contentType: options.contentType } : {}),
      }),
      status,
      code,
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a challenge request with a body other than {}', async () => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    expectError(
      await connection.send('POST', PATHS.challenge, { node_id: 'node-a' }),
      400,
      'INVALID_BODY',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });
});

describe('connection and body limits', () => {
  it('refuses TLS renegotiation, which could swap the client certificate of an authenticated connection', async () => {
    const before = snapshot(daemonState);
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: daemon.port,
      cert: nodeC.certPem,
      key: nodeC.keyPem,
      rejectUnauthorized: false,
      maxVersion: 'TLSv1.2',
    });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    const outcome = await new Promise<Error | null>((resolve) => {
      const started = socket.renegotiate({ rejectUnauthorized: false }, (error) =>
        resolve(error ?? null),
      );
      if (!started) resolve(new Error('renegotiation did not start'));
      socket.once('close', () => resolve(new Error('closed')));
    });
    socket.destroy();
    expect(outcome).toBeInstanceOf(Error);
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('answers a request that is not HTTP with a JSON 400 and closes the connection', async () => {
    const before = snapshot(daemonState);
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: daemon.port,
      cert: nodeC.certPem,
      key: nodeC.keyPem,
      rejectUnauthorized: false,
    });
    await once(socket, 'secureConnect');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.write('\x16\x03 this is not http\r\n\r\n');
    await once(socket, 'close');
    const text = Buffer.concat(chunks).toString('utf8');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Reply['body'];
    expect(body.error?.code).toBe('MALFORMED_REQUEST');
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it.each([
    ['declared by content-length', false],
    ['sent in chunks', true],
  ])('refuses an oversized establish body %s', async (_how, chunked) => {
    const before = snapshot(daemonState);
    const connection = connect(nodeC);
    const challenge = await challengeOver(connection);
    const oversized = JSON.stringify({
      challenge_id: challenge.challenge_id,
      signature: 'A'.repeat(1000),
      counter_nonce: 'A'.repeat(32),
      endpoint: `https://127.0.0.1/${'x'.repeat(20_000)}`,
    });
    expectError(
      await connection.send('POST', PATHS.trust, undefined, { raw: oversized, chunked }),
      413,
      'BODY_TOO_LARGE',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a peer that hoards challenges, without locking out other peers', async () => {
    const hoarder = await issueLeaf({ issuer: caA, uris: [spiffe(TD_A, 'node-hoarder')] });
    const connection = connect(hoarder);
    let refused: Reply | undefined;
    for (let index = 0; index < 100 && !refused; index++) {
      const reply = await connection.send('POST', PATHS.challenge, {});
      if (reply.status !== 200) refused = reply;
    }
    expect(refused).toBeDefined();
    expectError(refused as Reply, 429, 'TOO_MANY_CHALLENGES');
    await expectStillServing();
  });
});

describe('peer identity and trust refusals', () => {
  it('refuses an org-b certificate that claims the node ID of trusted org-a node-a', async () => {
    // A valid chain to org-b's anchor, but node-a is known here as org-a's node-a: the SPIFFE
    // ID does not match the node it claims to be, on trusted endpoints and in establish.
    expect(peerRow('node-a')).toMatchObject({ spiffe_id: nodeA.spiffeId });
    const before = snapshot(daemonState);
    const connection = connect(nodeAatB);
    expect((await connection.send('GET', PATHS.info)).status).toBe(200);
    expectError(await connection.send('GET', PATHS.resources), 403, 'IDENTITY_MISMATCH');
    const challenge = await challengeOver(connection);
    expectError(
      await connection.send('POST', PATHS.trust, answer(challenge, nodeAatB)),
      409,
      'NODE_ID_CONFLICT',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a trusted peer that presents another certificate than the pinned one', async () => {
    const before = snapshot(daemonState);
    const swapped = await issueLeaf({ issuer: caA, uris: [nodeA.spiffeId] });
    const connection = connect(swapped);
    expect((await connection.send('GET', PATHS.info)).status).toBe(200);
    expectError(await connection.send('GET', PATHS.resources), 403, 'PIN_MISMATCH');
    expectError(await connection.send('GET', `${PATHS.resources}/echo`), 403, 'PIN_MISMATCH');
    expectError(await connection.send('POST', PATHS.revoke, {}), 403, 'PIN_MISMATCH');
    expect((await connect(nodeA).send('GET', PATHS.resources)).status).toBe(200);
    expect(snapshot(daemonState)).toBe(before);
  });

  it('refuses a peer revoked by `trust revoke` at once, on its open connection and in establish', async () => {
    const connection = connect(nodeA);
    expect((await connection.send('GET', PATHS.resources)).status).toBe(200);
    expectSuccess(await cli(daemonState, ['trust', 'revoke', 'node-a', '--yes', '--no-notify']));
    expect(peerRow('node-a')).toMatchObject({ trust_level: 'revoked' });
    const before = snapshot(daemonState);

    expectError(await connection.send('GET', PATHS.resources), 403, 'REVOKED');
    expectError(await connection.send('POST', PATHS.revoke, {}), 403, 'REVOKED');
    const challenge = await challengeOver(connection);
    expectError(
      await connection.send('POST', PATHS.trust, answer(challenge, nodeA)),
      403,
      'REVOKED',
    );
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });
});

describe('anchor removal', () => {
  it("refuses, at once and on its open connection, a peer whose domain's anchor was removed", async () => {
    const connection = connect(nodeAatB);
    expect((await connection.send('GET', PATHS.info)).status).toBe(200);
    expectSuccess(
      await cli(daemonState, [
        'trust',
        'anchor',
        'remove',
        certificateFingerprint(caB.certificateDer),
      ]),
    );
    const before = snapshot(daemonState);
    expectError(await connection.send('GET', PATHS.info), 403, 'UNKNOWN_TRUST_DOMAIN');
    expectError(await connection.send('POST', PATHS.challenge, {}), 403, 'UNKNOWN_TRUST_DOMAIN');
    await expectStillServing();
    expect(snapshot(daemonState)).toBe(before);
  });
});

describe('the CLI initiator refuses a daemon presenting a bad certificate (exit 3)', () => {
  async function establishRefused(
    endpoint: string,
    fingerprint: string,
    message: RegExp,
  ): Promise<void> {
    const before = snapshot(initiatorState);
    const result = await cli(initiatorState, [
      'trust',
      'establish',
      endpoint,
      '--fingerprint',
      fingerprint,
    ]);
    expectRefusal(result, 3, { message });
    expect(snapshot(initiatorState)).toBe(before);
  }

  it('refuses a server certificate without the serverAuth EKU', async () => {
    const leaf = await issueLeaf({
      issuer: caA,
      uris: [spiffe(TD_A, 'node-e')],
      ekus: [EKU.clientAuth],
    });
    const served = await daemonPresenting('node-e', leaf, 'node-e', TD_A);
    await establishRefused(
      `https://127.0.0.1:${served.port}`,
      certificateFingerprint(leaf.der),
      /not valid for serverAuth/,
    );
  });

  it('refuses a server certificate from an unknown CA of a known trust domain', async () => {
    const served = await startExtraDaemon(join(nodeU.dir, 'state.db'));
    await establishRefused(
      `https://127.0.0.1:${served.port}`,
      served.identity.fingerprint,
      /no trust anchor or intermediate issued/,
    );
  });

  it('refuses a server certificate revoked by a CRL imported on the initiator', async () => {
    expectSuccess(await cli(initiatorState, ['trust', 'crl', 'import', join(root, 'crl-a.pem')]));
    const served = await startExtraDaemon(join(nodeR.dir, 'state.db'));
    await establishRefused(
      `https://127.0.0.1:${served.port}`,
      served.identity.fingerprint,
      /revoked/i,
    );
  });

  it('refuses a daemon whose certificate names another node than the one asked for', async () => {
    // node-x is known (discovered) at node-d's endpoint; node-d answers there.
    const store = openState(initiatorState, { create: false });
    try {
      const now = new Date().toISOString();
      store.write((db) =>
        savePeer(db, {
          nodeId: 'node-x',
          trustDomain: TD_A,
          spiffeId: spiffe(TD_A, 'node-x'),
          endpoint: `https://127.0.0.1:${daemon.port}`,
          trustLevel: 'untrusted',
          pinnedFingerprint: null,
          certificatePem: null,
          trustExpiresAt: null,
          establishedAt: null,
          revokedAt: null,
          revokeReason: null,
          createdAt: now,
          updatedAt: now,
        }),
      );
    } finally {
      store.close();
    }
    await establishRefused('node-x', daemon.identity.fingerprint, /node-d, not node-x/);
  });
});

describe('after all refusals', () => {
  it('logged every refusal as a request and no internal error', () => {
    expect(logs.filter((entry) => entry.level === 'error')).toEqual([]);
    const refused = logs.filter(
      (entry) => entry.msg === 'request' && (entry.status as number) >= 400,
    );
    expect(refused.length).toBeGreaterThan(50);
    expect(refused.every((entry) => typeof entry.correlation_id === 'string')).toBe(true);
  });
});
