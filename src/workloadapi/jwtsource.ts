/**
 * JwtSource: JWT bundles kept current by a FetchJWTBundles watch (a JwtBundleSource for
 * parseAndValidateJwtSvid), and JWT-SVIDs fetched on demand and cached per (audience set, SPIFFE
 * ID) until half their lifetime has passed, as SPIRE's agent cache does, so that a caller asking
 * once per request does not mint a token per request. Concurrent fetches of one key share a call.
 */
import type { BundleSet, JwtBundle, JwtBundleSource } from '../bundle/index.js';
import { type Clock, systemClock } from '../clock.js';
import { WritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import { parseSpiffeId } from '../spiffeid/index.js';
import type { JwtSvid } from '../svid/index.js';
import { DEFAULT_TIMEOUT_MS, type JwtSvidParams, WorkloadApiClient, type WorkloadApiClientOptions, normalizeAudience } from './client.js';
import type { Watcher } from './watch.js';

export interface JwtSourceOptions extends WorkloadApiClientOptions {
  /** Use this client instead of opening one; the source then does not close it. */
  client?: WorkloadApiClient;
  /** Most cached JWT-SVIDs kept; default 1000 (the stalest are dropped first). */
  maxCached?: number;
}

interface CacheEntry {
  svid: JwtSvid;
  /** Epoch ms after which the token is fetched anew: half way from iat to exp. */
  refreshAtMs: number;
}

export class JwtSource implements JwtBundleSource {
  readonly #client: WorkloadApiClient;
  readonly #ownsClient: boolean;
  readonly #clock: Clock;
  readonly #maxCached: number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Promise<JwtSvid>>();
  #bundles: BundleSet | undefined;
  #watcher: Watcher | undefined;
  #closed = false;

  private constructor(client: WorkloadApiClient, ownsClient: boolean, opts: JwtSourceOptions) {
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#clock = opts.clock ?? systemClock;
    this.#maxCached = opts.maxCached ?? 1000;
  }

  /** Opens a source and waits for the first JWT bundles (at most `timeoutMs`, default 30 s). */
  static async open(opts: JwtSourceOptions = {}): Promise<JwtSource> {
    const client = opts.client ?? new WorkloadApiClient(opts);
    const source = new JwtSource(client, opts.client === undefined, opts);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let last: WritError | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const why = last ? ` (last error: ${last.message})` : '';
          reject(
            new WritError(last?.code ?? 'ERR_WORKLOADAPI_UNAVAILABLE', `No JWT bundles arrived from the Workload API at ${client.address} within ${timeoutMs} ms${why}.`, {
              ...(last ? { cause: last } : {}),
              details: { address: client.address, timeout_ms: timeoutMs },
            }),
          );
        }, timeoutMs);
        source.#watcher = client.watchJwtBundles(
          (b) => {
            const first = source.#bundles === undefined;
            source.#bundles = b;
            if (first) {
              clearTimeout(timer);
              resolve();
            }
          },
          (e) => (last = e),
        );
        void source.#watcher.done.then((e) => {
          if (source.#bundles) return;
          clearTimeout(timer);
          reject(e ?? new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The JwtSource was closed before its first update.'));
        });
      });
    } catch (e) {
      source.close();
      throw e;
    }
    return source;
  }

  /** A JWT-SVID for the audience, from the cache while less than half its lifetime has passed. */
  fetchJwtSvid(params: JwtSvidParams): Promise<JwtSvid> {
    if (this.#closed) return Promise.reject(new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The JwtSource is closed.'));
    let key: string;
    try {
      const audience = [...new Set(normalizeAudience(params.audience))].sort();
      const id = params.spiffeId === undefined ? '' : typeof params.spiffeId === 'string' ? parseSpiffeId(params.spiffeId).toString() : params.spiffeId.toString();
      key = JSON.stringify([audience, id]);
    } catch (e) {
      return Promise.reject(e);
    }
    const now = this.#clock.nowMs();
    const hit = this.#cache.get(key);
    if (hit && now < hit.refreshAtMs) return Promise.resolve(hit.svid);
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    const p = this.#client
      .fetchJwtSvid(params)
      .then((svid) => {
        this.#store(key, svid, now);
        return svid;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  #store(key: string, svid: JwtSvid, fetchedAtMs: number): void {
    const iat = svid.issuedAt?.getTime() ?? fetchedAtMs;
    const exp = svid.expiry.getTime();
    this.#cache.delete(key);
    this.#cache.set(key, { svid, refreshAtMs: iat + Math.max(0, exp - iat) / 2 });
    if (this.#cache.size <= this.#maxCached) return;
    const now = this.#clock.nowMs();
    for (const [k, e] of this.#cache) if (e.refreshAtMs <= now) this.#cache.delete(k);
    // Still too many: Map order is insertion order, so the oldest fetches go first.
    for (const k of this.#cache.keys()) {
      if (this.#cache.size <= this.#maxCached) break;
      this.#cache.delete(k);
    }
  }

  /** The JWT bundle of `td` (own or federated); ERR_BUNDLE_NOT_FOUND when there is none. */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    return this.bundles().getJwtBundleForTrustDomain(td);
  }

  bundles(): BundleSet {
    if (this.#closed) throw new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The JwtSource is closed.');
    if (!this.#bundles) throw new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The JwtSource has no JWT bundles yet.');
    return this.#bundles;
  }

  /** Stops the watch, forgets cached tokens and, when the source opened its client, closes it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.stop();
    this.#cache.clear();
    if (this.#ownsClient) this.#client.close();
  }
}
