/**
 * Canonical JSON for signed statements and receipts: object keys sorted by code unit, no
 * whitespace, as RFC 8785 (JCS) lays out for the values this protocol signs (strings, safe
 * integers, booleans, null, arrays, objects). Numbers that are not safe integers are refused
 * rather than risk two encoders disagreeing on their form.
 */
export function canonicalJson(value: unknown): string {
  // Written as loops over Object.keys rather than entries/filter/sort/map/join: the daemon
  // canonicalises twice per answer (the receipt it signs, the audit event it chains), and this
  // form takes about half the time (docs/benchmarks.md, invoke).
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`cannot canonicalise number ${value}`);
      return String(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let index = 0; index < value.length; index++) {
          out += (index === 0 ? '' : ',') + canonicalJson(value[index]);
        }
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      // sort() without a comparator orders by UTF-16 code unit, as JCS requires.
      const keys = Object.keys(record).sort();
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        if (item === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`cannot canonicalise a ${typeof value}`);
  }
}
