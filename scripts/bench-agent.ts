/**
 * Agent and issuance figures for `npm run bench`, each against a real server (and agent) started
 * in this process on temporary directories, Unix sockets and kernel-chosen loopback ports:
 *
 * - benchIssuance: X509-SVIDs issued per second by the server on one core through
 *   issueX509Svids in batches of 500 (CSR parsed and its signature verified, entry authorized for
 *   the agent, SVID minted, the batch recorded in SQLite), next to raw crypto measured in
 *   alternating rounds (medians): crypto.verify of a CSR's P-256/SHA-256 signature + crypto.sign
 *   (P-256) pairs. `ratio` (target >= 0.5) takes the verify as one call on the CSR's bytes, key
 *   given as its SPKI DER, which includes the key import every new CSR needs; `ratioPreparsed`
 *   imports the keys before timing, leaving the curve arithmetic alone. The import (OpenSSL 3's
 *   decoder, about 95 µs) costs more than verify + sign together (about 85 µs), so
 *   `ratioPreparsed` stays under 0.4 however lean the rest is.
 * - benchFetchLatency: FetchX509SVID time to first message as 100 concurrent workload clients
 *   see it (one connection each, grpc-js, node:http2 or hand-written HTTP/2 frames, spread over
 *   `processes` child processes), with the server in its own process by default (the agent alone
 *   shares the bench's process): p50, p99 (target p99 <= 5 ms), throughput and CPU per call on
 *   each side. With pauseMs 0 every client calls back to back, so
 *   the figure is queueing: latency = clients / throughput (Little's law), bounded by the slower
 *   process (the grpc-js clients). pauseMs > 0 paces each client, so it shows the service time
 *   under a load both processes keep up with.
 * - benchWatchMemory: heap + external bytes this process (agent + idle server) holds per open
 *   FetchX509SVID watch stream (1,000 streams on 100 connections, every one past its first
 *   message), after GC; the endpoint's own stream count proves they are open.
 * - benchRotation: wall time from forcing every one of 10,000 cached SVIDs due (rotateAt = 0) to
 *   every one carrying a new serial: the wait for the agent's next tick (it ticks every second),
 *   key generation and CSRs, signing in batches of 500 over the node API on loopback HTTPS (the
 *   server shares this process and its thread), and reading each new SVID's validity.
 */
import * as grpc from '@grpc/grpc-js';
import { type KeyObject, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { sumProcesses, watchProcess, type ProcessFigures } from './bench-process.js';
import { fileURLToPath } from 'node:url';
import { readChildren, readTlv } from '../src/ca/asn1.js';
import { buildCsrDer, newWorkloadKey } from '../src/ca/index.js';
import { issueX509Svids, scopeOf, type SvidRequest } from '../src/server/nodeapi/index.js';
import { ALIAS, TD, createEntries, spawnClient, startServer, startStack, tempDir, uidSelector, waitFor, type ClientChild, type Stack } from './bench-agent-harness.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const gc = () => (globalThis as { gc?: () => void }).gc?.();

/** A CSR's signed part, signature and key, for the raw verify figure. */
function csrParts(der: Buffer): { info: Buffer; sig: Buffer; spki: Buffer } {
  const [infoT, , sigT] = readChildren(der, readTlv(der, 0));
  const info = der.subarray(infoT!.start, infoT!.end);
  const spkiT = readChildren(der, infoT!)[2]!;
  return { info, sig: der.subarray(sigT!.contentStart + 1, sigT!.end), spki: der.subarray(spkiT.start, spkiT.end) };
}

export interface IssuanceFigures {
  issuedPerSec: number;
  /** crypto.verify of a CSR signature with the CSR's SPKI DER as the key (so including the key import every new CSR needs) + crypto.sign. */
  rawVerifySignPerSec: number;
  ratio: number;
  /** The same pairs with each CSR key imported into a KeyObject before timing: signature arithmetic only. */
  rawPreparsedPerSec: number;
  ratioPreparsed: number;
}

/** Pairs per second for about `ms`: verify a CSR's signature (`key` of it) and sign a TBS-sized input. */
function pairRate(ms: number, parts: ReadonlyArray<{ info: Buffer; sig: Buffer }>, key: (i: number) => Parameters<typeof verify>[2], privateKey: KeyObject, tbs: Buffer): number {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 50; i++, n++) {
      const p = parts[n % parts.length]!;
      if (!verify('sha256', p.info, key(n % parts.length), p.sig)) throw new Error('a CSR signature did not verify');
      sign('sha256', tbs, privateKey);
    }
  }
  return n / ((performance.now() - t0) / 1000);
}

