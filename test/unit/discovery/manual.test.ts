import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  manualRunner,
  parseFederationNodes,
  readNodesFile,
  type ManualSource,
} from '../../../src/core/discovery/manual.js';
import { scan } from '../../../src/core/discovery/scanner.js';
import { UsageError, type SarkError } from '../../../src/core/errors.js';
import { openState } from '../../../src/core/state/database.js';
import { recordSightings } from '../../../src/core/state/discovery-repository.js';

/**
 * Manual node lists (issue 4, item 4): our nodes file, the bare list, and FEDERATION_NODES of the
 * original deployment, read from real files. A bad entry is rejected with its reason and the rest
 * are used; a file that is not a list of nodes at all is a usage error with a hint.
 */

const FP = 'ab'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'sark-fed-manual-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function fileWith(content: string | Buffer): string {
  const path = join(dir, `nodes-${++fileCount}.json`);
  writeFileSync(path, content);
  return path;
}

function usageErrorOf(run: () => unknown): UsageError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return error as UsageError;
  }
  throw new Error('expected a UsageError');
}

/** One line each: an error message and its hint go on one stderr line each (CLI.md). */
function expectOneLine(error: SarkError): void {
  expect(error.message).not.toMatch(/[\n\r\u001b]/);
  expect(error.hint).toMatch(/\S/);
  expect(error.hint).not.toMatch(/[\n\r]/);
}

