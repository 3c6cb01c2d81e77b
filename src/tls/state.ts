/**
 * What the mTLS helpers need from an X509Source, and the per-source state built from it once per
 * update: the own SVID as PEM, the roots of every trust domain (for OpenSSL's handshake check), one
 * node:tls SecureContext, and the bundles and CRLs the strict peer check uses. Handshakes never
 * rebuild anything; an update rebuilds once and bumps `generation`.
 */
import { type SecureContext, type SecureContextOptions, createSecureContext } from 'node:tls';
import { type BundleSet, type X509BundleSource, encodePem } from '../bundle/index.js';
import { WritError, isWritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import type { X509Svid } from '../svid/index.js';

/**
 * The small interface of X509Source that the mTLS helpers use; tests and services that load
 * SVIDs from files can implement it. `on('update')` must fire after every change of SVID,
 * bundles or CRLs, and the getters must then return the new state.
 */
export interface TlsSource {
  /** The own SVID, with its private key; throws while there is none. */
  getX509Svid(): X509Svid;
  /** Every trust domain's bundle (own and federated). */
  bundles(): BundleSet;
  /** DER CRLs (the Workload API `crl` field); absent means none. */
  getCrls?(): readonly Uint8Array[];
  on(event: 'update', fn: () => void): unknown;
  off(event: 'update', fn: () => void): unknown;
}

/** One update's worth of derived state. */
export interface TlsSnapshot {
  generation: number;
  svid: X509Svid | undefined;
  /** Why there is no SVID, when there is none. */
  svidError: WritError | undefined;
  bundles: X509BundleSource;
  crls: readonly Uint8Array[];
  /** PEM roots of every trust domain: OpenSSL's trust store for the handshake. */
  roots: string[];
  /** cert/key/ca for tls.createServer()/setSecureContext(); undefined without an SVID. */
  contextOptions: SecureContextOptions | undefined;
  context: SecureContext | undefined;
}

export function sourceNotReady(why: string, cause?: unknown): WritError {
  return new WritError('ERR_TLS_SOURCE_NOT_READY', `The X.509 source is not ready for mTLS: ${why}.`, cause === undefined ? {} : { cause });
}

const EMPTY_BUNDLES: X509BundleSource = {
  getX509BundleForTrustDomain(td: TrustDomain): never {
    throw new WritError('ERR_BUNDLE_NOT_FOUND', `There is no X.509 bundle for trust domain ${td.name} (the source has no bundles).`, { details: { trust_domain: td.name } });
  },
};

function reason(e: unknown): string {
  return isWritError(e) ? e.message.replace(/\.$/, '') : 'it failed';
}

export class TlsState {
  readonly #source: TlsSource;
  readonly #listeners = new Set<(s: TlsSnapshot) => void>();
  #snapshot: TlsSnapshot | undefined;
  #generation = 0;

  constructor(source: TlsSource) {
    this.#source = source;
    source.on('update', () => {
      this.#snapshot = undefined;
      this.#generation++;
      if (this.#listeners.size === 0) return;
      const snap = this.snapshot();
      for (const fn of [...this.#listeners]) {
        try {
          fn(snap);
        } catch {
          // A server that cannot take the new context keeps its old one; the source's other
          // listeners must still run.
        }
      }
    });
  }

  get source(): TlsSource {
    return this.#source;
  }

  /** Called with the new snapshot after each update (servers swap their context here). */
  onUpdate(fn: (s: TlsSnapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The state of the current update, built on first use. */
  snapshot(): TlsSnapshot {
    if (this.#snapshot?.generation === this.#generation) return this.#snapshot;
    this.#snapshot = this.#build();
    return this.#snapshot;
  }

  /**
   * cert/key/ca of the current SVID; ERR_TLS_SOURCE_NOT_READY while the source has none (also
   * when the Workload API withdrew it: a withdrawn SVID is not presented any more).
   */
  contextOptions(): SecureContextOptions {
    const s = this.snapshot();
    if (s.contextOptions) return s.contextOptions;
    throw s.svidError ?? sourceNotReady('it has no X509-SVID');
  }

  /** The SecureContext matching contextOptions(). */
  context(): SecureContext {
    const s = this.snapshot();
    if (s.context) return s.context;
    throw s.svidError ?? sourceNotReady('it has no X509-SVID');
  }

  #build(): TlsSnapshot {
    const generation = this.#generation;
    let bundles: BundleSet | undefined;
    let crls: readonly Uint8Array[] = [];
    let svid: X509Svid | undefined;
    let svidError: WritError | undefined;
    try {
      bundles = this.#source.bundles();
      crls = this.#source.getCrls?.() ?? [];
    } catch (e) {
      svidError = sourceNotReady(`its bundles are not available (${reason(e)})`, e);
    }
    if (!svidError) {
      try {
        svid = this.#source.getX509Svid();
        if (!svid.privateKey) svidError = sourceNotReady(`its X509-SVID ${svid.id.toString()} has no private key`);
      } catch (e) {
        svidError = sourceNotReady(`it has no X509-SVID (${reason(e)})`, e);
        svid = undefined;
      }
    }
    const roots = bundles ? bundles.bundles().flatMap((b) => b.x509Authorities.map((der) => encodePem('CERTIFICATE', der))) : [];
    let contextOptions: SecureContextOptions | undefined;
    let context: SecureContext | undefined;
    if (svid?.privateKey && !svidError) {
      try {
        // `ca` is always set, even empty: without it Node would trust its bundled public roots.
        contextOptions = { cert: svid.chainPem(), key: svid.privateKeyPem()!, ca: roots };
        context = createSecureContext(contextOptions);
      } catch (e) {
        contextOptions = undefined;
        svidError = sourceNotReady(`node:tls refused its X509-SVID ${svid.id.toString()} (${reason(e)})`, e);
      }
    }
    return { generation, svid, svidError, bundles: bundles ?? EMPTY_BUNDLES, crls, roots, contextOptions, context };
  }
}

const states = new WeakMap<TlsSource, TlsState>();

/** The one TlsState of `source` (shared by every server and client built on it). */
export function tlsStateOf(source: TlsSource): TlsState {
  let s = states.get(source);
  if (!s) {
    s = new TlsState(source);
    states.set(source, s);
  }
  return s;
}
