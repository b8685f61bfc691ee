import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Every link between the project's Markdown files (README.md, docs/*.md) names a file that exists
 * and, with a #fragment, a heading in it, slugged as GitHub does: an operator following a hint
 * from the CLI (`docs/resources.md#the-policy-file`) must land on the section.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const FILES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs')).map((name) => `docs/${name}`),
].filter((path) => path.endsWith('.md'));

function text(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8');
}

/** Outside fenced code blocks: a `#` comment in a shell example is not a heading. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** GitHub's heading IDs: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const ids = new Set<string>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = (heading as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    ids.add(count === 0 ? base : `${base}-${count}`);
  }
  return ids;
}

function resolve(from: string, target: string): string {
  const parts = from.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.') parts.push(part);
  }
  return parts.join('/');
}

describe('documentation links', () => {
  it.each(FILES)('%s: every link to a project file and its section resolves', (path) => {
    const broken: string[] = [];
    for (const [, target] of prose(text(path)).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target as string)) continue;
      const [file, fragment] = (target as string).split('#') as [string, string | undefined];
      const resolved = file === '' ? path : resolve(path, file);
      if (!resolved.endsWith('.md')) continue;
      let linked: string;
      try {
        linked = text(resolved);
      } catch {
        broken.push(`${target as string} (no such file)`);
        continue;
      }
      if (fragment !== undefined && !anchors(linked).has(fragment)) {
        broken.push(`${target as string} (no such section)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('slugs headings as GitHub does', () => {
    expect([...anchors('## Where would a call go: `route`\n## A/B, (x)\n## A/B, (x)\n')]).toEqual([
      'where-would-a-call-go-route',
      'ab-x',
      'ab-x-1',
    ]);
  });
});
