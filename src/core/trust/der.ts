/**
 * A strict, synchronous DER reader: just enough ASN.1 for certificates and CRLs. Strict means
 * definite, minimally encoded lengths and exact content boundaries; anything else throws a
 * DerError, which the validator turns into a MALFORMED refusal of the certificate that held it.
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export const TagClass = { universal: 0, application: 1, context: 2, private: 3 } as const;

export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  enumerated: 0x0a,
  utf8String: 0x0c,
  sequence: 0x30,
  set: 0x31,
  printableString: 0x13,
  teletexString: 0x14,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  universalString: 0x1c,
  bmpString: 0x1e,
} as const;

/** One TLV element; `bytes` is the content, `der` the whole element (header included). */
export interface DerElement {
  /** The identifier octet (single-byte tags only: high tag numbers are refused). */
  tag: number;
  tagClass: number;
  constructed: boolean;
  /** Tag number within its class (the low five bits). */
  tagNumber: number;
  bytes: Uint8Array;
  der: Uint8Array;
}

/** Reads the element starting at `offset`; returns it with the offset just past it. */
export function readElement(
  input: Uint8Array,
  offset: number,
): { element: DerElement; next: number } {
  if (offset >= input.length) throw new DerError('unexpected end of data');
  const tag = input[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let position = offset + 1;
  if (position >= input.length) throw new DerError('missing length');
  const first = input[position++] as number;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0) throw new DerError('indefinite length');
    if (count > 4) throw new DerError('length too large');
    if (position + count > input.length) throw new DerError('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (input[position + i] as number);
    if ((input[position] as number) === 0) throw new DerError('non-minimal length');
    if (length < 0x80) throw new DerError('non-minimal length');
    position += count;
  }
  const end = position + length;
  if (end > input.length) throw new DerError('truncated element');
  return {
    element: {
      tag,
      tagClass: tag >> 6,
      constructed: (tag & 0x20) !== 0,
      tagNumber: tag & 0x1f,
      bytes: input.subarray(position, end),
      der: input.subarray(offset, end),
    },
    next: end,
  };
}

/** Parses exactly one element spanning the whole input. */
export function parseDer(input: Uint8Array): DerElement {
  const { element, next } = readElement(input, 0);
  if (next !== input.length) throw new DerError('trailing data');
  return element;
}

/** The children of a constructed element. */
export function children(element: DerElement): DerElement[] {
  if (!element.constructed) throw new DerError('expected a constructed element');
  const result: DerElement[] = [];
  let offset = 0;
  while (offset < element.bytes.length) {
    const { element: child, next } = readElement(element.bytes, offset);
    result.push(child);
    offset = next;
  }
  return result;
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (!element) throw new DerError(`${what} missing`);
  if (element.tag !== tag) {
    throw new DerError(`${what}: unexpected tag 0x${element.tag.toString(16)}`);
  }
  return element;
}

export function sequenceOf(element: DerElement | undefined, what: string): DerElement[] {
  return children(expectTag(element, Tag.sequence, what));
}

/** A cursor over the children of a SEQUENCE, for fields that are OPTIONAL or DEFAULT. */
export class DerCursor {
  private index = 0;
  constructor(
    private readonly items: DerElement[],
    private readonly what: string,
  ) {}

  peek(): DerElement | undefined {
    return this.items[this.index];
  }

  next(tag: number, field: string): DerElement {
    const element = this.items[this.index];
    if (!element) throw new DerError(`${this.what}: ${field} missing`);
    if (element.tag !== tag) {
      throw new DerError(`${this.what}: ${field} has unexpected tag 0x${element.tag.toString(16)}`);
    }
    this.index++;
    return element;
  }

  /** Takes the next element whatever its tag. */
  any(field: string): DerElement {
    const element = this.items[this.index];
    if (!element) throw new DerError(`${this.what}: ${field} missing`);
    this.index++;
    return element;
  }

  optional(tag: number): DerElement | undefined {
    const element = this.items[this.index];
    if (element && element.tag === tag) {
      this.index++;
      return element;
    }
    return undefined;
  }

  end(): void {
    if (this.index !== this.items.length)
      throw new DerError(`${this.what}: unexpected trailing field`);
  }
}

export function readBoolean(element: DerElement): boolean {
  expectTag(element, Tag.boolean, 'BOOLEAN');
  if (element.bytes.length !== 1) throw new DerError('BOOLEAN of wrong length');
  const value = element.bytes[0] as number;
  if (value === 0xff) return true;
  if (value === 0x00) return false;
  throw new DerError('BOOLEAN not DER-encoded');
}

/** The content octets of an INTEGER, checked for minimal encoding. */
export function integerBytes(element: DerElement, tag: number = Tag.integer): Uint8Array {
  expectTag(element, tag, 'INTEGER');
  const bytes = element.bytes;
  if (bytes.length === 0) throw new DerError('empty INTEGER');
  if (bytes.length > 1) {
    const a = bytes[0] as number;
    const b = bytes[1] as number;
    if ((a === 0x00 && (b & 0x80) === 0) || (a === 0xff && (b & 0x80) !== 0)) {
      throw new DerError('INTEGER not minimally encoded');
    }
  }
  return bytes;
}

