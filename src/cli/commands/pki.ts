import { Option, type Command } from 'commander';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CertificateSummary } from '../../core/identity/certificate.js';
import {
  REVOCATION_REASONS,
  REVOCATION_RECORD_FILE,
  type RevocationReason,
} from '../../core/identity/revocation-reasons.js';
import { UsageError } from '../../core/errors.js';
import { action, Declined } from '../action.js';
import type { CommandContext } from '../context.js';
import { withExamples } from '../help-text.js';
import { collect, integerIn } from '../options.js';
import type { CliIo } from '../output/output.js';
import { count } from '../../core/plural.js';

interface CaCreateOptions {
  out: string;
  trustDomain?: string;
  days: number;
  keyType: 'ec' | 'ed25519';
}

interface IssueOptions {
  ca: string;
  nodeId: string;
  trustDomain?: string;
  dns?: string[];
  ip?: string[];
  out: string;
  days?: number;
  keyType: 'ec' | 'ed25519';
}

interface CrlCreateOptions {
  ca: string;
  revoke?: string[];
  reason?: RevocationReason;
  out: string;
  days: number;
}

const keyTypeOption = () =>
  new Option('--key-type <type>', 'key algorithm').choices(['ec', 'ed25519']).default('ec');

export function registerPki(program: Command, io: CliIo): void {
  const pki = program
    .command('pki')
    .description('a development PKI: CAs, node certificates, CRLs (X509-SVID profile)');

  const ca = pki.command('ca').description('certificate authorities');
  const caCreate = ca
    .command('create')
    .description('create a self-signed development CA (ca.pem, and ca.key mode 0600)')
    .requiredOption('--out <dir>', 'folder to write ca.pem and ca.key into (created 0700)')
    .option('--trust-domain <domain>', 'the trust domain this CA vouches for')
    .option('--days <n>', 'validity in days', integerIn(1, 36500), 3650)
    .addOption(keyTypeOption())
    .action(
      action<CaCreateOptions>(io, async (context, options) => {
        const { createCertificateAuthority, CA_FILES } = await import('../../core/identity/pki.js');
        const certificatePath = resolve(options.out, CA_FILES.certificate);
        const keyPath = resolve(options.out, CA_FILES.key);
        // The revocations of the CA being replaced mean nothing for the new one (other key,
        // other serials): they go with it.
        const recordPath = resolve(options.out, REVOCATION_RECORD_FILE);
        const overwrite = await confirmOverwrite(context, [certificatePath, keyPath, recordPath]);
        const material = await createCertificateAuthority({
          trustDomain: options.trustDomain,
          days: options.days,
          keyType: options.keyType,
          now: context.now(),
        });
        await writeMaterial(
          certificatePath,
          material.certificatePem,
          keyPath,
          material.privateKeyPem,
          overwrite,
        );
        if (overwrite) rmSync(recordPath, { force: true });
        context.output.success(`created CA ${material.summary.subject} in ${resolve(options.out)}`);
        renderIssued(context, { certificatePath, keyPath }, material.summary);
      }),
    );
  withExamples(caCreate, [
    [
      'A CA for one organization',
      'sark-fed pki ca create --out ./ca-a --trust-domain org-a.example',
    ],
    [
      'An Ed25519 CA valid for a year',
      'sark-fed pki ca create --out ./ca-b --trust-domain org-b.example --key-type ed25519 --days 365',
    ],
  ]);

  const issue = pki
    .command('issue')
    .description('issue a node certificate (cert.pem, key.pem mode 0600, and a copy of ca.pem)')
    .requiredOption('--ca <dir>', 'CA folder made by `pki ca create`')
    .requiredOption('--node-id <id>', 'node ID, the last part of the SPIFFE ID')
    .option('--trust-domain <domain>', "trust domain (default: the CA's)")
    .option('--dns <name>', 'DNS name SAN (repeatable)', collect)
    .option('--ip <addr>', 'IP address SAN (repeatable)', collect)
    .requiredOption('--out <dir>', 'folder to write into (created 0700)')
    .option(
      '--days <n>',
      "validity in days (default: 365, or until the CA's own expiry if sooner)",
      integerIn(1, 36500),
    )
    .addOption(keyTypeOption())
    .action(
      action<IssueOptions>(io, async (context, options) => {
        const pkiModule = await import('../../core/identity/pki.js');
        const authority = pkiModule.loadCertificateAuthority(options.ca);
        const certificatePath = resolve(options.out, pkiModule.NODE_FILES.certificate);
        const keyPath = resolve(options.out, pkiModule.NODE_FILES.key);
        const caPath = resolve(options.out, pkiModule.NODE_FILES.ca);
        const material = await pkiModule.issueNodeCertificate({
          ca: authority,
          nodeId: options.nodeId,
          trustDomain: options.trustDomain,
          dnsNames: options.dns ?? [],
          ipAddresses: options.ip ?? [],
          days: options.days,
          keyType: options.keyType,
          now: context.now(),
        });
        const overwrite = await confirmOverwrite(context, [certificatePath, keyPath, caPath]);
        const { writeOutputFiles } = await import('../../core/identity/files.js');
        writeOutputFiles(
          [
            { path: certificatePath, content: material.certificatePem, secret: false },
            { path: keyPath, content: material.privateKeyPem, secret: true },
            { path: caPath, content: authority.certificatePem, secret: false },
          ],
          overwrite,
        );
        context.output.success(
          `issued ${material.summary.spiffeId ?? options.nodeId} into ${resolve(options.out)}`,
        );
        renderIssued(context, { certificatePath, keyPath, caPath }, material.summary);
      }),
    );
  withExamples(issue, [
    [
      'A node reachable on loopback',
      'sark-fed pki issue --ca ./ca-a --node-id node-a --ip 127.0.0.1 --dns localhost --out ./node-a',
    ],
  ]);

  const inspect = pki
    .command('inspect')
    .description('show subject, issuer, SANs, SPIFFE ID, validity, KU, EKU and SHA-256 fingerprint')
    .argument('<cert>', 'PEM or DER certificate file, or - for stdin')
    .action(
      action<object>(io, async (context, _options, [source]) => {
        const { certificatesFromBytes } = await import('../../core/identity/pem.js');
        const { summarizeCertificate } = await import('../../core/identity/certificate.js');
        const { readInputFile } = await import('../../core/identity/files.js');
        const bytes =
          source === '-'
            ? await readAll(context.io.stdin)
            : readInputFile(source as string, 'certificate');
        const summaries = certificatesFromBytes(
          bytes,
          source === '-' ? 'stdin' : (source as string),
        ).map((der) => summarizeCertificate(der));
        if (context.output.json) {
          context.output.writeJson({ certificates: summaries });
          return;
        }
        summaries.forEach((summary, index) => {
          if (index > 0) context.output.line();
          renderSummary(context, summary);
        });
      }),
    );
  withExamples(inspect, [
    ['Inspect a node certificate', 'sark-fed pki inspect ./node-a/cert.pem'],
    [
      'Just the fingerprint, for `trust establish --fingerprint`',
      "sark-fed pki inspect ./node-a/cert.pem --json | jq -r '.certificates[0].fingerprint'",
    ],
    [
      'From a TLS server',
      'openssl s_client -connect 127.0.0.1:8443 </dev/null 2>/dev/null | sark-fed pki inspect -',
    ],
  ]);

  const crl = pki.command('crl').description('certificate revocation lists');
  const crlCreate = crl
    .command('create')
    .description(
      "write the CA's CRL: every certificate it has revoked, with those given by --revoke",
    )
    .requiredOption('--ca <dir>', 'CA folder made by `pki ca create`')
    .option(
      '--revoke <cert>',
      `certificate to revoke (repeatable); the CA records it in ${REVOCATION_RECORD_FILE}`,
      collect,
    )
    .addOption(
      new Option(
        '--reason <reason>',
        'why the --revoke certificates are revoked (RFC 5280)',
      ).choices(Object.keys(REVOCATION_REASONS)),
    )
    .requiredOption('--out <file>', 'where to write the CRL (PEM)')
    .option('--days <n>', 'days until the next update', integerIn(1, 36500), 30)
    .action(
      action<CrlCreateOptions>(io, async (context, options) => {
        const revoke = options.revoke ?? [];
        if (options.reason !== undefined && revoke.length === 0) {
          throw new UsageError('REASON_WITHOUT_REVOKE', '--reason needs --revoke', {
            hint: 'the reason applies to the certificates revoked by this run; earlier ones keep theirs',
          });
        }
        const pkiModule = await import('../../core/identity/pki.js');
        const { certificatesFromBytes } = await import('../../core/identity/pem.js');
        const { readInputFile, writeOutputFiles } = await import('../../core/identity/files.js');
        const revocations = await import('../../core/identity/revocations.js');
        const authority = pkiModule.loadCertificateAuthority(options.ca);
        const record = revocations.readRevocationRecord(options.ca, authority);
        const requests = revoke.map((path) => ({
          der: certificatesFromBytes(readInputFile(path, 'certificate'), path)[0] as Buffer,
          source: resolve(path),
        }));
        const now = context.now();
        const update = revocations.addRevocations(
          record,
          authority,
          requests,
          options.reason ?? null,
          now,
        );
        const pem = await pkiModule.createRevocationList({
          ca: authority,
          revoked: update.record.revoked,
          days: options.days,
          now,
        });
        const out = resolve(options.out);
        const recordPath = resolve(revocations.revocationRecordPath(options.ca));
        const overwrite = await confirmOverwrite(context, [out]);
        // The record first: should the CRL then fail to be written, the next run still lists
        // what this one revoked. Both paths are checked before either is written.
        writeOutputFiles(
          [
            ...(update.added.length > 0
              ? [
                  {
                    path: recordPath,
                    content: revocations.revocationRecordText(update.record),
                    secret: false,
                  },
                ]
              : []),
            { path: out, content: pem, secret: false },
          ],
          // confirmOverwrite asked about the CRL (or refused); the record is the CA's own.
          overwrite || update.added.length > 0,
        );
        for (const entry of update.already) {
          context.output.warn(
            `${entry.subject} (serial ${entry.serialNumber}) was already revoked on ${entry.revokedAt}; it keeps that date`,
          );
        }
        const all = update.record.revoked;
        const fresh = new Set(update.added);
        const earlier = all.length - update.added.length;
        context.output.success(
          `wrote a CRL revoking ${count(all.length, 'certificate')}` +
            (earlier === 0
              ? ''
              : update.added.length === 0
                ? ' (all revoked before)'
                : ` (${update.added.length} new, ${earlier} revoked before)`) +
            ` to ${out}`,
        );
        const nextUpdate = new Date(now.getTime() + options.days * 86_400_000).toISOString();
        if (context.output.json) {
          context.output.writeJson({
            path: out,
            issuer: authority.summary.subject,
            thisUpdate: now.toISOString(),
            nextUpdate,
            record: recordPath,
            revoked: all.map((entry) => ({ ...entry, new: fresh.has(entry) })),
          });
          return;
        }
        // The certificate files they were revoked from are in the record (and --json).
        context.output.table(
          ['serial', 'subject', 'revoked', 'reason'],
          all.map((entry) => [
            entry.serialNumber,
            entry.subject,
            entry.revokedAt,
            entry.reason ?? '-',
          ]),
        );
      }),
    );
  withExamples(crlCreate, [
    [
      'Revoke a node certificate whose key leaked (the CRL lists earlier revocations too)',
      'sark-fed pki crl create --ca ./ca-a --revoke ./node-a/cert.pem --reason key-compromise --out ./ca-a/crl.pem',
    ],
    [
      'Renew the CRL before its next update, revoking nothing new',
      'sark-fed pki crl create --ca ./ca-a --out ./ca-a/crl.pem --yes',
    ],
  ]);
}