export async function benchIssuance(opts: { seconds: number; rounds?: number; entries?: number }): Promise<IssuanceFigures> {
  const tmp = tempDir('writ-bench-issue-');
  const server = await startServer(tmp.dir, false).catch((e: unknown) => {
    tmp.remove();
    throw e;
  });
  try {
    const ctx = server.ctx;
    const now = Math.floor(Date.now() / 1000);
    const agent = { spiffeId: `spiffe://${TD}/writ/agent/bench/issuer`, attestationType: 'bench', serial: '01', expiresAt: now + 3600, selectors: [], banned: false, canReattest: false, createdAt: now, updatedAt: now };
    await ctx.datastore.upsertAgent(agent);
    const ids = await createEntries(server.ctx.datastore, agent.spiffeId, opts.entries ?? 1000, (i) => [{ type: 'unix', value: `uid:${10_000 + i}` }]);
    const scope = await scopeOf(ctx, agent);
    const csrs = Array.from({ length: 1000 }, () => {
      const k = newWorkloadKey();
      return buildCsrDer(k.spki, k.privateKey);
    });
    let k = 0;
    const batch = (): SvidRequest[] => Array.from({ length: 500 }, () => ({ entryId: ids[k % ids.length]!, csr: csrs[k++ % csrs.length]! }));
    const warm = await issueX509Svids(ctx, scope, batch());
    const failed = warm.find((r) => 'error' in r);
    if (failed && 'error' in failed) throw new Error(`issuance failed: ${failed.error.code} ${failed.error.message}`);
    const leaf = warm[0] && 'chain' in warm[0] ? warm[0].chain[0]! : Buffer.alloc(600);

    const parts = csrs.map(csrParts);
    const ders = parts.map((p) => ({ key: p.spki, format: 'der' as const, type: 'spki' as const }));
    const objects = ders.map((d) => createPublicKey(d));
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const tbs = Buffer.alloc(leaf.length - 80, 7);
    const rounds = opts.rounds ?? 3;
    const ms = (opts.seconds * 1000) / rounds / 3;
    const raw: number[] = [];
    const preparsed: number[] = [];
    const issued: number[] = [];
    for (let r = 0; r < rounds; r++) {
      raw.push(pairRate(ms, parts, (i) => ders[i]!, privateKey, tbs));
      preparsed.push(pairRate(ms, parts, (i) => objects[i]!, privateKey, tbs));
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < ms) {
        const out = await issueX509Svids(ctx, scope, batch());
        n += out.length;
        if (out.some((o) => 'error' in o)) throw new Error('issuance failed during the timed loop');
      }
      issued.push(n / ((performance.now() - t0) / 1000));
    }
    const issuedPerSec = median(issued);
    const rawVerifySignPerSec = median(raw);
    const rawPreparsedPerSec = median(preparsed);
    return { issuedPerSec, rawVerifySignPerSec, ratio: issuedPerSec / rawVerifySignPerSec, rawPreparsedPerSec, ratioPreparsed: issuedPerSec / rawPreparsedPerSec };
  } finally {
    await server.stop();
    tmp.remove();
  }
}

/** Runs `fn` with a started stack on a temporary directory; stops the child, stack and removes the directory after. */
async function withStack<T>(prefix: string, syncInterval: string, fn: (s: Stack, child: (c: ClientChild) => ClientChild) => Promise<T>, opts: { serverProcess?: boolean } = {}): Promise<T> {
  const tmp = tempDir(prefix);
  const children: ClientChild[] = [];
  let stack: Stack | undefined;
  try {
    stack = await startStack(tmp.dir, syncInterval, opts);
    return await fn(stack, (c) => (children.push(c), c));
  } finally {
    for (const c of children) await c.stop();
    await stack?.stop();
    tmp.remove();
  }
}

/** One entry for this process's uid under the agent's alias; resolves once the agent has its SVID. */
async function serveThisUid(s: Stack): Promise<void> {
  const [id] = await createEntries(s.datastore, ALIAS, 1, () => [uidSelector()], 'bench-client');
  await waitFor(() => s.agent.cache.svids.has(id!), 30_000, 'the agent to sign the workload SVID');
}

export interface FetchLatency {
  p50Ms: number;
  p99Ms: number;
  calls: number;
  callsPerSec: number;
  /** CPU time per call of this process (agent + idle server) and of the client process, µs. */
  agentCpuUsPerCall: number;
  clientCpuUsPerCall: number;
  /** Longest event-loop delay in the timed phase, ms: of this process (agent + server) and of the clients. */
  agentLoopMaxMs: number;
  clientLoopMaxMs: number;
  /** This process's (agent or bare server) garbage collections and main-thread wait for a CPU in the timed phase. */
  agentProcess: ProcessFigures;
  /** The same, of the client processes (summed; the longest pause of any). */
  clientProcess: ProcessFigures;
  /** Length of the timed phase, ms (the longest client's). */
  wallMs: number;
}

