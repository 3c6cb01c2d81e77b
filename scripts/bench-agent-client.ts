/**
 * The workload side of the agent benchmarks, run as its own process (spawned by
 * bench-agent-harness.ts) so that clients and agent never share an event loop. Argument: one JSON
 * object. Each client has its own connection to the agent's Unix socket and calls
 * /SpiffeWorkloadAPI/FetchX509SVID with the security header, through one of three stacks
 * (`client`): "grpc-js" (a channel with a local subchannel pool; the default), "http2" (node:http2
 * with the gRPC framing by hand) or "wire" (HTTP/2 frames written and read on a net.Socket).
 *
 * - mode "latency" {socket, clients, calls, pauseMs, client, warm}: every client makes `warm`
 *   untimed calls (default 1); prints {"warm": n} and waits for a line on stdin; then all clients
 *   at once make `calls` calls each, one after another: open the stream, time the first message,
 *   cancel, wait for the stream to end, then wait pauseMs × (0.5 to 1.5) if pauseMs is above 0 (a
 *   paced load instead of a saturating one; the clients then also start at random times within
 *   pauseMs). Prints {"latencies": [ms, ...], "wallMs", "cpuUs", "loopMaxMs"} (this process's CPU
 *   time and longest event-loop delay in the timed phase).
 * - mode "hold" {socket, connections, streamsPerConnection}: opens that many streams and keeps
 *   them open; prints {"open": n, "ms": t} once every stream has its first message, then closes
 *   everything and exits when stdin ends.
 */
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import net from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { watchProcess } from './bench-process.js';
import { SECURITY_HEADER, workloadClientConstructor, workloadServiceDefinition } from '../src/workloadapi/proto.js';

