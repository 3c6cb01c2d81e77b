/**
 * What a benchmark's process went through over a stretch: its garbage collections, and how long
 * its main thread waited for a CPU (the kernel's schedstat; Linux, zeros elsewhere). On a shared
 * host that wait, not the code, sets a latency tail: every wakeup of an event loop first waits for
 * the scheduler (and in a VM for the host to run an idle vCPU again).
 */
import { readFileSync } from 'node:fs';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

export interface GcFigures {
  /** Young-generation collections. */
  scavenges: number;
  /** All collection pauses summed, ms. */
  totalMs: number;
  /** The longest pause, ms. */
  maxMs: number;
}

export interface SchedFigures {
  /** Time the main thread was runnable but not running, ms. */
  runDelayMs: number;
  /** Times it was put on a CPU. */
  timeslices: number;
}

export interface ProcessFigures {
  gc: GcFigures;
  sched: SchedFigures;
}

function schedstat(): [number, number] {
  try {
    const [, delay, slices] = readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ').map(Number);
    return [delay ?? 0, slices ?? 0];
  } catch {
    return [0, 0];
  }
}

/** Starts measuring (call it on the main thread); the returned function stops and gives the figures since the start. */
export function watchProcess(): () => ProcessFigures {
  const gc: GcFigures = { scavenges: 0, totalMs: 0, maxMs: 0 };
  const count = (entries: PerformanceEntry[]) => {
    for (const e of entries) {
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.scavenges++;
      gc.totalMs += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  const [delay0, slices0] = schedstat();
  return () => {
    const [delay1, slices1] = schedstat();
    count(observer.takeRecords());
    observer.disconnect();
    return { gc, sched: { runDelayMs: (delay1 - delay0) / 1e6, timeslices: slices1 - slices0 } };
  };
}

/** Several processes' figures as one: counts and times summed, the longest pause of any. */
export function sumProcesses(all: readonly ProcessFigures[]): ProcessFigures {
  const sum = (f: (p: ProcessFigures) => number) => all.reduce((a, p) => a + f(p), 0);
  return {
    gc: { scavenges: sum((p) => p.gc.scavenges), totalMs: sum((p) => p.gc.totalMs), maxMs: Math.max(0, ...all.map((p) => p.gc.maxMs)) },
    sched: { runDelayMs: sum((p) => p.sched.runDelayMs), timeslices: sum((p) => p.sched.timeslices) },
  };
}
