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

export interface ServerHandle {
  dir: string;
  socketPath: string;
  healthPort: number;
  proc: ChildProcess;
  /** Every JSON log line the server printed so far. */
  logs: Array<Record<string, unknown>>;
  cli(args: string[], opts?: RunOptions): Promise<CliResult>;
  /** SIGTERM, wait (bounded), SIGKILL if needed; resolves with the exit code. */
  stop(): Promise<number | null>;
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
    ...extraConfig,
    admin: { socket_path: socketPath, ...(extraConfig.admin as Record<string, unknown> | undefined) },
  };
  const configPath = join(dir, 'server.json');
  writeFileSync(configPath, JSON.stringify(config));
  const proc = spawn(process.execPath, [WRIT_BIN, 'server', 'run', '--config', configPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  let buffered = '';
  let exited: number | null | undefined;
  const exitPromise = new Promise<number | null>((r) => proc.on('exit', (code) => {
    exited = code;
    r(code);
  }));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<number>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    proc.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.event === 'ready') {
            clearTimeout(timer);
            resolveReady(Number(String(rec.health).split(':').pop()));
          }
        } catch {
          // not a log line
        }
      }
    });
    void exitPromise.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before ready; stderr: ${stderr}`));
    });
  });
  const stop = async (): Promise<number | null> => {
    if (exited !== undefined) return exited;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    const code = await exitPromise;
    clearTimeout(killer);
    return code;
  };
  const cleanup = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  let healthPort: number;
  try {
    healthPort = await ready;
  } catch (e) {
    await cleanup();
    throw e;
  }
  return {
    dir,
    socketPath,
    healthPort,
    proc,
    logs,
    cli: (args, opts = {}) => runWrit([...args, '--socket-path', socketPath], opts),
    stop,
    cleanup,
  };
}
