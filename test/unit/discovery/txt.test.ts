import { describe, expect, it } from 'vitest';
import { parseSarkTxt, sarkTxtStrings, type SarkTxt } from '../../../src/core/discovery/txt.js';

/**
 * The TXT record of a sark node (DESIGN §4) read by the rules of RFC 6763 §6: what a responder
 * may legally send, and what a broken or hostile one might.
 */

const FP = 'ab'.repeat(32);

function txtOf(strings: ReadonlyArray<Buffer | string>): SarkTxt {
  const result = parseSarkTxt(strings);
  if ('error' in result) throw new Error(`unexpected error: ${result.error}`);
  return result.txt;
}

function errorOf(strings: ReadonlyArray<Buffer | string>): string {
  const result = parseSarkTxt(strings);
  if (!('error' in result)) throw new Error(`expected an error, got ${JSON.stringify(result)}`);
  return result.error;
}

describe('sarkTxtStrings', () => {
  it('puts txtvers first (RFC 6763 §6.7) and carries node, td, fp and api', () => {
    const strings = sarkTxtStrings({
      nodeId: 'node-a',
      trustDomain: 'org-a.example',
      fingerprint: FP,
    });
    expect(strings).toEqual(['txtvers=1', 'node=node-a', 'td=org-a.example', `fp=${FP}`, 'api=v2']);
  });

  it('reads back what it writes, whether as strings or as the bytes of the wire', () => {
    const strings = sarkTxtStrings({
      nodeId: 'node-a',
      trustDomain: 'org-a.example',
      fingerprint: FP,
    });
    const expected = { nodeId: 'node-a', trustDomain: 'org-a.example', fingerprint: FP, api: 'v2' };
    expect(txtOf(strings)).toEqual(expected);
    expect(txtOf(strings.map((item) => Buffer.from(item, 'utf8')))).toEqual(expected);
  });

  it('keeps every string within 255 bytes and the record within 1300 for the longest IDs', () => {
    const nodeId = `n${'x'.repeat(62)}`;
    const trustDomain = `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.example`;
    const strings = sarkTxtStrings({ nodeId, trustDomain, fingerprint: FP });
    for (const item of strings) expect(Buffer.byteLength(item)).toBeLessThanOrEqual(255);
    expect(txtOf(strings)).toMatchObject({ nodeId, trustDomain, fingerprint: FP });
  });
});

