import { InvalidArgumentError } from 'commander';

/** The outcomes an audit event records (--outcome choices). */
export const AUDIT_OUTCOMES = ['success', 'denied', 'error', 'timeout'] as const;

/** Events `audit query` shows unless --limit says otherwise. */
export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 1_000_000;

const RELATIVE_UNITS_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * A date, optionally with a time, which then needs a zone (Z or ±hh:mm): a time without one would
 * be read as the local time of whichever machine parses it.
 */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d))?$/i;

const TIME_EXPECTED =
  'expected an ISO 8601 time (2030-01-31, 2030-01-31T09:30:00Z, 2030-01-31T10:30:00+01:00) or a relative one (90s, 15m, 2h, 7d, 2w: that long before now)';

/**
 * `--since` / `--until` (CLI.md: ISO 8601 or relative): the instant as an ISO 8601 UTC string. A
 * relative time is that long before `now`; a date alone is midnight UTC.
 */
export function parseAuditTime(value: string, now: Date): string {
  const text = value.trim();
  const relative = /^(\d+)(s|m|h|d|w)$/.exec(text);
  if (relative) {
    const ms = Number(relative[1]) * (RELATIVE_UNITS_MS[relative[2] as string] as number);
    const instant = now.getTime() - ms;
    if (!Number.isFinite(instant) || Math.abs(instant) > 8.64e15) {
      throw new InvalidArgumentError(TIME_EXPECTED);
    }
    return new Date(instant).toISOString();
  }
  const match = ISO_TIME.exec(text);
  if (!match) throw new InvalidArgumentError(`${TIME_EXPECTED}${whyNotIso(text)}`);
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // Date.parse rolls 2030-02-30 over to March: check that the day exists.
  const calendar = new Date(Date.UTC(2000, month - 1, day));
  calendar.setUTCFullYear(year);
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) {
    throw new InvalidArgumentError(`${TIME_EXPECTED}; ${text.slice(0, 10)} is not a day`);
  }
  // Date.parse wants ±hh:mm and an upper-case T/Z, and reads milliseconds at most. Stored times
  // are whole milliseconds, so rounding a finer bound up keeps `>=` and `<` exact.
  const beyond = /\.\d{3}(\d+)/.exec(text)?.[1] ?? '';
  const normal = text
    .toUpperCase()
    .replace(/([+-]\d{2})(\d{2})$/, '$1:$2')
    .replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(normal);
  if (Number.isNaN(ms)) throw new InvalidArgumentError(TIME_EXPECTED);
  return new Date(ms + (/[1-9]/.test(beyond) ? 1 : 0)).toISOString();
}

/**
 * What is off in a date and time that is almost ISO 8601, as one copied from a table is: the
 * tables of `audit query` and `audit trace` show UTC times with a space and without a zone.
 */
function whyNotIso(text: string): string {
  const almost =
    /^(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?$/i.exec(
      text,
    );
  if (!almost) return '';
  const [, day, separator, time, zone] = almost;
  const fixed = `${day}T${time}${zone ?? 'Z'}`;
  if (zone === undefined) {
    return `; ${text} has no zone: for UTC, as audit tables show times, give ${fixed}`;
  }
  return separator === ' ' ? `; put a T between the date and the time: ${fixed}` : '';
}

/**
 * The moment relative times count back from: one for the whole command line, taken when the
 * first time option is parsed, so that `--since 1h --until 1h` is an empty range, not a range of
 * the millisecond between two parses.
 */
let commandLineNow: Date | undefined;

/** The commander parser of a time option, relative to the moment the command line is parsed. */
export function auditTime(value: string): string {
  commandLineNow ??= new Date();
  return parseAuditTime(value, commandLineNow);
}
