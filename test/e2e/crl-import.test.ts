import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { importSigningKey } from '../../src/core/identity/keys.js';
import { toPem } from '../../src/core/identity/pem.js';
import { createRevocationList, loadCertificateAuthority } from '../../src/core/identity/pki.js';
import { x509 } from '../../src/core/identity/x509.js';
import { expectRefusal, expectSuccess, tempDir } from '../helpers/cli.js';
import { addAnchor, initNode, nodeCopy, stateRows, type TestNode } from '../helpers/federation.js';
import { createCa, issueNode, type CaFixture } from '../helpers/pki.js';

/**
 * `trust crl import` refusals (issue 3, item 2): a CRL is only taken in when an anchor signed it,
 * it is current, and it is not older than the one held, because the validator fails closed on a
 * CRL it cannot use and an older CRL would un-revoke certificates. Each refusal exits with its
 * documented code, one line and a hint, and leaves the state file as it was.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

let root: string;
let caB: CaFixture;
let stranger: CaFixture;
let node: TestNode;

function write(name: string, pem: string): string {
  const path = join(root, name);
  writeFileSync(path, pem);
  return path;
}

/** A CRL of `ca`, issued as if at `now` (CRL number: its milliseconds since the epoch). */
async function crlAt(ca: CaFixture, now: Date): Promise<string> {
  return createRevocationList({ ca: loadCertificateAuthority(ca.dir), revoked: [], days: 30, now });
}

/** A CRL with no nextUpdate, which RFC 5280 §5.1.2.5 requires and pki crl create always sets. */
async function crlWithoutNextUpdate(ca: CaFixture): Promise<string> {
  const authority = loadCertificateAuthority(ca.dir);
  const signer = await importSigningKey(authority.privateKey);
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(authority.certificateDer).subject,
    thisUpdate: new Date(Date.now() - 60_000),
    entries: [],
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
  });
  return toPem('X509 CRL', new Uint8Array(crl.rawData));
}

async function expectRefusedUntouched(
  file: string,
  exitCode: number,
  expected: { message: RegExp; hint?: RegExp },
): Promise<void> {
  const before = stateRows(node.state);
  expectRefusal(await node.cli(['trust', 'crl', 'import', file]), exitCode, expected);
  expect(stateRows(node.state)).toEqual(before);
}

beforeAll(async () => {
  root = tempDir('sark-fed-crl-');
  const caA = await createCa(join(root, 'ca-a'), ['--trust-domain', 'org-a.example']);
  caB = await createCa(join(root, 'ca-b'), ['--trust-domain', 'org-b.example']);
  stranger = await createCa(join(root, 'ca-x'), ['--trust-domain', 'org-b.example']);
  const certs = await issueNode(caA.dir, 'node-a', join(root, 'node-a'), ['--ip', '127.0.0.1']);
  node = await initNode(root, certs, 'node-a', 'org-a.example');
  await addAnchor(node, caB.certPath);
  // The current CRL of org-b, held from the start.
  expectSuccess(
    await node.cli(['trust', 'crl', 'import', write('current.pem', await crlAt(caB, new Date()))]),
  );
});

describe('trust crl import refuses', () => {
  it('a file that is not a CRL (exit 2)', async () => {
    await expectRefusedUntouched(caB.certPath, 2, {
      message: /not a certificate revocation list/,
      hint: /X509 CRL/,
    });
  });

  it('a CRL no anchor signed (exit 3)', async () => {
    const file = write('stranger.pem', await crlAt(stranger, new Date()));
    await expectRefusedUntouched(file, 3, {
      message: /not signed by any trust anchor/,
      hint: /trust anchor add/,
    });
  });

  it('a CRL older than the one held (exit 3): it would restore revoked certificates', async () => {
    const file = write('older.pem', await crlAt(caB, new Date(Date.now() - 2 * DAY_MS)));
    await expectRefusedUntouched(file, 3, { message: /older than the one already imported/ });
  });

  it('a CRL past its nextUpdate (exit 3)', async () => {
    const file = write('expired.pem', await crlAt(caB, new Date(Date.now() - 60 * DAY_MS)));
    await expectRefusedUntouched(file, 3, { message: /due for renewal/ });
  });

  it('a CRL dated in the future (exit 3)', async () => {
    const file = write('future.pem', await crlAt(caB, new Date(Date.now() + 2 * DAY_MS)));
    await expectRefusedUntouched(file, 3, { message: /in the future/, hint: /clock/ });
  });

  it('a CRL without nextUpdate (exit 3)', async () => {
    const file = write('open-ended.pem', await crlWithoutNextUpdate(caB));
    await expectRefusedUntouched(file, 3, { message: /has no nextUpdate/ });
  });
});

