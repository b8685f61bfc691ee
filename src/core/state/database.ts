import Database from 'better-sqlite3';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  rmdirSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { NotFoundError, OperationError, UsageError, isSarkError, messageOf } from '../errors.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { describeSqliteError, unreadableState } from './sqlite-errors.js';

export type SqliteDatabase = Database.Database;

export interface OpenStateOptions {
  /** Create the file (0600, in a 0700 folder) when it does not exist yet. */
  create: boolean;
  /** Milliseconds a writer waits for another process's lock before giving up. */
  busyTimeoutMs?: number;
  /**
   * FULL (the default) syncs the log in every COMMIT. NORMAL is for a connection whose owner
   * syncs the log itself before it relies on a commit: the daemon's audit writer, with WalSync.
   */
  synchronous?: 'FULL' | 'NORMAL';
}

/** An open state file. One per process; closed by whoever opened it. */
export class StateStore {
  constructor(
    readonly db: SqliteDatabase,
    readonly path: string,
  ) {}

  /** Runs fn in a BEGIN IMMEDIATE transaction: the right lock for every read-then-write. */
  write<T>(fn: (db: SqliteDatabase) => T): T {
    return this.guard(() => this.db.transaction(() => fn(this.db)).immediate());
  }

  read<T>(fn: (db: SqliteDatabase) => T): T {
    return this.guard(() => fn(this.db));
  }

  /**
   * Fails as a write would (STATE_UNWRITABLE, STATE_BUSY), writing nothing: for a command that
   * is about to do something elsewhere (call a peer) that it must then record here. SQLite opens
   * a file it may not write read-only without a word, and lets BEGIN IMMEDIATE through on it, so
   * the file's mode is checked first; then the write lock is taken and released.
   */
  assertWritable(): void {
    try {
      accessSync(this.path, constants.W_OK);
    } catch (error) {
      throw new OperationError('STATE_UNWRITABLE', `state file ${this.path} cannot be written`, {
        cause: error,
        hint: 'check the permissions of the file and its folder, or choose another with --state',
      });
    }
    this.write(() => undefined);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw describeSqliteError(error, this.path) ?? error;
    }
  }
}

/**
 * Opens (and when asked, creates) the state file. A file that is not a sark-fed state file, is
 * corrupt, or carries a newer schema is refused before anything is written to it.
 */
export function openState(path: string, options: OpenStateOptions): StateStore {
  const exists = fileExists(path);
  let created: CreatedPaths | undefined;
  if (!exists) {
    if (!options.create) {
      throw new NotFoundError('STATE_MISSING', `no state file at ${path}`, {
        hint: 'run `sark-fed init` first, or point --state / SARK_FED_STATE at an existing one',
      });
    }
    created = createPrivateFile(path);
  } else {
    assertSqliteHeader(path);
  }

  let db: SqliteDatabase | undefined;
  try {
    try {
      db = new Database(path, { fileMustExist: true, nativeBinding: sqliteAddon() });
    } catch (error) {
      throw describeSqliteError(error, path) ?? sqliteUnavailable(error) ?? unwritable(path, error);
    }
    try {
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
      checkOwnership(db, path, options.create);
      db.pragma('journal_mode = WAL');
      // Audit rows must survive power loss once acknowledged (DESIGN §7).
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      db.pragma('foreign_keys = ON');
      migrate(db, path);
    } catch (error) {
      throw describeSqliteError(error, path) ?? error;
    }
  } catch (error) {
    db?.close();
    // A file this process created and could not make a state file of (a full disk) is not left
    // behind as an empty one, nor are the folders made for it.
    if (created && !(isSarkError(error) && error.code === 'STATE_BUSY')) {
      removeCreated(path, created);
    }
    throw error;
  }
  return new StateStore(db, path);
}

let addonPath: string | null | undefined;

/**
 * better-sqlite3's native addon, by its path in the installed package. Without it better-sqlite3
 * asks the `bindings` package, which reads a stack trace to find the caller and tries a dozen
 * paths: ~1.5-2 ms of every command (docs/benchmarks.md). Where the addon is not at that path
 * (a debug build), `undefined` leaves the search to `bindings` as before.
 */
function sqliteAddon(): string | undefined {
  if (addonPath === undefined) {
    try {
      const root = dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'));
      const candidate = join(root, 'build', 'Release', 'better_sqlite3.node');
      addonPath = existsSync(candidate) ? candidate : null;
    } catch {
      addonPath = null;
    }
  }
  return addonPath ?? undefined;
}