/** Asks before replacing existing files; returns whether overwriting was confirmed. */
async function confirmOverwrite(
  context: CommandContext,
  paths: readonly string[],
): Promise<boolean> {
  const { existingPaths } = await import('../../core/identity/files.js');
  const existing = existingPaths(paths);
  if (existing.length === 0) return false;
  const confirmed = await context.prompter.confirm({
    message: `Overwrite ${existing.join(', ')}?`,
    flag: '--yes',
    action: `overwriting ${existing.join(', ')}`,
  });
  if (!confirmed) throw new Declined('nothing was written');
  return true;
}

async function writeMaterial(
  certificatePath: string,
  certificatePem: string,
  keyPath: string,
  keyPem: string,
  overwrite: boolean,
): Promise<void> {
  const { writeOutputFiles } = await import('../../core/identity/files.js');
  writeOutputFiles(
    [
      { path: certificatePath, content: certificatePem, secret: false },
      { path: keyPath, content: keyPem, secret: true },
    ],
    overwrite,
  );
}

function renderIssued(
  context: CommandContext,
  paths: Record<string, string>,
  summary: CertificateSummary,
): void {
  if (context.output.json) {
    context.output.writeJson({ ...paths, certificate: summary });
    return;
  }
  context.output.fields([
    ['Certificate', paths.certificatePath ?? ''],
    ['Key', paths.keyPath ?? ''],
    ...(paths.caPath ? [['CA', paths.caPath] as const] : []),
    ['Subject', summary.subject],
    ['SPIFFE ID', summary.spiffeId ?? '-'],
    ['Not after', summary.notAfter],
    ['Fingerprint', summary.fingerprint],
  ]);
}

