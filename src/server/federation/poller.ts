/**
 * The federation poller: keeps the bundle of every federated trust domain current. The server's
 * schedule calls tick() every 10 s (as SPIRE reconciles its relationships); tick re-reads the
 * relationships from the datastore (so an HA peer's changes are seen too) and fetches those due.
 *
 * Cadence, as SPIRE's bundle client: a quarter of the held bundle's spiffe_refresh_hint (several
 * chances per hint), 5 minutes when the bundle has no hint or there is none yet, never less than
 * 1 minute between two polls of one trust domain, jittered ±10 %. A failed fetch is retried at the
 * next interval, not sooner (SPIFFE Federation §6.2). New or changed relationships are fetched at
 * once; `refresh()` forces a fetch (waiting for one in flight), ignoring the floor.
 */
import type { Clock, RandomSource } from '../../clock.js';
import { cryptoRandom } from '../../clock.js';
import type { DataStore, FederationRelationship } from '../../datastore/index.js';
import { WritError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { FetchOptions } from './fetch.js';
import { refreshRelationship, type RefreshOutcome } from './refresh.js';

export const MIN_POLL_SECONDS = 60;
export const DEFAULT_POLL_SECONDS = 300;
export const POLLS_PER_REFRESH_HINT = 4;
export const MAX_PARALLEL_FETCHES = 4;

/** Seconds until the next poll, given the held bundle's refresh hint and a uniform number in [0, 1). */
export function pollInterval(refreshHint: number | undefined, unit: number): number {
  const base = refreshHint !== undefined && refreshHint > 0 ? refreshHint / POLLS_PER_REFRESH_HINT : DEFAULT_POLL_SECONDS;
  return Math.max(MIN_POLL_SECONDS, Math.round(base * (0.9 + 0.2 * unit)));
}

export interface FederationPollerOptions {
  datastore: DataStore;
  clock: Clock;
  logger: Logger;
  random?: RandomSource;
  fetch?: Omit<FetchOptions, 'now' | 'signal'>;
  maxParallel?: number;
}

interface TdState {
  /** What the fetch depends on; a change makes the relationship due at once. */
  key: string;
  /** Milliseconds (clock). */
  nextAt: number;
  running?: Promise<RefreshOutcome>;
}

const keyOf = (r: FederationRelationship) => `${r.bundleEndpointUrl}\n${r.profile}\n${r.endpointSpiffeId ?? ''}`;

export class FederationPoller {
  readonly #o: FederationPollerOptions;
  readonly #log: Logger;
  readonly #state = new Map<string, TdState>();
  readonly #abort = new AbortController();
  #ticking: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(opts: FederationPollerOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'federation' });
  }

  /** Unix seconds of the next scheduled fetch of a trust domain, when this poller knows one. */
  nextRefreshAt(trustDomain: string): number | undefined {
    const s = this.#state.get(trustDomain);
    return s ? Math.ceil(s.nextAt / 1000) : undefined;
  }

  /** Re-reads the relationships and fetches every one that is due; concurrent calls share one pass (plus one more if asked meanwhile). */
  tick(): Promise<void> {
    if (this.#ticking) {
      this.#again = true;
      return this.#ticking;
    }
    this.#ticking = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pass();
        } while (this.#again && !this.#stopped);
      } finally {
        this.#ticking = undefined;
      }
    })();
    return this.#ticking;
  }

  /** Starts a pass in the background (after a relationship was created or changed). */
  kick(): void {
    this.tick().catch((e: unknown) => this.#log.error({ event: 'federation.tick_failed', err: e }, 'federation poll pass failed'));
  }

  /** Fetches now, whatever the schedule says; waits for a fetch already running first. */
  async refresh(trustDomain: string): Promise<RefreshOutcome> {
    if (this.#stopped) throw new WritError('ERR_FEDERATION_FETCH', 'The server is stopping; no refresh was made.');
    const rel = await this.#o.datastore.getFederation(trustDomain);
    if (!rel) throw new WritError('ERR_FEDERATION_NOT_FOUND', `There is no federation relationship with ${trustDomain}.`);
    const st = this.#stateFor(rel);
    if (st.running) await st.running.catch(() => undefined);
    return this.#run(rel, st);
  }

  /** Stops scheduling, aborts fetches in flight and waits for them. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    await Promise.allSettled([this.#ticking, ...[...this.#state.values()].map((s) => s.running)]);
  }

  #stateFor(rel: FederationRelationship): TdState {
    const key = keyOf(rel);
    let st = this.#state.get(rel.trustDomain);
    if (!st) {
      st = { key, nextAt: this.#o.clock.nowMs() };
      this.#state.set(rel.trustDomain, st);
    } else if (st.key !== key) {
      st.key = key;
      st.nextAt = this.#o.clock.nowMs();
    }
    return st;
  }

  async #pass(): Promise<void> {
    if (this.#stopped) return;
    const rels = await this.#o.datastore.listFederations();
    const live = new Set(rels.map((r) => r.trustDomain));
    for (const td of [...this.#state.keys()]) if (!live.has(td) && !this.#state.get(td)!.running) this.#state.delete(td);
    const now = this.#o.clock.nowMs();
    const due = rels.filter((r) => {
      const st = this.#stateFor(r);
      return !st.running && st.nextAt <= now;
    });
    const queue = [...due];
    const worker = async () => {
      for (let rel = queue.shift(); rel && !this.#stopped; rel = queue.shift()) {
        await this.#run(rel, this.#stateFor(rel)).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(queue.length, this.#o.maxParallel ?? MAX_PARALLEL_FETCHES) }, worker));
  }

  #run(rel: FederationRelationship, st: TdState): Promise<RefreshOutcome> {
    const random = this.#o.random ?? cryptoRandom;
    const unit = () => random.bytes(2).readUInt16BE(0) / 0x10000;
    const p = refreshRelationship(rel, { datastore: this.#o.datastore, clock: this.#o.clock, logger: this.#log, ...(this.#o.fetch ? { fetch: this.#o.fetch } : {}), signal: this.#abort.signal })
      .then((o) => {
        st.nextAt = this.#o.clock.nowMs() + pollInterval(o.refreshHint, unit()) * 1000;
        return o;
      })
      .catch((e: unknown) => {
        // The datastore failed around the fetch: try again after the floor.
        st.nextAt = this.#o.clock.nowMs() + MIN_POLL_SECONDS * 1000;
        this.#log.error({ event: 'federation.refresh_error', trust_domain: rel.trustDomain, err: e }, 'federation refresh could not complete');
        throw e;
      })
      .finally(() => {
        if (st.running === p) st.running = undefined;
      });
    st.running = p;
    return p;
  }
}
