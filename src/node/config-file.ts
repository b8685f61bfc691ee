import { readFileSync } from 'node:fs';
import { extname, isAbsolute } from 'node:path';
import type { ZodType, core } from 'zod';
import { UsageError, messageOf } from '../core/errors.js';

/**
 * The daemon's operator files (`serve --resources`, `serve --policy`): JSON or YAML, validated
 * with a schema, and refused with one line that names the file and the offending place in it,
 * and a hint, so that `serve` exits 2 before it listens rather than serving half a configuration.
 */
export async function loadConfigFile<T>(
  path: string,
  schema: ZodType<T>,
  what: string,
  code: string,
): Promise<T> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? messageOf(error);
    throw new UsageError(code, `cannot read the ${what} file ${path} (${reason})`, {
      hint: unreadableHint(path, reason, what),
    });
  }
  const document = await parseDocument(path, text, what, code);
  // zod would say "Invalid input: expected object, received null", and of no place in the file.
  if (!isPlainObject(document)) {
    const keys = (keysAt(schema, [], document) ?? []).map((key) => JSON.stringify(key));
    throw new UsageError(
      code,
      `invalid ${what} file ${path}: ${document === null || document === undefined ? 'it is empty' : `expected a mapping of keys, found ${typeName(document)}`}`,
      {
        hint: `a ${what} file is a mapping with the key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}; see ${docsFor(what)}`,
      },
    );
  }
  const parsed = schema.safeParse(document);
  if (!parsed.success) {
    const { where, message, hint } = describeIssues(parsed.error.issues, schema, document, what);
    throw new UsageError(code, `invalid ${what} file ${path}: ${where}${message}`, { hint });
  }
  return parsed.data;
}

function unreadableHint(path: string, reason: string, what: string): string {
  switch (reason) {
    case 'ENOENT':
      // A daemon started by a service manager often runs in another folder than the operator's.
      return isAbsolute(path)
        ? 'check the path: no such file'
        : `check the path: a relative one is read from ${process.cwd()}`;
    case 'EISDIR':
      return `give the path of the ${what} file, not of a folder`;
    case 'EACCES':
    case 'EPERM':
      return "check the file's permissions: this process's user cannot read it";
    default:
      return `check that the path names a readable ${what} file`;
  }
}

/** Where docs/resources.md describes the file: its section, from the file's name. */
function docsFor(what: string): string {
  return `docs/resources.md#the-${what}-file`;
}

async function parseDocument(
  path: string,
  text: string,
  what: string,
  code: string,
): Promise<unknown> {
  if (extname(path).toLowerCase() === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new UsageError(
        code,
        `${what} file ${path} is not valid JSON: ${describeJsonError(error, text)}`,
        { hint: 'a file named *.json is read as JSON (any other name as YAML): fix it there' },
      );
    }
  }
  // YAML is a superset of JSON, so any other name is read as YAML. The parser is loaded only
  // here: most daemons never read a YAML file, and no other command needs it.
  const { parse } = await import('yaml');
  try {
    return parse(text, { prettyErrors: true }) as unknown;
  } catch (error) {
    // The parser's message goes on with an excerpt of the file: its first line says it all.
    const firstLine = (messageOf(error).split('\n')[0] ?? 'unreadable').replace(/:$/, '');
    throw new UsageError(code, `${what} file ${path} is not valid YAML: ${firstLine}`, {
      hint: 'a file not named *.json is read as YAML (or JSON, which YAML includes): check the indentation and brackets there',
    });
  }
}

/**
 * JSON.parse's complaint as one line, with a line and column where V8 gives a position: its
 * messages quote the text, newlines included, and count positions in characters from the start.
 */
export function describeJsonError(error: unknown, text: string): string {
  const message = messageOf(error);
  const positioned = /^(.*?)(?: in JSON)? at position (\d+)(?: \(line \d+ column \d+\))?$/s.exec(
    message,
  );
  if (positioned) {
    const offset = Number(positioned[2]);
    const before = text.slice(0, offset);
    const line = before.split('\n').length;
    const column = offset - before.lastIndexOf('\n');
    return `${positioned[1] as string} at line ${line}, column ${column}`;
  }
  // "Unexpected token 'a', "a: 1\n" is not valid JSON": the quoted excerpt may span lines.
  const token = /^Unexpected token '(.*?)', .* is not valid JSON$/s.exec(message);
  if (token) return `unexpected ${JSON.stringify(token[1])}`;
  return message.split('\n')[0] ?? message;
}

/**
 * The one problem to tell the operator, of the many zod may find. An unknown key comes first:
 * a misspelt key (`node:` for `nodes:`) also makes the real key missing, and "nodes: expected
 * array" alone would not say that the file does hold it, under another name.
 */
