/**
 * Shared setup for the CA tests: an authority on a real SQLite datastore in a temporary directory,
 * driven by a ManualClock, and a bounded openssl runner.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { Authority, MemoryKeyManager, type AuthorityConfig, type KeyManager } from '../../src/ca/index.js';
import { openDataStore, type DataStore } from '../../src/datastore/index.js';

export const TD = 'example.org';
export const HOUR = 3600;
export const DAY = 86400;
export const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

export interface CaFixture {
  dir: string;
  clock: ManualClock;
  store: DataStore;
  keyManager: KeyManager;
  authority: Authority;
  /** Opens a second Authority on the same store and key manager (a restart). */
  reopen(keyManager?: KeyManager): Promise<Authority>;
  cleanup(): Promise<void>;
}

export async function caFixture(opts: { config?: Partial<AuthorityConfig>; keyManager?: (dir: string) => KeyManager; start?: number } = {}): Promise<CaFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-ca-'));
  const clock = new ManualClock(opts.start ?? T0);
  const store = await openDataStore({ type: 'sqlite', path: join(dir, 'ds.sqlite3') }, { clock, logger: silentLogger });
  const keyManager = opts.keyManager?.(dir) ?? new MemoryKeyManager();
  const config: AuthorityConfig = { trustDomain: TD, caTtl: DAY, rootTtl: 30 * DAY, ...opts.config };
  const open = async (km: KeyManager) => Authority.load({ config, keyManager: km, store, clock, logger: silentLogger });
  const authority = await open(keyManager);
  await authority.rotate();
  return {
    dir,
    clock,
    store,
    keyManager,
    authority,
    reopen: (km = keyManager) => open(km),
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function workloadKey(kind: 'P-256' | 'P-384' | 'RSA-2048' = 'P-256'): { privateKey: KeyObject; publicKey: KeyObject } {
  if (kind === 'RSA-2048') return generateKeyPairSync('rsa', { modulusLength: 2048 });
  return generateKeyPairSync('ec', { namedCurve: kind === 'P-256' ? 'prime256v1' : 'secp384r1' });
}

export const pem = (der: Buffer): string => new X509Certificate(der).toString();

export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version'], { timeout: 10_000 }).status === 0;
}

/** Marks the running test or hook pending and says why on standard error. */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  process.stderr.write(`      (pending: ${reason})\n`);
  ctx.skip();
}

export const OPENSSL_MISSING = 'openssl is not installed (apt-get install openssl)';

/** Runs openssl with a 30 s bound; returns exit status and output. */
export function openssl(args: string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Writes files into `dir` and returns their paths. */
export function writeFiles(dir: string, files: Record<string, string | Buffer>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, data] of Object.entries(files)) {
    out[name] = join(dir, name);
    writeFileSync(out[name], data);
  }
  return out;
}
