/**
 * Leaf minting against raw signing, in the same run on one thread: `crypto.sign` P-256 signatures
 * per second over a TBS-sized input, and X509-SVIDs per second through Authority.mintX509Svid
 * (template encoding, serial, SKI, signature, for a workload key already taken from a CSR).
 * The two are measured in alternating rounds and the median round of each is reported.
 */
import { createECDH, generateKeyPairSync, sign } from 'node:crypto';
import { ManualClock } from '../src/clock.js';
import { silentLogger } from '../src/log.js';
import { Authority, LeafKey, MemoryKeyManager, type CaSlotStore } from '../src/ca/index.js';
import type { CaSlotRecord } from '../src/datastore/index.js';

const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

function slotStore(): CaSlotStore {
  const m = new Map<string, CaSlotRecord>();
  return {
    listCaSlots: async (kind) => [...m.values()].filter((r) => !kind || r.kind === kind),
    putCaSlot: async (r) => void m.set(`${r.kind}/${r.slot}`, r),
    deleteCaSlot: async (kind, slot) => void m.delete(`${kind}/${slot}`),
  };
}

/** Workload public keys as a CSR would carry them (SPKI DER built from the raw point). */
function workloadKeys(n: number): LeafKey[] {
  const out: LeafKey[] = [];
  for (let i = 0; i < n; i++) {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    out.push(LeafKey.from(Buffer.concat([P256_SPKI_PREFIX, ecdh.getPublicKey()])));
  }
  return out;
}

async function rate(seconds: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
  }
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchMint(opts: { seconds: number; rounds?: number }): Promise<{ signPerSec: number; mintPerSec: number; ratio: number; leafBytes: number }> {
  const clock = new ManualClock(Date.now());
  const authority = await Authority.load({
    config: { trustDomain: 'bench.example', caTtl: 86400, rootTtl: 30 * 86400 },
    keyManager: new MemoryKeyManager(),
    store: slotStore(),
    clock,
    logger: silentLogger,
  });
  await authority.rotate();
  const keys = workloadKeys(1000);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const sample = await authority.mintX509Svid({ spiffeId: 'spiffe://bench.example/agent/a', publicKey: keys[0]!, ttl: 3600 });
  const tbsSized = Buffer.alloc(sample.chain[0]!.length - 80, 7);

  let k = 0;
  const rounds = opts.rounds ?? 3;
  const per = opts.seconds / rounds;
  const signs: number[] = [];
  const mints: number[] = [];
  for (let r = 0; r < rounds; r++) {
    signs.push(await rate(per / 2, () => sign('sha256', tbsSized, privateKey)));
    mints.push(
      await rate(per / 2, () => authority.mintX509Svid({ spiffeId: `spiffe://bench.example/agent/a/task/${k}`, publicKey: keys[k++ % keys.length]!, ttl: 3600, dnsNames: [] })),
    );
  }
  const signPerSec = median(signs);
  const mintPerSec = median(mints);
  return { signPerSec, mintPerSec, ratio: mintPerSec / signPerSec, leafBytes: sample.chain[0]!.length };
}
