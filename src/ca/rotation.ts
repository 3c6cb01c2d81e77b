/**
 * The rotating authorities of one trust domain: a root CA (in the trust bundle), a signing CA
 * issued by it (sent to workloads as the intermediate), and a JWT signing key, each rotating in two
 * slots (see slots.ts) on an injected clock. Slot records live in the datastore and private keys in
 * the key manager, so a restart with the disk key manager resumes the same authorities.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { type Clock, type RandomSource, cryptoRandom } from '../clock.js';
import type { CaKind, CaSlotName, CaSlotRecord } from '../datastore/index.js';
import { WritError } from '../errors.js';
import type { Logger } from '../log.js';
import { buildCaCertificate, serialHex, type CaSubject } from './cacert.js';
import { type CaKeyType, type KeyManager, type ManagedKey, checkKeyType } from './keymanager.js';
import { keyIdentifier } from './leaf.js';
import { CA_KINDS, type LoadedSlot, type RotationEvent, type SlotAction, byStatus, keyIdFor, nextAction } from './slots.js';

export interface AuthorityConfig {
  trustDomain: string;
  /** Lifetime of signing CAs and JWT keys, seconds. */
  caTtl: number;
  /** Lifetime of roots, seconds. */
  rootTtl: number;
  subject?: CaSubject;
  jwtIssuer?: string;
  keyType?: CaKeyType;
}

/** The part of the datastore the authority uses. */
export interface CaSlotStore {
  listCaSlots(kind?: CaKind): Promise<CaSlotRecord[]>;
  putCaSlot(slot: CaSlotRecord): Promise<void>;
  deleteCaSlot(kind: CaKind, slot: CaSlotName): Promise<void>;
}

export interface AuthorityOptions {
  config: AuthorityConfig;
  keyManager: KeyManager;
  store: CaSlotStore;
  clock: Clock;
  logger: Logger;
  random?: RandomSource;
}

/** Seconds by which CA certificates are backdated, for peers whose clocks run a little slow. */
export const CA_BACKDATE_SECONDS = 10;
const KID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A number per slot record object, for slotsKey(): records are replaced on every change, never edited. */
const recordIds = new WeakMap<CaSlotRecord, number>();
let nextRecordId = 0;
function recordId(r: CaSlotRecord): number {
  let id = recordIds.get(r);
  if (id === undefined) recordIds.set(r, (id = ++nextRecordId));
  return id;
}

export class RotatingAuthority {
  protected readonly slots: Record<CaKind, Map<CaSlotName, LoadedSlot>> = { 'x509-root': new Map(), 'x509-signing': new Map(), jwt: new Map() };
  protected readonly random: RandomSource;
  readonly #keyType: CaKeyType;
  #lock: Promise<unknown> = Promise.resolve();

  protected constructor(protected readonly opts: AuthorityOptions) {
    this.random = opts.random ?? cryptoRandom;
    this.#keyType = checkKeyType(opts.config.keyType ?? 'ec-p256');
    if (!(opts.config.caTtl > 0) || !(opts.config.rootTtl >= opts.config.caTtl)) {
      throw new WritError('ERR_CA_TTL', 'The CA TTL must be positive and the root TTL at least as long.');
    }
  }

  protected nowSeconds(): number {
    return Math.floor(this.opts.clock.nowMs() / 1000);
  }

  #pool: Buffer = Buffer.alloc(0);
  #poolAt = 0;

  /** A random positive 128-bit serial (big-endian magnitude), from a pool refilled 4 KiB at a time. */
  protected newSerial(): Buffer {
    for (;;) {
      if (this.#poolAt + 16 > this.#pool.length) {
        this.#pool = this.random.bytes(4096);
        this.#poolAt = 0;
      }
      const b = this.#pool.subarray(this.#poolAt, this.#poolAt + 16);
      this.#poolAt += 16;
      if (b.some((x) => x !== 0)) return b;
    }
  }

  /** 32 characters of [a-zA-Z0-9], as SPIRE's key ids. */
  protected newKid(): string {
    let out = '';
    while (out.length < 32) {
      for (const x of this.random.bytes(48)) {
        if (x < 248 && out.length < 32) out += KID_ALPHABET[x % 62];
      }
    }
    return out;
  }