/**
 * Calls per connection stay under 1,000: nghttp2 (Node's HTTP/2) ends a server session with
 * INTERNAL_ERROR once its client has reset more than 1,000 streams plus 33 a second, and every
 * one-shot fetch ends with a reset (the stream has no end of its own).
 */
export interface FetchLatencyOptions {
  clients?: number;
  callsPerClient?: number;
  pauseMs?: number;
  /** The client stack (default grpc-js). */
  client?: 'grpc-js' | 'http2' | 'wire';
  /** Client processes the clients are spread over (default 1): real workloads are separate processes. */
  processes?: number;
  /** Untimed calls each client makes first (default 1), so the timed calls run on warmed-up code. */
  warmCalls?: number;
  /** Run the server as its own process (default true, as in production), else in the agent's process as `writ dev` does. */
  serverProcess?: boolean;
}

/** Latency-mode clients for `socket`: `clients` spread evenly over `processes` children. */
function spawnLatencyClients(socket: string, opts: FetchLatencyOptions, track: (c: ClientChild) => ClientChild): ClientChild[] {
  const clients = opts.clients ?? 100;
  const processes = Math.max(1, Math.min(clients, opts.processes ?? 1));
  const children: ClientChild[] = [];
  for (let i = 0; i < processes; i++) {
    // Clients spread as evenly as they go: 100 over 8 is 13 × 4 + 12 × 4.
    const n = Math.floor(clients / processes) + (i < clients % processes ? 1 : 0);
    children.push(track(spawnClient({ mode: 'latency', socket, clients: n, calls: Math.min(900, opts.callsPerClient ?? 50), pauseMs: opts.pauseMs ?? 0, client: opts.client ?? 'grpc-js', warm: opts.warmCalls ?? 1 })));
  }
  return children;
}

/** Waits for every child's warm-up, starts them together, and measures: latencies from the children, CPU and loop delay of this process. */
async function timeClients(children: ClientChild[]): Promise<FetchLatency> {
  await Promise.all(children.map((c) => c.next<{ warm: number }>()));
  const cpu0 = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const stopWatch = watchProcess();
  for (const c of children) c.send('go');
  const results = await Promise.all(children.map((c) => c.next<{ latencies: number[]; wallMs: number; cpuUs: number; loopMaxMs: number; figures: ProcessFigures }>()));
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  const agentProcess = stopWatch();
  const sorted = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const calls = sorted.length;
  const wallMs = Math.max(...results.map((r) => r.wallMs));
  return {
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    calls,
    callsPerSec: calls / (wallMs / 1000),
    agentCpuUsPerCall: (cpu.user + cpu.system) / calls,
    clientCpuUsPerCall: results.reduce((a, r) => a + r.cpuUs, 0) / calls,
    agentLoopMaxMs: loop.max / 1e6,
    clientLoopMaxMs: Math.max(...results.map((r) => r.loopMaxMs)),
    agentProcess,
    clientProcess: sumProcesses(results.map((r) => r.figures)),
    wallMs,
  };
}

export async function benchFetchLatency(opts: FetchLatencyOptions = {}): Promise<FetchLatency> {
  return withStack('writ-bench-fetch-', '1s', async (s, track) => {
    await serveThisUid(s);
    // From here on sync at the agent's default interval (5 s), not the 1 s used to set up.
    (s.agent.config as { syncInterval: number }).syncInterval = 5;
    return timeClients(spawnLatencyClients(s.socketPath, opts, track));
  }, { serverProcess: opts.serverProcess ?? true });
}

/**
 * The reference for the latency target: the same paced clients against a grpc-js server on a Unix
 * socket in this process whose FetchX509SVID handler only writes a fixed, pre-encoded message (no
 * peer tracking, attestation, cache or agent). What this host gives any grpc-js server.
 */
