import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectRefusal, tempDir } from '../helpers/cli.js';
import { makeNode, type TestNode } from '../helpers/federation.js';
import { createCa } from '../helpers/pki.js';

/**
 * `serve --announce mdns` refusals, outside any network namespace: each is refused before a
 * single mDNS packet could be sent. What it announces is tested inside a namespace, in
 * test/integration/mdns.test.ts.
 */
describe('serve --announce mdns', () => {
  let node: TestNode;
  beforeAll(async () => {
    const root = tempDir('sark-fed-serve-mdns-');
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'serve.example']);
    node = await makeNode(root, ca.dir, 'node-a', 'serve.example');
  });

  it('refuses an unknown announce method as a usage error', async () => {
    const result = await node.cli(['serve', '--announce', 'mdns,carrier-pigeon']);
    expectRefusal(result, 2, {
      message: /--announce.*expected a comma-separated list of mdns, consul/,
    });
  });

  it('refuses an --interface that is not this machine’s, and stops the daemon it started', async () => {
    // 203.0.113.0/24 is TEST-NET-3: never an address of this machine.
    const result = await node.cli([
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--announce',
      'mdns',
      '--interface',
      '203.0.113.9',
    ]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(
      /^error: no interface of this machine has the address 203\.0\.113\.9$/m,
    );
    expect(result.stderr).toMatch(/^hint: pass --interface with one of its IPv4 addresses/m);
  });
});
