import type { Statement } from 'better-sqlite3';
import type { StateStore } from '../core/state/database.js';
import {
  findPeer,
  listAnchors,
  listRevocationLists,
  type Peer,
} from '../core/state/trust-repository.js';

/**
 * The daemon's view of anchors, CRLs and peers, reloaded whenever another process (the CLI)
 * commits to the state file. `PRAGMA data_version` changes exactly then, and reading it costs a
 * few microseconds, so every request sees `trust revoke` or `anchor remove` without a restart.
 */
export class TrustView {
  private dataVersion = -1;
  private generation = 0;
  private anchorsByDomain = new Map<string, Buffer[]>();
  private revocationLists: Buffer[] = [];
  private dataVersionStatement: Statement | undefined;

  constructor(private readonly store: StateStore) {}

  /** Reloads when the file changed; returns a number that changes with every reload. */
  refresh(): number {
    // Prepared once: this runs on every request, and db.pragma() prepares a statement each time.
    this.dataVersionStatement ??= this.store.db.prepare('PRAGMA data_version').pluck();
    const statement = this.dataVersionStatement;
    const version = this.store.read(() => statement.get() as number);
    if (version !== this.dataVersion) {
      this.dataVersion = version;
      this.reload();
    }
    return this.generation;
  }

  /** After the daemon's own writes, which do not change its own connection's data_version. */
  invalidate(): void {
    this.reload();
  }

  anchorsFor(trustDomain: string): Buffer[] {
    return this.anchorsByDomain.get(trustDomain) ?? [];
  }

  crls(): Buffer[] {
    return this.revocationLists;
  }

  /** Peers are read straight from the file: a primary-key lookup, always current. */
  peer(nodeId: string): Peer | undefined {
    return this.store.read((db) => findPeer(db, nodeId));
  }

  private reload(): void {
    this.generation++;
    const { anchors, crls } = this.store.read((db) => ({
      anchors: listAnchors(db),
      crls: listRevocationLists(db),
    }));
    this.anchorsByDomain = new Map();
    for (const anchor of anchors) {
      const list = this.anchorsByDomain.get(anchor.trustDomain) ?? [];
      list.push(anchor.certificateDer);
      this.anchorsByDomain.set(anchor.trustDomain, list);
    }
    this.revocationLists = crls.map((crl) => crl.der);
  }
}
