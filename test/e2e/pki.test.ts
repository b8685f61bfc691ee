import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  expectRefusal,
  expectSuccess,
  fileDigest,
  listDir,
  modeOf,
  runCli,
  tempDir,
  type RunOptions,
} from '../helpers/cli.js';
import {
  normalizeKeyId,
  normalizeOpensslFingerprint,
  openssl,
  opensslExtensions,
  opensslOk,
} from '../helpers/openssl.js';
import { createCa, issueNode, type CaFixture, type NodeFixture } from '../helpers/pki.js';

/** The JSON shape of one certificate in `pki inspect --json` (and `certificate` elsewhere). */
const SUMMARY_KEYS = [
  'authorityKeyId',
  'extendedKeyUsage',
  'fingerprint',
  'isCa',
  'issuer',
  'keyUsage',
  'keyUsageCritical',
  'notAfter',
  'notBefore',
  'pathLength',
  'publicKeyAlgorithm',
  'serialNumber',
  'signatureAlgorithm',
  'spiffeId',
  'subject',
  'subjectAltNames',
  'subjectKeyId',
];

interface Summary {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  isCa: boolean;
  pathLength: number | null;
  keyUsage: string[] | null;
  keyUsageCritical: boolean;
  extendedKeyUsage: string[] | null;
  subjectAltNames: { dns: string[]; ip: string[]; uri: string[]; email: string[] };
  spiffeId: string | null;
  publicKeyAlgorithm: string;
  signatureAlgorithm: string;
  subjectKeyId: string | null;
  authorityKeyId: string | null;
  fingerprint: string;
}

function opensslFingerprint(certPath: string): string {
  return normalizeOpensslFingerprint(
    opensslOk(['x509', '-in', certPath, '-noout', '-fingerprint', '-sha256']),
  );
}

let root: string;
/** ECDSA CA for org-a.example, and two node certificates from it. */
let caEc: CaFixture;
let nodeA: NodeFixture;
let nodeC: NodeFixture;
/** Ed25519 CA for org-b.example and an Ed25519 node certificate from it. */
let caEd: CaFixture;
let nodeB: NodeFixture;
/** A second CA with the very same name as caEc (same trust domain), and a node from it. */
let caTwin: CaFixture;
let nodeTwin: NodeFixture;
/** stdout of `pki ca create --json` for caEd. */
let caEdJson: string;

beforeAll(async () => {
  root = tempDir();
  const edResult = runCli([
    '--json',
    'pki',
    'ca',
    'create',
    '--out',
    join(root, 'ca-ed'),
    '--trust-domain',
    'org-b.example',
    '--key-type',
    'ed25519',
  ]);
  [caEc, caTwin] = await Promise.all([
    createCa(join(root, 'ca-ec'), ['--trust-domain', 'org-a.example']),
    createCa(join(root, 'ca-twin'), ['--trust-domain', 'org-a.example']),
  ]);
  const ed = await edResult;
  expectSuccess(ed);
  caEdJson = ed.stdout;
  caEd = {
    dir: join(root, 'ca-ed'),
    certPath: join(root, 'ca-ed', 'ca.pem'),
    keyPath: join(root, 'ca-ed', 'ca.key'),
  };
  [nodeA, nodeB] = await Promise.all([
    issueNode(caEc.dir, 'node-a', join(root, 'node-a'), [
      '--dns',
      'localhost',
      '--ip',
      '127.0.0.1',
    ]),
    issueNode(caEd.dir, 'node-b', join(root, 'node-b'), ['--key-type', 'ed25519']),
  ]);
  [nodeC, nodeTwin] = await Promise.all([
    issueNode(caEc.dir, 'node-c', join(root, 'node-c')),
    issueNode(caTwin.dir, 'node-a', join(root, 'node-twin')),
  ]);
});

