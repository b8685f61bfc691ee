import type { SqliteDatabase } from '../state/database.js';
import {
  listHealth,
  listSightings,
  type NodeHealth,
  type Sighting,
} from '../state/discovery-repository.js';
import { listPeers, type Peer, type TrustLevel } from '../state/trust-repository.js';
import { byPrecedence, methodsOf, type DiscoveryMethod } from './types.js';

/** A node as `nodes list` shows it: trust decision, sightings and last health check together. */
export interface KnownNode {
  nodeId: string;
  trustDomain: string | null;
  /**
   * The recorded endpoint of a peer, else the freshest sighting's; a nodes file's entry counts
   * only when the node was not recorded by hand (`nodes add`), which wins over it.
   */
  endpoint: string | null;
  /** The pinned fingerprint of a trusted peer, else the one its sightings advertise. */
  fingerprint: string | null;
  /** The methods with a sighting of it (a `file` sighting is the manual method's). */
  via: DiscoveryMethod[];
  trust: TrustLevel;
  health: NodeHealth | null;
  lastSeenAt: string | null;
  /** True when every sighting's TTL has run out (manual and file ones never do). */
  stale: boolean;
  /** In order of precedence (SIGHTING_SOURCES). */
  sightings: Sighting[];
}

export function listKnownNodes(db: SqliteDatabase, now: Date): KnownNode[] {
  const peers = new Map(listPeers(db).map((peer) => [peer.nodeId, peer]));
  const health = new Map(listHealth(db).map((item) => [item.nodeId, item]));
  const sightings = new Map<string, Sighting[]>();
  for (const sighting of listSightings(db)) {
    const list = sightings.get(sighting.nodeId) ?? [];
    list.push(sighting);
    sightings.set(sighting.nodeId, list);
  }
  const ids = [...new Set([...peers.keys(), ...sightings.keys()])].sort();
  return ids.map((nodeId) =>
    knownNode(nodeId, peers.get(nodeId), sightings.get(nodeId) ?? [], health.get(nodeId), now),
  );
}

export function findKnownNode(
  db: SqliteDatabase,
  nodeId: string,
  now: Date,
): KnownNode | undefined {
  return listKnownNodes(db, now).find((node) => node.nodeId === nodeId);
}

function knownNode(
  nodeId: string,
  peer: Peer | undefined,
  sightings: Sighting[],
  health: NodeHealth | undefined,
  now: Date,
): KnownNode {
  // Field by field, the first in order of precedence that has a value: the live methods, then
  // what was recorded by hand, then a nodes file.
  const ordered = byPrecedence(sightings);
  const byHand = sightings.some((item) => item.source === 'manual');
  // The endpoint is the freshest sighting's, not counting a file's when the operator recorded
  // the node by hand: what was typed with `nodes add` stays until `nodes remove`.
  const freshest = (list: readonly Sighting[]) =>
    [...list].sort((a, b) => b.seenAt.localeCompare(a.seenAt))[0];
  const latest = freshest(sightings);
  const located = byHand ? freshest(sightings.filter((item) => item.source !== 'file')) : latest;
  const stamp = now.toISOString();
  return {
    nodeId,
    trustDomain: peer?.trustDomain ?? ordered.find((item) => item.trustDomain)?.trustDomain ?? null,
    endpoint: peer?.endpoint ?? located?.endpoint ?? null,
    fingerprint:
      peer?.pinnedFingerprint ?? ordered.find((item) => item.fingerprint)?.fingerprint ?? null,
    via: methodsOf(ordered.map((item) => item.source)),
    trust: peer?.trustLevel ?? 'untrusted',
    health: health ?? null,
    lastSeenAt: latest?.seenAt ?? null,
    stale:
      sightings.length > 0 &&
      sightings.every((item) => item.expiresAt !== null && item.expiresAt <= stamp),
    sightings: ordered,
  };
}
