/**
 * Name syntax and matching: DNS names (with the one wildcard form the Web PKI allows), IP
 * addresses (parsing and RFC 5952 text), and RFC 822 mailboxes.
 */

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * A reference or presented DNS name in RFC 1034/1123 preferred syntax: ASCII letters, digits and
 * hyphens, labels of 1-63 characters that neither start nor end with a hyphen, at most 253
 * characters, no trailing dot, and a last label that is not all digits (so that an IPv4 address
 * written as a DNS name is refused). With `allowWildcard`, the leftmost label may be exactly "*"
 * when at least two labels follow it.
 */
export function isValidDnsName(name: string, allowWildcard = false): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (allowWildcard && labels[0] === '*') {
    labels.shift();
    if (labels.length < 2) return false;
  }
  for (const label of labels) if (!LABEL.test(label)) return false;
  return !/^[0-9]+$/.test(labels[labels.length - 1] as string);
}

export function isWildcardName(name: string): boolean {
  return name.startsWith('*.');
}

/**
 * Whether a certificate's DNS name (possibly "*.rest") matches a reference host name: labels
 * compared case-insensitively, the wildcard standing for exactly one whole leftmost label.
 */
export function dnsNameMatches(presented: string, reference: string): boolean {
  const p = presented.toLowerCase();
  const r = reference.toLowerCase();
  if (!isWildcardName(p)) return p === r;
  const dot = r.indexOf('.');
  if (dot <= 0) return false;
  return r.slice(dot + 1) === p.slice(2);
}

/** The 4 or 16 bytes of a textual IPv4 (dotted decimal, no leading zeros) or IPv6 address. */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.includes(':')) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | undefined {
  let head = text;
  let tail = '';
  const double = text.indexOf('::');
  if (double !== -1) {
    if (text.indexOf('::', double + 1) !== -1) return undefined;
    head = text.slice(0, double);
    tail = text.slice(double + 2);
  }
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i] as string;
      if (i === groups.length - 1 && group.includes('.')) {
        const v4 = parseIpv4(group);
        if (!v4) return undefined;
        words.push(((v4[0] as number) << 8) | (v4[1] as number));
        words.push(((v4[2] as number) << 8) | (v4[3] as number));
      } else {
        if (!/^[0-9a-f]{1,4}$/i.test(group)) return undefined;
        words.push(parseInt(group, 16));
      }
    }
    return words;
  };
  const headWords = parse(head);
  const tailWords = parse(tail);
  if (!headWords || !tailWords) return undefined;
  const missing = 8 - headWords.length - tailWords.length;
  if (double === -1 ? missing !== 0 : missing < 1) return undefined;
  const words = [
    ...headWords,
    ...new Array<number>(double === -1 ? 0 : missing).fill(0),
    ...tailWords,
  ];
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/** Canonical text of an address: dotted decimal, or RFC 5952 for IPv6. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2)
    words.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  // RFC 5952 §4.2: compress the longest run of two or more zero words, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((word) => word.toString(16)).join(':');
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}

/** An RFC 822 mailbox as X.509 carries it: one "@", a non-empty local part, a valid host. */
export function parseMailbox(value: string): { local: string; host: string } | undefined {
  const at = value.indexOf('@');
  if (at <= 0 || at !== value.lastIndexOf('@')) return undefined;
  const local = value.slice(0, at);
  const host = value.slice(at + 1);
  if (!/^[\x21-\x7e]+$/.test(local)) return undefined;
  if (!isValidDnsName(host)) return undefined;
  return { local, host };
}
