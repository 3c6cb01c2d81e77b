/**
 * How long this process's main thread waited for a CPU over a stretch of a benchmark, from the
 * kernel's schedstat (Linux; all zeros elsewhere). On a shared host that wait, not the code, sets a
 * latency tail: every wakeup of an event loop first waits for the scheduler (and in a VM for the
 * host to run an idle vCPU again).
 */
import { readFileSync } from 'node:fs';

export interface SchedFigures {
  /** Time runnable but not running, ms. */
  runDelayMs: number;
  /** Times the thread was put on a CPU. */
  timeslices: number;
}

function read(): [number, number] {
  try {
    const [, delay, slices] = readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ').map(Number);
    return [delay ?? 0, slices ?? 0];
  } catch {
    return [0, 0];
  }
}

/** Starts measuring the calling thread; the returned function gives the figures since the start. */
export function watchSched(): () => SchedFigures {
  const [d0, s0] = read();
  return () => {
    const [d1, s1] = read();
    return { runDelayMs: (d1 - d0) / 1e6, timeslices: s1 - s0 };
  };
}
