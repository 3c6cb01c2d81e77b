/**
 * Taking an identity away: delete its registration entry (agents drop the SVID from their
 * Workload API streams at their next sync) and put the serials of its unexpired X509-SVIDs on the
 * CRL (from issued_svids, where the server records every serial it signs for an entry).
 */
import type { DataStore, IssuedSvid } from '../../datastore/index.js';
import { isWritError } from '../../errors.js';

export interface Revocation {
  entryDeleted: boolean;
  /** Serials put on the CRL now. */
  serials: string[];
}

/** Puts these issued SVIDs on the CRL (those not expired at `now`). */
export async function revokeIssued(ds: DataStore, issued: readonly IssuedSvid[], now: number, reason: string): Promise<string[]> {
  const live = issued.filter((s) => s.notAfter > now);
  if (live.length === 0) return [];
  await ds.addRevoked(live.map((s) => ({ serial: s.serial, issuerSki: s.issuerSki, revokedAt: now, notAfter: s.notAfter, reason })));
  return live.map((s) => s.serial);
}

/** Deletes entry `entryId` (if it still exists) and revokes the unexpired SVIDs signed for it. */
export async function revokeEntry(ds: DataStore, entryId: string, now: number, reason: string): Promise<Revocation> {
  let entryDeleted = false;
  try {
    entryDeleted = (await ds.deleteEntries([entryId])).length > 0;
  } catch (e) {
    // Already gone (deleted by hand, or pruned at its expiry): the serials still go on the CRL.
    if (!isWritError(e) || e.code !== 'ERR_ENTRY_NOT_FOUND') throw e;
  }
  const serials = await revokeIssued(ds, await ds.listIssued({ entryId, notExpiredAt: now }), now, reason);
  return { entryDeleted, serials };
}