describe('parseSarkTxt (RFC 6763 §6)', () => {
  it('treats keys case-insensitively (§6.4)', () => {
    expect(txtOf(['TXTVERS=1', 'Node=node-a', 'TD=org-a.example', `Fp=${FP}`, 'API=v2'])).toEqual({
      nodeId: 'node-a',
      trustDomain: 'org-a.example',
      fingerprint: FP,
      api: 'v2',
    });
  });

  it('keeps values as given: only keys fold case', () => {
    // A value is opaque: an uppercase node ID is not lowered into a valid one.
    expect(errorOf(['txtvers=1', 'node=Node-A'])).toMatch(/node/);
    expect(txtOf(['node=node-a', 'api=V2']).api).toBe('V2');
  });

  it('lets the first occurrence of a key win, whatever the case of the later ones (§6.4)', () => {
    const txt = txtOf([
      'txtvers=1',
      'node=node-a',
      'NODE=node-b',
      'td=org-a.example',
      'td=org-b.example',
      `fp=${FP}`,
      `FP=${'cd'.repeat(32)}`,
    ]);
    expect(txt).toMatchObject({ nodeId: 'node-a', trustDomain: 'org-a.example', fingerprint: FP });
  });

  it('lets a malformed first occurrence win too: a later valid one does not replace it', () => {
    const txt = txtOf(['node=node-a', 'td=NOT A DOMAIN', 'td=org-a.example']);
    expect(txt.trustDomain).toBeNull();
  });

  it('reads a string without "=" as a boolean attribute (§6.4), never as a value', () => {
    // A boolean `node` is no node ID; a boolean td or fp is no value and is dropped.
    expect(errorOf(['txtvers=1', 'node'])).toMatch(/node/);
    expect(txtOf(['node=node-a', 'td', 'fp', 'api'])).toEqual({
      nodeId: 'node-a',
      trustDomain: null,
      fingerprint: null,
      api: null,
    });
    // An unknown boolean attribute is ignored, and it still takes its key's first occurrence.
    expect(txtOf(['node=node-a', 'secure', 'secure=no']).nodeId).toBe('node-a');
    expect(errorOf(['node', 'node=node-a'])).toMatch(/node/);
  });

  it('distinguishes "key=" (empty value) from "key" (boolean) (§6.4)', () => {
    expect(errorOf(['node='])).toMatch(/node/);
    expect(txtOf(['node=node-a', 'td=', 'fp=', 'api=']).api).toBe('');
    expect(txtOf(['node=node-a', 'td=', 'fp='])).toMatchObject({
      trustDomain: null,
      fingerprint: null,
    });
  });

  it('skips empty strings, as the empty TXT record (a single empty string) is (§6.1)', () => {
    expect(txtOf(['', 'txtvers=1', '', 'node=node-a', Buffer.alloc(0)]).nodeId).toBe('node-a');
    expect(errorOf([''])).toMatch(/node/);
    expect(errorOf([])).toMatch(/node/);
  });

  it('ignores strings that start with "=" (no key, §6.4) and keys of non-printable characters', () => {
    const txt = txtOf(['=node-b', '\u0001node=node-b', 'node=node-a']);
    expect(txt.nodeId).toBe('node-a');
    expect(errorOf(['=node=node-a'])).toMatch(/node/);
    // Keys over 9 characters (RFC 6763 §6.4's SHOULD) are ignored, not read as their prefix.
    expect(errorOf(['node-identity=node-a'])).toMatch(/node/);
  });

  it('takes a value up to the end, "=" included: only the first "=" separates (§6.4)', () => {
    expect(txtOf(['node=node-a', 'api=v2=beta']).api).toBe('v2=beta');
  });

  it('refuses a record with a string over 255 bytes (§6.1), even one that would be ignored', () => {
    const long = `x=${'y'.repeat(254)}`;
    expect(Buffer.byteLength(long)).toBe(256);
    expect(errorOf(['txtvers=1', 'node=node-a', long])).toMatch(/255 bytes/);
    // Exactly 255 bytes is the most a string may hold.
    expect(txtOf(['node=node-a', `x=${'y'.repeat(253)}`]).nodeId).toBe('node-a');
    // Bytes, not characters: 128 two-byte characters are 256 bytes.
    expect(errorOf(['node=node-a', 'é'.repeat(128)])).toMatch(/255 bytes/);
    expect(txtOf(['node=node-a', `x=${'é'.repeat(126)}`]).nodeId).toBe('node-a');
  });

  it('refuses a record over 1300 bytes in total (§6.2), counting each length byte', () => {
    // 6 strings of 1 + 200 bytes, plus node=node-a (1 + 11): 1218 bytes, under the limit.
    const filler = (index: number) => `k${index}=${'v'.repeat(197)}`;
    const under = ['node=node-a', ...[1, 2, 3, 4, 5, 6].map(filler)];
    expect(txtOf(under).nodeId).toBe('node-a');
    // A seventh takes it to 1419 bytes.
    expect(errorOf([...under, filler(7)])).toMatch(/1419 bytes, over 1300/);
    // The length bytes count: 1295 bytes of strings in 7 strings are 1302 bytes on the wire.
    const sized = (index: number, size: number) => `k${index}=${'v'.repeat(size - 3)}`;
    const over = ['node=node-a', ...[1, 2, 3, 4, 5, 6].map((index) => sized(index, 214))];
    expect(over.reduce((sum, item) => sum + Buffer.byteLength(item), 0)).toBe(1295);
    expect(errorOf(over)).toMatch(/1302 bytes/);
    // And exactly 1300 bytes on the wire is allowed.
    const exact = [
      'node=node-a',
      ...[1, 2, 3, 4, 5].map((index) => sized(index, 214)),
      sized(6, 212),
    ];
    expect(txtOf(exact).nodeId).toBe('node-a');
  });

  it('accepts txtvers=1 and a missing txtvers, and refuses any other version', () => {
    expect(txtOf(['txtvers=1', 'node=node-a']).nodeId).toBe('node-a');
    expect(txtOf(['node=node-a']).nodeId).toBe('node-a');
    expect(errorOf(['txtvers=2', 'node=node-a'])).toMatch(/unsupported txtvers 2/);
    expect(errorOf(['txtvers=01', 'node=node-a'])).toMatch(/txtvers/);
    expect(errorOf(['txtvers=', 'node=node-a'])).toMatch(/txtvers/);
    expect(errorOf(['txtvers', 'node=node-a'])).toMatch(/txtvers/);
    // The first txtvers decides.
    expect(errorOf(['TxtVers=3', 'txtvers=1', 'node=node-a'])).toMatch(/txtvers 3/);
  });

  it('refuses a record without a node= key, or with one that is no node ID', () => {
    expect(errorOf(['txtvers=1', 'td=org-a.example', `fp=${FP}`])).toBe('no valid node= key');
    for (const bad of ['-node', 'node a', 'node_a', 'n'.repeat(64), 'spiffe://x/y', '../etc']) {
      expect(errorOf(['txtvers=1', `node=${bad}`]), bad).toBe('no valid node= key');
    }
  });

  it('drops an invalid td or fp to null but keeps the node', () => {
    for (const td of ['Org-A.example', 'org a', 'org-a..example', '.org-a', 'org-a.', 'a/b']) {
      expect(txtOf(['node=node-a', `td=${td}`]).trustDomain, td).toBeNull();
    }
    for (const fp of [
      'ab'.repeat(31),
      'ab'.repeat(33),
      'zz'.repeat(32),
      FP.replace(/(..)/g, '$1:').slice(0, -1),
    ]) {
      expect(txtOf(['node=node-a', `fp=${fp}`]).fingerprint, fp).toBeNull();
    }
  });

  it('says which td or fp it dropped, so that -v can show it; nothing when they are valid or absent', () => {
    const ignoredOf = (strings: string[]) => {
      const result = parseSarkTxt(strings);
      if ('error' in result) throw new Error(result.error);
      return result.ignored;
    };
    expect(ignoredOf(['node=node-a', 'td=Org A', 'fp=abc'])).toEqual([
      'td=Org A is not a trust domain',
      'fp=abc is not a SHA-256 fingerprint (64 hex digits)',
    ]);
    expect(ignoredOf(['node=node-a', 'td'])).toEqual(['td is not a trust domain']);
    expect(ignoredOf(['node=node-a', 'td=org-a.example', `fp=${FP}`])).toEqual([]);
    expect(ignoredOf(['node=node-a'])).toEqual([]);
  });

  it('normalises an uppercase fingerprint to lowercase', () => {
    expect(txtOf(['node=node-a', `fp=${FP.toUpperCase()}`]).fingerprint).toBe(FP);
    expect(txtOf(['node=node-a', `fp=${'aB'.repeat(32)}`]).fingerprint).toBe(FP);
  });

  it('never throws on bytes that are not UTF-8', () => {
    const junk = Buffer.from([0xff, 0xfe, 0x3d, 0x80, 0x00, 0xc3]);
    expect(txtOf([junk, 'node=node-a']).nodeId).toBe('node-a');
    expect(errorOf([Buffer.from([0x6e, 0x6f, 0x64, 0x65, 0x3d, 0xff])])).toMatch(/node/);
  });
});
