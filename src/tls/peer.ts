/**
 * The strict peer check: the chain a TLS peer presented is verified with verifyX509Svid against
 * the bundle of the peer's own trust domain only, with the source's CRLs, then authorized. Results
 * are cached per source update and chain (the check costs about as much as a handshake; see
 * scripts/bench-tls.ts); a cached result is used only inside the validity window of its chain.
 */
import { createHash } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import type { X509BundleSource } from '../bundle/index.js';
import { type Clock, systemClock } from '../clock.js';
import { WritError, isWritError } from '../errors.js';
import type { SpiffeId, TrustDomain } from '../spiffeid/index.js';
import { readCertificateInfo, verifyX509Svid } from '../svid/index.js';
import { type DelegationRecord, checkDelegationSubject } from '../policy/delegation.js';
import { decodeDelegationFromCertificate } from '../policy/extension.js';
import { type Authorizer, runAuthorizer } from './authorize.js';
import type { TlsSnapshot } from './state.js';

/** A peer whose X509-SVID verified and whose SPIFFE ID the authorizer allowed. */
export interface VerifiedPeer {
  spiffeId: SpiffeId;
  trustDomain: TrustDomain;
  /** The chain as the peer presented it (DER, leaf first). */
  chain: Buffer[];
  /** Validity of the leaf. */
  notBefore: Date;
  notAfter: Date;
  /** Serial of the leaf, lower-case hex of the DER INTEGER (as on CRLs and in the CA's records). */
  serial: string;
  /** Every chain found from the leaf to an authority of its trust domain's bundle, DER. */
  verifiedChains: Buffer[][];
  /**
   * The delegation record of a task SVID (who asked, who approved, purpose, deadline, policy
   * decision), from its non-critical extension; checked to name this SVID's agent and task.
   * Absent for SVIDs that are not task SVIDs.
   */
  delegation?: DelegationRecord;
}

export interface VerifyPeerOptions {
  /** DER CRLs; a listed leaf or intermediate is refused. */
  crls?: readonly Uint8Array[];
  /** The time to verify at; default the system clock. */
  clock?: Clock;
}

export function peerMissing(side: 'client' | 'server'): WritError {
  return new WritError('ERR_TLS_PEER_MISSING', `The ${side} presented no certificate; an X509-SVID is required.`);
}

function invalid(cause: unknown): WritError {
  if (isWritError(cause)) {
    return new WritError('ERR_TLS_PEER_INVALID', `The peer's X509-SVID was refused: ${cause.message}`, { cause, details: { ...cause.details, reason: cause.code } });
  }
  return new WritError('ERR_TLS_PEER_INVALID', "The peer's X509-SVID could not be verified.", { cause });
}

/** Verification without authorization: the X509-SVID rules, own-TD chain, validity, CRLs. */
function verifyChainOnly(chain: readonly Buffer[], bundles: X509BundleSource, crls: readonly Uint8Array[], now: Date): { peer: Omit<VerifiedPeer, 'chain'>; validFrom: number; validUntil: number } {
  let verified;
  try {
    verified = verifyX509Svid(chain, bundles, { now, crls });
  } catch (e) {
    throw invalid(e);
  }
  const leaf = readCertificateInfo(Buffer.from(chain[0]!));
  // The window in which this result stays true: every certificate of the first verified chain is valid.
  let validFrom = -Infinity;
  let validUntil = Infinity;
  for (const der of verified.verifiedChains[0]!) {
    const info = der === chain[0] ? leaf : readCertificateInfo(der);
    validFrom = Math.max(validFrom, info.notBefore.getTime());
    validUntil = Math.min(validUntil, info.notAfter.getTime());
  }
  let delegation: DelegationRecord | undefined;
  try {
    delegation = decodeDelegationFromCertificate(Buffer.from(chain[0]!));
    if (delegation) checkDelegationSubject(delegation, verified.id);
  } catch (e) {
    throw invalid(e);
  }
  const peer = {
    spiffeId: verified.id,
    trustDomain: verified.id.trustDomain,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    serial: leaf.serial.toString('hex'),
    verifiedChains: verified.verifiedChains,
    ...(delegation ? { delegation } : {}),
  };
  return { peer, validFrom, validUntil };
}

function authorize(peer: VerifiedPeer, authorizer: Authorizer): VerifiedPeer {
  const refused = runAuthorizer(authorizer, peer.spiffeId, peer.chain);
  if (refused) throw refused;
  return peer;
}

/**
 * Verifies a peer's chain (DER, leaf first) against `bundles` (the bundle of the leaf's own trust
 * domain only) and authorizes it. Throws ERR_TLS_PEER_MISSING (empty chain), ERR_TLS_PEER_INVALID
 * (details.reason holds the ERR_SVID_X509_* code, details.rule the rule) or ERR_TLS_PEER_NOT_AUTHORIZED.
 */
