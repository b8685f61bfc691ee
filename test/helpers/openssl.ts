import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunResult } from './cli.js';

/** Runs the system `openssl` (a second, independent opinion on what sark-fed writes). */
export function openssl(args: string[], options: { input?: string | Buffer } = {}): RunResult {
  const result = spawnSync('openssl', args, {
    input: options.input,
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (result.error) throw result.error;
  return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs openssl and returns its stdout, failing the test with its stderr when it fails. */
export function opensslOk(args: string[], options: { input?: string | Buffer } = {}): string {
  const result = openssl(args, options);
  if (result.code !== 0) {
    throw new Error(`openssl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  }
  return result.stdout;
}

/** "sha256 Fingerprint=AB:CD:..." (or "SHA256 Fingerprint=") → "abcd...". */
export function normalizeOpensslFingerprint(line: string): string {
  return line
    .trim()
    .replace(/^sha256 Fingerprint=/i, '')
    .replace(/:/g, '')
    .toLowerCase();
}

export interface LeafOptions {
  /** Folder of a CA made by `sark-fed pki ca create` (an ECDSA or Ed25519 ca.pem + ca.key). */
  caDir: string;
  outDir: string;
  spiffeId: string;
  subject: string;
  /** openssl ca dates, YYYYMMDDHHMMSSZ. */
  startDate: string;
  endDate: string;
}

/**
 * Issues a node-profile leaf with the given validity using `openssl ca`, which (unlike
 * `openssl x509` before 3.4) can set both dates, including ones in the past. Writes cert.pem and
 * key.pem (0600) into outDir.
 */
export function issueLeafWithOpenssl(options: LeafOptions): { certPath: string; keyPath: string } {
  const { outDir } = options;
  const dbDir = join(outDir, 'openssl-ca');
  mkdirSync(dbDir, { recursive: true });
  writeFileSync(join(dbDir, 'index.txt'), '');
  const configPath = join(outDir, 'ca.cnf');
  writeFileSync(
    configPath,
    [
      '[ ca ]',
      'default_ca = dev',
      '[ dev ]',
      `database = ${join(dbDir, 'index.txt')}`,
      `new_certs_dir = ${dbDir}`,
      `serial = ${join(dbDir, 'serial')}`,
      'rand_serial = yes',
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      'copy_extensions = none',
      '[ any ]',
      'commonName = supplied',
      'organizationName = optional',
      '',
    ].join('\n'),
  );
  const extPath = join(outDir, 'leaf.ext');
  writeFileSync(
    extPath,
    [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth, clientAuth',
      `subjectAltName = URI:${options.spiffeId}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const keyPath = join(outDir, 'key.pem');
  const csrPath = join(outDir, 'leaf.csr');
  const certPath = join(outDir, 'cert.pem');
  opensslOk([
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    keyPath,
  ]);
  chmodSync(keyPath, 0o600);
  opensslOk(['req', '-new', '-key', keyPath, '-subj', options.subject, '-out', csrPath]);
  opensslOk([
    'ca',
    '-config',
    configPath,
    '-batch',
    '-notext',
    '-preserveDN',
    '-cert',
    join(options.caDir, 'ca.pem'),
    '-keyfile',
    join(options.caDir, 'ca.key'),
    '-in',
    csrPath,
    '-out',
    certPath,
    '-startdate',
    options.startDate,
    '-enddate',
    options.endDate,
    '-extfile',
    extPath,
  ]);
  return { certPath, keyPath };
}

export interface OpensslExtension {
  critical: boolean;
  /** The value lines, trimmed and joined with newlines. */
  value: string;
}

/**
 * The X.509v3 extensions of a certificate as `openssl x509 -text` names them, e.g.
 * `{ 'Key Usage': { critical: true, value: 'Digital Signature' } }`.
 */
export function opensslExtensions(certPath: string): Record<string, OpensslExtension> {
  const text = opensslOk(['x509', '-in', certPath, '-noout', '-text']);
  const extensions: Record<string, OpensslExtension> = {};
  let current: OpensslExtension | undefined;
  for (const line of text.split('\n')) {
    const header = /^\s+X509v3 (.+?): ?(critical)?\s*$/.exec(line);
    if (header) {
      current = { critical: header[2] === 'critical', value: '' };
      extensions[header[1] as string] = current;
      continue;
    }
    if (current && /^\s{16,}\S/.test(line)) {
      current.value = current.value ? `${current.value}\n${line.trim()}` : line.trim();
    } else {
      current = undefined;
    }
  }
  return extensions;
}

/** "keyid:AB:CD:..." or "AB:CD:..." → "abcd...". */
export function normalizeKeyId(value: string): string {
  return value
    .replace(/^keyid:/, '')
    .replace(/:/g, '')
    .trim()
    .toLowerCase();
}
