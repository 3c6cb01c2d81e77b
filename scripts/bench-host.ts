/**
 * What this host takes away from a running thread, measured on the spot so that latency figures
 * can be read against it: a child process spins on performance.now() for `ms` milliseconds and
 * records every gap between two readings longer than 0.25 ms. A spinning thread never sleeps, so
 * a gap is time it was not running: either the guest kernel ran something else on its CPU (which
 * the thread's own /proc/thread-self/schedstat run delay counts) or the host did not run the
 * virtual CPU at all (which the guest cannot see: this machine reports no steal time). The
 * difference of the two is the host's share.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

export interface HostStalls {
  /** How long the thread spun. */
  spinMs: number;
  /** Gaps longer than 1 ms and 5 ms, and the longest. */
  gapsOver1Ms: number;
  gapsOver5Ms: number;
  longestMs: number;
  /** All gaps over 0.25 ms, summed. */
  lostMs: number;
  /** Of which the guest scheduler ran something else (schedstat run delay). */
  guestRunDelayMs: number;
}

/** Nanoseconds the calling thread has waited runnable for a CPU (second field of schedstat). */
function runDelayNs(): number {
  return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1] ?? 0);
}

/** The spin itself, in this thread; no allocation inside the loop. */
export function spin(ms: number): HostStalls {
  const gaps = new Float64Array(1 << 16);
  let n = 0;
  const delay0 = runDelayNs();
  const start = performance.now();
  let last = start;
  for (;;) {
    const now = performance.now();
    const gap = now - last;
    last = now;
    if (gap > 0.25 && n < gaps.length) gaps[n++] = gap;
    if (now - start >= ms) break;
  }
  const guestRunDelayMs = (runDelayNs() - delay0) / 1e6;
  let over1 = 0;
  let over5 = 0;
  let longest = 0;
  let lost = 0;
  for (let i = 0; i < n; i++) {
    const g = gaps[i]!;
    lost += g;
    if (g > 1) over1++;
    if (g > 5) over5++;
    if (g > longest) longest = g;
  }
  return { spinMs: last - start, gapsOver1Ms: over1, gapsOver5Ms: over5, longestMs: longest, lostMs: lost, guestRunDelayMs };
}

/** Spins in a fresh child process (nothing else on its event loop) and returns what it saw. */
export async function benchHostStalls(opts: { ms: number }): Promise<HostStalls> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [fileURLToPath(import.meta.url), '--json', String(opts.ms)], { timeout: opts.ms + 30_000 }, (e, stdout) => (e ? reject(e) : resolve(stdout))),
  );
  return JSON.parse(out.trim().split('\n').pop()!) as HostStalls;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const ms = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3000);
  // A short spin first so that the loop is optimized before it is measured.
  spin(200);
  const r = spin(ms > 0 ? ms : 3000);
  console.log(process.argv.includes('--json') ? JSON.stringify(r) : r);
}