export function verifyPeer(chain: readonly Uint8Array[], bundles: X509BundleSource, authorizer: Authorizer, opts: VerifyPeerOptions = {}): VerifiedPeer {
  if (chain.length === 0) throw new WritError('ERR_TLS_PEER_MISSING', 'The peer presented no certificate; an X509-SVID is required.');
  const ders = chain.map((c) => Buffer.from(c));
  const { peer } = verifyChainOnly(ders, bundles, opts.crls ?? [], (opts.clock ?? systemClock).now());
  return authorize({ ...peer, chain: ders }, authorizer);
}

interface CacheEntry {
  peer: Omit<VerifiedPeer, 'chain'>;
  validFrom: number;
  validUntil: number;
}

interface LeafEntry extends CacheEntry {
  chain: Buffer[];
}

/** Results kept per snapshot; a new update starts an empty cache. */
const MAX_CACHED = 1024;
const caches = new WeakMap<TlsSnapshot, Map<string, CacheEntry>>();
const leafCaches = new WeakMap<TlsSnapshot, Map<string, LeafEntry>>();

function cacheOf<T>(all: WeakMap<TlsSnapshot, Map<string, T>>, snapshot: TlsSnapshot): Map<string, T> {
  let cache = all.get(snapshot);
  if (!cache) {
    cache = new Map();
    all.set(snapshot, cache);
  }
  return cache;
}

function keyOf(ders: readonly Buffer[]): string {
  const h = createHash('sha256');
  for (const c of ders) h.update(c);
  return h.digest('base64');
}

const fresh = (e: CacheEntry | undefined, now: number): e is CacheEntry => e !== undefined && now >= e.validFrom && now <= e.validUntil;

/** verifyPeer against a snapshot's bundles and CRLs, cached per (snapshot, chain). */
export function verifySnapshotPeer(snapshot: TlsSnapshot, chain: Buffer[], authorizer: Authorizer, clock: Clock, side: 'client' | 'server'): VerifiedPeer {
  if (chain.length === 0) throw peerMissing(side);
  const cache = cacheOf(caches, snapshot);
  const key = keyOf(chain);
  const now = clock.nowMs();
  let entry = cache.get(key);
  if (!fresh(entry, now)) {
    entry = verifyChainOnly(chain, snapshot.bundles, snapshot.crls, new Date(now));
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(key, entry);
  }
  return authorize({ ...entry.peer, chain }, authorizer);
}

/**
 * verifySnapshotPeer keyed by the leaf alone, for sockets where the leaf is cheap to read and the
 * whole chain is not (on a server socket getPeerCertificate(true) costs about ten times
 * getPeerCertificate(false): a tenth of a full handshake). `chainOf` is called only when this leaf
 * has no fresh result in this snapshot yet.
 *
 * Sound because a leaf's bytes fix its issuer's signature: once this leaf verified up to its own
 * trust domain's bundle with the snapshot's CRLs, it is still issued by that chain whatever
 * intermediates a later handshake sends (OpenSSL checked those in the handshake; the peer proved
 * the leaf's key there). The result holds while every certificate of the verified chain is valid
 * and the snapshot (bundles, CRLs) is current; `chain` in the result is the chain presented when
 * the leaf was first verified in this snapshot.
 */
export function verifySnapshotLeaf(snapshot: TlsSnapshot, leaf: Buffer | undefined, chainOf: () => Buffer[], authorizer: Authorizer, clock: Clock, side: 'client' | 'server'): VerifiedPeer {
  if (!leaf || leaf.length === 0) throw peerMissing(side);
  const cache = cacheOf(leafCaches, snapshot);
  const key = keyOf([leaf]);
  const now = clock.nowMs();
  let entry = cache.get(key);
  if (!fresh(entry, now)) {
    const chain = chainOf();
    if (chain.length === 0) throw peerMissing(side);
    if (!chain[0]!.equals(leaf)) {
      throw new WritError('ERR_TLS_PEER_INVALID', "The peer's certificate chain does not start with the certificate it presented.");
    }
    entry = { ...verifyChainOnly(chain, snapshot.bundles, snapshot.crls, new Date(now)), chain };
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(key, entry);
  }
  return authorize({ ...entry.peer, chain: entry.chain }, authorizer);
}

/**
 * The chain a TLS peer sent, leaf first, from getPeerCertificate(true); the self-signed root that
 * Node appends from the trust store is left off (it must be in the peer's bundle anyway).
 * Not getPeerX509Certificate(): on Node 20 it takes the intermediates out of the connection's
 * peer chain, so a second call (ours or the application's) sees the leaf alone.
 */
export function peerChain(cert: PeerCertificate | undefined): Buffer[] {
  const out: Buffer[] = [];
  let c = cert as DetailedPeerCertificate | undefined;
  while (c && Buffer.isBuffer(c.raw) && out.length < 16) {
    const selfSigned = c.issuerCertificate === c;
    if (selfSigned && out.length > 0) break;
    out.push(c.raw);
    if (selfSigned) break;
    c = c.issuerCertificate;
  }
  return out;
}
