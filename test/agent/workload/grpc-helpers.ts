/**
 * A small grpc-js Workload API client for the endpoint tests: unary calls as promises, server
 * streams as a reader with bounded waits (next message, "nothing more", final status), and raw
 * calls with arbitrary bytes or method paths.
 */
import * as grpc from '@grpc/grpc-js';
import { SECURITY_HEADER, workloadServiceDefinition } from '../../../src/workloadapi/proto.js';

/** Metadata with the security header given `values` times (default once, "true"). */
export function header(...values: string[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const v of values.length === 0 ? ['true'] : values) md.add(SECURITY_HEADER, v);
  return md;
}

export function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && 'code' in e && typeof e.code === 'number';
}

/** Reads a server stream: every message and the final status are buffered. */
export class StreamReader<T> {
  readonly #messages: T[] = [];
  #error: grpc.ServiceError | undefined;
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(readonly call: grpc.ClientReadableStream<T>) {
    call.on('data', (m: T) => this.#push(() => this.#messages.push(m)));
    call.on('error', (e: grpc.ServiceError) => this.#push(() => (this.#error = e)));
    call.on('end', () => this.#push(() => (this.#ended = true)));
  }

  #push(f: () => void): void {
    f();
    this.#wake?.();
  }

  async #until(cond: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!cond()) {
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  /** The next message within `ms`; rejects with the stream's error if it ends first. */
  async next(ms = 5000): Promise<T> {
    await this.#until(() => this.#messages.length > 0 || this.#error !== undefined || this.#ended, ms);
    const m = this.#messages.shift();
    if (m !== undefined) return m;
    if (this.#error) throw this.#error;
    throw new Error(this.#ended ? 'the stream ended without a message' : `no stream message within ${ms} ms`);
  }

  /** Resolves when no message arrives for `ms`; rejects if one does. */
  async none(ms: number): Promise<void> {
    if (await this.#until(() => this.#messages.length > 0, ms)) throw new Error('an unexpected stream message arrived');
  }

  /** The error status the stream ends with, within `ms`. */
  async status(ms = 5000): Promise<grpc.ServiceError> {
    await this.#until(() => this.#error !== undefined || this.#ended, ms);
    if (this.#error) return this.#error;
    throw new Error(this.#ended ? 'the stream ended with OK' : `the stream did not end within ${ms} ms`);
  }

  cancel(): void {
    this.call.cancel();
  }
}

export class TestClient {
  readonly client: grpc.Client;
  readonly #def = workloadServiceDefinition();

  /** Each client has its own connection (grpc-js otherwise shares subchannels between clients). */
  constructor(socketPath: string, options: grpc.ChannelOptions = {}) {
    this.client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, ...options });
  }

  #method(name: string): grpc.MethodDefinition<object, object> {
    const m = this.#def[name];
    if (!m) throw new Error(`no method ${name}`);
    return m as grpc.MethodDefinition<object, object>;
  }

  unary<Res>(name: string, req: object, md: grpc.Metadata = header()): Promise<Res> {
    const m = this.#method(name);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, md, { deadline: Date.now() + 10_000 }, (err, res) =>
        err ? reject(err) : resolve(res as Res),
      );
    });
  }

  stream<Res>(name: string, md: grpc.Metadata = header()): StreamReader<Res> {
    const m = this.#method(name);
    return new StreamReader(this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, md, { deadline: Date.now() + 15_000 }) as grpc.ClientReadableStream<Res>);
  }

  /** A unary call to any path with raw request bytes; resolves with the status error or the raw answer. */
  raw(path: string, bytes: Buffer, md: grpc.Metadata = header()): Promise<grpc.ServiceError | Buffer> {
    const id = (b: Buffer) => b;
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(path, id, id, bytes, md, { deadline: Date.now() + 10_000 }, (err, res) => resolve(err ?? (res as Buffer)));
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The error of a rejected promise, asserting it is a gRPC status. */
export async function statusOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    if (isServiceError(e)) return e;
    throw e;
  }
  throw new Error('the call succeeded; a status error was expected');
}
