/**
 * What the agent benchmarks share: a real server and a real agent in this process (as `writ dev`
 * runs them) on a temporary directory, temporary Unix sockets and a kernel-chosen loopback port;
 * bulk entry creation; polling; and the workload client child process (bench-agent-client.ts),
 * spoken to in JSON lines. Every start has a stop that undoes it, safe to call on any failure.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { validateAgentConfig } from '../src/agent/config.js';
import { WritAgent } from '../src/agent/agent.js';
import { writeFileAtomic } from '../src/ca/diskkeys.js';
import { type DataStore, type NewEntry, type Selector, SqliteDataStore } from '../src/datastore/index.js';
import { systemClock } from '../src/clock.js';
import { silentLogger } from '../src/log.js';
import { validateServerConfig } from '../src/server/config.js';
import { WritServer } from '../src/server/server.js';

export const TD = 'bench.example';
export const ALIAS = `spiffe://${TD}/host/bench`;
export const SVID_TTL = '1h';

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A server with the given node API setting on a temporary data dir and admin socket. */
export async function startServer(dir: string, nodeApi: boolean): Promise<WritServer> {
  const config = validateServerConfig(
    {
      trust_domain: TD,
      data_dir: join(dir, 'server'),
      default_x509_svid_ttl: SVID_TTL,
      admin: { socket_path: join(dir, 'admin.sock') },
      health: { enabled: false },
      node_api: nodeApi ? { port: 0 } : { enabled: false },
      ca: { key_manager: 'memory' },
    },
    'bench',
  );
  return WritServer.start(config, { logger: silentLogger });
}

export interface Stack {
  /** The server, when it runs in this process (otherwise see `serverPid`). */
  server?: WritServer;
  /** The pid of `writ server run` when the server runs in its own process. */
  serverPid?: number;
  /** The server's datastore (a second connection to its SQLite file when the server runs apart). */
  datastore: DataStore;
  agent: WritAgent;
  socketPath: string;
  stop(): Promise<void>;
}

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'writ.js');

/**
 * `writ server run` in its own process, as production runs it, on the same settings as
 * startServer; resolves with its node API port once it logs "ready". The datastore is its SQLite
 * file (WAL: this process writes join tokens and entries through a second connection).
 * BENCH_SERVER_NODE_ARGS adds node flags (e.g. --cpu-prof).
 */
async function startServerProcess(dir: string): Promise<{ child: ChildProcess; port: number; datastorePath: string }> {
  const dataDir = join(dir, 'server');
  const configPath = join(dir, 'server.json');
  const config = { trust_domain: TD, data_dir: dataDir, default_x509_svid_ttl: SVID_TTL, admin: { socket_path: join(dir, 'admin.sock') }, health: { enabled: false }, node_api: { port: 0 }, ca: { key_manager: 'memory' } };
  writeFileSync(configPath, JSON.stringify(config));
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'server', 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server process did not log "ready" within 30 s')), 30_000);
      child.once('exit', (code) => reject(new Error(`the server process exited (code ${code}) before it was ready`)));
      lines.on('line', (l) => {
        let rec: { event?: string; node_api?: string } | undefined;
        try {
          rec = JSON.parse(l) as typeof rec;
        } catch {
          return;
        }
        if (rec?.event !== 'ready') return;
        clearTimeout(timer);
        resolve(Number(String(rec.node_api).split(':').pop()));
      });
    });
    return { child, port, datastorePath: join(dataDir, 'datastore.sqlite3') };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Server + agent attested with a join token that makes it the node alias ALIAS; waits until ready.
 * `serverProcess`: the server runs as its own `writ server run` process (the agent alone shares
 * this process with the bench), else in this process as `writ dev` runs them.
 */
