import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSarkError } from '../../../src/core/errors.js';
import { CatalogResource } from '../../../src/core/protocol/schemas.js';
import { loadResourcesFile } from '../../../src/node/resources.js';
import { tempDir } from '../../helpers/cli.js';

const dir = tempDir('sark-fed-resources-');
let counter = 0;
function write(text: string, extension = 'yaml'): string {
  const path = join(dir, `resources-${counter++}.${extension}`);
  writeFileSync(path, text);
  return path;
}

/** The example of DESIGN §5, verbatim. */
const DESIGN_EXAMPLE = `{ "resources": [
  { "id": "echo", "description": "returns its arguments",
    "capabilities": [ { "id": "echo", "backend": { "type": "echo" } } ] },
  { "id": "inventory",
    "capabilities": [ { "id": "lookup", "backend": { "type": "http", "method": "POST",
      "url": "http://127.0.0.1:9000/lookup", "timeout": "5s", "idempotent": true } } ] } ] }`;

describe('loadResourcesFile', () => {
  it('reads the JSON example of DESIGN §5', async () => {
    const catalog = await loadResourcesFile(write(DESIGN_EXAMPLE, 'json'));
    const inventory = catalog.resource('inventory');
    expect(inventory && catalog.capability(inventory, 'lookup')?.backend).toEqual({
      type: 'http',
      method: 'POST',
      url: 'http://127.0.0.1:9000/lookup',
      headers: {},
      timeout: 5000,
      idempotent: true,
    });
    expect(catalog.resource('echo')?.description).toBe('returns its arguments');
    expect(catalog.resource('nothing')).toBeUndefined();
  });

  it('reads YAML, with defaults for what it leaves out (POST, 10 s, not idempotent)', async () => {
    const catalog = await loadResourcesFile(
      write(
        [
          'resources:',
          '  - id: inventory',
          '    capabilities:',
          '      - id: lookup',
          '        description: find an item',
          '        backend:',
          '          type: http',
          '          url: https://inventory.internal/lookup',
          '      - id: list',
          '        backend: { type: http, method: get, url: "http://127.0.0.1:9000/items", timeout: 250ms }',
          '',
        ].join('\n'),
      ),
    );
    const inventory = catalog.resource('inventory');
    if (!inventory) throw new Error('inventory missing');
    expect(catalog.capability(inventory, 'lookup')?.backend).toEqual({
      type: 'http',
      method: 'POST',
      url: 'https://inventory.internal/lookup',
      headers: {},
      timeout: 10_000,
      idempotent: false,
    });
    expect(catalog.capability(inventory, 'list')?.backend).toMatchObject({
      method: 'GET',
      timeout: 250,
    });
  });

  it('expands ${VAR} in header values from the environment', async () => {
    const path = write(
      [
        'resources:',
        '  - id: r',
        '    capabilities:',
        '      - id: c',
        '        backend:',
        '          type: http',
        '          url: http://127.0.0.1:9000/',
        '          headers: { authorization: "Bearer ${INVENTORY_TOKEN}", x-static: plain }',
        '',
      ].join('\n'),
    );
    const catalog = await loadResourcesFile(path, { INVENTORY_TOKEN: 's3cret' });
    const resource = catalog.resource('r');
    expect(resource && catalog.capability(resource, 'c')?.backend).toMatchObject({
      headers: { authorization: 'Bearer s3cret', 'x-static': 'plain' },
    });
    await expect(loadResourcesFile(path, {})).rejects.toThrow(
      /resources\[0\]\.capabilities\[0\]\.backend\.headers\.authorization: environment variable INVENTORY_TOKEN is not set/,
    );
  });

  it('shows callers a catalog without backends, echo being idempotent', async () => {
    const catalog = await loadResourcesFile(write(DESIGN_EXAMPLE, 'json'));
    const everything = catalog.catalogFor(() => true);
    expect(everything).toEqual([
      {
        id: 'echo',
        description: 'returns its arguments',
        capabilities: [{ id: 'echo', description: null, idempotent: true }],
      },
      {
        id: 'inventory',
        description: null,
        capabilities: [{ id: 'lookup', description: null, idempotent: true }],
      },
    ]);
    for (const entry of everything) expect(CatalogResource.parse(entry)).toEqual(entry);
    expect(catalog.catalogFor((resource) => resource === 'echo').map((r) => r.id)).toEqual([
      'echo',
    ]);
    expect(catalog.catalogFor(() => false)).toEqual([]);
  });

  const capability = (backend: string) =>
    `resources:\n  - id: r\n    capabilities:\n      - id: c\n        backend: ${backend}\n`;

  it.each([
    [
      'an unknown backend type',
      capability('{ type: smtp }'),
      /resources\[0\]\.capabilities\[0\]\.backend\.type/,
    ],
    [
      'a URL that is not http(s)',
      capability('{ type: http, url: "file:///etc/passwd" }'),
      /backend\.url: expected an http:\/\/ or https:\/\/ URL/,
    ],
    [
      'a bad timeout',
      capability('{ type: http, url: "http://x/", timeout: soon }'),
      /backend\.timeout: expected a duration/,
    ],
    [
      'a zero timeout',
      capability('{ type: http, url: "http://x/", timeout: 0s }'),
      /backend\.timeout/,
    ],
    [
      'a timeout over 10 minutes',
      capability('{ type: http, url: "http://x/", timeout: 11m }'),
      /backend\.timeout/,
    ],
    [
      'an unknown method',
      capability('{ type: http, url: "http://x/", method: BREW }'),
      /backend\.method/,
    ],
    [
      'a header the client sets itself',
      capability('{ type: http, url: "http://x/", headers: { Content-Length: "5" } }'),
      /backend\.headers\.Content-Length: this header is set by the HTTP client itself/,
    ],
    [
      'an echo backend with extra keys',
      capability('{ type: echo, url: "http://x/" }'),
      /backend: .*url/,
    ],
    [
      'a bad resource ID',
      'resources:\n  - id: "has space"\n    capabilities: [{ id: c, backend: { type: echo } }]\n',
      /resources\[0\]\.id/,
    ],
    [
      'the ID "-", which names an unread request in the audit trail',
      'resources:\n  - id: "-"\n    capabilities: [{ id: c, backend: { type: echo } }]\n',
      /resources\[0\]\.id: "-" is reserved: the audit trail names with it the resource of an unread request$/,
    ],
    [
      'a capability "-"',
      'resources:\n  - id: r\n    capabilities: [{ id: "-", backend: { type: echo } }]\n',
      /resources\[0\]\.capabilities\[0\]\.id: "-" is reserved/,
    ],
    [
      'a resource without capabilities',
      'resources:\n  - id: r\n    capabilities: []\n',
      /resources\[0\]\.capabilities: a resource needs at least one capability/,
    ],
    [
      'a resource declared twice',
      'resources:\n  - { id: r, capabilities: [{ id: c, backend: { type: echo } }] }\n  - { id: r, capabilities: [{ id: c, backend: { type: echo } }] }\n',
      /resources\[1\]\.id: resource r is declared twice/,
    ],
    ['an empty file', '', /resources file \S+: it is empty$/],
    ['a file of comments only', '# nothing yet\n', /resources file \S+: it is empty$/],
    [
      'a list instead of a document',
      '- a\n- b\n',
      /resources file \S+: expected a mapping of keys, found a list$/,
    ],
    [
      'a misspelt key whose real key is then missing',
      'resources:\n  - id: r\n    capabilites: [{ id: c, backend: { type: echo } }]\n',
      /resources\[0\]: unknown key "capabilites" \(did you mean "capabilities"\?\)$/,
    ],
    [
      'a misspelt key of an HTTP backend',
      capability('{ type: http, url: "http://x/", idempotant: true }'),
      /backend: unknown key "idempotant" \(did you mean "idempotent"\?\)$/,
    ],
  ])(
    'refuses %s: one line naming the file and the place, and a hint (usage error)',
    async (_name, text, message) => {
      const path = write(text);
      const error = await loadResourcesFile(path).catch((caught: unknown) => caught);
      expect(isSarkError(error) && error.kind, String(error)).toBe('usage');
      expect((error as Error).message).toContain(path);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('\n');
      expect(isSarkError(error) && error.hint).toMatch(/docs\/resources\.md#the-resources-file$/);
    },
  );

  it('lists the keys of the backend type the file names, not of every type', async () => {
    const error = await loadResourcesFile(write(capability('{ type: echo, idempotent: true }')))
      .then(() => undefined)
      .catch((caught: unknown) => caught);
    // "idempotent" is a key of http backends: no "did you mean" for an echo one.
    expect((error as Error).message).toMatch(/backend: unknown key "idempotent"$/);
    expect(isSarkError(error) && error.hint).toBe(
      'the keys of resources[0].capabilities[0].backend are type; see docs/resources.md#the-resources-file',
    );
  });

  it('refuses a file it cannot read or parse with a hint fit for each', async () => {
    const hintOf = async (path: string) => {
      const error = await loadResourcesFile(path).catch((caught: unknown) => caught);
      expect(isSarkError(error) && error.kind, String(error)).toBe('usage');
      return { message: (error as Error).message, hint: isSarkError(error) ? error.hint : '' };
    };
    expect(await hintOf(join(dir, 'absent.yaml'))).toEqual({
      message: `cannot read the resources file ${join(dir, 'absent.yaml')} (ENOENT)`,
      hint: 'check the path: no such file',
    });
    // A relative path: the hint says where the daemon looked.
    expect((await hintOf('absent-resources.yaml')).hint).toBe(
      `check the path: a relative one is read from ${process.cwd()}`,
    );
    expect(await hintOf(dir)).toEqual({
      message: `cannot read the resources file ${dir} (EISDIR)`,
      hint: 'give the path of the resources file, not of a folder',
    });
    const json = write('{"resources": [\n  1\n  2]}', 'json');
    expect(await hintOf(json)).toEqual({
      message: `resources file ${json} is not valid JSON: Expected ',' or ']' after array element at line 3, column 3`,
      hint: 'a file named *.json is read as JSON (any other name as YAML): fix it there',
    });
    const yaml = write('resources: [\n');
    expect(await hintOf(yaml)).toMatchObject({
      message: expect.stringMatching(/is not valid YAML: .* at line 2, column 1$/),
      hint: expect.stringMatching(/^a file not named \*\.json is read as YAML/),
    });
  });
});