describe('trust crl list, and status', () => {
  const REPORT_KEYS = [
    'authorityKeyId',
    'crlNumber',
    'expired',
    'importedAt',
    'issuer',
    'nextUpdate',
    'nextUpdateInDays',
    'revokedCount',
    'thisUpdate',
  ];

  it('lists the CRL held, with the days until its next update; status names the one due first', async () => {
    const list = await node.cli(['trust', 'crl', 'list', '--json']);
    expectSuccess(list);
    const [held, ...more] = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
    expect(more).toEqual([]);
    expect(Object.keys(held ?? {}).sort()).toEqual(REPORT_KEYS);
    expect(held).toMatchObject({
      issuer: 'CN=sark-fed development CA, O=org-b.example',
      revokedCount: 0,
      expired: false,
      nextUpdateInDays: expect.any(Number),
    });
    expect([29, 30]).toContain(held?.nextUpdateInDays);

    const status = await node.cli(['status', '--json']);
    expectSuccess(status);
    expect(status.stderr).toBe('');
    expect((JSON.parse(status.stdout) as { crlDueFirst: unknown }).crlDueFirst).toEqual(held);
    const text = await node.cli(['status']);
    expect(text.stdout).toMatch(/^Anchors\t1 \(1 CRL, the next due in (29|30) days\)$/m);

    const rows = await node.cli(['trust', 'crl', 'list']);
    expect(rows.stdout.split('\t')[0]).toBe('CN=sark-fed development CA, O=org-b.example');
  });

  it('status warns of a CRL due within a week, and of one past its next update', async () => {
    const copy = nodeCopy(node);
    const soon = write(
      'soon.pem',
      await createRevocationList({
        ca: loadCertificateAuthority(caB.dir),
        revoked: [],
        days: 2,
        now: new Date(),
      }),
    );
    expectSuccess(await copy.cli(['trust', 'crl', 'import', soon]));
    const due = await copy.cli(['status']);
    expectSuccess(due);
    expect(due.stderr).toMatch(
      /^warning: the CRL of CN=sark-fed development CA, O=org-b\.example is due in 1 day \(\S+Z\): import a fresh one before, or every certificate of that CA is refused$/m,
    );

    // Its next update passed (as days go by; here, written so).
    const db = new Database(copy.state);
    db.prepare("UPDATE revocation_lists SET next_update = '2020-01-01T00:00:00.000Z'").run();
    db.close();
    const passed = await copy.cli(['status']);
    expectSuccess(passed);
    expect(passed.stderr).toMatch(
      /^warning: the CRL of .* passed its next update \(2020-01-01T00:00:00\.000Z\): every certificate of that CA is refused until a fresh one is imported/m,
    );
    expect(passed.stdout).toMatch(/^Anchors\t1 \(1 CRL, one past its next update\)$/m);
    const listed = JSON.parse(
      (await copy.cli(['trust', 'crl', 'list', '--json'])).stdout,
    ) as Array<{
      expired: boolean;
      nextUpdateInDays: number;
    }>;
    expect(listed[0]?.expired).toBe(true);
    expect(listed[0]?.nextUpdateInDays).toBeLessThan(0);
  });

  it('says so when none is held: nothing on stdout, [] with --json', async () => {
    const certs = await issueNode(caB.dir, 'node-e', join(root, 'node-e'));
    const empty = await initNode(join(root, 'empty'), certs, 'node-e', 'org-b.example');
    const text = await empty.cli(['trust', 'crl', 'list']);
    expectSuccess(text);
    expect(text.stdout).toBe('');
    expect(text.stderr).toBe('no CRLs held; import one with `sark-fed trust crl import`\n');
    expect(JSON.parse((await empty.cli(['trust', 'crl', 'list', '--json'])).stdout)).toEqual([]);
    const status = JSON.parse((await empty.cli(['status', '--json'])).stdout) as {
      crlDueFirst: unknown;
    };
    expect(status.crlDueFirst).toBeNull();
  });
});
