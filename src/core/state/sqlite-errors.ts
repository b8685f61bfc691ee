import { accessSync, constants, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { OperationError, type SarkError } from '../errors.js';

/**
 * Turns a raw SQLite failure that escaped a repository into a typed error that names the state
 * file. Kept free of better-sqlite3 imports so the CLI can use it without loading the driver.
 */
export function describeSqliteError(error: unknown, statePath: string): SarkError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
  const cause = { cause: error };
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new OperationError('STATE_CORRUPT', `state file ${statePath} is corrupt`, {
      ...cause,
      hint: 'restore it from a backup, or move it aside and run `sark-fed init` again',
    });
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    // SQLite says "cannot open" for a file it may not even read: say which it is.
    if (code.startsWith('SQLITE_CANTOPEN') && !accessible(statePath, constants.R_OK)) {
      return unreadableState(statePath, 'EACCES', error);
    }
    return new OperationError('STATE_UNWRITABLE', `state file ${statePath} cannot be written`, {
      ...cause,
      hint: 'check the permissions of the file and its folder, or choose another with --state',
    });
  }
  if (code.startsWith('SQLITE_BUSY')) {
    return new OperationError(
      'STATE_BUSY',
      `state file ${statePath} is locked by another process`,
      {
        ...cause,
        hint: 'retry; if it persists, look for a stuck sark-fed process',
      },
    );
  }
  // SQLite reports ENOSPC as SQLITE_FULL where it writes pages, but as an I/O error where it
  // grows the shared-memory file or the log (SQLITE_IOERR_SHMSIZE, _WRITE): the free space of
  // the file system tells the two apart.
  if (code === 'SQLITE_FULL' || (code.startsWith('SQLITE_IOERR') && noSpaceLeft(statePath))) {
    return new OperationError(
      'STATE_IO',
      `cannot write state file ${statePath}: the disk is full (${code})`,
      {
        ...cause,
        hint: `free space on the file system that holds ${dirname(statePath)}, then run the command again`,
      },
    );
  }
  if (code.startsWith('SQLITE_IOERR')) {
    return new OperationError('STATE_IO', `I/O error on state file ${statePath} (${code})`, {
      ...cause,
      hint: 'check the health of the file system (and free disk space)',
    });
  }
  return undefined;
}

/** The state file, or a folder on its path, may not be read by this user. */
export function unreadableState(statePath: string, reason: string, cause: unknown): SarkError {
  return new OperationError('STATE_UNREADABLE', `cannot open state file ${statePath} (${reason})`, {
    cause,
    hint: 'check the permissions of the file and of every folder on its path, or choose another with --state',
  });
}

function accessible(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'EACCES';
  }
}

/**
 * Less than 64 KiB free to this user where the state file lives: SQLite grows the shared-memory
 * file 32 KiB at a time, and the log by a page and its header per frame.
 */
function noSpaceLeft(statePath: string): boolean {
  try {
    const stats = statfsSync(dirname(statePath));
    return stats.bavail * stats.bsize < 64 * 1024;
  } catch {
    return false;
  }
}
