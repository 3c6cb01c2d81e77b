/**
 * The Workload API client, as go-spiffe's workloadapi.Client: one insecure gRPC channel to the
 * endpoint (UDS or loopback TCP, never TLS), the security header `workload.spiffe.io: true` on
 * every call, one-shot fetches (the first message of a stream, then cancel) and watchers that
 * reconnect. Responses are validated before they are returned (ERR_WORKLOADAPI_RESPONSE).
 */
import * as grpc from '@grpc/grpc-js';
import { type BundleSet } from '../bundle/index.js';
import { type Clock, systemClock } from '../clock.js';
import { WritError } from '../errors.js';
import { type SpiffeId, parseSpiffeId } from '../spiffeid/index.js';
import type { JwtSvid, X509Svid } from '../svid/index.js';
import { type EndpointAddress, resolveEndpoint } from './address.js';
import { type ValidatedJwtSvid, type X509BundlesUpdate, type X509Context, parseJwtBundles, parseJwtSvids, parseValidateResponse, parseX509Bundles, parseX509Context } from './parse.js';
import {
  type JWTBundlesResponseMessage,
  type JWTSVIDRequestMessage,
  type JWTSVIDResponseMessage,
  SECURITY_HEADER,
  type ValidateJWTSVIDRequestMessage,
  type ValidateJWTSVIDResponseMessage,
  type X509BundlesResponseMessage,
  type X509SVIDResponseMessage,
  workloadClientConstructor,
  workloadServiceDefinition,
} from './proto.js';
import { type CallContext, errorFromStatus, isStatusLike, malformed } from './status.js';
import { type BackoffOptions, DEFAULT_BACKOFF, type Watcher, startWatch } from './watch.js';

export const DEFAULT_TIMEOUT_MS = 30_000;

export interface WorkloadApiClientOptions {
  /** `unix:///path` or `tcp://IP:port`; default SPIFFE_ENDPOINT_SOCKET from `env`. */
  address?: string;
  /** Deadline of each one-shot call, in milliseconds; default 30 s. */
  timeoutMs?: number;
  /** Watch reconnect backoff (and the channel's own reconnect backoff). */
  backoff?: BackoffOptions;
  /** The time JWT-SVIDs are checked at; default the system clock. */
  clock?: Clock;
  /** Where SPIFFE_ENDPOINT_SOCKET is read when no address is given; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface JwtSvidParams {
  /** The audience: the first is the main one, the rest extra audiences. */
  audience: string | readonly string[];
  /** Ask for this identity only (when the workload has several). */
  spiffeId?: string | SpiffeId;
}

export class WorkloadApiClient {
  readonly endpoint: EndpointAddress;
  readonly timeoutMs: number;
  readonly #client: grpc.Client;
  readonly #backoff: BackoffOptions;
  readonly #clock: Clock;
  readonly #watchers = new Set<Watcher>();
  #closed = false;

