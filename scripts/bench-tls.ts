/**
 * mTLS through the library against plain node:tls, in the same run on one thread: full mutual
 * TLS handshakes per CPU second (server and client in this process, loopback, no session resumption,
 * a few connections at a time) with mtlsServerOptions + applyPeerCheck and mtlsClientOptions, and
 * with the same certificates configured by hand (ca/cert/key/requestCert/rejectUnauthorized, one
 * client SecureContext). A handshake counts when the client has read one byte the server wrote
 * from 'secureConnection', so the server's checks are included. Rounds alternate; medians are
 * reported. Also: peer verification calls per second on a 2-certificate chain, uncached and cached.
 *
 *   npx tsx scripts/bench-tls.ts          (BENCH_SECONDS, default 6)
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { BundleSet, X509Bundle, encodePem } from '../src/bundle/index.js';
import { Authority, MemoryKeyManager, type CaSlotStore, newWorkloadKey } from '../src/ca/index.js';
import { systemClock } from '../src/clock.js';
import type { CaSlotRecord } from '../src/datastore/index.js';
import { silentLogger } from '../src/log.js';
import { parseTrustDomain } from '../src/spiffeid/index.js';
import { parseX509Svid, type X509Svid } from '../src/svid/index.js';
import { type TlsSource, applyPeerCheck, authorizeId, authorizeMatch, mtlsClientOptions, mtlsServerOptions, verifyPeer } from '../src/tls/index.js';
import { verifySnapshotPeer } from '../src/tls/peer.js';
import { tlsStateOf } from '../src/tls/state.js';

function slotStore(): CaSlotStore {
  const m = new Map<string, CaSlotRecord>();
  return {
    listCaSlots: async (kind) => [...m.values()].filter((r) => !kind || r.kind === kind),
    putCaSlot: async (r) => void m.set(`${r.kind}/${r.slot}`, r),
    deleteCaSlot: async (kind, slot) => void m.delete(`${kind}/${slot}`),
  };
}

function fixedSource(svid: X509Svid, bundles: BundleSet): TlsSource {
  return { getX509Svid: () => svid, bundles: () => bundles, getCrls: () => [], on: () => undefined, off: () => undefined };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Handshakes per CPU second of this process (server and client both run here) for `seconds`,
 * `concurrency` at a time: CPU time, not wall time, so other load on the machine counts less.
 */
async function handshakes(port: number, seconds: number, concurrency: number, connectOpts: tls.ConnectionOptions): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ ...connectOpts, host: '127.0.0.1', port });
      s.once('data', () => {
        n++;
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return n / ((cpu.user + cpu.system) / 1e6);
}

function rate(seconds: number, fn: () => unknown): number {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
  }
  return n / ((performance.now() - t0) / 1000);
}

export interface TlsBenchResult {
  libraryPerSec: number;
  plainPerSec: number;
  ratio: number;
  verifyPerSec: number;
  verifyCachedPerSec: number;
}

