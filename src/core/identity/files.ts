import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OperationError, UsageError, errnoOf } from '../errors.js';

export interface OutputFile {
  path: string;
  content: string;
  /** Secrets (private keys) are written 0600; everything else 0644. */
  secret: boolean;
}

/** The paths among these that already exist, so the caller can ask before overwriting them. */
export function existingPaths(paths: readonly string[]): string[] {
  return paths.filter((path) => existsSync(path));
}

/**
 * Writes a set of files, each atomically (temporary file + rename), into folders created 0700.
 * Refuses to overwrite unless told to, and checks every path before writing any, so a refusal
 * leaves nothing half-written.
 */
export function writeOutputFiles(files: readonly OutputFile[], overwrite: boolean): void {
  const existing = existingPaths(files.map((file) => file.path));
  if (existing.length > 0 && !overwrite) {
    throw new UsageError('OUTPUT_EXISTS', `${existing.join(', ')} already exists`, {
      hint: 'pass --yes to overwrite, or choose another --out',
    });
  }
  for (const file of files) {
    const folder = dirname(file.path);
    const temporary = join(folder, `.${basename(file.path)}.${process.pid}.tmp`);
    try {
      mkdirSync(folder, { recursive: true, mode: 0o700 });
      writeFileSync(temporary, file.content, { mode: file.secret ? 0o600 : 0o644, flag: 'wx' });
      // An existing file's mode is kept by writeFileSync, so set it explicitly.
      chmodSync(temporary, file.secret ? 0o600 : 0o644);
      renameSync(temporary, file.path);
    } catch (error) {
      rmSync(temporary, { force: true });
      throw new OperationError('WRITE_FAILED', `cannot write ${file.path} (${errnoOf(error)})`, {
        cause: error,
        hint: 'check that the output folder is writable',
      });
    }
  }
}

/** Reads a file an operator named on the command line; a missing file is a usage error. */
export function readInputFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError('INPUT_UNREADABLE', `cannot read ${what} ${path} (${errnoOf(error)})`, {
      cause: error,
      hint: 'check the path',
    });
  }
}