function renderSummary(context: CommandContext, summary: CertificateSummary): void {
  const sans = summary.subjectAltNames;
  const sanText = [
    ...sans.uri.map((value) => `URI:${value}`),
    ...sans.dns.map((value) => `DNS:${value}`),
    ...sans.ip.map((value) => `IP:${value}`),
    ...sans.email.map((value) => `email:${value}`),
  ].join(', ');
  const now = context.now();
  const valid = now >= new Date(summary.notBefore) && now <= new Date(summary.notAfter);
  context.output.fields([
    ['Subject', summary.subject],
    ['Issuer', summary.issuer],
    ['Serial', summary.serialNumber],
    ['SPIFFE ID', summary.spiffeId ?? '-'],
    ['SANs', sanText || '-'],
    ['Not before', summary.notBefore],
    [
      'Not after',
      valid ? summary.notAfter : { text: `${summary.notAfter} (not valid now)`, style: 'red' },
    ],
    [
      'CA',
      summary.isCa
        ? `yes${summary.pathLength === null ? '' : ` (pathLen ${summary.pathLength})`}`
        : 'no',
    ],
    [
      'Key usage',
      summary.keyUsage
        ? `${summary.keyUsage.join(', ')}${summary.keyUsageCritical ? ' (critical)' : ''}`
        : '-',
    ],
    ['Ext key usage', summary.extendedKeyUsage?.join(', ') ?? '-'],
    ['Public key', summary.publicKeyAlgorithm],
    ['Signature', summary.signatureAlgorithm],
    ['Fingerprint', { text: summary.fingerprint, style: 'cyan' }],
  ]);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}
