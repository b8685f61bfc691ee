import { createPrivateKey, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { summarizeCertificate } from '../../../src/core/identity/certificate.js';
import {
  generateKeyPair,
  importSigningKey,
  type KeyType,
} from '../../../src/core/identity/keys.js';
import { pemBlocks } from '../../../src/core/identity/pem.js';
import { addRevocations, emptyRevocationRecord } from '../../../src/core/identity/revocations.js';
import {
  createCertificateAuthority,
  createRevocationList,
  issueNodeCertificate,
  type CertificateAuthority,
} from '../../../src/core/identity/pki.js';
import { x509 } from '../../../src/core/identity/x509.js';
import { OID } from '../../../src/core/trust/oids.js';
import { validateChain, type ChainValidationInput } from '../../../src/core/trust/validator.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const DAY = 24 * 60 * 60 * 1000;
const SARK_EKUS = [OID.serverAuth, OID.clientAuth];

function der(pem: string): Uint8Array {
  return new Uint8Array((pemBlocks(pem)[0] as { der: Buffer }).der);
}

async function makeCa(trustDomain: string, keyType: KeyType = 'ec'): Promise<CertificateAuthority> {
  const material = await createCertificateAuthority({ trustDomain, days: 3650, keyType, now: NOW });
  const certificateDer = Buffer.from(der(material.certificatePem));
  return {
    certificateDer,
    certificatePem: material.certificatePem,
    privateKey: createPrivateKey(material.privateKeyPem),
    summary: summarizeCertificate(certificateDer),
    trustDomain,
  };
}

async function issueNode(
  ca: CertificateAuthority,
  nodeId = 'node-a',
  keyType: KeyType = 'ec',
): Promise<Uint8Array> {
  const material = await issueNodeCertificate({
    ca,
    nodeId,
    dnsNames: ['node-a.org-a.example'],
    ipAddresses: ['127.0.0.1'],
    days: 365,
    keyType,
    now: NOW,
  });
  return der(material.certificatePem);
}

interface CustomLeaf {
  names?: x509.JsonGeneralNames;
  ekus?: string[];
  /** Sign with this key instead of the CA's (the certificate still names the CA as issuer). */
  signWith?: CryptoKey;
}

/** A leaf made directly with @peculiar/x509, for shapes that `pki issue` never produces. */
async function customLeaf(ca: CertificateAuthority, options: CustomLeaf = {}): Promise<Uint8Array> {
  const signer = await importSigningKey(ca.privateKey);
  const { keys } = await generateKeyPair('ec');
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: `4${randomBytes(15).toString('hex')}`,
    subject: 'CN=node-a, O=org-a.example',
    issuer: new x509.X509Certificate(ca.certificateDer).subject,
    notBefore: new Date(NOW.getTime() - DAY),
    notAfter: new Date(NOW.getTime() + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: options.signWith ?? signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(options.ekus ?? [OID.serverAuth, OID.clientAuth]),
      new x509.SubjectAlternativeNameExtension(
        options.names ?? [{ type: 'url', value: 'spiffe://org-a.example/sark/node/node-a' }],
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(ca.summary.subjectKeyId as string),
    ],
  });
  return new Uint8Array(certificate.rawData);
}

