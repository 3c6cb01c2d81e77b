/** Garbage-collection figures of this process over a stretch of a benchmark. */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

export interface GcFigures {
  /** Young-generation collections. */
  scavenges: number;
  /** All collection pauses summed, ms. */
  totalMs: number;
  /** The longest pause, ms. */
  maxMs: number;
}

/** Starts counting; the returned function stops and gives the figures since the start. */
export function watchGc(): () => GcFigures {
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
  return () => {
    count(observer.takeRecords());
    observer.disconnect();
    return gc;
  };
}
