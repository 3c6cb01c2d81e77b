/**
 * Datastore speed figures: builds a temporary SQLite store with N registration entries (created
 * in batches of 10,000), then measures selector-subset lookups (what the agent asks for one
 * workload) and by-parent lookups per second. Figures are reported, never asserted; the store
 * and its directory are removed afterwards. `scripts/bench.ts` wires it into `npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { systemClock } from '../src/clock.js';
import { silentLogger } from '../src/log.js';
import { openDataStore, type NewEntry, type Selector } from '../src/datastore/index.js';

export interface DatastoreBenchResult {
  entries: number;
  createPerSec: number;
  subsetLookupsPerSec: number;
  parentLookupsPerSec: number;
}

const TD = 'spiffe://bench.example';
const BATCH = 10_000;
const UIDS = 1000;
const GIDS = 13;
const PARENTS = 500;

/** Entry i's selectors: one to three, shaped like unix/k8s attestor output. */
function selectorsOf(i: number): Selector[] {
  const out: Selector[] = [{ type: 'unix', value: `uid:${i % UIDS}` }];
  if (i % 3 >= 1) out.push({ type: 'unix', value: `gid:${i % GIDS}` });
  if (i % 3 === 2) out.push({ type: 'k8s', value: `ns:ns${i % 5}` });
  return out;
}

function entryOf(i: number): NewEntry {
  return {
    spiffeId: `${TD}/workload/${i}`,
    parentId: `${TD}/agent/n${i % PARENTS}`,
    selectors: selectorsOf(i),
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    hint: '',
    admin: false,
    downstream: false,
    federatesWith: [],
    expiresAt: null,
  };
}

/** A small deterministic generator, so runs are comparable. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

/** Runs `op` repeatedly for about `seconds` and returns operations per second. */
async function rate(seconds: number, op: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let count = 0;
  const start = performance.now();
  while (performance.now() < end) {
    await op();
    count += 1;
  }
  return count / ((performance.now() - start) / 1000);
}

export async function benchDatastore(opts: { entries: number; seconds?: number } = { entries: 100_000 }): Promise<DatastoreBenchResult> {
  const total = opts.entries;
  const seconds = opts.seconds ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-datastore-'));
  const store = await openDataStore({ type: 'sqlite', path: join(dir, 'bench.sqlite3') }, { clock: systemClock, logger: silentLogger });
  try {
    let createMs = 0;
    for (let start = 0; start < total; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, total - start) }, (_, k) => entryOf(start + k));
      const t0 = performance.now();
      await store.createEntries(batch);
      createMs += performance.now() - t0;
    }
    const createPerSec = total / (createMs / 1000);

    const next = lcg(42);
    const subsetLookupsPerSec = await rate(seconds, () => {
      const r = next();
      // a workload's attested selectors: its uid and gid, a namespace and a pid no entry uses
      const set: Selector[] = [
        { type: 'unix', value: `uid:${r % UIDS}` },
        { type: 'unix', value: `gid:${r % GIDS}` },
        { type: 'k8s', value: `ns:ns${r % 5}` },
        { type: 'unix', value: `pid:${r % 30000}` },
      ];
      return store.listEntries({ selectors: { set, match: 'subset' } });
    });
    const parentLookupsPerSec = await rate(seconds, () => store.listEntries({ parentId: `${TD}/agent/n${next() % PARENTS}` }));
    return { entries: total, createPerSec, subsetLookupsPerSec, parentLookupsPerSec };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