describe('readNodesFile', () => {
  it('reads our format, {"nodes": [...]}, with optional trust domain and fingerprint', () => {
    const path = fileWith(
      JSON.stringify({
        version: 1,
        nodes: [
          {
            node_id: 'node-a',
            endpoint: 'https://10.0.0.11:8443',
            trust_domain: 'org-a.example',
            fingerprint: FP,
          },
          { node_id: 'node-b', endpoint: 'https://node-b.org-b.example:8443/' },
          {
            node_id: 'node-c',
            endpoint: 'https://[::1]:9443',
            trust_domain: null,
            fingerprint: null,
          },
        ],
      }),
    );
    const source = readNodesFile(path);
    expect(source).toEqual<ManualSource>({
      origin: path,
      rejected: [],
      nodes: [
        {
          nodeId: 'node-a',
          endpoint: 'https://10.0.0.11:8443',
          trustDomain: 'org-a.example',
          fingerprint: FP,
          source: 'file',
          ttlSeconds: expect.any(Number) as number,
        },
        {
          nodeId: 'node-b',
          // Normalised: no trailing slash.
          endpoint: 'https://node-b.org-b.example:8443',
          trustDomain: null,
          fingerprint: null,
          source: 'file',
          ttlSeconds: expect.any(Number) as number,
        },
        {
          nodeId: 'node-c',
          endpoint: 'https://[::1]:9443',
          trustDomain: null,
          fingerprint: null,
          source: 'file',
          ttlSeconds: expect.any(Number) as number,
        },
      ],
    });
    // Manual entries carry a long nominal TTL, so they never pin a merged node's cache time.
    expect(source.nodes[0]?.ttlSeconds).toBeGreaterThanOrEqual(3600);
  });

  it('reads the bare list of the original deployment', () => {
    const path = fileWith(
      JSON.stringify([
        { node_id: 'node-a', endpoint: 'https://10.0.0.11:8443' },
        { node_id: 'node-b', endpoint: 'https://10.0.0.12:8443', trust_domain: 'org-b.example' },
      ]),
    );
    const source = readNodesFile(path);
    expect(source.rejected).toEqual([]);
    expect(source.nodes.map((node) => [node.nodeId, node.endpoint, node.trustDomain])).toEqual([
      ['node-a', 'https://10.0.0.11:8443', null],
      ['node-b', 'https://10.0.0.12:8443', 'org-b.example'],
    ]);
  });

  it('reads an empty list as no nodes, in either form', () => {
    expect(readNodesFile(fileWith('[]'))).toMatchObject({ nodes: [], rejected: [] });
    expect(readNodesFile(fileWith('{"nodes": []}'))).toMatchObject({ nodes: [], rejected: [] });
  });

  it('normalises a fingerprint as `nodes add` does: case, colons, sha256: prefix', () => {
    const colons = FP.toUpperCase().replace(/(..)(?!$)/g, '$1:');
    const source = readNodesFile(
      fileWith(
        JSON.stringify([
          { node_id: 'node-a', endpoint: 'https://h:1', fingerprint: colons },
          { node_id: 'node-b', endpoint: 'https://h:2', fingerprint: `sha256:${FP}` },
        ]),
      ),
    );
    expect(source.rejected).toEqual([]);
    expect(source.nodes.map((node) => node.fingerprint)).toEqual([FP, FP]);
  });

  it('rejects bad entries with their reason and position, and keeps the good ones', () => {
    const path = fileWith(
      JSON.stringify({
        nodes: [
          { node_id: 'node-a', endpoint: 'https://10.0.0.11:8443' },
          { node_id: 'Node_B', endpoint: 'https://10.0.0.12:8443' },
          { node_id: 'node-c', endpoint: 'http://10.0.0.13:8443' },
          { node_id: 'node-d', endpoint: 'https://10.0.0.14:8443/api' },
          { node_id: 'node-e', endpoint: 'https://10.0.0.15:8443', fingerprint: 'abc123' },
          { node_id: 'node-a', endpoint: 'https://10.9.9.9:8443' },
          { node_id: 'node-f', endpoint: 'https://10.0.0.16:8443', role: 'primary' },
          { node_id: 'node-g', endpoint: 'https://10.0.0.17:8443', trust_domain: 'Org G' },
          { node_id: 'node-h' },
          'node-i=https://10.0.0.19:8443',
          null,
          { node_id: 'node-j', endpoint: 'https://user:pw@10.0.0.20:8443' },
          { node_id: 'node-k', endpoint: 'https://10.0.0.21:8443?x=1' },
          { node_id: 'node-l', endpoint: 'not a url' },
          { node_id: 'node-z', endpoint: 'https://10.0.0.26:8443' },
        ],
      }),
    );
    const source = readNodesFile(path);
    expect(source.nodes.map((node) => [node.nodeId, node.endpoint])).toEqual([
      ['node-a', 'https://10.0.0.11:8443'],
      ['node-z', 'https://10.0.0.26:8443'],
    ]);
    const [b, c, d, e, dup, f, g, h, i, nul, j, k, l] = source.rejected;
    expect(source.rejected).toHaveLength(13);
    expect(b).toBe(`${path} entry 2: node_id: not a node ID`);
    expect(c).toBe(`${path} entry 3: endpoint "http://10.0.0.13:8443" is not https://host:port`);
    expect(d).toMatch(/^.* entry 4: endpoint "https:\/\/10\.0\.0\.14:8443\/api" is not https/);
    expect(e).toBe(`${path} entry 5: fingerprint: not a SHA-256 fingerprint`);
    expect(dup).toBe(`${path} entry 6: node-a is listed twice; the first wins`);
    expect(f).toBe(
      `${path} entry 7: unknown key "role" (node_id, endpoint, trust_domain, fingerprint)`,
    );
    expect(g).toBe(`${path} entry 8: trust_domain: not a trust domain`);
    expect(h).toBe(`${path} entry 9: endpoint: missing`);
    const notAnObject = 'not an object {"node_id": ..., "endpoint": "https://host:port"}';
    expect(i).toBe(`${path} entry 10: ${notAnObject}`);
    expect(nul).toBe(`${path} entry 11: ${notAnObject}`);
    expect(j).toMatch(/entry 12: endpoint ".*" is not https/);
    expect(k).toMatch(/entry 13: endpoint ".*" is not https/);
    expect(l).toMatch(/entry 14: endpoint "not a url" is not https/);
  });

  it('shows control characters in a rejected endpoint escaped, on one line', () => {
    const source = readNodesFile(
      fileWith(JSON.stringify([{ node_id: 'node-a', endpoint: 'https://h:1/\n\u001b[31mred' }])),
    );
    expect(source.rejected).toHaveLength(1);
    expect(source.rejected[0]).not.toMatch(/[\n\u001b]/);
    expect(source.rejected[0]).toContain('\\u000a\\u001b[31mred');
  });

  it('refuses a file that is not JSON: a usage error with a hint, on one line', () => {
    for (const content of ['node-a=https://h:1', '{"nodes": [', '', '\n\n{\n"a":\n tru}\n']) {
      const error = usageErrorOf(() => readNodesFile(fileWith(content)));
      expect(error.code).toBe('NODES_FILE_NOT_JSON');
      expect(error.message).toMatch(/is not valid JSON/);
      expect(error.hint).toMatch(/Manual node lists/);
      expectOneLine(error);
    }
    // Binary content, terminal escapes included, is not echoed raw.
    const binary = usageErrorOf(() =>
      readNodesFile(fileWith(Buffer.from([0x1b, 0x5b, 0x32, 0x4a, 0x00, 0xff, 0x0a]))),
    );
    expect(binary.code).toBe('NODES_FILE_NOT_JSON');
    expectOneLine(binary);
  });

  it('refuses JSON of the wrong shape: a usage error naming the expected format', () => {
    for (const content of [
      '{}',
      '{"nodes": {"node-a": "https://h:1"}}',
      '{"node_id": "node-a", "endpoint": "https://h:1"}',
      '"node-a"',
      '42',
      'null',
    ]) {
      const error = usageErrorOf(() => readNodesFile(fileWith(content)));
      expect(error.code, content).toBe('NODES_FILE_SHAPE');
      expect(error.message).toMatch(/is not a list of nodes/);
      expect(error.hint).toMatch(/"nodes"/);
      expectOneLine(error);
    }
  });

  it('says what is wrong with a list of nodes that comes with another version or key', () => {
    const cases: Array<[string, string]> = [
      [
        '{"version": 2, "nodes": []}',
        'is version 2 of the nodes file format; this sark-fed reads version 1',
      ],
      [
        '{"version": "1", "nodes": []}',
        'is version "1" of the nodes file format; this sark-fed reads version 1',
      ],
      ['{"nodes": [], "extra": true}', 'has a key a nodes file does not: "extra"'],
      [
        '{"nodes": [], "node": 1, "Version": 1}',
        'has keys a nodes file does not: "node", "Version"',
      ],
    ];
    for (const [content, problem] of cases) {
      const path = fileWith(content);
      const error = usageErrorOf(() => readNodesFile(path));
      expect(error.code, content).toBe('NODES_FILE_SHAPE');
      expect(error.message).toBe(`${path} ${problem}`);
      expect(error.hint).toMatch(/"nodes"/);
      expectOneLine(error);
    }
  });

  it('names the limit for a list over 10,000 entries, in either form, and takes 10,000', () => {
    const entries = (count: number) =>
      Array.from({ length: count }, (_, index) => ({
        node_id: `node-${index}`,
        endpoint: `https://10.0.${Math.floor(index / 250)}.${(index % 250) + 1}:8443`,
      }));
    for (const wrap of [(list: unknown[]) => list, (list: unknown[]) => ({ nodes: list })]) {
      const error = usageErrorOf(() =>
        readNodesFile(fileWith(JSON.stringify(wrap(entries(10_001))))),
      );
      expect(error.code).toBe('NODES_FILE_SHAPE');
      expect(error.message).toMatch(/ lists 10001 nodes, more than the 10000 a nodes file may$/);
      expectOneLine(error);
    }
    expect(readNodesFile(fileWith(JSON.stringify(entries(10_000)))).nodes).toHaveLength(10_000);
  });

  it('reads a file that starts with a UTF-8 byte-order mark', () => {
    const entry = { node_id: 'node-a', endpoint: 'https://10.0.0.11:8443' };
    const withBom = fileWith(
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify([entry]))]),
    );
    expect(readNodesFile(withBom).nodes.map((node) => node.nodeId)).toEqual(['node-a']);
  });

  it('refuses a file over 4 MiB, unread, and accepts one just under', () => {
    const big = join(dir, 'big.json');
    writeFileSync(big, '');
    truncateSync(big, 4 * 1024 * 1024 + 1);
    const error = usageErrorOf(() => readNodesFile(big));
    expect(error.code).toBe('NODES_FILE_TOO_LARGE');
    expect(error.hint).toMatch(/\S/);

    const entry = { node_id: 'node-a', endpoint: 'https://10.0.0.11:8443' };
    const padding = ' '.repeat(4 * 1024 * 1024 - JSON.stringify([entry]).length);
    const justUnder = fileWith(`${JSON.stringify([entry])}${padding}`);
    expect(readNodesFile(justUnder).nodes).toHaveLength(1);
  });

  it('refuses a missing file with a usage error naming the path', () => {
    const error = usageErrorOf(() => readNodesFile(join(dir, 'absent.json')));
    expect(error.code).toBe('INPUT_UNREADABLE');
    expect(error.message).toContain('absent.json');
    expect(error.message).toContain('ENOENT');
  });
});

