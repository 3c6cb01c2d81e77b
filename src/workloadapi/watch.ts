/**
 * Watching a Workload API stream as go-spiffe does (workloadapi/client.go, backoff.go): every
 * message carries the full state and is handed on; when the stream ends or fails the watcher
 * reconnects after a linear backoff (1 s, 2 s, 3 s … capped at 30 s, plus jitter) that resets after
 * each good message. Our own stop (Cancelled) ends it quietly; InvalidArgument is reported once and
 * ends it; everything else, PermissionDenied included, is reported and retried.
 */
import { type ClientReadableStream, type StatusObject, status as Status } from '@grpc/grpc-js';
import { WritError, toWritError } from '../errors.js';
import { type CallContext, errorFromStatus, malformed } from './status.js';

export interface BackoffOptions {
  /** The first delay, and what each further failed attempt adds; default 1000 ms. */
  stepMs?: number;
  /** The longest delay before jitter; default 30000 ms. */
  maxMs?: number;
  /** Up to this fraction of the delay is added at random; default 0.1. */
  jitter?: number;
  /** Random source in [0, 1); default Math.random. */
  random?: () => number;
}

export const DEFAULT_BACKOFF = { stepMs: 1000, maxMs: 30_000, jitter: 0.1 } as const;

/** Linear backoff: n × step, capped, plus jitter. */
export class LinearBackoff {
  #n = 0;
  readonly #step: number;
  readonly #max: number;
  readonly #jitter: number;
  readonly #random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.#step = opts.stepMs ?? DEFAULT_BACKOFF.stepMs;
    this.#max = opts.maxMs ?? DEFAULT_BACKOFF.maxMs;
    this.#jitter = opts.jitter ?? DEFAULT_BACKOFF.jitter;
    this.#random = opts.random ?? Math.random;
    if (!(this.#step > 0) || !(this.#max >= this.#step) || !(this.#jitter >= 0)) throw new RangeError('Backoff needs stepMs > 0, maxMs >= stepMs and jitter >= 0.');
  }

  /** The delay before the next attempt, in milliseconds. */
  next(): number {
    this.#n++;
    const d = Math.min(this.#n * this.#step, this.#max);
    return d + d * this.#jitter * this.#random();
  }

  reset(): void {
    this.#n = 0;
  }
}

/** A running watch. */
export interface Watcher {
  /** Ends the watch (cancels the stream and any pending reconnect). */
  stop(): void;
  /** Settles when the watch ends: undefined after stop(), the error when the server refused for good. */
  readonly done: Promise<WritError | undefined>;
}

export interface WatchSpec<M, T> {
  ctx: CallContext;
  /** Opens a new stream; throws WritError when the client is closed. */
  open(): ClientReadableStream<M>;
  parse(msg: M): T;
  onUpdate(value: T): void;
  onError?: (err: WritError) => void;
  backoff: BackoffOptions;
  /** Called once when the watch ends. */
  onEnd?: () => void;
}

function handlerError(e: unknown): WritError {
  return toWritError(e, 'ERR_INTERNAL', 'A Workload API watch handler threw an error.');
}

/** Starts a watch; the first stream opens at once. */
export function startWatch<M, T>(spec: WatchSpec<M, T>): Watcher {
  const backoff = new LinearBackoff(spec.backoff);
  let stopped = false;
  let call: ClientReadableStream<M> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let settle: (e: WritError | undefined) => void = () => {};
  const done = new Promise<WritError | undefined>((resolve) => (settle = resolve));

  const report = (err: WritError): void => {
    try {
      spec.onError?.(err);
    } catch {
      // An error handler that throws must not end the watch.
    }
  };
  const finish = (err: WritError | undefined): void => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    call?.cancel();
    spec.onEnd?.();
    settle(err);
  };
  const retry = (): void => {
    if (stopped) return;
    timer = setTimeout(connect, backoff.next());
  };
  function connect(): void {
    timer = undefined;
    if (stopped) return;
    let c: ClientReadableStream<M>;
    try {
      c = spec.open();
    } catch (e) {
      const err = toWritError(e, 'ERR_WORKLOADAPI_UNAVAILABLE', `The Workload API client for ${spec.ctx.address} is closed.`);
      report(err);
      finish(err);
      return;
    }
    call = c;
    c.on('data', (msg: M) => {
      if (stopped || call !== c) return;
      let value: T;
      try {
        value = spec.parse(msg);
      } catch (e) {
        report(e instanceof WritError ? e : malformed(spec.ctx, 'it could not be read.', e));
        return;
      }
      backoff.reset();
      try {
        spec.onUpdate(value);
      } catch (e) {
        report(handlerError(e));
      }
    });
    // grpc-js emits 'error' and then 'status' for a failed stream, and 'status' alone for a clean end.
    c.on('error', () => {});
    c.on('status', (s: StatusObject) => {
      if (stopped || call !== c) return;
      call = undefined;
      if (s.code === Status.OK) return retry();
      const err = errorFromStatus(s, spec.ctx);
      report(err);
      if (s.code === Status.INVALID_ARGUMENT) return finish(err);
      retry();
    });
  }

  connect();
  return { stop: () => finish(undefined), done };
}
