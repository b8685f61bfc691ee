import { describe, expect, it } from 'vitest';
import { DerError, parseDer, readBoolean, readOid, readTime } from '../../../src/core/trust/der.js';
import {
  dnsNameMatches,
  formatIp,
  isValidDnsName,
  parseIp,
  parseMailbox,
} from '../../../src/core/trust/names.js';
import { uriHost } from '../../../src/core/trust/name-constraints.js';

describe('DNS names', () => {
  it.each([
    ['example.com', true],
    ['EXAMPLE.com', true],
    ['a-b.example.com', true],
    ['xn--n3h.com', true],
    ['foo_bar.example.com', false],
    ['-a.example.com', false],
    ['.example.com', false],
    ['example.com.', false],
    ['8.8.8.8', false],
    ['a..com', false],
    ['', false],
    [`${'a'.repeat(64)}.com`, false],
  ])('%s valid: %s', (name, valid) => {
    expect(isValidDnsName(name)).toBe(valid);
  });

  it('allows a wildcard only as the whole leftmost label, over two labels or more', () => {
    expect(isValidDnsName('*.example.com', true)).toBe(true);
    expect(isValidDnsName('*.example.com')).toBe(false);
    expect(isValidDnsName('*', true)).toBe(false);
    expect(isValidDnsName('*.com', true)).toBe(false);
    expect(isValidDnsName('ba*.example.com', true)).toBe(false);
    expect(isValidDnsName('foo.*.example.com', true)).toBe(false);
  });

  it('matches a wildcard against exactly one leftmost label', () => {
    expect(dnsNameMatches('*.example.com', 'foo.example.com')).toBe(true);
    expect(dnsNameMatches('*.Example.com', 'FOO.example.COM')).toBe(true);
    expect(dnsNameMatches('*.example.com', 'example.com')).toBe(false);
    expect(dnsNameMatches('*.example.com', 'a.b.example.com')).toBe(false);
    expect(dnsNameMatches('example.com', 'Example.COM')).toBe(true);
    expect(dnsNameMatches('example.com', 'www.example.com')).toBe(false);
  });
});

describe('IP addresses', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['::1', '::1'],
    ['2001:DB8::8A2E:370:7334', '2001:db8::8a2e:370:7334'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
  ])('%s is %s in RFC 5952 form', (text, canonical) => {
    const bytes = parseIp(text);
    expect(bytes).toBeDefined();
    expect(formatIp(bytes as Uint8Array)).toBe(canonical);
  });

  it.each([
    '192.168.001.001',
    '0xC0A80101',
    '1.2.3',
    '256.1.1.1',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '',
  ])('refuses %s', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });
});

describe('mailboxes and URIs', () => {
  it('parses mailboxes with one @ and a valid host', () => {
    expect(parseMailbox('foo@example.com')).toEqual({ local: 'foo', host: 'example.com' });
    expect(parseMailbox('*@example.com')).toEqual({ local: '*', host: 'example.com' });
    expect(parseMailbox('invalid@address@example.com')).toBeUndefined();
    expect(parseMailbox('@example.com')).toBeUndefined();
    expect(parseMailbox('foo@-bad.com')).toBeUndefined();
  });

  it('finds the host of a URI', () => {
    expect(uriHost('spiffe://org-a.example/sark/node/a')).toBe('org-a.example');
    expect(uriHost('https://user@Host.Example:8443/x')).toBe('host.example');
    expect(uriHost('urn:uuid:1234')).toBeUndefined();
  });
});

describe('DER reader', () => {
  const bytes = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));

  it('refuses non-minimal and indefinite lengths and trailing data', () => {
    expect(() => parseDer(bytes('0481010a'))).toThrow(DerError);
    expect(() => parseDer(bytes('3080'))).toThrow(DerError);
    expect(() => parseDer(bytes('0401000a'))).toThrow(DerError);
    expect(() => parseDer(bytes('040200'))).toThrow(DerError);
  });

  it('reads BOOLEAN, OID and times strictly', () => {
    expect(readBoolean(parseDer(bytes('0101ff')))).toBe(true);
    expect(() => readBoolean(parseDer(bytes('010101')))).toThrow(DerError);
    expect(readOid(parseDer(bytes('06032a0304')))).toBe('1.2.3.4');
    expect(readOid(parseDer(bytes('0603551d13')))).toBe('2.5.29.19');
    const utc = (text: string): Uint8Array =>
      bytes(`17${text.length.toString(16).padStart(2, '0')}${Buffer.from(text).toString('hex')}`);
    expect(readTime(parseDer(utc('240301000000Z')))).toBe(Date.UTC(2024, 2, 1));
    expect(readTime(parseDer(utc('500101000000Z')))).toBe(Date.UTC(1950, 0, 1));
    expect(() => readTime(parseDer(utc('2403010000Z')))).toThrow(DerError);
    expect(() => readTime(parseDer(utc('240230000000Z')))).toThrow(DerError);
    expect(() => readTime(parseDer(utc('240301000000+0100')))).toThrow(DerError);
  });
});
