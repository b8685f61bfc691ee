import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../src/core/protocol/canonical-json.js';

describe('canonicalJson', () => {
  it('sorts keys by UTF-16 code unit, as in the example of RFC 8785 §3.2.3', () => {
    const value = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    expect(canonicalJson(value)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('writes nested objects and arrays without whitespace, leaving out undefined members', () => {
    expect(
      canonicalJson({ b: [1, 'two', null, true, { z: 1, a: [] }], a: { y: undefined, x: false } }),
    ).toBe('{"a":{"x":false},"b":[1,"two",null,true,{"a":[],"z":1}]}');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson('quote " and \\ and \n')).toBe('"quote \\" and \\\\ and \\n"');
  });

  it('refuses what two encoders could write differently, and what JSON cannot hold', () => {
    expect(() => canonicalJson(1.5)).toThrow(/cannot canonicalise number 1.5/);
    expect(() => canonicalJson(2 ** 53)).toThrow(/cannot canonicalise number/);
    expect(() => canonicalJson(Number.NaN)).toThrow(/cannot canonicalise number/);
    expect(() => canonicalJson([undefined])).toThrow(/cannot canonicalise a undefined/);
    expect(() => canonicalJson(10n)).toThrow(/cannot canonicalise a bigint/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/cannot canonicalise a function/);
  });
});