export async function benchFetchLatencyBare(opts: FetchLatencyOptions = {}): Promise<FetchLatency> {
  const tmp = tempDir('writ-bench-bare-');
  const socket = join(tmp.dir, 'bare.sock');
  // Field 1 (svids), length-delimited, 1,800 bytes of filler: about the size of a real response.
  const body = Buffer.alloc(1803, 0x41);
  body[0] = 0x0a;
  body.writeUInt16BE(0x880e, 1); // varint 1800
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  const passthrough = (b: Buffer) => b;
  server.addService(
    { FetchX509SVID: { path: '/SpiffeWorkloadAPI/FetchX509SVID', requestStream: false, responseStream: true, requestSerialize: passthrough, requestDeserialize: passthrough, responseSerialize: passthrough, responseDeserialize: passthrough } },
    { FetchX509SVID: (call: grpc.ServerWritableStream<Buffer, Buffer>) => void call.write(body) },
  );
  const children: ClientChild[] = [];
  try {
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    return await timeClients(spawnLatencyClients(socket, opts, (c) => (children.push(c), c)));
  } finally {
    for (const c of children) await c.stop();
    server.forceShutdown();
    tmp.remove();
  }
}

export interface WatchMemory {
  streams: number;
  connections: number;
  bytesPerStream: number;
  heapBytesPerStream: number;
  externalBytesPerStream: number;
  totalMb: number;
}

export async function benchWatchMemory(opts: { streams?: number } = {}): Promise<WatchMemory> {
  const wanted = opts.streams ?? 1000;
  const perConnection = 10;
  return withStack('writ-bench-watch-', '1s', async (s, track) => {
    await serveThisUid(s);
    // The gRPC endpoint is the one whose stats() counts streams (the HTTP one counts watches).
    const grpcEndpoint = s.agent.endpoints.find((ep) => ep.stats().streams !== undefined);
    if (!grpcEndpoint) throw new Error('the agent has no gRPC endpoint');
    const streamsOpen = () => grpcEndpoint.stats().streams ?? 0;
    const used = () => {
      gc();
      gc();
      const m = process.memoryUsage();
      return { heap: m.heapUsed, external: m.external };
    };
    const before = used();
    const child = track(spawnClient({ mode: 'hold', socket: s.socketPath, connections: Math.ceil(wanted / perConnection), streamsPerConnection: perConnection }));
    const { open } = await child.next<{ open: number }>();
    await waitFor(() => streamsOpen() >= open, 10_000, 'the endpoint to count every stream');
    const after = used();
    const streams = streamsOpen();
    const heap = after.heap - before.heap;
    const external = after.external - before.external;
    return {
      streams,
      connections: grpcEndpoint.stats().connections,
      bytesPerStream: (heap + external) / streams,
      heapBytesPerStream: heap / streams,
      externalBytesPerStream: external / streams,
      totalMb: (heap + external) / 2 ** 20,
    };
  });
}

export interface Rotation {
  svids: number;
  seconds: number;
  perSec: number;
  /** From forcing to the first new serial (the next tick, then one batch of 500). */
  pickupSeconds: number;
  /** From creating the entries to the agent holding an SVID for each (sync, then signing). */
  initialSeconds: number;
}

export async function benchRotation(opts: { svids?: number } = {}): Promise<Rotation> {
  const n = opts.svids ?? 10_000;
  return withStack('writ-bench-rotate-', '1s', async (s) => {
    const { cache } = s.agent;
    const t0 = performance.now();
    await createEntries(s.datastore, ALIAS, n, (i) => [{ type: 'unix', value: `uid:${200_000 + i}` }], 'rotate');
    await waitFor(() => cache.svids.size >= n, 180_000, `the agent to sign ${n} SVIDs`, 50);
    const initialSeconds = (performance.now() - t0) / 1000;
    const old = new Map([...cache.svids.values()].map((v) => [v.entryId, v.serial]));
    const start = performance.now();
    for (const v of cache.svids.values()) v.rotateAt = 0;
    let pickup = 0;
    await waitFor(
      () => {
        let fresh = 0;
        for (const v of cache.svids.values()) if (v.serial !== old.get(v.entryId)) fresh++;
        if (fresh > 0 && pickup === 0) pickup = performance.now();
        return fresh >= old.size;
      },
      180_000,
      `the agent to rotate ${n} SVIDs`,
      20,
    );
    const seconds = (performance.now() - start) / 1000;
    return { svids: old.size, seconds, perSec: old.size / seconds, pickupSeconds: (pickup - start) / 1000, initialSeconds };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const seconds = Number(process.env.BENCH_SECONDS ?? '3');
  const t0 = performance.now();
  console.log('issuance', await benchIssuance({ seconds }));
  console.log('fetch latency, back to back', await benchFetchLatency({ clients: 100, callsPerClient: 50 }));
  console.log('fetch latency, paced (each client every ~100 ms)', await benchFetchLatency({ clients: 100, callsPerClient: 30, pauseMs: 100 }));
  console.log('watch memory', await benchWatchMemory({ streams: 1000 }));
  console.log('rotation', await benchRotation({ svids: 10_000 }));
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
