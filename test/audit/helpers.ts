/** Helpers for the audit tests: temp dirs, a second process, coded errors. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuditLog, type AuditInput } from '../../src/audit/index.js';
import { ManualClock } from '../../src/clock.js';
import { isWritError } from '../../src/errors.js';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

/** Temporary directories, each removed by remove() (call it in after()). */
export class TempDir {
  private readonly paths: string[] = [];
  async make(): Promise<string> {
    const p = await mkdtemp(join(tmpdir(), 'writ-audit-'));
    this.paths.push(p);
    return p;
  }
  async remove(): Promise<void> {
    for (const p of this.paths.splice(0)) await rm(p, { recursive: true, force: true });
  }
}

/** Runs test/audit/child.ts in a new node process; killed by the caller or after 20 s. */
export function child(mode: 'try' | 'hold' | 'spam', path: string): { proc: ChildProcessWithoutNullStreams; out: () => string; done: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, path], { stdio: 'pipe' });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const done = new Promise<number | null>((resolve) => proc.on('close', (code) => (clearTimeout(timer), resolve(code))));
  return { proc, out: () => out, done };
}

export async function codeOfAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isWritError(e) ? e.code : `not coded: ${String(e)}`;
  }
}

export function sampleInput(i: number): AuditInput {
  const kinds = ['entry.create', 'agent.attest', 'svid.issue', 'task.start', 'task.end', 'revoke', 'policy.decision'];
  return {
    kind: kinds[i % kinds.length]!,
    actors: {
      requester: { id: i % 3 === 0 ? 'alice' : 'carol', authenticatedBy: 'os-user' },
      approver: { id: 'bob', authenticatedBy: 'oidc', issuer: 'https://login.example.org' },
      agent: `spiffe://example.org/agent/${i % 2 === 0 ? 'summarizer' : 'indexer'}`,
      task: `t-${i % 5}`,
    },
    decision: { effect: i % 4 === 0 ? 'deny' : 'allow', policyIds: ['p1'], reason: 'r' },
    details: { i, note: `record ${i} — ünïcode`, list: [1, 2, { deep: true }] },
  };
}

/** A log of `n` sample records, one a second from 2026-01-01, closed. */
export async function writeSampleLog(path: string, n: number): Promise<void> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const log = await AuditLog.open(path, { clock });
  try {
    for (let i = 0; i < n; i++) {
      await log.append(sampleInput(i));
      clock.advance(1000);
    }
  } finally {
    await log.close();
  }
}
