/**
 * What the agent benchmarks share: a real server and a real agent in this process (as `writ dev`
 * runs them) on a temporary directory, temporary Unix sockets and a kernel-chosen loopback port;
 * bulk entry creation; polling; and the workload client child process (bench-agent-client.ts),
 * spoken to in JSON lines. Every start has a stop that undoes it, safe to call on any failure.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { validateAgentConfig } from '../src/agent/config.js';
import { WritAgent } from '../src/agent/agent.js';
import { writeFileAtomic } from '../src/ca/diskkeys.js';
import type { NewEntry, Selector } from '../src/datastore/index.js';
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
  server: WritServer;
  agent: WritAgent;
  socketPath: string;
  stop(): Promise<void>;
}

/** Server + agent attested with a join token that makes it the node alias ALIAS; waits until ready. */
export async function startStack(dir: string, syncInterval = '1s'): Promise<Stack> {
  const server = await startServer(dir, true);
  let agent: WritAgent | undefined;
  const stop = async () => {
    await agent?.stop();
    await server.stop();
  };
  try {
    const token = randomBytes(24).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    await server.ctx.datastore.createJoinToken({ tokenHash: createHash('sha256').update(token).digest('hex'), expiresAt: now + 600, spiffeId: ALIAS, createdAt: now, usedAt: null });
    const agentDir = join(dir, 'agent');
    mkdirSync(agentDir, { recursive: true, mode: 0o700 });
    const bundlePath = join(agentDir, 'bootstrap-bundle.pem');
    writeFileAtomic(bundlePath, server.ctx.bundlePem(), 0o644, agentDir);
    const socketPath = join(dir, 'api.sock');
    const config = validateAgentConfig(
      {
        trust_domain: TD,
        data_dir: agentDir,
        server_address: `127.0.0.1:${server.nodeApiAddress!.port}`,
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
    return { server, agent: a, socketPath, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Creates `n` entries parented to `parentId` in batches; entry i gets `selectorsOf(i)`. */
export async function createEntries(server: WritServer, parentId: string, n: number, selectorsOf: (i: number) => Selector[], prefix = 'workload'): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < n; start += 1000) {
    const batch: NewEntry[] = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      batch.push({ spiffeId: `spiffe://${TD}/${prefix}/${i}`, parentId, selectors: selectorsOf(i), x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null });
    }
    for (const e of await server.ctx.datastore.createEntries(batch)) ids.push(e.id);
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