describe.concurrent('pki ca create and pki issue', () => {
  it('writes keys 0600, certificates 0644, folders 0700', () => {
    for (const dir of [caEc.dir, caEd.dir, nodeA.dir, nodeB.dir]) expect(modeOf(dir)).toBe(0o700);
    for (const key of [caEc.keyPath, caEd.keyPath, nodeA.keyPath, nodeB.keyPath]) {
      expect(modeOf(key)).toBe(0o600);
    }
    for (const cert of [caEc.certPath, caEd.certPath, nodeA.certPath, nodeA.caPath]) {
      expect(modeOf(cert)).toBe(0o644);
    }
    expect(listDir(caEc.dir)).toEqual(['ca.key', 'ca.pem']);
    expect(listDir(nodeA.dir)).toEqual(['ca.pem', 'cert.pem', 'key.pem']);
    expect(readFileSync(nodeA.caPath, 'utf8')).toBe(readFileSync(caEc.certPath, 'utf8'));
  });

  it('issues certificates that openssl verifies against the CA (ECDSA and Ed25519)', () => {
    for (const [ca, node] of [
      [caEc, nodeA],
      [caEd, nodeB],
    ] as const) {
      const result = openssl(['verify', '-CAfile', ca.certPath, node.certPath]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain(': OK');
    }
    // And not against a CA that did not sign them, even one with the same name.
    expect(openssl(['verify', '-CAfile', caTwin.certPath, nodeA.certPath]).code).not.toBe(0);
  });

  it('gives the CA the CA profile: CA:TRUE pathlen 0, keyCertSign and cRLSign, an SKI', () => {
    const ext = opensslExtensions(caEc.certPath);
    expect(ext['Basic Constraints']).toEqual({ critical: true, value: 'CA:TRUE, pathlen:0' });
    expect(ext['Key Usage']).toEqual({ critical: true, value: 'Certificate Sign, CRL Sign' });
    expect(ext['Subject Key Identifier']?.value).toMatch(/^[0-9A-F:]+$/);
    expect(ext['Subject Alternative Name']?.value).toBe('URI:spiffe://org-a.example');
  });

  it('issues the X509-SVID leaf profile, ECDSA P-256 by default', () => {
    const ext = opensslExtensions(nodeA.certPath);
    expect(ext['Subject Alternative Name']).toEqual({
      critical: false,
      value: 'URI:spiffe://org-a.example/sark/node/node-a, DNS:localhost, IP Address:127.0.0.1',
    });
    expect(ext['Key Usage']).toEqual({ critical: true, value: 'Digital Signature' });
    expect(ext['Extended Key Usage']?.value).toBe(
      'TLS Web Server Authentication, TLS Web Client Authentication',
    );
    expect(ext['Basic Constraints']).toEqual({ critical: true, value: 'CA:FALSE' });
    const ski = ext['Subject Key Identifier']?.value ?? '';
    const aki = ext['Authority Key Identifier']?.value ?? '';
    expect(ski).toMatch(/^[0-9A-F:]{10,}$/);
    expect(aki).not.toBe('');
    const caSki = opensslExtensions(caEc.certPath)['Subject Key Identifier']?.value ?? '';
    expect(normalizeKeyId(aki)).toBe(normalizeKeyId(caSki));

    const text = opensslOk(['x509', '-in', nodeA.certPath, '-noout', '-text']);
    expect(text).toContain('Public Key Algorithm: id-ecPublicKey');
    expect(text).toContain('NIST CURVE: P-256');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toMatch(/Subject: CN = node-a, O = org-a\.example/);
  });

  it('issues Ed25519 keys and signatures with --key-type ed25519', () => {
    const leaf = opensslOk(['x509', '-in', nodeB.certPath, '-noout', '-text']);
    expect(leaf).toContain('Public Key Algorithm: ED25519');
    expect(leaf).toContain('Signature Algorithm: ED25519');
    const ext = opensslExtensions(nodeB.certPath);
    expect(ext['Subject Alternative Name']?.value).toBe(
      'URI:spiffe://org-b.example/sark/node/node-b',
    );
    expect(ext['Key Usage']).toEqual({ critical: true, value: 'Digital Signature' });
    const ca = opensslOk(['x509', '-in', caEd.certPath, '-noout', '-text']);
    expect(ca).toContain('Public Key Algorithm: ED25519');
    expect(opensslOk(['pkey', '-in', nodeB.keyPath, '-noout', '-text'])).toContain(
      'ED25519 Private-Key',
    );
  });

  it('prints the created CA as JSON with --json', () => {
    const parsed = JSON.parse(caEdJson) as {
      certificatePath: string;
      keyPath: string;
      certificate: Summary;
    };
    expect(parsed.certificatePath).toBe(caEd.certPath);
    expect(parsed.keyPath).toBe(caEd.keyPath);
    expect(Object.keys(parsed.certificate).sort()).toEqual(SUMMARY_KEYS);
    expect(parsed.certificate).toMatchObject({
      isCa: true,
      pathLength: 0,
      spiffeId: 'spiffe://org-b.example',
      publicKeyAlgorithm: 'Ed25519',
      fingerprint: opensslFingerprint(caEd.certPath),
    });
  });
});

describe.concurrent('pki inspect', () => {
  it('prints the fingerprint openssl computes, as tab-separated fields in a pipe', async () => {
    const result = await runCli(['pki', 'inspect', nodeA.certPath]);
    expectSuccess(result);
    expect(result.stderr).toBe('');
    const fields = new Map(
      result.stdout
        .trimEnd()
        .split('\n')
        .map((line) => line.split('\t') as [string, string]),
    );
    expect(fields.get('Fingerprint')).toBe(opensslFingerprint(nodeA.certPath));
    expect(fields.get('SPIFFE ID')).toBe('spiffe://org-a.example/sark/node/node-a');
    expect(fields.get('Key usage')).toBe('digitalSignature (critical)');
    expect(fields.get('Ext key usage')).toBe('serverAuth, clientAuth');
    expect(fields.get('CA')).toBe('no');
    expect(fields.get('Public key')).toBe('ECDSA P-256');
  });

  it('has the documented --json shape', async () => {
    const result = await runCli(['pki', 'inspect', '--json', nodeA.certPath]);
    expectSuccess(result);
    const parsed = JSON.parse(result.stdout) as { certificates: Summary[] };
    expect(Object.keys(parsed)).toEqual(['certificates']);
    expect(parsed.certificates).toHaveLength(1);
    const [leaf] = parsed.certificates as [Summary];
    expect(Object.keys(leaf).sort()).toEqual(SUMMARY_KEYS);
    const serial = opensslOk(['x509', '-in', nodeA.certPath, '-noout', '-serial'])
      .trim()
      .replace(/^serial=/, '')
      .toLowerCase();
    const caSki = normalizeKeyId(
      opensslExtensions(caEc.certPath)['Subject Key Identifier']?.value ?? '',
    );
    expect(leaf).toEqual({
      subject: 'CN=node-a, O=org-a.example',
      issuer: 'CN=sark-fed development CA, O=org-a.example',
      serialNumber: serial,
      notBefore: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/),
      notAfter: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/),
      isCa: false,
      pathLength: null,
      keyUsage: ['digitalSignature'],
      keyUsageCritical: true,
      extendedKeyUsage: ['serverAuth', 'clientAuth'],
      subjectAltNames: {
        dns: ['localhost'],
        ip: ['127.0.0.1'],
        uri: ['spiffe://org-a.example/sark/node/node-a'],
        email: [],
      },
      spiffeId: 'spiffe://org-a.example/sark/node/node-a',
      publicKeyAlgorithm: 'ECDSA P-256',
      signatureAlgorithm: 'ECDSA with SHA-256',
      subjectKeyId: normalizeKeyId(
        opensslExtensions(nodeA.certPath)['Subject Key Identifier']?.value ?? '',
      ),
      authorityKeyId: caSki,
      fingerprint: opensslFingerprint(nodeA.certPath),
    });
    // Default validity of `pki issue`: 365 days.
    const days = (Date.parse(leaf.notAfter) - Date.parse(leaf.notBefore)) / 86_400_000;
    expect(Math.round(days)).toBe(365);
  });

  it('reads a certificate from stdin with -', async () => {
    const result = await runCli(['pki', 'inspect', '-', '--json'], {
      input: readFileSync(nodeB.certPath),
    });
    expectSuccess(result);
    const parsed = JSON.parse(result.stdout) as { certificates: Summary[] };
    expect(parsed.certificates.map((summary) => summary.fingerprint)).toEqual([
      opensslFingerprint(nodeB.certPath),
    ]);
    expect(parsed.certificates[0]?.publicKeyAlgorithm).toBe('Ed25519');
  });

  it('reads a DER certificate', async () => {
    const derPath = join(root, 'node-a.der');
    opensslOk(['x509', '-in', nodeA.certPath, '-outform', 'DER', '-out', derPath]);
    const result = await runCli(['pki', 'inspect', '--json', derPath]);
    expectSuccess(result);
    const parsed = JSON.parse(result.stdout) as { certificates: Summary[] };
    expect(parsed.certificates).toHaveLength(1);
    expect(parsed.certificates[0]?.fingerprint).toBe(opensslFingerprint(nodeA.certPath));
  });

  it('gives one entry per certificate of a bundle, in file order', async () => {
    const bundle = join(root, 'bundle.pem');
    writeFileSync(
      bundle,
      `some text openssl leaves around\n${readFileSync(nodeA.certPath, 'utf8')}${readFileSync(caEc.certPath, 'utf8')}`,
    );
    const json = await runCli(['--json', 'pki', 'inspect', bundle]);
    expectSuccess(json);
    const parsed = JSON.parse(json.stdout) as { certificates: Summary[] };
    expect(parsed.certificates.map((summary) => [summary.isCa, summary.fingerprint])).toEqual([
      [false, opensslFingerprint(nodeA.certPath)],
      [true, opensslFingerprint(caEc.certPath)],
    ]);
    const text = await runCli(['pki', 'inspect', bundle]);
    expectSuccess(text);
    expect(text.stdout.split('\n').filter((line) => line.startsWith('Fingerprint\t'))).toHaveLength(
      2,
    );
  });

  it('refuses a file that holds no certificate with exit 2 and one error line', async () => {
    const notCert = join(root, 'notes.txt');
    writeFileSync(notCert, 'just some text\n');
    expectRefusal(await runCli(['pki', 'inspect', notCert]), 2, {
      message: `${notCert} holds no certificate`,
    });
    // A PEM private key is not a certificate either.
    expectRefusal(await runCli(['pki', 'inspect', nodeA.keyPath]), 2, {
      message: /holds no certificate/,
    });
    expectRefusal(await runCli(['pki', 'inspect', join(root, 'missing.pem')]), 2, {
      message: /cannot read certificate .*missing\.pem \(ENOENT\)/,
    });
  });

  it('refuses a DER file that is not a certificate, and a damaged PEM certificate, with exit 2', async () => {
    const keyDer = join(root, 'key.der');
    opensslOk(['pkey', '-in', nodeA.keyPath, '-outform', 'DER', '-out', keyDer]);
    expectRefusal(await runCli(['pki', 'inspect', keyDer]), 2, { message: /certificate/ });
    const damaged = join(root, 'damaged.pem');
    writeFileSync(damaged, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expectRefusal(await runCli(['pki', 'inspect', damaged]), 2, {
      message: `certificate 1 of ${damaged} is damaged: it cannot be parsed`,
      hint: /copied whole/,
    });
  });
});