function describeIssues(
  issues: readonly core.$ZodIssue[],
  schema: ZodType,
  document: unknown,
  what: string,
): { where: string; message: string; hint: string } {
  const issue = issues.find((candidate) => candidate.code === 'unrecognized_keys') ?? issues[0];
  const seeDocs = `see ${docsFor(what)}`;
  if (!issue) return { where: '', message: 'invalid', hint: seeDocs };
  const where = issue.path.length > 0 ? `${formatPath(issue.path)}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    const value = valueAt(document, issue.path);
    const present = new Set(isPlainObject(value) ? Object.keys(value) : []);
    const known = keysAt(schema, issue.path, document) ?? [];
    const missing = known.filter((key) => !present.has(key));
    const keys = issue.keys.map((key) => {
      const suggestion = closest(key, missing);
      return suggestion === undefined
        ? JSON.stringify(key)
        : `${JSON.stringify(key)} (did you mean ${JSON.stringify(suggestion)}?)`;
    });
    const owner = issue.path.length > 0 ? formatPath(issue.path) : `a ${what} file`;
    return {
      where,
      message: `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`,
      hint: known.length > 0 ? `the keys of ${owner} are ${known.join(', ')}; ${seeDocs}` : seeDocs,
    };
  }
  // zod words a missing key as "Invalid input: expected array, received undefined".
  if (
    issue.code === 'invalid_type' &&
    issue.path.length > 0 &&
    valueAt(document, issue.path) === undefined
  ) {
    return { where, message: `missing (expected ${issue.expected})`, hint: seeDocs };
  }
  // zod's own words ("Invalid option: expected one of "allow"|"deny"") would not say what the
  // file holds there, nor which value was likely meant.
  if (issue.code === 'invalid_value') {
    const found = valueAt(document, issue.path);
    const values = issue.values.filter((value): value is string => typeof value === 'string');
    const suggestion = typeof found === 'string' ? closest(found, values) : undefined;
    return {
      where,
      message: `expected ${alternatives(issue.values.map((value) => JSON.stringify(value)))}, found ${typeName(found)}${
        suggestion === undefined ? '' : ` (did you mean ${JSON.stringify(suggestion)}?)`
      }`,
      hint: seeDocs,
    };
  }
  if (issue.code === 'invalid_type') {
    const found = valueAt(document, issue.path);
    return {
      where,
      message: `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, found ${typeName(found)}`,
      hint: seeDocs,
    };
  }
  return { where, message: issue.message, hint: seeDocs };
}

const TYPE_NAMES: Record<string, string> = {
  array: 'a list',
  object: 'a mapping of keys',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

/** A value of the file as the operator wrote it: `"permit"`, `a list`, `a number (3)`. */
function typeName(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return 'a mapping of keys';
  return `${typeof value === 'boolean' ? 'a boolean' : `a ${typeof value}`} (${String(value)})`;
}

/** `"a"`, `"a" or "b"`, `"a", "b" or "c"`. */
function alternatives(items: readonly string[]): string {
  return items.length <= 1
    ? (items[0] ?? 'nothing')
    : `${items.slice(0, -1).join(', ')} or ${items.at(-1) as string}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function valueAt(document: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value = document;
  for (const part of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

/**
 * The keys the schema knows for the object at `path` of the document, or undefined when the
 * schema cannot be followed there. The document picks the branch of a discriminated union
 * (the keys of an `http` backend, not of an `echo` one).
 */
function keysAt(
  schema: ZodType,
  path: ReadonlyArray<PropertyKey>,
  value: unknown,
): string[] | undefined {
  const def = (schema as unknown as core.$ZodType)._zod.def as core.$ZodTypeDef &
    Record<string, unknown>;
  const inner = (name: string) => def[name] as ZodType;
  switch (def.type) {
    case 'object': {
      const shape = def.shape as Record<string, ZodType>;
      if (path.length === 0) return Object.keys(shape);
      const [key, ...rest] = path;
      const field = shape[String(key)];
      return field && keysAt(field, rest, valueAt(value, [key as PropertyKey]));
    }
    case 'array': {
      if (path.length === 0) return undefined;
      const [index, ...rest] = path;
      return keysAt(inner('element'), rest, valueAt(value, [index as PropertyKey]));
    }
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return keysAt(inner('innerType'), path, value);
    case 'pipe':
      return keysAt(inner('in'), path, value);
    case 'union': {
      const options = def.options as ZodType[];
      const discriminator = def.discriminator as string | undefined;
      const chosen =
        discriminator === undefined
          ? options
          : options.filter(
              (option) =>
                shapeOf(option)?.[discriminator]?.safeParse(valueAt(value, [discriminator]))
                  .success === true,
            );
      const keys = new Set(chosen.flatMap((option) => keysAt(option, path, value) ?? []));
      return keys.size > 0 ? [...keys] : undefined;
    }
    default:
      return undefined;
  }
}

function shapeOf(schema: ZodType): Record<string, ZodType> | undefined {
  const def = (schema as unknown as core.$ZodType)._zod.def as core.$ZodTypeDef &
    Record<string, unknown>;
  return def.type === 'object' ? (def.shape as Record<string, ZodType>) : undefined;
}

/**
 * The known key (or ID) a misspelt one most likely meant: within one edit (two for longer
 * keys), case aside, counting a swap of neighbours as one edit.
 */
export function closest(key: string, candidates: readonly string[]): string | undefined {
  const allowed = key.length >= 6 ? 2 : 1;
  let best: { key: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= allowed && (best === undefined || distance < best.distance)) {
      best = { key: candidate, distance };
    }
  }
  return best?.key;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, transpositions. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => (rows[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, at(i - 2, j - 2) + 1);
      }
      (rows[i] as number[])[j] = distance;
    }
  }
  return at(a.length, b.length);
}

/** resources[1].capabilities[0].backend.url, as an operator finds it in the file. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? String(part) : `.${String(part)}`;
  }
  return text;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * A duration as the CLI writes them (`500ms`, `5s`, `2m`; a bare number is seconds), in
 * milliseconds; undefined when the text is not one.
 */
export function parseDuration(value: string | number): number | undefined {
  const text = typeof value === 'number' ? String(value) : value.trim();
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? 's'] as number));
}
