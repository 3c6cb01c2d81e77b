/**
 * The two-slot rotation model (SPIRE's): each authority kind (root, signing CA, JWT key) has slots
 * A and B. The active one signs; the next is prepared at half the active one's life (roots and JWT
 * keys are published in the bundle from that moment), and activated at five sixths; the previous
 * one stays as "old", still published, until it expires. This file holds the pure timing rules.
 */
import type { CaKind, CaSlotName, CaSlotRecord, CaSlotStatus } from '../datastore/index.js';
import type { ManagedKey } from './keymanager.js';

export const CA_KINDS: readonly CaKind[] = ['x509-root', 'x509-signing', 'jwt'];

export interface LoadedSlot {
  record: CaSlotRecord;
  /** Absent when the key manager no longer has the key (memory keys after a restart). */
  key: ManagedKey | undefined;
}

export interface RotationEvent {
  event: 'created' | 'prepared' | 'activated' | 'retired' | 'tainted' | 'dropped';
  kind: CaKind;
  slot: CaSlotName;
  authority_id: string;
  not_after: string;
  reason?: string;
}

export function otherSlot(s: CaSlotName): CaSlotName {
  return s === 'A' ? 'B' : 'A';
}

/** Unix seconds at which the successor of `r` is prepared: half its life. */
export function prepareAt(r: Pick<CaSlotRecord, 'notBefore' | 'notAfter'>): number {
  return r.notBefore + Math.floor((r.notAfter - r.notBefore) / 2);
}

/** Unix seconds at which the prepared successor of `r` becomes active: five sixths of its life. */
export function activateAt(r: Pick<CaSlotRecord, 'notBefore' | 'notAfter'>): number {
  return r.notBefore + Math.floor(((r.notAfter - r.notBefore) * 5) / 6);
}

export function byStatus(slots: Iterable<LoadedSlot>, status: CaSlotStatus): LoadedSlot | undefined {
  for (const s of slots) if (s.record.status === status) return s;
  return undefined;
}

export function keyIdFor(kind: CaKind, slot: CaSlotName): string {
  return `${kind}-${slot}`;
}

/** What to do with one kind's slots at `now` (unix s), in order; the caller carries it out. */
export type SlotAction =
  | { do: 'drop'; slot: CaSlotName; reason: string }
  | { do: 'retire'; slot: CaSlotName; reason: string }
  | { do: 'activate'; slot: CaSlotName }
  | { do: 'create-active'; slot: CaSlotName }
  | { do: 'prepare'; slot: CaSlotName };

/**
 * The next action for a kind, or undefined when nothing is due. Called repeatedly until it returns
 * undefined, so each step sees the effect of the one before.
 */
export function nextAction(slots: ReadonlyMap<CaSlotName, LoadedSlot>, now: number): SlotAction | undefined {
  for (const [name, s] of slots) {
    if (s.record.notAfter <= now) return { do: 'drop', slot: name, reason: 'expired' };
  }
  for (const [name, s] of slots) {
    if (s.key === undefined && s.record.status === 'prepared') return { do: 'drop', slot: name, reason: 'its key is gone' };
    if (s.key === undefined && s.record.status === 'active') return { do: 'retire', slot: name, reason: 'its key is gone' };
  }
  const active = byStatus(slots.values(), 'active');
  const prepared = byStatus(slots.values(), 'prepared');
  if (!active) {
    if (prepared) return { do: 'activate', slot: prepared.record.slot };
    const free: CaSlotName = !slots.has('A') ? 'A' : !slots.has('B') ? 'B' : oldest(slots);
    return { do: 'create-active', slot: free };
  }
  if (prepared) {
    return now >= activateAt(active.record) ? { do: 'activate', slot: prepared.record.slot } : undefined;
  }
  if (now >= prepareAt(active.record)) {
    const target = otherSlot(active.record.slot);
    // The other slot may still hold the previous authority for a few seconds (CA certificates are
    // backdated): wait for it to expire rather than unpublish it, unless the successor is due.
    if (slots.has(target) && now < activateAt(active.record)) return undefined;
    return { do: 'prepare', slot: target };
  }
  return undefined;
}

function oldest(slots: ReadonlyMap<CaSlotName, LoadedSlot>): CaSlotName {
  const a = slots.get('A')!;
  const b = slots.get('B')!;
  return a.record.notAfter <= b.record.notAfter ? 'A' : 'B';
}
