import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { ZodType } from 'zod';
import { UsageError, messageOf } from '../core/errors.js';

/**
 * The daemon's operator files (`serve --resources`, `serve --policy`): JSON or YAML, validated
 * with a schema, and refused with one line that names the file and the offending place in it,
 * so that `serve` exits 2 before it listens rather than serving half a configuration.
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
    throw new UsageError(code, `cannot read the ${what} file ${path} (${reason})`);
  }
  const document = await parseDocument(path, text, what, code);
  const parsed = schema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${formatPath(issue.path)}: ` : '';
    throw new UsageError(
      code,
      `invalid ${what} file ${path}: ${where}${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
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
      throw new UsageError(code, `${what} file ${path} is not valid JSON: ${messageOf(error)}`);
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
    throw new UsageError(code, `${what} file ${path} is not valid YAML: ${firstLine}`);
  }
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
