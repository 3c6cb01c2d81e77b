/**
 * Real processes for end-to-end tests: a `writ server run` child on a temporary socket and a
 * loopback port chosen by the kernel, and `writ` CLI invocations against it. Everything is
 * bounded in time and cleaned up by stop(), also after failures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const WRIT_BIN = join(ROOT, 'bin', 'writ.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  uid?: number;
  gid?: number;
  stdin?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs `writ ARGS` to completion (killed after timeoutMs). */
export function runWrit(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [WRIT_BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

export interface WritProcess {
  proc: ChildProcess;
  /** Every JSON log line the process printed so far. */
  logs: Array<Record<string, unknown>>;
  /** Standard error so far. */
  stderr(): string;
  /** Resolves with the first log record for which `match` holds (rejects after timeoutMs or at exit). */
  waitForLog(match: (rec: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** The exit code once the process has exited; undefined while it runs. */
  exitCode(): number | null | undefined;
  exited: Promise<number | null>;
  /** SIGTERM, wait (bounded), SIGKILL if needed; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Spawns `writ ARGS` with JSON logs on stdout; `readyEvent` is awaited before resolving. */
export async function spawnWrit(args: string[], readyEvent: string, opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<WritProcess> {
  const proc = spawn(process.execPath, [WRIT_BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }> = [];
  let stderr = '';
  let buffered = '';
  let code: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    proc.on('exit', (c) => {
      code = c;
      r(c);
    }),
  );
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(rec);
      for (const w of [...waiters]) {
        if (w.match(rec)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
      }
    }
  });
  const waitForLog = (match: (rec: Record<string, unknown>) => boolean, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const found = logs.find(match);
      if (found) return resolve(found);
      if (code !== undefined) return reject(new Error(`process exited with ${code}; stderr: ${stderr}`));
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      waiters.push({
        match,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
      void exited.then((c) => {
        clearTimeout(timer);
        reject(new Error(`process exited with ${c} while waiting; stderr: ${stderr}`));
      });
    });
  const stop = async (): Promise<number | null> => {
    if (code !== undefined) return code;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    const c = await exited;
    clearTimeout(killer);
    return c;
  };
  const handle: WritProcess = { proc, logs, stderr: () => stderr, waitForLog, exitCode: () => code, exited, stop };
  try {
    await waitForLog((r) => r.event === readyEvent, opts.timeoutMs ?? 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return handle;
}

export interface ServerHandle extends WritProcess {
  dir: string;
  socketPath: string;
  configPath: string;
  healthPort: number;
  nodePort: number;
  cli(args: string[], opts?: RunOptions): Promise<CliResult>;
  /** Starts the server again on the same config (after stop()). */
  restart(): Promise<ServerHandle>;
  cleanup(): Promise<void>;
}

/** Starts `writ server run` with a temporary data dir, socket and config; waits until ready. */
export async function startServer(extraConfig: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<ServerHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-e2e-'));
  chmodSync(dir, 0o755);
  const socketPath = join(dir, 'admin.sock');
  const config = {
    trust_domain: 'example.org',
    data_dir: join(dir, 'data'),
    log_level: 'info',
    health: { port: 0 },
    node_api: { port: 0 },
    ...extraConfig,
    admin: { socket_path: socketPath, ...(extraConfig.admin as Record<string, unknown> | undefined) },
  };
  const configPath = join(dir, 'server.json');
  writeFileSync(configPath, JSON.stringify(config));
  const launch = async (): Promise<ServerHandle> => {
    let p: WritProcess;
    try {
      p = await spawnWrit(['server', 'run', '--config', configPath], 'ready', { timeoutMs });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const ready = p.logs.find((r) => r.event === 'ready')!;
    const portOf = (v: unknown) => Number(String(v).split(':').pop());
    return {
      ...p,
      dir,
      socketPath,
      configPath,
      healthPort: portOf(ready.health),
      nodePort: portOf(ready.node_api),
      cli: (args, opts = {}) => runWrit([...args, '--socket-path', socketPath], opts),
      restart: launch,
      cleanup: async () => {
        await p.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
  return launch();
}

export interface AgentHandle extends WritProcess {
  dir: string;
  configPath: string;
  socketPath: string;
  httpSocketPath: string;
  agentId: string;
  /** `writ api ...` against this agent's socket (add `--socket-path` for you). */
  api(args: string[], opts?: RunOptions): Promise<CliResult>;
  restart(): Promise<AgentHandle>;
  cleanup(): Promise<void>;
}

export interface AgentOptions {
  /** A node alias the join token also grants (`token generate --spiffe-id`). */
  alias?: string;
  /** Replaces the join_token attestor (e.g. x509pop). */
  nodeAttestor?: { name: string; config: Record<string, unknown> };
  syncInterval?: string;
  extra?: Record<string, unknown>;
  timeoutMs?: number;
  /** The log event to wait for; default agent.ready. */
  readyEvent?: string;
}

/** Starts `writ agent run` against `server`, attesting with a fresh join token; waits until ready. */
export async function startAgent(server: ServerHandle, opts: AgentOptions = {}): Promise<AgentHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-agent-e2e-'));
  chmodSync(dir, 0o755);
  let nodeAttestor = opts.nodeAttestor;
  if (!nodeAttestor) {
    const tok = await server.cli(['token', 'generate', '--output', 'json', ...(opts.alias ? ['--spiffe-id', opts.alias] : [])]);
    if (tok.code !== 0) throw new Error(`token generate failed: ${tok.stderr}`);
    nodeAttestor = { name: 'join_token', config: { token: (JSON.parse(tok.stdout) as { token: string }).token } };
  }
  const bundle = await server.cli(['bundle', 'show', '--format', 'pem']);
  if (bundle.code !== 0) throw new Error(`bundle show failed: ${bundle.stderr}`);
  const bundlePath = join(dir, 'bootstrap.pem');
  writeFileSync(bundlePath, bundle.stdout);
  const socketPath = join(dir, 'api.sock');
  const httpSocketPath = join(dir, 'api-http.sock');
  const config = {
    trust_domain: 'example.org',
    data_dir: join(dir, 'state'),
    log_level: 'debug',
    server_address: `127.0.0.1:${server.nodePort}`,
    trust_bundle_path: bundlePath,
    socket_path: socketPath,
    http_socket_path: httpSocketPath,
    sync_interval: opts.syncInterval ?? '1s',
    node_attestor: nodeAttestor,
    workload_attestors: [{ name: 'unix', config: {} }],
    ...opts.extra,
  };
  const configPath = join(dir, 'agent.json');
  writeFileSync(configPath, JSON.stringify(config));
  const launch = async (): Promise<AgentHandle> => {
    const p = await spawnWrit(['agent', 'run', '--config', configPath], opts.readyEvent ?? 'agent.ready', { timeoutMs: opts.timeoutMs ?? 30_000 });
    const ready = p.logs.find((r) => r.event === (opts.readyEvent ?? 'agent.ready'));
    return {
      ...p,
      dir,
      configPath,
      socketPath,
      httpSocketPath,
      agentId: String(ready?.agent_id ?? ''),
      api: (args, o = {}) => runWrit(['api', ...args, '--socket-path', socketPath], o),
      restart: launch,
      cleanup: async () => {
        await p.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
  try {
    return await launch();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
