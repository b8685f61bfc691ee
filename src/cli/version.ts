import { readFileSync } from 'node:fs';

/** The package version, read once from package.json beside dist/ (cheaper than importing JSON). */
export function packageVersion(): string {
  const raw = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(raw) as { version: string }).version;
}