  constructor(opts: WorkloadApiClientOptions = {}) {
    this.endpoint = resolveEndpoint(opts.address, opts.env);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError('timeoutMs must be above zero.');
    this.#backoff = opts.backoff ?? {};
    this.#clock = opts.clock ?? systemClock;
    const Client = workloadClientConstructor();
    this.#client = new Client(this.endpoint.target, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': this.#backoff.stepMs ?? DEFAULT_BACKOFF.stepMs,
      'grpc.max_reconnect_backoff_ms': this.#backoff.maxMs ?? DEFAULT_BACKOFF.maxMs,
    });
  }

  /** The address as given (or as SPIFFE_ENDPOINT_SOCKET held it). */
  get address(): string {
    return this.endpoint.address;
  }

  /** The SVIDs (first = default), the own and federated bundles, and the CRLs. */
  fetchX509Context(): Promise<X509Context> {
    return this.#first<X509SVIDResponseMessage, X509Context>('FetchX509SVID', (ctx, m) => parseX509Context(ctx, m));
  }

  /** The default X509-SVID (the first the server sends). */
  async fetchX509Svid(): Promise<X509Svid> {
    return (await this.fetchX509Context()).svids[0]!;
  }

  async fetchX509Svids(): Promise<X509Svid[]> {
    return (await this.fetchX509Context()).svids;
  }

  fetchX509Bundles(): Promise<X509BundlesUpdate> {
    return this.#first<X509BundlesResponseMessage, X509BundlesUpdate>('FetchX509Bundles', (ctx, m) => parseX509Bundles(ctx, m));
  }

  /** The JWT bundles (JWKS) of the own and federated trust domains. */
  fetchJwtBundles(): Promise<BundleSet> {
    return this.#first<JWTBundlesResponseMessage, BundleSet>('FetchJWTBundles', (ctx, m) => parseJwtBundles(ctx, m));
  }

  /** The first JWT-SVID the server returns for the audience. */
  async fetchJwtSvid(params: JwtSvidParams): Promise<JwtSvid> {
    return (await this.fetchJwtSvids(params))[0]!;
  }

  /** Every JWT-SVID the workload is entitled to for the audience (duplicate hints dropped). */
  async fetchJwtSvids(params: JwtSvidParams): Promise<JwtSvid[]> {
    const audience = normalizeAudience(params.audience);
    const spiffeId = params.spiffeId === undefined ? undefined : typeof params.spiffeId === 'string' ? parseSpiffeId(params.spiffeId).toString() : params.spiffeId.toString();
    const req: JWTSVIDRequestMessage = { audience, spiffe_id: spiffeId ?? '' };
    const { ctx, res } = await this.#unary<JWTSVIDRequestMessage, JWTSVIDResponseMessage>('FetchJWTSVID', req);
    return parseJwtSvids(ctx, res, audience, spiffeId, { now: this.#clock.now() });
  }

  /** Asks the server to validate a JWT-SVID for one audience; returns its SPIFFE ID and claims. */
  async validateJwtSvid(token: string, audience: string): Promise<ValidatedJwtSvid> {
    if (typeof token !== 'string' || token === '') throw new WritError('ERR_INPUT_INVALID', 'The JWT-SVID to validate is empty.');
    if (typeof audience !== 'string' || audience === '') throw new WritError('ERR_INPUT_INVALID', 'Validating a JWT-SVID needs an audience.');
    const { ctx, res } = await this.#unary<ValidateJWTSVIDRequestMessage, ValidateJWTSVIDResponseMessage>('ValidateJWTSVID', { audience, svid: token });
    return parseValidateResponse(ctx, res);
  }

  /** Streams X.509 contexts; reconnects until stopped or refused with InvalidArgument. */
  watchX509Context(onUpdate: (c: X509Context) => void, onError?: (e: WritError) => void): Watcher {
    return this.#watch<X509SVIDResponseMessage, X509Context>('FetchX509SVID', parseX509Context, onUpdate, onError);
  }

  watchX509Bundles(onUpdate: (b: X509BundlesUpdate) => void, onError?: (e: WritError) => void): Watcher {
    return this.#watch<X509BundlesResponseMessage, X509BundlesUpdate>('FetchX509Bundles', parseX509Bundles, onUpdate, onError);
  }

  watchJwtBundles(onUpdate: (b: BundleSet) => void, onError?: (e: WritError) => void): Watcher {
    return this.#watch<JWTBundlesResponseMessage, BundleSet>('FetchJWTBundles', parseJwtBundles, onUpdate, onError);
  }

  /** Stops every watcher and closes the channel. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#watchers]) w.stop();
    this.#client.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #ctx(rpc: string): CallContext {
    return { address: this.endpoint.address, rpc, timeoutMs: this.timeoutMs };
  }

  #method<Req, Res>(rpc: string): grpc.MethodDefinition<Req, Res> {
    const m = workloadServiceDefinition()[rpc];
    if (!m) throw new WritError('ERR_INTERNAL', `The Workload API definition has no ${rpc} method.`);
    return m as grpc.MethodDefinition<Req, Res>;
  }

  #check(): void {
    if (this.#closed) throw new WritError('ERR_WORKLOADAPI_UNAVAILABLE', `The Workload API client for ${this.endpoint.address} is closed.`);
  }

  #metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    return md;
  }

  #stream<Res>(rpc: string, deadline?: number): grpc.ClientReadableStream<Res> {
    this.#check();
    const m = this.#method<object, Res>(rpc);
    return this.#client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, this.#metadata(), deadline === undefined ? {} : { deadline });
  }

  #first<M, T>(rpc: string, parse: (ctx: CallContext, m: M) => T): Promise<T> {
    const ctx = this.#ctx(rpc);
    return new Promise<T>((resolve, reject) => {
      const call = this.#stream<M>(rpc, Date.now() + this.timeoutMs);
      let settled = false;
      call.on('data', (m: M) => {
        if (settled) return;
        settled = true;
        call.cancel();
        try {
          resolve(parse(ctx, m));
        } catch (e) {
          reject(e instanceof WritError ? e : malformed(ctx, 'it could not be read.', e));
        }
      });
      call.on('error', () => {});
      call.on('status', (s: grpc.StatusObject) => {
        if (settled) return;
        settled = true;
        if (s.code === grpc.status.OK) reject(malformed(ctx, 'the server closed the stream without sending a message.'));
        else reject(errorFromStatus(s, ctx));
      });
    });
  }

  #unary<Req, Res>(rpc: string, req: Req): Promise<{ ctx: CallContext; res: Res }> {
    this.#check();
    const ctx = this.#ctx(rpc);
    const m = this.#method<Req, Res>(rpc);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, this.#metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) reject(isStatusLike(err) ? errorFromStatus(err, ctx) : malformed(ctx, 'the call failed.', err));
        else if (res === undefined) reject(malformed(ctx, 'the server sent no message.'));
        else resolve({ ctx, res });
      });
    });
  }

  #watch<M, T>(rpc: string, parse: (ctx: CallContext, m: M) => T, onUpdate: (v: T) => void, onError?: (e: WritError) => void): Watcher {
    this.#check();
    const ctx = this.#ctx(rpc);
    const w = startWatch<M, T>({
      ctx,
      open: () => this.#stream<M>(rpc),
      parse: (m) => parse(ctx, m),
      onUpdate,
      ...(onError ? { onError } : {}),
      backoff: this.#backoff,
    });
    this.#watchers.add(w);
    void w.done.then(() => this.#watchers.delete(w));
    return w;
  }
}

/** A non-empty list of non-empty audience strings (ERR_INPUT_INVALID otherwise). */
export function normalizeAudience(audience: string | readonly string[]): string[] {
  const list = typeof audience === 'string' ? [audience] : Array.isArray(audience) ? [...(audience as readonly string[])] : [];
  if (list.length === 0 || list.some((a) => typeof a !== 'string' || a === '')) {
    throw new WritError('ERR_INPUT_INVALID', 'A JWT-SVID needs at least one audience, and no empty one.');
  }
  return list;
}
