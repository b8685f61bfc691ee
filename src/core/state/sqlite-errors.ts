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
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR')) {
    return new OperationError('STATE_IO', `state file ${statePath}: ${code}`, {
      ...cause,
      hint: 'check free disk space and the health of the file system',
    });
  }
  return undefined;
}
