import type { StateStore } from '../state/database.js';
import { listAnchors, listRevocationLists } from '../state/trust-repository.js';
import type { TrustMaterial } from './authenticate.js';

/**
 * The anchors (by trust domain) and imported CRLs a peer's chain is validated against, read once
 * from the state file. A module of its own, light to import: `invoke` needs it on its hot path
 * without loading trust establishment (and zod with it).
 */
export function trustMaterial(store: StateStore): TrustMaterial {
  const { anchors, crls } = store.read((db) => ({
    anchors: listAnchors(db),
    crls: listRevocationLists(db),
  }));
  return {
    anchorsFor: (trustDomain) =>
      anchors
        .filter((anchor) => anchor.trustDomain === trustDomain)
        .map((anchor) => anchor.certificateDer),
    crls: () => crls.map((crl) => crl.der),
  };
}