describe('validateChain with sark-fed PKI (x509-svid profile)', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let leaf: Uint8Array;

  const input = (overrides: Partial<ChainValidationInput> = {}): ChainValidationInput => ({
    leaf,
    intermediates: [],
    anchors: [ca.certificateDer],
    time: NOW,
    requiredExtendedKeyUsages: SARK_EKUS,
    profile: 'x509-svid',
    ...overrides,
  });

  beforeAll(async () => {
    ca = await makeCa('org-a.example');
    otherCa = await makeCa('org-a.example');
    leaf = await issueNode(ca);
  });

  it('accepts a node chain and returns its SPIFFE ID', () => {
    const result = validateChain(input());
    expect(result).toMatchObject({
      valid: true,
      spiffeId: 'spiffe://org-a.example/sark/node/node-a',
    });
    if (result.valid) {
      expect(result.chain.map((certificate) => Buffer.from(certificate).toString('hex'))).toEqual([
        Buffer.from(leaf).toString('hex'),
        ca.certificateDer.toString('hex'),
      ]);
    }
  });

  it('checks the trust domain of the SPIFFE ID when asked', () => {
    expect(validateChain(input({ trustDomain: 'org-a.example' }))).toMatchObject({ valid: true });
    expect(validateChain(input({ trustDomain: 'org-b.example' }))).toMatchObject({
      valid: false,
      code: 'WRONG_TRUST_DOMAIN',
    });
  });

  it('accepts Ed25519 keys', async () => {
    const edCa = await makeCa('org-b.example', 'ed25519');
    const edLeaf = await issueNode(edCa, 'node-b', 'ed25519');
    const result = validateChain(input({ leaf: edLeaf, anchors: [edCa.certificateDer] }));
    expect(result).toMatchObject({
      valid: true,
      spiffeId: 'spiffe://org-b.example/sark/node/node-b',
    });
  });

  it('matches a peer IP address or host name against the SANs', () => {
    expect(validateChain(input({ peerName: { kind: 'ip', value: '127.0.0.1' } }))).toMatchObject({
      valid: true,
    });
    expect(
      validateChain(input({ peerName: { kind: 'dns', value: 'NODE-A.org-a.example' } })),
    ).toMatchObject({
      valid: true,
    });
    expect(validateChain(input({ peerName: { kind: 'ip', value: '127.0.0.2' } }))).toMatchObject({
      valid: false,
      code: 'NAME_MISMATCH',
    });
  });

  it('refuses an expired certificate', () => {
    const result = validateChain(input({ time: new Date(NOW.getTime() + 400 * DAY) }));
    expect(result).toMatchObject({ valid: false, code: 'CERT_EXPIRED' });
    if (!result.valid) expect(result.reason).toMatch(/expired at/);
  });

  it('refuses a certificate that is not valid yet', () => {
    const result = validateChain(input({ time: new Date(NOW.getTime() - DAY) }));
    expect(result).toMatchObject({ valid: false, code: 'CERT_NOT_YET_VALID' });
  });

  it('refuses a leaf valid for serverAuth only when both purposes are required', async () => {
    const serverOnly = await customLeaf(ca, { ekus: [OID.serverAuth] });
    const result = validateChain(input({ leaf: serverOnly }));
    expect(result).toMatchObject({ valid: false, code: 'BAD_EKU' });
    if (!result.valid) expect(result.reason).toMatch(/clientAuth/);
  });

  it('refuses anyExtendedKeyUsage in place of the required purposes', async () => {
    const anyEku = await customLeaf(ca, { ekus: [OID.anyExtendedKeyUsage] });
    expect(validateChain(input({ leaf: anyEku }))).toMatchObject({ valid: false, code: 'BAD_EKU' });
  });

  it('refuses a CA certificate as the leaf', () => {
    const result = validateChain(input({ leaf: ca.certificateDer }));
    expect(result).toMatchObject({ valid: false, code: 'CA_AS_LEAF' });
  });

  it('refuses a chain to another anchor', () => {
    const result = validateChain(input({ anchors: [otherCa.certificateDer] }));
    expect(result).toMatchObject({ valid: false, code: 'UNKNOWN_ISSUER' });
  });

  it('refuses a chain without any anchor', () => {
    expect(validateChain(input({ anchors: [] }))).toMatchObject({
      valid: false,
      code: 'UNKNOWN_ISSUER',
    });
  });

  it('refuses a leaf whose signature bytes were tampered with', () => {
    const tampered = new Uint8Array(leaf);
    // The signature is the last element of the certificate: flip a bit in its last octets.
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 0x01;
    expect(validateChain(input({ leaf: tampered }))).toMatchObject({
      valid: false,
      code: 'BAD_SIGNATURE',
    });
  });

  it('refuses a leaf naming the CA but signed by another key', async () => {
    const { keys } = await generateKeyPair('ec');
    const forged = await customLeaf(ca, { signWith: keys.privateKey });
    expect(validateChain(input({ leaf: forged }))).toMatchObject({
      valid: false,
      code: 'BAD_SIGNATURE',
    });
  });

  it('refuses a leaf revoked by a CRL of its CA, and accepts the others', async () => {
    const crlPem = await createRevocationList({
      ca,
      revoked: addRevocations(
        emptyRevocationRecord(ca),
        ca,
        [{ der: leaf, source: 'leaf' }],
        null,
        NOW,
      ).record.revoked,
      days: 30,
      now: NOW,
    });
    const crl = der(crlPem);
    const result = validateChain(input({ crls: [crl] }));
    expect(result).toMatchObject({ valid: false, code: 'REVOKED' });

    const otherLeaf = await issueNode(ca, 'node-c');
    expect(validateChain(input({ leaf: otherLeaf, crls: [crl] }))).toMatchObject({ valid: true });
    // A CRL of another CA has no say about this chain.
    const otherCrl = der(
      await createRevocationList({ ca: otherCa, revoked: [], days: 30, now: NOW }),
    );
    expect(validateChain(input({ crls: [otherCrl] }))).toMatchObject({ valid: true });
  });

  it('refuses a chain whose CA has an expired CRL', async () => {
    const crl = der(await createRevocationList({ ca, revoked: [], days: 1, now: NOW }));
    expect(
      validateChain(input({ crls: [crl], time: new Date(NOW.getTime() + 2 * DAY) })),
    ).toMatchObject({
      valid: false,
      code: 'CRL_EXPIRED',
    });
  });

  it.each([
    ['a path with a dot segment', [{ type: 'url', value: 'spiffe://org-a.example/sark/../node' }]],
    ['another scheme', [{ type: 'url', value: 'https://org-a.example/sark/node/node-a' }]],
    [
      'an upper-case trust domain',
      [{ type: 'url', value: 'spiffe://Org-A.example/sark/node/node-a' }],
    ],
    ['a trust domain only', [{ type: 'url', value: 'spiffe://org-a.example' }]],
    [
      'two URI SANs',
      [
        { type: 'url', value: 'spiffe://org-a.example/sark/node/node-a' },
        { type: 'url', value: 'spiffe://org-a.example/sark/node/node-b' },
      ],
    ],
    ['no URI SAN', [{ type: 'dns', value: 'node-a.org-a.example' }]],
  ] as Array<[string, x509.JsonGeneralNames]>)(
    'refuses a SPIFFE ID with %s',
    async (_what, names) => {
      const bad = await customLeaf(ca, { names });
      expect(validateChain(input({ leaf: bad }))).toMatchObject({
        valid: false,
        code: 'BAD_SPIFFE_ID',
      });
    },
  );

  it('refuses garbage as the leaf and ignores garbage among the intermediates', () => {
    expect(validateChain(input({ leaf: new Uint8Array([0x30, 0x03, 0x02, 0x01]) }))).toMatchObject({
      valid: false,
      code: 'MALFORMED',
    });
    const junk = [new Uint8Array([1, 2, 3]), leaf, ca.certificateDer, new Uint8Array(0)];
    expect(validateChain(input({ intermediates: junk }))).toMatchObject({ valid: true });
  });

  it('does not require X509-SVID rules under the webpki profile', async () => {
    const twoUris = await customLeaf(ca, {
      names: [
        { type: 'url', value: 'spiffe://org-a.example/a' },
        { type: 'url', value: 'spiffe://org-a.example/b' },
      ],
    });
    const result = validateChain(
      input({ leaf: twoUris, profile: 'webpki', requiredExtendedKeyUsages: [OID.clientAuth] }),
    );
    expect(result).toMatchObject({ valid: true });
    expect(result).not.toHaveProperty('spiffeId');
  });
});