describe('parseFederationNodes (FEDERATION_NODES)', () => {
  it('reads comma-separated node-id=https://host:port pairs, spaces allowed', () => {
    const source = parseFederationNodes(' node-a=https://h:1 , node-b = https://h:2,');
    expect(source.origin).toBe('FEDERATION_NODES');
    expect(source.rejected).toEqual([]);
    expect(source.nodes).toEqual([
      expect.objectContaining({ nodeId: 'node-a', endpoint: 'https://h:1', source: 'file' }),
      expect.objectContaining({ nodeId: 'node-b', endpoint: 'https://h:2', source: 'file' }),
    ]);
  });

  it('reads a JSON list, and the {"nodes": [...]} form', () => {
    const list = JSON.stringify([
      { node_id: 'node-a', endpoint: 'https://h:1', trust_domain: 'org-a.example' },
    ]);
    expect(parseFederationNodes(list).nodes).toEqual([
      expect.objectContaining({ nodeId: 'node-a', trustDomain: 'org-a.example' }),
    ]);
    expect(parseFederationNodes(`  {"nodes": ${list}}`).nodes).toHaveLength(1);
  });

  it('rejects bad pairs with their reason and keeps the rest', () => {
    const source = parseFederationNodes(
      'node-a=https://h:1,node-b,Bad_Node=https://h:3,node-c=http://h:4,node-a=https://h:5,node-d=https://h:6/x',
    );
    expect(source.nodes.map((node) => node.nodeId)).toEqual(['node-a']);
    expect(source.rejected).toEqual([
      'FEDERATION_NODES entry 2: "node-b" is not <node-id>=https://host:port',
      'FEDERATION_NODES entry 3: node_id: not a node ID',
      'FEDERATION_NODES entry 4: endpoint "http://h:4" is not https://host:port',
      'FEDERATION_NODES entry 5: node-a is listed twice; the first wins',
      'FEDERATION_NODES entry 6: endpoint "https://h:6/x" is not https://host:port',
    ]);
  });

  it('reads an empty value as no nodes', () => {
    expect(parseFederationNodes('')).toMatchObject({ nodes: [], rejected: [] });
    expect(parseFederationNodes(' , ')).toMatchObject({ nodes: [], rejected: [] });
  });

  it('refuses JSON that does not parse, or is not a list of nodes, as a usage error', () => {
    const broken = usageErrorOf(() => parseFederationNodes('[{"node_id": "node-a",'));
    expect(broken.code).toBe('NODES_FILE_NOT_JSON');
    expect(broken.message).toMatch(/^FEDERATION_NODES is not valid JSON/);
    expectOneLine(broken);
    const shape = usageErrorOf(() => parseFederationNodes('{"node-a": "https://h:1"}'));
    expect(shape.code).toBe('NODES_FILE_SHAPE');
    expectOneLine(shape);
  });
});