  /** Reads the slot records and their keys. A key that is gone leaves a public-only slot. */
  protected async loadSlots(): Promise<void> {
    for (const rec of await this.opts.store.listCaSlots()) {
      let key: ManagedKey | undefined;
      try {
        key = await this.opts.keyManager.getKey(rec.keyId);
      } catch (e) {
        this.opts.logger.warn({ err: e, kind: rec.kind, slot: rec.slot }, 'CA key could not be loaded; the authority will be replaced');
      }
      this.slots[rec.kind].set(rec.slot, { record: rec, key });
    }
  }

  /** Runs `fn` after every earlier locked call has finished. */
  protected locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** Brings every kind's slots up to date at the clock's time; returns what changed. */
  rotate(): Promise<RotationEvent[]> {
    return this.locked(async () => {
      const events: RotationEvent[] = [];
      const now = this.nowSeconds();
      for (const kind of CA_KINDS) {
        for (let step = 0; step < 8; step++) {
          const action = nextAction(this.slots[kind], now);
          if (!action) break;
          events.push(await this.apply(kind, action, now));
        }
      }
      return events;
    });
  }

  protected event(ev: RotationEvent['event'], s: LoadedSlot, reason?: string): RotationEvent {
    const r = s.record;
    return { event: ev, kind: r.kind, slot: r.slot, authority_id: r.authorityId, not_after: new Date(r.notAfter * 1000).toISOString(), ...(reason ? { reason } : {}) };
  }

  protected async setStatus(s: LoadedSlot, status: CaSlotRecord['status'], now: number): Promise<void> {
    const record = { ...s.record, status, updatedAt: now };
    await this.opts.store.putCaSlot(record);
    s.record = record;
  }

  private async apply(kind: CaKind, a: SlotAction, now: number): Promise<RotationEvent> {
    const slots = this.slots[kind];
    switch (a.do) {
      case 'drop': {
        const s = slots.get(a.slot)!;
        await this.removeSlot(s);
        return this.event('dropped', s, a.reason);
      }
      case 'retire': {
        const s = slots.get(a.slot)!;
        await this.setStatus(s, 'old', now);
        return this.event('retired', s, a.reason);
      }
      case 'activate': {
        const current = byStatus(slots.values(), 'active');
        if (current) await this.setStatus(current, 'old', now);
        const s = slots.get(a.slot)!;
        await this.setStatus(s, 'active', now);
        return this.event('activated', s);
      }
      case 'create-active':
      case 'prepare': {
        const replaced = slots.get(a.slot);
        if (replaced) {
          this.opts.logger.warn({ kind, slot: a.slot, authority_id: replaced.record.authorityId }, 'replacing a CA slot whose authority has not expired yet');
          this.forget(replaced);
        }
        const s = await this.create(kind, a.slot, a.do === 'prepare' ? 'prepared' : 'active', now);
        slots.set(a.slot, s);
        return this.event(a.do === 'prepare' ? 'prepared' : 'created', s);
      }
    }
  }

  /** Deletes a slot's record and its key: the authority leaves the bundle and can sign nothing more. */
  protected async removeSlot(s: LoadedSlot): Promise<void> {
    const { kind, slot } = s.record;
    await this.opts.store.deleteCaSlot(kind, slot);
    if (this.slots[kind].get(slot) === s) this.slots[kind].delete(slot);
    await this.opts.keyManager.deleteKey(s.record.keyId);
    this.forget(s);
  }

  /** Hook for subclasses that cache per-slot state (leaf templates). */
  protected forget(_s: LoadedSlot): void {}

  /** The root new signing CAs are issued by: the newest root that can sign. */
  protected issuingRoot(): LoadedSlot {
    const roots = [...this.slots['x509-root'].values()].filter((s) => s.key && s.record.status !== 'old');
    roots.sort((x, y) => y.record.notBefore - x.record.notBefore);
    const r = roots[0];
    if (!r) throw new WritError('ERR_CA_NOT_READY', 'No root CA can sign a new signing CA.');
    return r;
  }