/** A small non-negative INTEGER (path lengths, versions, CRL reasons). */
export function readSmallInteger(element: DerElement, tag: number = Tag.integer): number {
  const bytes = integerBytes(element, tag);
  if (((bytes[0] as number) & 0x80) !== 0) throw new DerError('negative INTEGER');
  if (bytes.length > 4) throw new DerError('INTEGER too large');
  let value = 0;
  for (const byte of bytes) value = value * 256 + byte;
  return value;
}

export function readOid(element: DerElement): string {
  expectTag(element, Tag.oid, 'OBJECT IDENTIFIER');
  const bytes = element.bytes;
  if (bytes.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  let started = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (!started && byte === 0x80) throw new DerError('OBJECT IDENTIFIER not minimally encoded');
    started = true;
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 256)
      throw new DerError('OBJECT IDENTIFIER arc too large');
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0;
      started = false;
    } else if (i === bytes.length - 1) {
      throw new DerError('truncated OBJECT IDENTIFIER');
    }
  }
  const first = arcs.shift() as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/** A BIT STRING's bits (unused bits must be zero, as DER requires). */
export function readBitString(element: DerElement): { bytes: Uint8Array; unusedBits: number } {
  expectTag(element, Tag.bitString, 'BIT STRING');
  if (element.bytes.length === 0) throw new DerError('empty BIT STRING');
  const unusedBits = element.bytes[0] as number;
  if (unusedBits > 7) throw new DerError('BIT STRING with invalid unused bit count');
  const bytes = element.bytes.subarray(1);
  if (bytes.length === 0 && unusedBits !== 0) throw new DerError('BIT STRING with invalid padding');
  if (unusedBits > 0) {
    const last = bytes[bytes.length - 1] as number;
    if ((last & ((1 << unusedBits) - 1)) !== 0) throw new DerError('BIT STRING padding not zero');
  }
  return { bytes, unusedBits };
}

/** A BIT STRING of the named-bit kind, as the list of set bit positions. */
export function readNamedBits(element: DerElement): Set<number> {
  // Trailing zero bits should be trimmed in DER, but real CAs often leave them: not enforced.
  const { bytes } = readBitString(element);
  const set = new Set<number>();
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      if (((bytes[i] as number) & (0x80 >> bit)) !== 0) set.add(i * 8 + bit);
    }
  }
  return set;
}

/** UTCTime or GeneralizedTime in the only forms RFC 5280 allows: seconds, "Z", no fraction. */
export function readTime(element: DerElement): number {
  const text = latin1(element.bytes);
  let match: RegExpExecArray | null;
  let year: number;
  if (element.tag === Tag.utcTime) {
    match = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (!match) throw new DerError(`malformed UTCTime "${text}"`);
    const yy = Number(match[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (element.tag === Tag.generalizedTime) {
    match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (!match) throw new DerError(`malformed GeneralizedTime "${text}"`);
    year = Number(match[1]);
  } else {
    throw new DerError('expected a time');
  }
  const [month, day, hour, minute, second] = match.slice(2).map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    throw new DerError(`time out of range "${text}"`);
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  if (new Date(ms).getUTCDate() !== day) throw new DerError(`no such date "${text}"`);
  return ms;
}

export function latin1(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

/** IA5String content: ASCII only. */
export function readIa5(bytes: Uint8Array): string {
  for (const byte of bytes) if (byte > 0x7f) throw new DerError('IA5String with non-ASCII octet');
  return latin1(bytes);
}

/** Any of the DirectoryString types (and IA5String), decoded to a JS string. */
export function decodeString(element: DerElement): string | undefined {
  switch (element.tag) {
    case Tag.utf8String:
      return new TextDecoder('utf-8', { fatal: true }).decode(element.bytes);
    case Tag.printableString:
    case Tag.ia5String:
    case Tag.teletexString:
      return latin1(element.bytes);
    case Tag.bmpString: {
      if (element.bytes.length % 2) throw new DerError('BMPString of odd length');
      let text = '';
      for (let i = 0; i < element.bytes.length; i += 2) {
        text += String.fromCharCode(
          ((element.bytes[i] as number) << 8) | (element.bytes[i + 1] as number),
        );
      }
      return text;
    }
    case Tag.universalString: {
      if (element.bytes.length % 4) throw new DerError('UniversalString of bad length');
      let text = '';
      for (let i = 0; i < element.bytes.length; i += 4) {
        const view = new DataView(element.bytes.buffer, element.bytes.byteOffset + i, 4);
        text += String.fromCodePoint(view.getUint32(0));
      }
      return text;
    }
    default:
      return undefined;
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}