export async function benchTls(opts: { seconds: number; rounds?: number; concurrency?: number }): Promise<TlsBenchResult> {
  const authority = await Authority.load({
    config: { trustDomain: 'bench.example', caTtl: 86400, rootTtl: 30 * 86400 },
    keyManager: new MemoryKeyManager(),
    store: slotStore(),
    clock: systemClock,
    logger: silentLogger,
  });
  await authority.rotate();
  const mint = async (id: string) => {
    const key = newWorkloadKey();
    const m = await authority.mintX509Svid({ spiffeId: id, publicKey: key.spki, ttl: 3600 });
    return { svid: parseX509Svid(m.chain, key.pkcs8), cert: m.chain.map((c) => encodePem('CERTIFICATE', c)).join(''), key: encodePem('PRIVATE KEY', key.pkcs8), chain: m.chain };
  };
  const serverSvid = await mint('spiffe://bench.example/service/api');
  const clientSvid = await mint('spiffe://bench.example/agent/a/task/1');
  const bundles = new BundleSet([new X509Bundle(parseTrustDomain('bench.example'), authority.x509Authorities())]);
  const ca = authority.x509Authorities().map((r) => encodePem('CERTIFICATE', r));
  const tasks = authorizeMatch('spiffe://bench.example/agent/*/task/*');

  const serverSource = fixedSource(serverSvid.svid, bundles);
  const lib = tls.createServer(mtlsServerOptions(serverSource, tasks), (s) => s.end('x'));
  applyPeerCheck(lib, serverSource, tasks);
  const plain = tls.createServer({ cert: serverSvid.cert, key: serverSvid.key, ca, requestCert: true, rejectUnauthorized: true }, (s) => s.end('x'));
  for (const s of [lib, plain]) s.on('tlsClientError', () => undefined);
  await Promise.all([lib, plain].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
  const portOf = (s: tls.Server): number => (s.address() as AddressInfo).port;

  const libClient = mtlsClientOptions(fixedSource(clientSvid.svid, bundles), authorizeId('spiffe://bench.example/service/api'));
  const plainClient: tls.ConnectionOptions = {
    secureContext: tls.createSecureContext({ cert: clientSvid.cert, key: clientSvid.key, ca }),
    checkServerIdentity: () => undefined, // an SVID names no host; by hand there is nothing else to check
  };
  const rounds = opts.rounds ?? 7;
  const per = opts.seconds / rounds / 2;
  const concurrency = opts.concurrency ?? 4;
  await handshakes(portOf(lib), 0.3, concurrency, libClient); // warm up both paths
  await handshakes(portOf(plain), 0.3, concurrency, plainClient);
  const libRates: number[] = [];
  const plainRates: number[] = [];
  try {
    // Each round starts on a collected heap (with --expose-gc), so garbage left by earlier work is
    // not charged to whichever side runs next.
    const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
    for (let r = 0; r < rounds; r++) {
      gc();
      plainRates.push(await handshakes(portOf(plain), per, concurrency, plainClient));
      gc();
      libRates.push(await handshakes(portOf(lib), per, concurrency, libClient));
    }
  } finally {
    libClient.agent.destroy();
    await Promise.all([lib, plain].map((s) => new Promise((r) => s.close(r))));
  }

  const snapshot = tlsStateOf(serverSource).snapshot();
  const verifyPerSec = rate(1, () => verifyPeer(clientSvid.chain, bundles, tasks));
  const verifyCachedPerSec = rate(1, () => verifySnapshotPeer(snapshot, clientSvid.chain, tasks, systemClock, 'client'));
  const libraryPerSec = median(libRates);
  const plainPerSec = median(plainRates);
  return { libraryPerSec, plainPerSec, ratio: libraryPerSec / plainPerSec, verifyPerSec, verifyCachedPerSec };
}

/**
 * benchTls in a fresh `node --expose-gc` child process (this file), so neither side inherits the
 * heap, JIT state or leftover work of benchmarks that ran before it in the caller's process.
 */
export async function benchTlsInChild(opts: { seconds: number }): Promise<TlsBenchResult> {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--json'], { env: { ...process.env, BENCH_SECONDS: String(opts.seconds) }, timeout: 120_000 }, (e, stdout) => (e ? reject(e) : resolve(stdout))),
  );
  return JSON.parse(out.trim().split('\n').pop()!) as TlsBenchResult;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchTls({ seconds: Number(process.env.BENCH_SECONDS ?? '6') });
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(r));
    process.exit(0);
  }
  console.log(`library mTLS handshakes/CPU-s  ${r.libraryPerSec.toFixed(0)}`);
  console.log(`plain node:tls handshakes/CPU-s ${r.plainPerSec.toFixed(0)}`);
  console.log(`library / plain                ${r.ratio.toFixed(3)}   (target >= 0.9)`);
  console.log(`verifyPeer calls/s (2 certs)   ${r.verifyPerSec.toFixed(0)} uncached, ${r.verifyCachedPerSec.toFixed(0)} cached`);
}