  /** A new authority in `slot`; a signing CA is issued by `issuer`, or by issuingRoot() when none is given. */
  protected async create(kind: CaKind, slot: CaSlotName, status: 'active' | 'prepared', now: number, issuer?: LoadedSlot): Promise<LoadedSlot> {
    const { config, keyManager } = this.opts;
    const keyId = keyIdFor(kind, slot);
    const key = await keyManager.generateKey(keyId, this.#keyType);
    const notBefore = now - CA_BACKDATE_SECONDS;
    let notAfter = now + (kind === 'x509-root' ? config.rootTtl : config.caTtl);
    let material: Buffer;
    let authorityId: string;
    if (kind === 'jwt') {
      material = key.publicKeyDer;
      authorityId = this.newKid();
    } else {
      if (kind === 'x509-signing') issuer ??= this.issuingRoot();
      else issuer = undefined;
      if (issuer) notAfter = Math.min(notAfter, issuer.record.notAfter);
      material = await buildCaCertificate({
        kind: kind === 'x509-root' ? 'root' : 'signing',
        trustDomain: config.trustDomain,
        subject: config.subject ?? {},
        serial: this.newSerial(),
        key,
        ...(issuer ? { issuer: { certificate: issuer.record.material, key: issuer.key! } } : {}),
        notBefore: new Date(notBefore * 1000),
        notAfter: new Date(notAfter * 1000),
        crypto: keyManager.crypto,
      });
      authorityId = keyIdentifier(key.publicKeyDer).toString('hex');
    }
    const record: CaSlotRecord = { kind, slot, status, keyId, material, authorityId, notBefore, notAfter, tainted: false, updatedAt: now };
    await this.opts.store.putCaSlot(record);
    return { record, key };
  }

  /** Trust bundle X.509 authorities: every root not yet expired (prepared, active, old), oldest first. */
  x509Authorities(): Buffer[] {
    const now = this.nowSeconds();
    return [...this.slots['x509-root'].values()]
      .filter((s) => s.record.notAfter > now)
      .sort((a, b) => a.record.notBefore - b.record.notBefore)
      .map((s) => Buffer.from(s.record.material));
  }

  /**
   * A short string that changes whenever a slot of `kinds` that has not expired is added, changed
   * (status, taint, material: every change replaces the record) or removed, or expires: what callers
   * compare to reuse work done from x509Authorities(), signingCas() or jwtAuthorities().
   */
  slotsKey(...kinds: CaKind[]): string {
    const now = this.nowSeconds();
    const parts: string[] = [];
    for (const kind of kinds) {
      for (const [name, s] of this.slots[kind]) if (s.record.notAfter > now) parts.push(`${kind}/${name}#${recordId(s.record)}`);
    }
    return parts.sort().join(' ');
  }

  /** Trust bundle JWT authorities: every JWT key not yet expired, oldest first. */
  jwtAuthorities(): JwtAuthority[] {
    const now = this.nowSeconds();
    return [...this.slots.jwt.values()]
      .filter((s) => s.record.notAfter > now)
      .sort((a, b) => a.record.notBefore - b.record.notBefore)
      .map((s) => ({
        kid: s.record.authorityId,
        publicKeyDer: Buffer.from(s.record.material),
        publicKey: createPublicKey({ key: Buffer.from(s.record.material), format: 'der', type: 'spki' }),
        notAfter: new Date(s.record.notAfter * 1000),
        tainted: s.record.tainted,
        status: s.record.status,
      }));
  }

  /** Every slot, for `writ authority show` and tests. */
  listSlots(): CaSlotRecord[] {
    return CA_KINDS.flatMap((k) => [...this.slots[k].values()].map((s) => ({ ...s.record })));
  }

  protected activeSlot(kind: CaKind): LoadedSlot {
    const s = byStatus(this.slots[kind].values(), 'active');
    if (!s || !s.key || s.record.notAfter <= this.nowSeconds()) {
      throw new WritError('ERR_CA_NOT_READY', `The ${kind === 'jwt' ? 'JWT signing key' : 'signing CA'} is not ready; the CA has not rotated yet.`);
    }
    return s;
  }
}

export interface JwtAuthority {
  kid: string;
  publicKeyDer: Buffer;
  publicKey: KeyObject;
  notAfter: Date;
  tainted: boolean;
  status: CaSlotRecord['status'];
}

export { serialHex };