/**
 * A copy of caEc's folder. A CA records what it revokes (revoked.json) and lists all of it in
 * every CRL, so tests that revoke do so on copies, side by side, without seeing each other's.
 */
function caEcCopy(): string {
  const dir = join(tempDir('sark-fed-ca-copy-'), 'ca');
  cpSync(caEc.dir, dir, { recursive: true });
  return dir;
}

function crlText(crlPath: string): string {
  return opensslOk(['crl', '-in', crlPath, '-noout', '-text']);
}

/** The CRL number, which RFC 5280 §5.2.3 wants increasing from one CRL of a CA to the next. */
function crlNumber(crlPath: string): bigint {
  const match = /X509v3 CRL Number: *\n\s*(\d+)/.exec(crlText(crlPath));
  expect(match, crlText(crlPath)).not.toBeNull();
  return BigInt(match?.[1] ?? '0');
}

function serialOf(certPath: string): string {
  return opensslOk(['x509', '-in', certPath, '-noout', '-serial'])
    .trim()
    .replace(/^serial=/, '')
    .toLowerCase();
}

/** openssl's verdict on a certificate of caEc, checked against a CRL. */
function revokedBy(crlPath: string, certPath: string): boolean {
  const result = openssl([
    'verify',
    '-crl_check',
    '-CRLfile',
    crlPath,
    '-CAfile',
    caEc.certPath,
    certPath,
  ]);
  if (result.code === 0) return false;
  expect(result.stdout + result.stderr).toContain('certificate revoked');
  return true;
}