interface Args {
  mode: 'latency' | 'hold';
  /** Latency mode: the client stack (default grpc-js). */
  client?: 'grpc-js' | 'http2' | 'wire';
  /** Latency mode: untimed calls per client before {"warm"} (default 1). */
  warm?: number;
  socket: string;
  clients?: number;
  calls?: number;
  pauseMs?: number;
  connections?: number;
  streamsPerConnection?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const method = workloadServiceDefinition()['FetchX509SVID'];
if (!method) throw new Error('the Workload API definition has no FetchX509SVID');
const Client = workloadClientConstructor();

function metadata(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(SECURITY_HEADER, 'true');
  return md;
}

function newClient(): grpc.Client {
  return new Client(`unix:${args.socket}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

function open(client: grpc.Client): grpc.ClientReadableStream<unknown> {
  return client.makeServerStreamRequest(method!.path, method!.requestSerialize, method!.responseDeserialize, {}, metadata());
}

/** One call: ms to the first message, then cancel and wait for the status. */
function timedCall(client: grpc.Client): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let ms: number | undefined;
    const call = open(client);
    call.on('data', () => {
      if (ms !== undefined) return;
      ms = performance.now() - t0;
      call.cancel();
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (ms === undefined) reject(new Error(`FetchX509SVID failed: ${e.code} ${e.details}`));
    });
    call.on('status', () => {
      if (ms !== undefined) resolve(ms);
    });
  });
}

/**
 * The same call on the gRPC wire without grpc-js (node:http2 only): POST the method path with the
 * gRPC headers and one empty length-prefixed message, read up to the first whole message, check it
 * is an X509SVIDResponse with at least one SVID (a field 1 of wire type 2 first), then
 * RST_STREAM(CANCEL) as a gRPC cancel does and wait for the stream to close. A client that costs
 * far less CPU per call than grpc-js, so 100 of them in one process add little delay of their own.
 */
class RawClient {
  readonly #session: http2.ClientHttp2Session;

  constructor(socket: string) {
    this.#session = http2.connect('http://localhost', { createConnection: () => net.connect(socket) });
    this.#session.on('error', () => undefined); // surfaced per call
  }

  call(): Promise<number> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let ms: number | undefined;
      let got: Buffer = Buffer.alloc(0);
      const stream = this.#session.request(
        { ':method': 'POST', ':path': method!.path, 'content-type': 'application/grpc', te: 'trailers', [SECURITY_HEADER]: 'true' },
        { endStream: false },
      );
      stream.end(Buffer.alloc(5)); // uncompressed, length 0: an empty X509SVIDRequest
      stream.on('response', (headers) => {
        if (headers[':status'] !== 200) reject(new Error(`FetchX509SVID answered HTTP ${String(headers[':status'])}`));
      });
      stream.on('data', (d: Buffer) => {
        if (ms !== undefined) return;
        got = got.length === 0 ? d : Buffer.concat([got, d]);
        if (got.length < 5 || got.length < 5 + got.readUInt32BE(1)) return;
        ms = performance.now() - t0;
        if (got[0] !== 0 || got.readUInt32BE(1) < 2 || got[5] !== 0x0a) reject(new Error('FetchX509SVID sent something other than an X509SVIDResponse with an SVID'));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on('trailers', (t) => {
        if (ms === undefined) reject(new Error(`FetchX509SVID ended with grpc-status ${String(t['grpc-status'])} before a message`));
      });
      stream.on('error', (e) => {
        if (ms === undefined) reject(e);
      });
      stream.on('close', () => {
        if (ms !== undefined) resolve(ms);
        else reject(new Error('FetchX509SVID stream closed before a message'));
      });
    });
  }

  close(): void {
    this.#session.close();
  }
}

/** HPACK string literal, no Huffman (RFC 7541 5.2); lengths here stay under 127. */
const hstr = (v: string): Buffer => Buffer.concat([Buffer.from([v.length]), Buffer.from(v, 'latin1')]);
/** HTTP/2 frame (RFC 9113 4.1). */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}
const [DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE] = [0, 1, 3, 4, 6, 7, 8];
const windowUpdate = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return frame(WINDOW_UPDATE, 0, 0, b);
};

/**
 * The same call written as HTTP/2 frames by hand on a net.Socket (RFC 9113, HPACK literals
 * without indexing and static-table names only, so no response header needs decoding): one write
 * of HEADERS + DATA (an empty message, END_STREAM), DATA frames read until the first whole gRPC
 * message, then RST_STREAM(CANCEL). SETTINGS and PING are acknowledged, the connection window is
 * opened wide at the start. A few tens of µs of client CPU per call, so the figure is the agent's.
 */
class WireClient {
  readonly #socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #stream = 1;
  #pending: { id: number; t0: number; got: Buffer[]; size: number; resolve(ms: number): void; reject(e: Error): void } | undefined;
  #received = 0;
  static readonly #headerBlock = Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table 3 and 6)
    Buffer.from([0x04]), hstr(method!.path), // :path, literal without indexing, name index 4
    Buffer.from([0x01]), hstr('localhost'), // :authority, name index 1
    Buffer.from([0x0f, 0x10]), hstr('application/grpc'), // content-type, name index 31
    Buffer.from([0x00]), hstr('te'), hstr('trailers'),
    Buffer.from([0x00]), hstr(SECURITY_HEADER), hstr('true'),
  ]);

  constructor(socket: string) {
    this.#socket = net.connect(socket);
    this.#socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(SETTINGS, 0, 0, Buffer.alloc(0)), windowUpdate(2 ** 30)]));
    this.#socket.on('data', (d: Buffer) => this.#onData(d));
    this.#socket.on('error', (e) => this.#fail(e));
    this.#socket.on('close', () => this.#fail(new Error('the agent closed the connection')));
  }

  #fail(e: Error): void {
    const p = this.#pending;
    this.#pending = undefined;
    p?.reject(e);
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    while (this.#buf.length >= 9) {
      const len = this.#buf.readUIntBE(0, 3);
      if (this.#buf.length < 9 + len) break;
      const type = this.#buf[3]!;
      const flags = this.#buf[4]!;
      const id = this.#buf.readUInt32BE(5) & 0x7fffffff;
      let payload = this.#buf.subarray(9, 9 + len);
      this.#buf = this.#buf.subarray(9 + len);
      if (type === SETTINGS && !(flags & 1)) this.#socket.write(frame(SETTINGS, 1, 0, Buffer.alloc(0)));
      else if (type === PING && !(flags & 1)) this.#socket.write(frame(PING, 1, 0, Buffer.from(payload)));
      else if (type === GOAWAY) this.#fail(new Error('the agent sent GOAWAY'));
      else if (type === RST_STREAM && this.#pending?.id === id) this.#fail(new Error(`the agent reset the stream (${payload.readUInt32BE(0)})`));
      else if (type === HEADERS && this.#pending?.id === id && flags & 1) this.#fail(new Error('FetchX509SVID ended before a message'));
      else if (type === DATA) {
        this.#received += len;
        if (this.#received > 2 ** 29) {
          this.#socket.write(windowUpdate(this.#received));
          this.#received = 0;
        }
        const p = this.#pending;
        if (!p || p.id !== id) continue;
        if (flags & 0x8) payload = payload.subarray(1, payload.length - payload[0]!); // PADDED
        p.got.push(Buffer.from(payload));
        p.size += payload.length;
        const all = p.got.length === 1 ? p.got[0]! : Buffer.concat(p.got);
        if (all.length < 5 || all.length < 5 + all.readUInt32BE(1)) continue;
        const ms = performance.now() - p.t0;
        this.#pending = undefined;
        const code = Buffer.alloc(4);
        code.writeUInt32BE(0x8); // CANCEL
        this.#socket.write(frame(RST_STREAM, 0, id, code));
        if (all[0] !== 0 || all.readUInt32BE(1) < 2 || all[5] !== 0x0a) p.reject(new Error('FetchX509SVID sent something other than an X509SVIDResponse with an SVID'));
        else p.resolve(ms);
      }
    }
  }

  call(): Promise<number> {
    return new Promise((resolve, reject) => {
      const id = this.#stream;
      this.#stream += 2;
      this.#pending = { id, t0: performance.now(), got: [], size: 0, resolve, reject };
      this.#socket.write(Buffer.concat([frame(HEADERS, 0x4, id, WireClient.#headerBlock), frame(DATA, 0x1, id, Buffer.alloc(5))]));
    });
  }

  close(): void {
    this.#socket.removeAllListeners('close');
    this.#socket.end();
  }
}

/** Resolves at the next line on stdin (or when stdin ends). */
function nextStdinLine(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.stdin.off('data', onData);
      process.stdin.off('end', done);
      process.stdin.pause();
      resolve();
    };
    const onData = (b: Buffer) => {
      if (b.includes(0x0a)) done();
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', done);
    process.stdin.resume();
  });
}

interface LatencyClient {
  call(): Promise<number>;
  close(): void;
}

function latencyClient(): LatencyClient {
  if (args.client === 'http2') return new RawClient(args.socket);
  if (args.client === 'wire') return new WireClient(args.socket);
  const c = newClient();
  return { call: () => timedCall(c), close: () => c.close() };
}

async function latency(): Promise<void> {
  const clients = Array.from({ length: args.clients ?? 100 }, latencyClient);
  for (let i = 0; i < Math.max(1, args.warm ?? 1); i++) for (const c of clients) await c.call();
  process.stdout.write(`${JSON.stringify({ warm: clients.length })}\n`);
  await nextStdinLine();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const stopWatch = watchProcess();
  const latencies: number[] = [];
  const pause = args.pauseMs ?? 0;
  await Promise.all(
    clients.map(async (c) => {
      if (pause > 0) await new Promise((r) => setTimeout(r, pause * Math.random()));
      for (let i = 0; i < (args.calls ?? 20); i++) {
        latencies.push(await c.call());
        if (pause > 0) await new Promise((r) => setTimeout(r, pause * (0.5 + Math.random())));
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - t0;
  loop.disable();
  const figures = stopWatch();
  for (const c of clients) c.close();
  process.stdout.write(`${JSON.stringify({ latencies, wallMs, cpuUs: cpu.user + cpu.system, loopMaxMs: loop.max / 1e6, figures })}\n`);
}

async function hold(): Promise<void> {
  const t0 = performance.now();
  const clients = Array.from({ length: args.connections ?? 100 }, newClient);
  const calls: Array<grpc.ClientReadableStream<unknown>> = [];
  const first: Array<Promise<void>> = [];
  for (const c of clients) {
    for (let i = 0; i < (args.streamsPerConnection ?? 10); i++) {
      const call = open(c);
      calls.push(call);
      first.push(
        new Promise((resolve, reject) => {
          call.once('data', () => resolve());
          call.on('error', (e: grpc.ServiceError) => {
            if (e.code !== grpc.status.CANCELLED) reject(new Error(`FetchX509SVID failed: ${e.code} ${e.details}`));
          });
        }),
      );
    }
  }
  await Promise.all(first);
  process.stdout.write(`${JSON.stringify({ open: calls.length, ms: performance.now() - t0 })}\n`);
  process.stdin.resume();
  await new Promise<void>((resolve) => process.stdin.once('end', () => resolve()));
  for (const call of calls) call.cancel();
  for (const c of clients) c.close();
}

try {
  await (args.mode === 'hold' ? hold() : latency());
  // A pipe takes large writes in pieces: exit only once everything written has been flushed.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(0);
} catch (e) {
  process.stderr.write(`bench-agent-client: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