export async function startStack(dir: string, syncInterval = '1s', opts: { serverProcess?: boolean } = {}): Promise<Stack> {
  let server: WritServer | undefined;
  let proc: ChildProcess | undefined;
  let datastore: DataStore | undefined;
  let agent: WritAgent | undefined;
  const stop = async () => {
    await agent?.stop();
    if (server) await server.stop();
    if (proc) {
      await datastore?.close();
      await stopProcess(proc);
    }
  };
  try {
    let port: number;
    let bundlePem: string;
    if (opts.serverProcess) {
      const started = await startServerProcess(dir);
      proc = started.child;
      port = started.port;
      datastore = await SqliteDataStore.open(started.datastorePath, { clock: systemClock, logger: silentLogger });
      const own = await datastore.getBundle(TD);
      if (!own) throw new Error('the server process has not published its bundle');
      bundlePem = own.document; // the agent takes SPIFFE bundle JSON as well as PEM
    } else {
      server = await startServer(dir, true);
      datastore = server.ctx.datastore;
      port = server.nodeApiAddress!.port;
      bundlePem = server.ctx.bundlePem();
    }
    const token = randomBytes(24).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    await datastore.createJoinToken({ tokenHash: createHash('sha256').update(token).digest('hex'), expiresAt: now + 600, spiffeId: ALIAS, createdAt: now, usedAt: null });
    const agentDir = join(dir, 'agent');
    mkdirSync(agentDir, { recursive: true, mode: 0o700 });
    const bundlePath = join(agentDir, opts.serverProcess ? 'bootstrap-bundle.json' : 'bootstrap-bundle.pem');
    writeFileAtomic(bundlePath, bundlePem, 0o644, agentDir);
    const socketPath = join(dir, 'api.sock');
    const config = validateAgentConfig(
      {
        trust_domain: TD,
        data_dir: agentDir,
        server_address: `127.0.0.1:${port}`,
        trust_bundle_path: bundlePath,
        socket_path: socketPath,
        sync_interval: syncInterval,
        node_attestor: { name: 'join_token', config: { token } },
        workload_attestors: [{ name: 'unix', config: {} }],
      },
      'bench',
    );
    agent = await WritAgent.start(config, { logger: silentLogger });
    const a = agent;
    await waitFor(() => a.identity !== undefined && a.cache.bundle !== undefined, 30_000, 'the agent to attest');
    await a.ready;
    return { ...(server ? { server } : {}), ...(proc?.pid !== undefined ? { serverPid: proc.pid } : {}), datastore, agent: a, socketPath, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Creates `n` entries parented to `parentId` in batches; entry i gets `selectorsOf(i)`. */
export async function createEntries(store: Pick<DataStore, 'createEntries'>, parentId: string, n: number, selectorsOf: (i: number) => Selector[], prefix = 'workload'): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < n; start += 1000) {
    const batch: NewEntry[] = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      batch.push({ spiffeId: `spiffe://${TD}/${prefix}/${i}`, parentId, selectors: selectorsOf(i), x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null });
    }
    for (const e of await store.createEntries(batch)) ids.push(e.id);
  }
  return ids;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `everyMs` until it holds; throws after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const uidSelector = (): Selector => ({ type: 'unix', value: `uid:${process.getuid?.() ?? 0}` });

export interface ClientChild {
  /** The next JSON line the child prints. */
  next<T>(): Promise<T>;
  /** Writes one line to the child's stdin. */
  send(line: string): void;
  /** Asks the child to close its streams and exit; kills it if it does not within 5 s. */
  stop(): Promise<void>;
}

/** Spawns dist/scripts/bench-agent-client.js with `args` (JSON in argv); BENCH_CLIENT_NODE_ARGS adds node flags (e.g. --cpu-prof). */
export function spawnClient(args: Record<string, unknown>): ClientChild {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'bench-agent-client.js');
  const nodeArgs = (process.env.BENCH_CLIENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, script, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: Array<{ resolve(l: string): void; reject(e: Error): void }> = [];
  let ended: Error | undefined;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w.resolve(l);
    else lines.push(l);
  });
  child.once('exit', (code, signal) => {
    ended = new Error(`the bench client exited (code ${code}, signal ${signal})`);
    for (const w of waiting.splice(0)) w.reject(ended);
  });
  return {
    next: <T>() =>
      new Promise<string>((resolve, reject) => {
        const l = lines.shift();
        if (l !== undefined) resolve(l);
        else if (ended) reject(ended);
        else waiting.push({ resolve, reject });
      }).then((l) => JSON.parse(l) as T),
    send: (line) => void child.stdin?.write(`${line}\n`),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
