import type { StoredRevocationList } from '../state/trust-repository.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A CRL held here as `trust crl import`, `trust crl list` and `status` describe it (json-output.md). */
export interface RevocationListReport extends Omit<StoredRevocationList, 'der'> {
  /** Whole days until its next update, rounded down; negative once passed; null without one. */
  nextUpdateInDays: number | null;
  /** Past its next update: every certificate of its CA is refused until a fresh one is imported. */
  expired: boolean;
}

export function revocationListReport(list: StoredRevocationList, now: Date): RevocationListReport {
  const remaining = list.nextUpdate === null ? null : Date.parse(list.nextUpdate) - now.getTime();
  return {
    issuer: list.issuer,
    authorityKeyId: list.authorityKeyId,
    crlNumber: list.crlNumber,
    thisUpdate: list.thisUpdate,
    nextUpdate: list.nextUpdate,
    revokedCount: list.revokedCount,
    importedAt: list.importedAt,
    nextUpdateInDays: remaining === null ? null : Math.floor(remaining / DAY_MS),
    expired: remaining !== null && remaining <= 0,
  };
}
