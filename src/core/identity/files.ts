import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
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
  for (const file of files) checkOutputPath(file.path);
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
      try {
        rmSync(temporary, { force: true });
      } catch {
        // Nothing was written there to remove (the folder could not be made, say).
      }
      throw new OperationError('WRITE_FAILED', `cannot write ${file.path} (${errnoOf(error)})`, {
        cause: error,
        hint: 'check that the output folder is writable',
      });
    }
  }
}

/**
 * Refuses an output path that can never be written, before anything is: the path itself a
 * folder, or one of the folders it would go in a file (`--out ./notes.txt` for a folder).
 */
function checkOutputPath(path: string): void {
  if (isDirectory(path)) {
    throw new UsageError('OUTPUT_IS_A_FOLDER', `cannot write ${path}: it is a folder`, {
      hint: 'choose another --out: the path of a file, e.g. one inside that folder',
    });
  }
  for (let folder = dirname(path); ; folder = dirname(folder)) {
    if (existsSync(folder)) {
      if (!isDirectory(folder)) {
        throw new UsageError(
          'OUTPUT_NOT_A_FOLDER',
          `cannot write ${path}: ${folder} is a file, not a folder`,
          { hint: 'choose another --out' },
        );
      }
      return;
    }
    if (dirname(folder) === folder) return;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
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
