import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/cli.js';

/**
 * What each command's bundle (scripts/build.mjs) carries decides how long the command takes to
 * start: a one-shot `invoke` is measured against a bare Node script (docs/benchmarks.md). The
 * X.509 library (@peculiar/x509, with its ASN.1 schemas and reflect-metadata) is ~800 KB that
 * the commands below never use: node:crypto reads what they need. It once reached them through
 * one import (the node key's check, put beside the code that validates certificates for `init`),
 * and cost `invoke` ~48 ms a run, 20 %.
 */

const WITHOUT_X509 = ['invoke', 'route', 'status', 'audit', 'circuit'];

describe('command bundles', () => {
  it.each(WITHOUT_X509)('%s does not carry the X.509 library', (name) => {
    const bundle = readFileSync(join(PROJECT_ROOT, 'dist', 'cli', `command-${name}.cjs`), 'utf8');
    expect(bundle).not.toContain('// node_modules/@peculiar/x509/');
    expect(bundle).not.toContain('// node_modules/reflect-metadata/');
  });

  it('the check itself sees the library where it is bundled (init)', () => {
    const bundle = readFileSync(join(PROJECT_ROOT, 'dist', 'cli', 'command-init.cjs'), 'utf8');
    expect(bundle).toContain('// node_modules/@peculiar/x509/');
  });
});
