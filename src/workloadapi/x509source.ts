/**
 * X509Source: the workload's X509-SVIDs and bundles, kept current by a FetchX509SVID watch (as
 * go-spiffe's x509source.go). open() resolves after the first update; unlike go-spiffe it does not
 * wait forever but fails after `timeoutMs` with the last error it saw. When the server answers
 * PermissionDenied mid-stream the source drops its SVIDs (Workload API §4.4) until one arrives again.
 * It is an X509BundleSource, so it can be handed straight to verifyX509Svid.
 */
import type { BundleSet, X509Bundle, X509BundleSource } from '../bundle/index.js';
import { type Clock, systemClock } from '../clock.js';
import { WritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import type { X509Svid } from '../svid/index.js';
import { DEFAULT_TIMEOUT_MS, WorkloadApiClient, type WorkloadApiClientOptions } from './client.js';
import type { X509Context } from './parse.js';
import type { Watcher } from './watch.js';

export interface X509SourceOptions extends WorkloadApiClientOptions {
  /** Chooses the SVID getX509Svid() returns; default the first (the server's default). */
  picker?: (svids: readonly X509Svid[]) => X509Svid;
  /** Use this client instead of opening one; the source then does not close it. */
  client?: WorkloadApiClient;
}

type UpdateListener = (context: X509Context) => void;
type ErrorListener = (err: WritError) => void;

export class X509Source implements X509BundleSource {
  readonly #client: WorkloadApiClient;
  readonly #ownsClient: boolean;
  readonly #picker: ((svids: readonly X509Svid[]) => X509Svid) | undefined;
  readonly #clock: Clock;
  readonly #updateListeners = new Set<UpdateListener>();
  readonly #errorListeners = new Set<ErrorListener>();
  #context: X509Context | undefined;
  #withdrawn: WritError | undefined;
  #watcher: Watcher | undefined;
  #updatedAt: Date | undefined;
  #closed = false;

  private constructor(client: WorkloadApiClient, ownsClient: boolean, opts: X509SourceOptions) {
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#picker = opts.picker;
    this.#clock = opts.clock ?? systemClock;
  }

  /** Opens a source and waits for its first X.509 context (at most `timeoutMs`, default 30 s). */
  static async open(opts: X509SourceOptions = {}): Promise<X509Source> {
    const client = opts.client ?? new WorkloadApiClient(opts);
    const source = new X509Source(client, opts.client === undefined, opts);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let lastError: WritError | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(openTimeout(client.address, timeoutMs, lastError)), timeoutMs);
        const ready = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const failed = (e: WritError | undefined): void => {
          clearTimeout(timer);
          reject(e ?? new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The X509Source was closed before its first update.'));
        };
        source.#start(ready, (e) => (lastError = e), failed);
      });
    } catch (e) {
      source.close();
      throw e;
    }
    return source;
  }

  #start(ready: () => void, sawError: (e: WritError) => void, ended: (e: WritError | undefined) => void): void {
    let first = true;
    this.#watcher = this.#client.watchX509Context(
      (c) => {
        this.#context = c;
        this.#withdrawn = undefined;
        this.#updatedAt = this.#clock.now();
        if (first) {
          first = false;
          ready();
        }
        for (const fn of [...this.#updateListeners]) fn(c);
      },
      (e) => {
        sawError(e);
        if (e.code === 'ERR_WORKLOAD_NO_IDENTITY' && this.#context) {
          this.#context = { ...this.#context, svids: [] };
          this.#withdrawn = e;
        }
        for (const fn of [...this.#errorListeners]) fn(e);
      },
    );
    void this.#watcher.done.then((e) => {
      if (first) ended(e);
    });
  }

  /** The default SVID (the picker's choice, else the first); ERR_WORKLOAD_NO_IDENTITY when withdrawn. */
  getX509Svid(): X509Svid {
    const svids = this.getX509Svids();
    return this.#picker ? this.#picker(svids) : svids[0]!;
  }

  /** Every current SVID; ERR_WORKLOAD_NO_IDENTITY when the server withdrew them. */
  getX509Svids(): X509Svid[] {
    const c = this.#current();
    if (c.svids.length === 0) {
      const why = this.#withdrawn ? ` (${this.#withdrawn.message})` : '';
      throw new WritError('ERR_WORKLOAD_NO_IDENTITY', `The Workload API at ${this.#client.address} withdrew this workload's X509-SVIDs${why}.`, {
        ...(this.#withdrawn ? { cause: this.#withdrawn } : {}),
        details: { address: this.#client.address },
      });
    }
    return [...c.svids];
  }

  /** The X.509 bundle of `td` (own or federated); ERR_BUNDLE_NOT_FOUND when there is none. */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    return this.#current().bundles.getX509BundleForTrustDomain(td);
  }

  bundles(): BundleSet {
    return this.#current().bundles;
  }

  /** DER CRLs from the last update. */
  getCrls(): Buffer[] {
    return [...this.#current().crls];
  }

  /** When the last update arrived. */
  get updatedAt(): Date | undefined {
    return this.#updatedAt;
  }

  /** 'update': a new X.509 context arrived; 'error': the watch reported an error (it keeps going). */
  on(event: 'update', fn: UpdateListener): this;
  on(event: 'error', fn: ErrorListener): this;
  on(event: 'update' | 'error', fn: UpdateListener | ErrorListener): this {
    if (event === 'update') this.#updateListeners.add(fn as UpdateListener);
    else this.#errorListeners.add(fn as ErrorListener);
    return this;
  }

  off(event: 'update', fn: UpdateListener): this;
  off(event: 'error', fn: ErrorListener): this;
  off(event: 'update' | 'error', fn: UpdateListener | ErrorListener): this {
    if (event === 'update') this.#updateListeners.delete(fn as UpdateListener);
    else this.#errorListeners.delete(fn as ErrorListener);
    return this;
  }

  /** Stops the watch and, when the source opened its client, closes it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.stop();
    if (this.#ownsClient) this.#client.close();
    this.#updateListeners.clear();
    this.#errorListeners.clear();
  }

  #current(): X509Context {
    if (this.#closed) throw new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The X509Source is closed.');
    if (!this.#context) throw new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The X509Source has no update yet.');
    return this.#context;
  }
}

function openTimeout(address: string, timeoutMs: number, last: WritError | undefined): WritError {
  const why = last ? ` (last error: ${last.message})` : '';
  return new WritError(last?.code ?? 'ERR_WORKLOADAPI_UNAVAILABLE', `No X509-SVID arrived from the Workload API at ${address} within ${timeoutMs} ms${why}.`, {
    ...(last ? { cause: last } : {}),
    details: { address, timeout_ms: timeoutMs },
  });
}
