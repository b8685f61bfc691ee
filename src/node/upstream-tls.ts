import { createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';

/**
 * TLS towards an HTTPS upstream (a capability's `backend.tls` in the resources file): the CAs
 * to trust instead of the system's, a client certificate for an upstream that asks for one, and
 * the name to check when the URL names an address. Read when the resources file loads, so that a
 * missing or mismatched file refuses the file (exit 2 at start, an error line on reload) rather
 * than failing every call later with a 502.
 */

/** `backend.tls` as written: paths relative to the resources file's folder. */
export interface UpstreamTlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  server_name?: string | undefined;
}

/** What undici's connector takes, plus an ID that tells one set of material from another. */
export interface UpstreamTls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  /** SHA-256 over everything above: pools are kept per origin and per this. */
  id: string;
}

/** One problem with `backend.tls`, at the place in the file it concerns. */
export class UpstreamTlsProblem extends Error {
  constructor(
    readonly field: 'ca' | 'cert' | 'key' | null,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamTlsProblem';
  }
}

const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----/;

/**
 * Reads and checks the files `tls` names: each one readable, certificates and a key in PEM, the
 * key that of the certificate (OpenSSL itself compares them, through createSecureContext).
 * Throws an UpstreamTlsProblem naming the field.
 */
export function loadUpstreamTls(files: UpstreamTlsFiles, baseDir: string): UpstreamTls {
  const read = (field: 'ca' | 'cert' | 'key'): string | undefined => {
    const path = files[field];
    if (path === undefined) return undefined;
    const full = isAbsolute(path) ? path : resolve(baseDir, path);
    try {
      return readFileSync(full, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new UpstreamTlsProblem(
        field,
        `cannot read ${full} (${code})${isAbsolute(path) ? '' : ": a relative path is read from the resources file's folder"}`,
      );
    }
  };
  const ca = read('ca');
  const cert = read('cert');
  const key = read('key');
  if (ca !== undefined && !CERTIFICATE_PEM.test(ca)) {
    throw new UpstreamTlsProblem('ca', `${files.ca} holds no PEM certificate`);
  }
  if (cert !== undefined && !CERTIFICATE_PEM.test(cert)) {
    throw new UpstreamTlsProblem('cert', `${files.cert} holds no PEM certificate`);
  }
  if (key !== undefined) {
    try {
      createPrivateKey(key);
    } catch {
      throw new UpstreamTlsProblem('key', `${files.key} holds no private key (PEM, unencrypted)`);
    }
  }
  try {
    createSecureContext({
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw /key values mismatch/i.test(reason)
      ? new UpstreamTlsProblem('key', `${files.key} is not the key of ${files.cert}`)
      : new UpstreamTlsProblem(null, `the TLS files cannot be used: ${reason}`);
  }
  const servername = files.server_name;
  const id = createHash('sha256')
    .update(JSON.stringify([ca ?? null, cert ?? null, key ?? null, servername ?? null]))
    .digest('hex');
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(servername === undefined ? {} : { servername }),
    id,
  };
}