describe.concurrent('pki crl create', () => {
  it('writes a CRL openssl verifies, which revokes the certificate and only it', async () => {
    const crlPath = join(root, 'crl', 'crl.pem');
    const result = await runCli([
      'pki',
      'crl',
      'create',
      '--ca',
      caEcCopy(),
      '--revoke',
      nodeA.certPath,
      '--out',
      crlPath,
    ]);
    expectSuccess(result);
    const serial = serialOf(nodeA.certPath);
    // Piped: the raw row (serial, subject, revocation time, reason).
    const [row, ...more] = result.stdout.split('\n');
    expect(more).toEqual(['']);
    expect(row?.split('\t')).toEqual([
      serial,
      'CN=node-a, O=org-a.example',
      expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
      '-',
    ]);
    expect(modeOf(crlPath)).toBe(0o644);

    const crl = openssl(['crl', '-in', crlPath, '-CAfile', caEc.certPath, '-noout']);
    expect(crl.code, crl.stderr).toBe(0);
    expect(crl.stdout + crl.stderr).toContain('verify OK');
    // The CRL is not signed by the twin CA, even though it has the same name (openssl 3.0 says
    // so but still exits 0, hence the text).
    const twin = openssl(['crl', '-in', crlPath, '-CAfile', caTwin.certPath, '-noout']);
    expect(twin.stdout + twin.stderr).not.toContain('verify OK');

    const revoked = openssl([
      'verify',
      '-crl_check',
      '-CRLfile',
      crlPath,
      '-CAfile',
      caEc.certPath,
      nodeA.certPath,
    ]);
    expect(revoked.code).not.toBe(0);
    expect(revoked.stdout + revoked.stderr).toContain('certificate revoked');

    const other = openssl([
      'verify',
      '-crl_check',
      '-CRLfile',
      crlPath,
      '-CAfile',
      caEc.certPath,
      nodeC.certPath,
    ]);
    expect(other.code, other.stderr).toBe(0);

    const text = opensslOk(['crl', '-in', crlPath, '-noout', '-text']);
    expect(text).toContain(`Serial Number: ${serial.toUpperCase()}`);
    expect(text).toContain('X509v3 CRL Number');
    expect(text).toContain('X509v3 Authority Key Identifier');
  });

  it('has a --json shape', async () => {
    const crlPath = join(root, 'crl-json.pem');
    const ca = caEcCopy();
    const result = await runCli([
      '--json',
      'pki',
      'crl',
      'create',
      '--ca',
      ca,
      '--revoke',
      nodeA.certPath,
      '--revoke',
      nodeC.certPath,
      '--reason',
      'superseded',
      '--out',
      crlPath,
    ]);
    expectSuccess(result);
    const parsed = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual([
      'issuer',
      'nextUpdate',
      'path',
      'record',
      'revoked',
      'thisUpdate',
    ]);
    expect(parsed.path).toBe(crlPath);
    expect(parsed.record).toBe(join(ca, 'revoked.json'));
    expect(parsed.issuer).toBe('CN=sark-fed development CA, O=org-a.example');
    const entry = (certPath: string, subject: string) => ({
      serialNumber: serialOf(certPath),
      subject,
      revokedAt: parsed.thisUpdate,
      reason: 'superseded',
      source: certPath,
      new: true,
    });
    expect(parsed.revoked).toEqual([
      entry(nodeA.certPath, 'CN=node-a, O=org-a.example'),
      entry(nodeC.certPath, 'CN=node-c, O=org-a.example'),
    ]);
    const days =
      (Date.parse(parsed.nextUpdate as string) - Date.parse(parsed.thisUpdate as string)) /
      86_400_000;
    expect(days).toBe(30);
  });

  it.each([
    ['another CA with the same name', () => nodeTwin.certPath],
    ['another trust domain', () => nodeB.certPath],
  ])(
    'refuses to revoke a certificate of %s (exit 2) and writes no CRL',
    async (_label, certPath) => {
      const crlPath = join(root, `crl-refused-${Math.random().toString(16).slice(2)}.pem`);
      const result = await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        caEc.dir,
        '--revoke',
        nodeC.certPath,
        '--revoke',
        certPath(),
        '--out',
        crlPath,
      ]);
      expectRefusal(result, 2, { message: /was not issued by this CA/ });
      expect(existsSync(crlPath)).toBe(false);
      expect(listDir(caEc.dir)).toEqual(['ca.key', 'ca.pem']);
    },
  );

  it('lists every certificate the CA has revoked, each with its first date and reason, in every CRL it writes', async () => {
    const ca = caEcCopy();
    const crlPath = join(root, `crl-kept-${Math.random().toString(16).slice(2)}.pem`);
    const create = (args: string[]) =>
      runCli(['pki', 'crl', 'create', '--ca', ca, '--out', crlPath, '--yes', ...args]);

    // Before any revocation: an empty CRL, to publish ahead of the first one.
    const empty = await create([]);
    expectSuccess(empty);
    expect(empty.stderr).toMatch(/wrote a CRL revoking 0 certificates to /);
    expect(crlText(crlPath)).toContain('No Revoked Certificates');
    expect(revokedBy(crlPath, nodeA.certPath)).toBe(false);
    expect(existsSync(join(ca, 'revoked.json'))).toBe(false);
    const numbers = [crlNumber(crlPath)];

    // Right after (often within the same second): a greater CRL number all the same.
    expectSuccess(await create(['--revoke', nodeA.certPath, '--reason', 'key-compromise']));
    numbers.push(crlNumber(crlPath));
    const record = JSON.parse(readFileSync(join(ca, 'revoked.json'), 'utf8')) as {
      revoked: Array<{ revokedAt: string }>;
    };
    expect(record.revoked).toHaveLength(1);
    expect(modeOf(join(ca, 'revoked.json'))).toBe(0o644);

    // Revoking node-c later keeps node-a on the list, with its own date and reason.
    const second = await create(['--json', '--revoke', nodeC.certPath]);
    expectSuccess(second);
    expect(second.stderr).toMatch(/revoking 2 certificates \(1 new, 1 revoked before\)/);
    const listed = (JSON.parse(second.stdout) as { revoked: Array<Record<string, unknown>> })
      .revoked;
    expect(listed.map(({ source, reason, new: isNew }) => [source, reason, isNew])).toEqual([
      [nodeA.certPath, 'key-compromise', false],
      [nodeC.certPath, null, true],
    ]);
    expect(listed[0]?.revokedAt).toBe(record.revoked[0]?.revokedAt);
    expect(revokedBy(crlPath, nodeA.certPath)).toBe(true);
    expect(revokedBy(crlPath, nodeC.certPath)).toBe(true);
    numbers.push(crlNumber(crlPath));
    const text = crlText(crlPath);
    expect(text).toContain(`Serial Number: ${serialOf(nodeA.certPath).toUpperCase()}`);
    expect(text).toContain('Key Compromise');

    // Renewed before its next update without the certificates at hand; one given again keeps
    // its first date, with a warning.
    const recordBefore = fileDigest(join(ca, 'revoked.json'));
    const renewed = await create(['--revoke', nodeA.certPath]);
    expectSuccess(renewed);
    expect(renewed.stderr).toMatch(
      /^warning: CN=node-a, O=org-a\.example \(serial [0-9a-f]+\) was already revoked on \S+Z; it keeps that date$/m,
    );
    expect(renewed.stderr).toMatch(/revoking 2 certificates \(all revoked before\)/);
    expect(fileDigest(join(ca, 'revoked.json'))).toBe(recordBefore);
    expect(revokedBy(crlPath, nodeA.certPath)).toBe(true);
    expect(revokedBy(crlPath, nodeC.certPath)).toBe(true);
    numbers.push(crlNumber(crlPath));
    expect([...numbers].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))).toEqual(numbers);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('refuses, changing nothing, --reason without --revoke, a damaged record, a record of another CA, and an existing --out without --yes', async () => {
    const ca = caEcCopy();
    const recordPath = join(ca, 'revoked.json');
    const crlPath = join(root, `crl-record-${Math.random().toString(16).slice(2)}.pem`);
    const create = (args: string[]) =>
      runCli(['pki', 'crl', 'create', '--ca', ca, '--out', crlPath, ...args]);
    expectSuccess(await create(['--revoke', nodeA.certPath]));
    const before = { record: fileDigest(recordPath), crl: fileDigest(crlPath) };
    const unchanged = () =>
      expect({ record: fileDigest(recordPath), crl: fileDigest(crlPath) }).toEqual(before);

    expectRefusal(await create(['--yes', '--reason', 'superseded']), 2, {
      message: /^--reason needs --revoke$/,
    });
    unchanged();
    expectRefusal(await create(['--revoke', nodeC.certPath]), 2, {
      message: /^overwriting .* needs confirmation/,
      hint: /--yes/,
    });
    unchanged();

    // The record of another CA (the twin, same name, other key) is refused, not merged.
    const twin = join(tempDir('sark-fed-ca-twin-'), 'ca');
    cpSync(caTwin.dir, twin, { recursive: true });
    expectSuccess(
      await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        twin,
        '--revoke',
        nodeTwin.certPath,
        '--out',
        join(twin, 'crl.pem'),
      ]),
    );
    const ours = readFileSync(recordPath);
    cpSync(join(twin, 'revoked.json'), recordPath);
    expectRefusal(await create(['--yes', '--revoke', nodeC.certPath]), 2, {
      message: /revoked\.json belongs to another CA$/,
    });
    expect(fileDigest(crlPath)).toBe(before.crl);

    // A damaged record would un-revoke what it lists if ignored: refused.
    writeFileSync(recordPath, ours.subarray(0, ours.length - 20));
    const damaged = fileDigest(recordPath);
    expectRefusal(await create(['--yes', '--revoke', nodeC.certPath]), 2, {
      message: /revoked\.json is not a revocation record of sark-fed$/,
      hint: /backup/,
    });
    expect(fileDigest(recordPath)).toBe(damaged);
    expect(fileDigest(crlPath)).toBe(before.crl);

    // One that cannot be read at all (a folder in its place): exit 1, nothing written.
    rmSync(recordPath);
    mkdirSync(recordPath);
    expectRefusal(await create(['--yes', '--revoke', nodeC.certPath]), 1, {
      message: /^cannot read .*revoked\.json \(EISDIR\)$/,
      hint: /permissions of the CA folder/,
    });
    expect(fileDigest(crlPath)).toBe(before.crl);
  });

  it('pki ca create --yes over a CA drops its revocation record with it', async () => {
    const ca = caEcCopy();
    expectSuccess(
      await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        ca,
        '--revoke',
        nodeA.certPath,
        '--out',
        join(ca, 'crl.pem'),
      ]),
    );
    expect(existsSync(join(ca, 'revoked.json'))).toBe(true);
    expectSuccess(
      await runCli([
        'pki',
        'ca',
        'create',
        '--out',
        ca,
        '--trust-domain',
        'org-a.example',
        '--yes',
      ]),
    );
    expect(existsSync(join(ca, 'revoked.json'))).toBe(false);
    const fresh = await runCli([
      'pki',
      'crl',
      'create',
      '--ca',
      ca,
      '--out',
      join(ca, 'crl.pem'),
      '--yes',
    ]);
    expectSuccess(fresh);
    expect(fresh.stderr).toMatch(/revoking 0 certificates/);
  });
});

