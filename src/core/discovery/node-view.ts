import type { SqliteDatabase } from '../state/database.js';
import {
  listHealth,
  listSightings,
  type NodeHealth,
  type Sighting,
} from '../state/discovery-repository.js';
import { listPeers, type Peer, type TrustLevel } from '../state/trust-repository.js';
import { DISCOVERY_METHODS, type DiscoveryMethod } from './types.js';

/** A node as `nodes list` shows it: trust decision, sightings and last health check together. */
export interface KnownNode {
  nodeId: string;
  trustDomain: string | null;
  /** The recorded endpoint of a peer, else the freshest sighting's. */
  endpoint: string | null;
  /** The pinned fingerprint of a trusted peer, else the one its sightings advertise. */
  fingerprint: string | null;
  via: DiscoveryMethod[];
  trust: TrustLevel;
  health: NodeHealth | null;
  lastSeenAt: string | null;
  /** True when every sighting's TTL has run out (manual ones never do). */
  stale: boolean;
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
  const ordered = [...sightings].sort(
    (a, b) => DISCOVERY_METHODS.indexOf(a.source) - DISCOVERY_METHODS.indexOf(b.source),
  );
  const freshest = [...sightings].sort((a, b) => b.seenAt.localeCompare(a.seenAt))[0];
  const stamp = now.toISOString();
  return {
    nodeId,
    trustDomain: peer?.trustDomain ?? ordered.find((item) => item.trustDomain)?.trustDomain ?? null,
    endpoint: peer?.endpoint ?? freshest?.endpoint ?? null,
    fingerprint:
      peer?.pinnedFingerprint ?? ordered.find((item) => item.fingerprint)?.fingerprint ?? null,
    via: ordered.map((item) => item.source),
    trust: peer?.trustLevel ?? 'untrusted',
    health: health ?? null,
    lastSeenAt: freshest?.seenAt ?? null,
    stale:
      sightings.length > 0 &&
      sightings.every((item) => item.expiresAt !== null && item.expiresAt <= stamp),
    sightings: ordered,
  };
}
