/**
 * Forced rotation (SPIRE's "localauthority" model): an SRE replaces an authority now instead of at
 * its scheduled time, in four steps, each refused with ERR_CA_AUTHORITY_STATE when out of order:
 *
 *   prepare   a new authority in the free slot, published in the bundle at once;
 *   activate  the prepared one signs from now on; the active one becomes old (still published);
 *   taint     the old one: agents re-sign at once every SVID issued under it, drop JWT-SVIDs of it;
 *   revoke    the tainted one: removed from the bundle with its key, so nothing it signed verifies.
 *
 * Which X.509 authority: writ has a root (in the bundle) and signing CAs it issues (sent to
 * workloads as the intermediate). An SRE rotates the pair as one "X.509 authority", named by the
 * root's hex SKI: prepare makes a new root and a signing CA under it, activate switches both,
 * taint and revoke act on the root and every signing CA it issued. Revoking removes the root from
 * the bundle, so its whole tree stops verifying, whatever a validator does about CRLs. A JWT
 * authority is one key, named by its kid.
 */
import { WritError } from '../errors.js';
import type { CaKind, CaSlotName, CaSlotStatus } from '../datastore/index.js';
import { certificateKeyIds, normalizeAuthorityId } from './keyids.js';
import { RotatingAuthority } from './rotation.js';
import { type LoadedSlot, type RotationEvent, byStatus, otherSlot } from './slots.js';

export type AuthorityKind = 'x509' | 'jwt';
export const AUTHORITY_KINDS: readonly AuthorityKind[] = ['x509', 'jwt'];
export type ForcedAction = 'prepare' | 'activate' | 'taint' | 'revoke';

export interface SigningCaView {
  ski: string;
  slot: CaSlotName;
  status: CaSlotStatus;
  tainted: boolean;
  notAfter: Date;
}

export interface AuthorityView {
  kind: AuthorityKind;
  /** Hex SKI of the root (X.509) or the kid (JWT). */
  authorityId: string;
  slot: CaSlotName;
  status: CaSlotStatus;
  tainted: boolean;
  notBefore: Date;
  notAfter: Date;
  /** X.509 only: the signing CAs this root issued that the CA still holds. */
  signingCas?: SigningCaView[];
}

export interface ForcedRotationEvent {
  action: ForcedAction;
  kind: AuthorityKind;
  authorityId: string;
  /** The slot changes it made, in order. */
  changes: RotationEvent[];
}

type Listener = (ev: ForcedRotationEvent) => Promise<void> | void;

const LABEL: Record<AuthorityKind, string> = { x509: 'X.509 authority', jwt: 'JWT authority' };
const iso = (s: number) => new Date(s * 1000).toISOString();
const stateError = (sentence: string) => new WritError('ERR_CA_AUTHORITY_STATE', sentence);

export abstract class ForcedRotation extends RotatingAuthority {
  readonly #listeners = new Set<Listener>();
  readonly #issuers = new Map<string, string | undefined>();

  /** Called after every forced step, outside the CA lock; the step's caller waits for it. */
  onAuthorityChange(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The root SKI that issued a signing CA (its AKI), cached per certificate. */
  protected issuerOf(s: LoadedSlot): string | undefined {
    const id = s.record.authorityId;
    if (!this.#issuers.has(id)) {
      let aki: string | undefined;
      try {
        aki = certificateKeyIds(s.record.material).aki;
      } catch {
        aki = undefined;
      }
      this.#issuers.set(id, aki);
    }
    return this.#issuers.get(id);
  }

  #signingUnder(rootId: string): LoadedSlot[] {
    return [...this.slots['x509-signing'].values()].filter((s) => this.issuerOf(s) === rootId);
  }

