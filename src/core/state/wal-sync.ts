import { closeSync, fdatasync, fstatSync, openSync, realpathSync, statSync } from 'node:fs';

/**
 * Makes what a connection opened with `synchronous = NORMAL` committed to a WAL-mode state file
 * durable, off the calling thread: one fdatasync of the write-ahead log on libuv's thread pool.
 *
 * Why: the daemon commits its audit rows on its event loop. With `synchronous = FULL`, SQLite
 * syncs the log inside COMMIT and every connection of the daemon waits for the disk. With NORMAL,
 * COMMIT only writes the log; syncing the log file afterwards gives the commit what FULL gives it,
 * since in WAL mode that sync is the one step FULL adds at a commit
 * (https://sqlite.org/pragma.html#pragma_synchronous). SQLite still syncs the log before every
 * checkpoint and the database after it under NORMAL, so a checkpoint never outruns this.
 *
 * The log is found by path and checked by inode before every sync. SQLite deletes it only when
 * its last connection closes or the journal mode changes, neither of which can happen while the
 * caller's connection is open; but a stale descriptor would sync the wrong file without a word,
 * and two stat calls a sync are a cheap way to be sure.
 */
export class WalSync {
  private fd: number | undefined;
  private inode = -1;
  private readonly walPath: string;

  /** Call once the state file is open: SQLite puts the log beside the file a symlink names. */
  constructor(statePath: string) {
    this.walPath = `${realpathSync(statePath)}-wal`;
  }

  /** Resolves once everything committed to the log before the call is on stable storage. */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      let fd: number;
      try {
        fd = this.descriptor();
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      fdatasync(fd, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Only once no sync is in flight. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.inode = -1;
  }

  private descriptor(): number {
    // ENOENT when there is no log: nothing was committed to one, and the caller hears of it.
    const inode = statSync(this.walPath).ino;
    if (this.fd === undefined || inode !== this.inode) {
      this.close();
      // Linux syncs through a read-only descriptor: this never writes the log.
      this.fd = openSync(this.walPath, 'r');
      this.inode = fstatSync(this.fd).ino;
    }
    return this.fd;
  }
}
