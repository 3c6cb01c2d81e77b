/**
 * `npm run bench`: speed figures measured in one run on this machine, printed with their ratios.
 * Targets are checked here and reported, never asserted in timed tests (the machine is shared).
 */
import { benchDatastore } from './bench-datastore.js';
import { benchMint } from './bench-mint.js';

interface Row {
  name: string;
  value: string;
  target?: string;
  ok?: boolean;
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? '3');
  const rows: Row[] = [];

  const mint = await benchMint({ seconds });
  rows.push({ name: 'crypto.sign P-256 signatures/s', value: mint.signPerSec.toFixed(0) });
  rows.push({ name: 'leaf X509-SVIDs minted/s', value: mint.mintPerSec.toFixed(0) });
  rows.push({ name: 'mint / sign ratio', value: mint.ratio.toFixed(3), target: '>= 0.4', ok: mint.ratio >= 0.4 });

  const entries = Number(process.env.BENCH_ENTRIES ?? '100000');
  const ds = await benchDatastore({ entries, seconds: Math.max(1, seconds / 2) });
  rows.push({ name: `SQLite entries created/s (${ds.entries} in batches)`, value: ds.createPerSec.toFixed(0) });
  rows.push({ name: `selector subset lookups/s at ${ds.entries} entries`, value: ds.subsetLookupsPerSec.toFixed(0) });
  rows.push({ name: `by-parent lookups/s at ${ds.entries} entries`, value: ds.parentLookupsPerSec.toFixed(0) });

  const width = Math.max(...rows.map((r) => r.name.length));
  console.log(`writ bench (node ${process.version}, ${seconds} s per CA figure, one thread)`);
  for (const r of rows) {
    const t = r.target ? `   target ${r.target}: ${r.ok ? 'met' : 'NOT MET'}` : '';
    console.log(`  ${r.name.padEnd(width)}  ${r.value.padStart(10)}${t}`);
  }
  if (rows.some((r) => r.ok === false)) process.exitCode = 1;
}

await main();
