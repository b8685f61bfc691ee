import type { StateStore } from '../core/state/database.js';
import { statement } from '../core/state/statements.js';
import {
  findPeer,
  listAnchors,
  listRevocationLists,
  type Peer,
} from '../core/state/trust-repository.js';

/**
 * The daemon's view of anchors, CRLs and peers, reloaded whenever one of them changes: `trust
 * revoke` or `anchor remove` in the CLI takes effect on the next request, without a restart.
 * Checked on every request in two steps, both a few microseconds: `PRAGMA data_version` changes
 * when any other connection commits (the CLI, but mostly the daemon's own audit writer thread,
 * every few milliseconds under load), and only then is `trust_revision` read, which triggers
 * bump on every change to the three tables (migration 5). Re-reading anchors and CRLs after
 * every audit commit cost the daemon about 50 µs a request (docs/benchmarks.md, invoke). A
 * reload that finds the same anchors and CRLs keeps the generation (and every connection's
 * cached chain validation); peers are re-read lazily, once per node.
 */
export class TrustView {
  private dataVersion = -1;
  private revision = -1;
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
      // Read before reloading: a change committed in between is then seen by the next refresh.
      const revision = this.currentRevision();
      if (revision !== this.revision) {
        this.revision = revision;
        this.reload();
      }
    }
    return this.generation;
  }

  /** After the daemon's own writes, which do not change its own connection's data_version. */
  invalidate(): void {
    this.revision = this.currentRevision();
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

  private currentRevision(): number {
    return this.store.read((db) =>
      statement(db, 'SELECT revision FROM trust_revision').pluck().get(),
    ) as number;
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