describe('manualRunner in a scan', () => {
  it('reports the nodes of --file and FEDERATION_NODES, and each rejected entry as a skip', async () => {
    const file = fileWith(
      JSON.stringify([
        { node_id: 'node-a', endpoint: 'https://10.0.0.11:8443' },
        { node_id: 'node-x', endpoint: 'http://10.0.0.99:8443' },
      ]),
    );
    const result = await scan({
      runners: [manualRunner({ file, federationNodes: 'node-b=https://10.0.0.12:8443,oops' })],
      timeoutMs: 5_000,
    });
    expect(result.nodes.map((node) => [node.nodeId, node.via])).toEqual([
      ['node-a', ['manual']],
      ['node-b', ['manual']],
    ]);
    expect(result.skipped).toEqual([
      { method: 'manual', detail: expect.stringMatching(/entry 2: endpoint "http:/) as string },
      { method: 'manual', detail: expect.stringMatching(/^FEDERATION_NODES entry 2/) as string },
    ]);
    expect(result.succeeded).toEqual(['manual']);
  });

  it('reports `nodes add` entries as manual sightings and file entries as file ones; by hand wins', async () => {
    const store = openState(join(dir, `state-${++fileCount}.db`), { create: true });
    try {
      const FP_FILE = 'cd'.repeat(32);
      // Recorded by hand (nodes add), and saved from an earlier nodes file.
      store.write((db) =>
        recordSightings(
          db,
          [
            {
              nodeId: 'node-a',
              endpoint: 'https://by-hand.example:1',
              trustDomain: null,
              fingerprint: FP,
              source: 'manual',
              ttlSeconds: 0,
            },
            {
              nodeId: 'node-c',
              endpoint: 'https://saved-from-a-file.example:3',
              trustDomain: null,
              fingerprint: null,
              source: 'file',
              ttlSeconds: 0,
            },
          ],
          new Date(),
        ),
      );
      const file = fileWith(
        JSON.stringify([
          {
            node_id: 'node-a',
            endpoint: 'https://from-the-file.example:1',
            trust_domain: 'org-a.example',
            fingerprint: FP_FILE,
          },
          { node_id: 'node-b', endpoint: 'https://from-the-file.example:2', fingerprint: FP_FILE },
        ]),
      );
      const result = await scan({ runners: [manualRunner({ file, store })], timeoutMs: 5_000 });
      expect(
        result.nodes.map((node) => [
          node.nodeId,
          node.via,
          node.endpoint,
          node.trustDomain,
          node.fingerprint,
          node.sightings.map((item) => `${item.source} ${item.endpoint}`),
        ]),
      ).toEqual([
        // The hand-made entry's endpoint and fingerprint; the file fills in the trust domain.
        [
          'node-a',
          ['manual'],
          'https://by-hand.example:1',
          'org-a.example',
          FP,
          ['manual https://by-hand.example:1', 'file https://from-the-file.example:1'],
        ],
        [
          'node-b',
          ['manual'],
          'https://from-the-file.example:2',
          null,
          FP_FILE,
          ['file https://from-the-file.example:2'],
        ],
        // A file's entry saved by an earlier scan is reported again, as the file's.
        [
          'node-c',
          ['manual'],
          'https://saved-from-a-file.example:3',
          null,
          null,
          ['file https://saved-from-a-file.example:3'],
        ],
      ]);
    } finally {
      store.close();
    }
  });

  it('fails the manual method, not the scan, when the file is not a list of nodes', async () => {
    const result = await scan({
      runners: [manualRunner({ file: fileWith('{"oops": 1}') })],
      timeoutMs: 5_000,
    });
    expect(result.succeeded).toEqual([]);
    expect(result.problems).toEqual([
      expect.objectContaining({ method: 'manual', code: 'NODES_FILE_SHAPE' }),
    ]);
  });
});
