import type { StateStore } from '../core/state/database.js';
import { statement } from '../core/state/statements.js';
import {
  findPeer,
  listAnchors,
  listRevocationLists,
  type Peer,
} from '../core/state/trust-repository.js';

/**
 * The daemon's view of anchors, CRLs and peers, reloaded whenever another connection commits to
 * the state file: the CLI, and the daemon's own audit writer thread. `PRAGMA data_version` changes
 * exactly then, and reading it costs a few microseconds, so every request sees `trust revoke` or
 * `anchor remove` without a restart. Audit commits change data_version every few milliseconds
 * under load, so a reload that finds the same anchors and CRLs keeps the generation (and every
 * connection's cached chain validation), and peers are re-read lazily, once per node.
 */
export class TrustView {
  private dataVersion = -1;
  private generation = 0;
  private anchorsByDomain = new Map<string, Buffer[]>();
  private revocationLists: Buffer[] = [];
  private peers = new Map<string, Peer | undefined>();

  constructor(private readonly store: StateStore) {}

  /** Reloads when the file changed; returns a number that changes with every reload. */
  refresh(): number {
    // A prepared statement: this runs on every request, and db.pragma() prepares one each time.
    const version = this.store.read((db) =>
      statement(db, 'PRAGMA data_version').pluck().get(),
    ) as number;
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

  /** A peer as of the last refresh(): a primary-key lookup the first time it is asked for. */
  peer(nodeId: string): Peer | undefined {
    if (this.peers.has(nodeId)) return this.peers.get(nodeId);
    const peer = this.store.read((db) => findPeer(db, nodeId));
    this.peers.set(nodeId, peer);
    return peer;
  }

  private reload(): void {
    this.peers.clear();
    const { anchors, crls } = this.store.read((db) => ({
      anchors: listAnchors(db),
      crls: listRevocationLists(db),
    }));
    const anchorsByDomain = new Map<string, Buffer[]>();
    for (const anchor of anchors) {
      const list = anchorsByDomain.get(anchor.trustDomain) ?? [];
      list.push(anchor.certificateDer);
      anchorsByDomain.set(anchor.trustDomain, list);
    }
    const revocationLists = crls.map((crl) => crl.der);
    if (
      this.generation > 0 &&
      sameLists(this.revocationLists, revocationLists) &&
      this.anchorsByDomain.size === anchorsByDomain.size &&
      [...anchorsByDomain].every(([domain, ders]) =>
        sameLists(this.anchorsByDomain.get(domain) ?? [], ders),
      )
    ) {
      return;
    }
    this.generation++;
    this.anchorsByDomain = anchorsByDomain;
    this.revocationLists = revocationLists;
  }
}

function sameLists(held: readonly Buffer[], loaded: readonly Buffer[]): boolean {
  return held.length === loaded.length && held.every((der, index) => der.equals(loaded[index]!));
}