function fileExists(path: string): boolean {
  try {
    const stats = statSync(path);
    if (!stats.isFile()) {
      // The path is the operator's word (--state, SARK_FED_STATE or SARK_FED_HOME), not a fault
      // of the file: a bad argument, exit 2 (CLI.md), and nothing is touched.
      throw new UsageError('STATE_NOT_A_FILE', `state path ${path} is not a regular file`, {
        hint: stats.isDirectory()
          ? `it is a folder: point --state (or SARK_FED_STATE) at a file, e.g. ${join(path, 'state.db')}`
          : 'point --state (or SARK_FED_STATE) at a regular file',
      });
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    if (error instanceof UsageError) throw error;
    // A folder on the path this user may not search (EACCES), or a file where a folder should be
    // (ENOTDIR): nothing can be told about the state file, and nothing is created.
    throw unreadableState(path, (error as NodeJS.ErrnoException).code ?? messageOf(error), error);
  }
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * SQLite reports any file without its header as SQLITE_NOTADB, which would read as "corrupt": a
 * non-empty file that does not start with the header is someone else's file, not a damaged one.
 */
function assertSqliteHeader(path: string): void {
  const header = Buffer.alloc(SQLITE_HEADER.length);
  let length: number;
  try {
    const fd = openSync(path, 'r');
    try {
      length = readSync(fd, header, 0, header.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return; // Unreadable: opening it below reports why, as for any other state file.
  }
  if (length === 0 || header.equals(SQLITE_HEADER)) return;
  throw new OperationError('STATE_FOREIGN', `${path} is not a sark-fed state file`, {
    hint: 'it is not an SQLite database; choose another path with --state',
  });
}

interface CreatedPaths {
  /** The outermost folder mkdir created for the file, if it created any. */
  firstFolder: string | undefined;
}

function createPrivateFile(path: string): CreatedPaths | undefined {
  let firstFolder: string | undefined;
  try {
    // mkdir applies the mode to every folder it creates, and to none that already exist.
    firstFolder = mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    closeSync(openSync(path, 'wx', 0o600));
    return { firstFolder };
  } catch (error) {
    // Another process created it first: its file, not this one's to remove.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    removeFolders(path, firstFolder);
    throw unwritable(path, error);
  }
}

/**
 * Removes the file openState created, while it is still empty and no other process wrote to it
 * (a log with content left after this connection closed), then the folders created for it.
 */
function removeCreated(path: string, created: CreatedPaths): void {
  try {
    if (statSync(path).size !== 0) return;
    for (const suffix of ['-wal', '-shm']) {
      try {
        if (suffix === '-wal' && statSync(path + suffix).size !== 0) return;
        unlinkSync(path + suffix);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return;
      }
    }
    unlinkSync(path);
  } catch {
    return;
  }
  removeFolders(path, created.firstFolder);
}

/** Removes the folders between the file and firstFolder, innermost first, while empty. */
function removeFolders(path: string, firstFolder: string | undefined): void {
  if (firstFolder === undefined) return;
  for (let folder = dirname(path); ; folder = dirname(folder)) {
    try {
      rmdirSync(folder);
    } catch {
      return;
    }
    if (folder === firstFolder || folder === dirname(folder)) return;
  }
}

/**
 * better-sqlite3 loads its native addon when the first database opens: an addon built for another
 * Node.js (upgraded since `npm install`), damaged, or never built is a fault of the install, which
 * "cannot create state file" and a hint about folder permissions would send the operator away from.
 */
function sqliteUnavailable(error: unknown): OperationError | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  const message = messageOf(error);
  if (
    code !== 'ERR_DLOPEN_FAILED' &&
    code !== 'MODULE_NOT_FOUND' &&
    !/bindings file|NODE_MODULE_VERSION/.test(message)
  ) {
    return undefined;
  }
  return new OperationError(
    'SQLITE_UNAVAILABLE',
    `cannot load SQLite (better-sqlite3's native addon): ${message.split('\n')[0]}`,
    {
      cause: error,
      hint: 'rebuild it for this Node.js: `npm rebuild better-sqlite3` where sark-fed is installed (docs/setup.md)',
    },
  );
}

function unwritable(path: string, error: unknown): OperationError {
  const reason = (error as NodeJS.ErrnoException).code ?? messageOf(error);
  return new OperationError('STATE_UNWRITABLE', `cannot create state file ${path} (${reason})`, {
    cause: error,
    hint: 'check that its folder is writable, or choose another location with --state',
  });
}

function checkOwnership(db: SqliteDatabase, path: string, mayInitialise: boolean): void {
  // Reading sqlite_schema forces SQLite to parse page 1, so a damaged file fails here.
  const tables = (db.prepare('SELECT count(*) AS n FROM sqlite_schema').get() as { n: number }).n;
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;

  if (applicationId === APPLICATION_ID) {
    if (version > SCHEMA_VERSION) {
      throw new OperationError(
        'STATE_NEWER_SCHEMA',
        `state file ${path} has schema version ${version}; this sark-fed knows up to ${SCHEMA_VERSION}`,
        { hint: 'upgrade sark-fed; the file is left as it is' },
      );
    }
    return;
  }
  const blank = applicationId === 0 && version === 0 && tables === 0;
  if (blank && mayInitialise) return;
  if (blank) {
    throw new NotFoundError('STATE_MISSING', `state file ${path} is empty`, {
      hint: 'run `sark-fed init` first',
    });
  }
  throw new OperationError('STATE_FOREIGN', `${path} is not a sark-fed state file`, {
    hint: 'it is an SQLite database of another program; choose another path with --state',
  });
}

function migrate(db: SqliteDatabase, path: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current >= SCHEMA_VERSION) return;
  try {
    db.transaction(() => {
      // Another process may have migrated while this one waited for the lock.
      const version = db.pragma('user_version', { simple: true }) as number;
      for (let index = version; index < MIGRATIONS.length; index++) {
        db.exec(MIGRATIONS[index] as string);
      }
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // A file of an older schema is upgraded before anything, even a read: say so.
    if (current > 0 && typeof code === 'string' && code.startsWith('SQLITE_READONLY')) {
      throw new OperationError(
        'STATE_UNWRITABLE',
        `state file ${path} has schema version ${current} and must be upgraded to ${SCHEMA_VERSION}, but it cannot be written`,
        {
          cause: error,
          hint: 'run sark-fed once as a user who may write the file and its folder; the upgrade is automatic',
        },
      );
    }
    throw error;
  }
}