  #view(kind: AuthorityKind, s: LoadedSlot): AuthorityView {
    const r = s.record;
    const v: AuthorityView = { kind, authorityId: r.authorityId, slot: r.slot, status: r.status, tainted: r.tainted, notBefore: new Date(r.notBefore * 1000), notAfter: new Date(r.notAfter * 1000) };
    if (kind === 'x509') {
      v.signingCas = this.#signingUnder(r.authorityId).map((c) => ({ ski: c.record.authorityId, slot: c.record.slot, status: c.record.status, tainted: c.record.tainted, notAfter: new Date(c.record.notAfter * 1000) }));
    }
    return v;
  }

  /** Every authority of a kind (or both), active first, then prepared, then old. */
  localAuthorities(kind?: AuthorityKind): AuthorityView[] {
    const order: Record<CaSlotStatus, number> = { active: 0, prepared: 1, old: 2 };
    return (kind ? [kind] : AUTHORITY_KINDS).flatMap((k) =>
      [...this.slots[rootKind(k)].values()].sort((a, b) => order[a.record.status] - order[b.record.status]).map((s) => this.#view(k, s)),
    );
  }

  /** Hex SKIs of the tainted roots and of the signing CAs they issued. */
  taintedX509Authorities(): string[] {
    return [...this.slots['x509-root'].values(), ...this.slots['x509-signing'].values()].filter((s) => s.record.tainted).map((s) => s.record.authorityId);
  }

  taintedJwtKids(): string[] {
    return [...this.slots.jwt.values()].filter((s) => s.record.tainted).map((s) => s.record.authorityId);
  }

  #find(kind: AuthorityKind, rawId: unknown): LoadedSlot {
    if (typeof rawId !== 'string' || rawId.trim() === '') throw new WritError('ERR_INPUT_INVALID', `An authority ID is required (${kind === 'x509' ? 'the hex SKI' : 'the kid'}; \`writ authority show\` lists them).`);
    const id = normalizeAuthorityId(rawId, kind === 'x509');
    for (const s of this.slots[rootKind(kind)].values()) if (s.record.authorityId === id) return s;
    throw new WritError('ERR_CA_AUTHORITY_NOT_FOUND', `No ${LABEL[kind]} has the ID ${id}; \`writ authority show\` lists them.`);
  }

  async #step(action: ForcedAction, kind: AuthorityKind, fn: (now: number, changes: RotationEvent[]) => Promise<LoadedSlot>): Promise<AuthorityView> {
    const out = await this.locked(async () => {
      const changes: RotationEvent[] = [];
      const s = await fn(this.nowSeconds(), changes);
      return { view: this.#view(kind, s), changes };
    });
    const ev: ForcedRotationEvent = { action, kind, authorityId: out.view.authorityId, changes: out.changes };
    this.opts.logger.info({ event: 'ca.forced', action, kind, authority_id: ev.authorityId, changes: out.changes }, `forced CA rotation: ${action}`);
    for (const fn of [...this.#listeners]) await fn(ev);
    return out.view;
  }

  /** Makes a new authority in the free slot, published at once (X.509: a root and a signing CA under it). */
  prepareAuthority(kind: AuthorityKind): Promise<AuthorityView> {
    return this.#step('prepare', kind, async (now, changes) => {
      const k = rootKind(kind);
      const slots = this.slots[k];
      const active = byStatus(slots.values(), 'active');
      if (!active) throw new WritError('ERR_CA_NOT_READY', `There is no active ${LABEL[kind]} yet; the CA has not started.`);
      const prepared = byStatus(slots.values(), 'prepared');
      if (prepared) {
        throw stateError(`The ${LABEL[kind]} ${prepared.record.authorityId} is already prepared; activate it (writ authority ${kind} activate --authority-id ${prepared.record.authorityId}).`);
      }
      const target = otherSlot(active.record.slot);
      const occupant = slots.get(target);
      if (occupant) {
        const todo = occupant.record.tainted ? 'revoke it first' : 'taint and revoke it first';
        throw stateError(
          `Slot ${target} still holds the old ${LABEL[kind]} ${occupant.record.authorityId}, valid until ${iso(occupant.record.notAfter)}; ${todo}, or wait until it expires.`,
        );
      }
      const created = await this.create(k, target, 'prepared', now);
      slots.set(target, created);
      changes.push(this.event('prepared', created));
      if (kind === 'x509') changes.push(...(await this.#newSigningCa(created, 'prepared', now)));
      return created;
    });
  }

  /**
   * A signing CA issued by `root` in the signing slot the active one does not use. A prepared one
   * there has signed nothing and is replaced; an old one is replaced too: its SVIDs still chain to
   * their root (the intermediate travels with them), but it signs no more CRLs.
   */
  async #newSigningCa(root: LoadedSlot, status: 'prepared' | 'active', now: number): Promise<RotationEvent[]> {
    const slots = this.slots['x509-signing'];
    const changes: RotationEvent[] = [];
    const current = byStatus(slots.values(), 'active');
    const target: CaSlotName = current ? otherSlot(current.record.slot) : 'A';
    const occupant = slots.get(target);
    if (occupant) {
      if (occupant.record.status === 'old' && occupant.record.notAfter > now) {
        this.opts.logger.warn({ slot: target, authority_id: occupant.record.authorityId }, 'replacing an old signing CA before it expires; its SVIDs stay valid but are no longer covered by a CRL');
      }
      await this.removeSlot(occupant);
      changes.push(this.event('dropped', occupant, 'replaced by a forced rotation'));
    }
    if (status === 'active' && current) {
      await this.setStatus(current, 'old', now);
      changes.push(this.event('retired', current, 'forced rotation'));
    }
    const created = await this.create('x509-signing', target, status, now, root);
    slots.set(target, created);
    changes.push(this.event(status === 'active' ? 'created' : 'prepared', created));
    return changes;
  }

  /** The prepared authority becomes active; the active one becomes old and stays published. */
  activateAuthority(kind: AuthorityKind, authorityId: unknown): Promise<AuthorityView> {
    return this.#step('activate', kind, async (now, changes) => {
      const s = this.#find(kind, authorityId);
      const id = s.record.authorityId;
      if (s.record.status === 'active') throw stateError(`The ${LABEL[kind]} ${id} is already active.`);
      if (s.record.status === 'old') throw stateError(`The ${LABEL[kind]} ${id} is old; only a prepared authority can be activated (run \`writ authority ${kind} prepare\` first).`);
      if (!s.key || s.record.notAfter <= now) throw stateError(`The prepared ${LABEL[kind]} ${id} has lost its key or expired; the CA will discard it, prepare another.`);
      const current = byStatus(this.slots[rootKind(kind)].values(), 'active');
      if (current) {
        await this.setStatus(current, 'old', now);
        changes.push(this.event('retired', current, 'forced rotation'));
      }
      await this.setStatus(s, 'active', now);
      changes.push(this.event('activated', s));
      if (kind === 'x509') {
        const signing = this.slots['x509-signing'];
        const activeSigning = byStatus(signing.values(), 'active');
        if (!activeSigning || this.issuerOf(activeSigning) !== id) {
          const ready = [...signing.values()].find((c) => c.record.status === 'prepared' && c.key && this.issuerOf(c) === id);
          if (ready) {
            if (activeSigning) {
              await this.setStatus(activeSigning, 'old', now);
              changes.push(this.event('retired', activeSigning, 'forced rotation'));
            }
            await this.setStatus(ready, 'active', now);
            changes.push(this.event('activated', ready));
          } else {
            changes.push(...(await this.#newSigningCa(s, 'active', now)));
          }
        }
      }
      return s;
    });
  }

  /** Marks the old authority tainted; agents learn it on their next sync and re-sign at once. */
  taintAuthority(kind: AuthorityKind, authorityId: unknown): Promise<AuthorityView> {
    return this.#step('taint', kind, async (now, changes) => {
      const s = this.#find(kind, authorityId);
      const id = s.record.authorityId;
      if (s.record.status === 'active') throw stateError(`The ${LABEL[kind]} ${id} is the active one; prepare and activate its successor first.`);
      if (s.record.status === 'prepared') throw stateError(`The ${LABEL[kind]} ${id} is prepared, not old; only an old authority (after its successor is activated) can be tainted.`);
      if (s.record.tainted) throw stateError(`The ${LABEL[kind]} ${id} is already tainted; revoke it next (writ authority ${kind} revoke --authority-id ${id}).`);
      let tree = kind === 'x509' ? this.#signingUnder(id) : [];
      const signer = tree.find((c) => c.record.status === 'active');
      if (signer) {
        throw stateError(`The ${LABEL[kind]} ${id} still issues SVIDs through its active signing CA ${signer.record.authorityId}; wait for that signing CA to rotate, then taint it.`);
      }
      // A signing CA it issued that is only prepared has signed nothing: discard it (the CA prepares another under the active root).
      for (const c of tree.filter((x) => x.record.status === 'prepared')) {
        await this.removeSlot(c);
        changes.push(this.event('dropped', c, 'prepared under a tainted root'));
      }
      tree = tree.filter((x) => x.record.status === 'old');
      for (const x of [s, ...tree]) {
        const record = { ...x.record, tainted: true, updatedAt: now };
        await this.opts.store.putCaSlot(record);
        x.record = record;
        changes.push(this.event('tainted', x));
      }
      return s;
    });
  }

  /** Removes the tainted authority (X.509: with every signing CA it issued) and its keys. */
  revokeAuthority(kind: AuthorityKind, authorityId: unknown): Promise<AuthorityView> {
    return this.#step('revoke', kind, async (_now, changes) => {
      const s = this.#find(kind, authorityId);
      const id = s.record.authorityId;
      if (!s.record.tainted) {
        const first = s.record.status === 'old' ? `taint it first (writ authority ${kind} taint --authority-id ${id})` : 'activate its successor and taint it first';
        throw stateError(`The ${LABEL[kind]} ${id} is not tainted; ${first}, so agents replace what it signed before it goes.`);
      }
      for (const x of kind === 'x509' ? this.#signingUnder(id) : []) {
        await this.removeSlot(x);
        changes.push(this.event('dropped', x, 'revoked'));
      }
      await this.removeSlot(s);
      changes.push(this.event('dropped', s, 'revoked'));
      return s;
    });
  }
}

export function rootKind(kind: AuthorityKind): CaKind {
  return kind === 'x509' ? 'x509-root' : 'jwt';
}
