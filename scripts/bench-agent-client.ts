/**
 * The workload side of the agent benchmarks, run as its own process (spawned by
 * bench-agent-harness.ts) so that clients and agent never share an event loop. Argument: one JSON
 * object. Each client is one grpc-js channel with its own connection (local subchannel pool) to
 * the agent's Unix socket, calling /SpiffeWorkloadAPI/FetchX509SVID with the security header.
 *
 * - mode "latency" {socket, clients, calls, pauseMs}: every client makes one warm-up call; prints
 *   {"warm": n} and waits for a line on stdin; then all clients at once make `calls` calls each, one
 *   after another: open the stream, time the first message, cancel, wait for the status, then wait
 *   pauseMs × (0.5 to 1.5) if pauseMs is above 0 (a paced load instead of a saturating one; the
 *   clients then also start at random times within pauseMs). Prints
 *   {"latencies": [ms, ...], "wallMs", "cpuUs", "loopMaxMs"} (this process's CPU time and longest
 *   event-loop delay in the timed phase).
 * - mode "hold" {socket, connections, streamsPerConnection}: opens that many streams and keeps
 *   them open; prints {"open": n, "ms": t} once every stream has its first message, then closes
 *   everything and exits when stdin ends.
 */
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import net from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { SECURITY_HEADER, workloadClientConstructor, workloadServiceDefinition } from '../src/workloadapi/proto.js';

interface Args {
  mode: 'latency' | 'hold';
  /** Latency mode: the client stack (default grpc-js). */
  client?: 'grpc-js' | 'http2';
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
  const c = newClient();
  return { call: () => timedCall(c), close: () => c.close() };
}

async function latency(): Promise<void> {
  const clients = Array.from({ length: args.clients ?? 100 }, latencyClient);
  for (const c of clients) await c.call();
  process.stdout.write(`${JSON.stringify({ warm: clients.length })}\n`);
  await nextStdinLine();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
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
  for (const c of clients) c.close();
  process.stdout.write(`${JSON.stringify({ latencies, wallMs, cpuUs: cpu.user + cpu.system, loopMaxMs: loop.max / 1e6 })}\n`);
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