describe.concurrent('pki refusals', () => {
  it('refuses to issue for another trust domain than the CA names (exit 2)', async () => {
    const out = join(root, 'refused-td');
    const result = await runCli([
      'pki',
      'issue',
      '--ca',
      caEc.dir,
      '--node-id',
      'node-x',
      '--trust-domain',
      'org-b.example',
      '--out',
      out,
    ]);
    expectRefusal(result, 2, { message: /org-a\.example.*org-b\.example/ });
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a CRL in which the CA revokes itself (exit 2), writing nothing', async () => {
    const out = join(root, 'self-revoking-crl.pem');
    expectRefusal(
      await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        caEc.dir,
        '--revoke',
        caEc.certPath,
        '--out',
        out,
      ]),
      2,
      { message: /ca\.pem is the CA's own certificate$/, hint: /trust anchor remove/ },
    );
    expect(existsSync(out)).toBe(false);
  });

  it('writes each subject alternative name once, however often the command line repeats it', async () => {
    const out = join(root, 'repeated-sans');
    expectSuccess(
      await runCli([
        'pki',
        'issue',
        '--ca',
        caEc.dir,
        '--node-id',
        'node-r',
        '--ip',
        '127.0.0.1',
        '--ip',
        '127.0.0.1',
        '--dns',
        'Node-R.example',
        '--dns',
        'node-r.example',
        '--out',
        out,
      ]),
    );
    const inspected = await runCli(['pki', 'inspect', join(out, 'cert.pem'), '--json']);
    const [certificate] = (
      JSON.parse(inspected.stdout) as {
        certificates: Array<{ subjectAltNames: { dns: string[]; ip: string[] } }>;
      }
    ).certificates;
    expect(certificate?.subjectAltNames).toMatchObject({
      dns: ['node-r.example'],
      ip: ['127.0.0.1'],
    });
  });

  it('refuses an --out that cannot be written before writing anything (exit 2)', async () => {
    const file = join(root, 'not-a-folder.txt');
    writeFileSync(file, 'notes\n');
    const cases: Array<[string[], RegExp]> = [
      [
        ['pki', 'issue', '--ca', caEc.dir, '--node-id', 'node-x', '--out', file],
        /^cannot write .*not-a-folder\.txt\/cert\.pem: .*not-a-folder\.txt is a file, not a folder$/,
      ],
      [
        ['pki', 'ca', 'create', '--trust-domain', 'org-x.example', '--out', join(file, 'ca')],
        /not-a-folder\.txt is a file, not a folder$/,
      ],
      [
        [
          'pki',
          'crl',
          'create',
          '--ca',
          caEc.dir,
          '--revoke',
          nodeA.certPath,
          '--out',
          root,
          '--yes',
        ],
        /^cannot write .*: it is a folder$/,
      ],
    ];
    for (const [args, message] of cases) {
      expectRefusal(await runCli(args), 2, { message, hint: /^choose another --out/ });
    }
    expect(readFileSync(file, 'utf8')).toBe('notes\n');
  });

  it('will not overwrite a CA without --yes when not interactive, and does with --yes', async () => {
    const dir = join(root, 'ca-copy');
    cpSync(caEc.dir, dir, { recursive: true });
    const before = [fileDigest(join(dir, 'ca.pem')), fileDigest(join(dir, 'ca.key'))];

    const refused = await runCli([
      'pki',
      'ca',
      'create',
      '--out',
      dir,
      '--trust-domain',
      'org-a.example',
    ]);
    expectRefusal(refused, 2, { hint: /--yes/ });
    expect([fileDigest(join(dir, 'ca.pem')), fileDigest(join(dir, 'ca.key'))]).toEqual(before);
    expect(listDir(dir)).toEqual(['ca.key', 'ca.pem']);

    const replaced = await runCli([
      '--yes',
      'pki',
      'ca',
      'create',
      '--out',
      dir,
      '--trust-domain',
      'org-a.example',
    ]);
    expectSuccess(replaced);
    const after = [fileDigest(join(dir, 'ca.pem')), fileDigest(join(dir, 'ca.key'))];
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(modeOf(join(dir, 'ca.key'))).toBe(0o600);
    expect(modeOf(join(dir, 'ca.pem'))).toBe(0o644);
    expect(listDir(dir)).toEqual(['ca.key', 'ca.pem']);
  });

  it('will not overwrite an issued certificate without --yes', async () => {
    const dir = join(root, 'node-copy');
    cpSync(nodeC.dir, dir, { recursive: true });
    const before = listDir(dir).map((name) => fileDigest(join(dir, name)));
    const refused = await runCli([
      'pki',
      'issue',
      '--ca',
      caEc.dir,
      '--node-id',
      'node-c',
      '--out',
      dir,
    ]);
    expectRefusal(refused, 2, { hint: /--yes/ });
    expect(listDir(dir).map((name) => fileDigest(join(dir, name)))).toEqual(before);
  });

  it.each([
    ['--days 0', ['pki', 'ca', 'create', '--out', '{out}', '--days', '0'], /--days/],
    ['--days abc', ['pki', 'ca', 'create', '--out', '{out}', '--days', 'abc'], /--days/],
    [
      '--days -5',
      ['pki', 'issue', '--ca', '{ca}', '--node-id', 'n', '--out', '{out}', '--days', '-5'],
      /--days|-5/,
    ],
    [
      '--key-type rsa',
      ['pki', 'ca', 'create', '--out', '{out}', '--key-type', 'rsa'],
      /--key-type/,
    ],
    [
      'an unknown flag',
      ['pki', 'ca', 'create', '--out', '{out}', '--bogus'],
      /unknown option '--bogus'/,
    ],
    ['a missing --out', ['pki', 'ca', 'create', '--trust-domain', 'org-a.example'], /--out/],
    ['a missing --node-id', ['pki', 'issue', '--ca', '{ca}', '--out', '{out}'], /--node-id/],
    [
      'a bad node ID',
      ['pki', 'issue', '--ca', '{ca}', '--node-id', 'Node_A', '--out', '{out}'],
      /node ID/,
    ],
    [
      'a bad --ip',
      ['pki', 'issue', '--ca', '{ca}', '--node-id', 'n', '--ip', '1.2.3', '--out', '{out}'],
      /1\.2\.3/,
    ],
    [
      'a bad --dns',
      ['pki', 'issue', '--ca', '{ca}', '--node-id', 'n', '--dns', 'bad name!', '--out', '{out}'],
      /^invalid DNS name "bad name!"$/,
    ],
    [
      'a bad trust domain',
      ['pki', 'ca', 'create', '--out', '{out}', '--trust-domain', 'Org A'],
      /trust domain/,
    ],
    [
      '--days beyond the CA',
      ['pki', 'issue', '--ca', '{ca}', '--node-id', 'n', '--out', '{out}', '--days', '36500'],
      /outlive/,
    ],
  ])(
    'refuses %s with exit 2, an error and a hint line, and nothing on stdout',
    async (_label, template, message) => {
      const out = join(root, `refused-${Math.random().toString(16).slice(2)}`);
      const args = template.map((arg) => arg.replace('{out}', out).replace('{ca}', caEc.dir));
      expectRefusal(await runCli(args), 2, { message });
      expect(existsSync(out)).toBe(false);
    },
  );

  it('refuses CA folders it cannot issue from (exit 2), writing nothing', async () => {
    /** A CA folder made by openssl rather than `pki ca create`, with what sark-fed would not make. */
    const opensslCa = (name: string, keyArgs: string[], addext: string[]): string => {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      opensslOk([
        'req',
        '-x509',
        ...keyArgs,
        '-nodes',
        '-keyout',
        join(dir, 'ca.key'),
        '-out',
        join(dir, 'ca.pem'),
        '-subj',
        `/CN=${name}`,
        '-days',
        '30',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-addext',
        'subjectAltName=URI:spiffe://org-o.example',
        ...addext.flatMap((extension) => ['-addext', extension]),
      ]);
      chmodSync(join(dir, 'ca.key'), 0o600);
      return dir;
    };
    const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    const leafAsCa = join(root, 'leaf-as-ca');
    mkdirSync(leafAsCa);
    cpSync(nodeA.certPath, join(leafAsCa, 'ca.pem'));
    cpSync(nodeA.keyPath, join(leafAsCa, 'ca.key'));
    const noDomain = await createCa(join(root, 'ca-no-domain'));
    const cases: Array<[string, RegExp, RegExp]> = [
      [leafAsCa, /leaf-as-ca\/ca\.pem is not a CA certificate$/, /pki ca create/],
      [
        opensslCa('ca-no-ski', p256, ['subjectKeyIdentifier=none']),
        /^the CA certificate has no subject key identifier$/,
        /pki ca create/,
      ],
      [noDomain.dir, /^this CA names no trust domain$/, /^pass --trust-domain/],
      [
        opensslCa('ca-rsa', ['-newkey', 'rsa:2048'], []),
        /^unsupported key type rsa$/,
        /ECDSA .* or Ed25519/,
      ],
      [
        opensslCa('ca-secp256k1', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], []),
        /^unsupported EC curve secp256k1$/,
        /P-256 or P-384/,
      ],
    ];
    for (const [ca, message, hint] of cases) {
      const before = listDir(ca).map((name) => fileDigest(join(ca, name)));
      const out = join(root, `from-${ca.split('/').pop() ?? ''}`);
      const issued = await runCli(['pki', 'issue', '--ca', ca, '--node-id', 'n', '--out', out]);
      expectRefusal(issued, 2, { message, hint });
      expect(existsSync(out), ca).toBe(false);
      expect(listDir(ca).map((name) => fileDigest(join(ca, name)))).toEqual(before);
    }
    // A CRL needs a CA too: nothing is written, not even a revocation record in that folder.
    const crl = join(root, 'from-leaf-as-ca.crl');
    expectRefusal(
      await runCli([
        'pki',
        'crl',
        'create',
        '--ca',
        leafAsCa,
        '--revoke',
        nodeC.certPath,
        '--out',
        crl,
      ]),
      2,
      { message: /leaf-as-ca\/ca\.pem is not a CA certificate$/ },
    );
    expect(existsSync(crl)).toBe(false);
    expect(listDir(leafAsCa)).toEqual(['ca.key', 'ca.pem']);
  });

  it('an --out it may not write: exit 1, cannot write, no file and no temporary file left', async () => {
    const folder = join(root, 'not-writable');
    mkdirSync(folder, { mode: 0o755 });
    // Root ignores permission bits: run the CLI as nobody, which may not write in root's folder.
    const options: RunOptions = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (options.uid === undefined) chmodSync(folder, 0o555);
    try {
      for (const out of [folder, join(folder, 'sub')]) {
        expectRefusal(await runCli(['pki', 'ca', 'create', '--out', out], options), 1, {
          message: new RegExp(`^cannot write ${out}/ca\\.(pem|key) \\(EACCES\\)$`),
          hint: /writable/,
        });
      }
      expect(listDir(folder)).toEqual([]);
    } finally {
      chmodSync(folder, 0o755);
    }
  });

  it('refuses a CA folder whose key is readable by others (exit 2, chmod hint)', async () => {
    const dir = join(root, 'ca-open');
    cpSync(caEc.dir, dir, { recursive: true });
    chmodSync(join(dir, 'ca.key'), 0o644);
    const out = join(root, 'from-open-ca');
    const issued = await runCli(['pki', 'issue', '--ca', dir, '--node-id', 'n', '--out', out]);
    expectRefusal(issued, 2, { message: /0644/, hint: /chmod 600 .*ca\.key/ });
    expect(existsSync(out)).toBe(false);

    const crlPath = join(root, 'from-open-ca.pem');
    const crl = await runCli([
      'pki',
      'crl',
      'create',
      '--ca',
      dir,
      '--revoke',
      nodeA.certPath,
      '--out',
      crlPath,
    ]);
    expectRefusal(crl, 2, { hint: /chmod 600/ });
    expect(existsSync(crlPath)).toBe(false);
  });
});
