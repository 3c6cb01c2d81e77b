/**
 * Shared fixtures for the Workload API endpoint tests: a real in-test WorkloadHandler (selectors
 * from the real peer's uid, gid and pid; identities from a selector table; X509-SVIDs and
 * JWT-SVIDs minted by a real Authority on SQLite; notify() pushes to subscribers), temporary
 * socket directories reachable by other uids, and bounded waits.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { JwtBundle, jwkFromPublicKey } from '../../../src/bundle/index.js';
import type { Selector } from '../../../src/datastore/types.js';
import { WritError } from '../../../src/errors.js';
import { parseAndValidateJwtSvid } from '../../../src/svid/jwt/index.js';
import { parseTrustDomain } from '../../../src/spiffeid/index.js';
import type { JwtSvidState, PeerProcess, WorkloadHandler, X509BundlesState, X509State, X509SvidState } from '../../../src/agent/workload/index.js';
import { caFixture, type CaFixture } from '../../ca/helpers.js';

export const TD = 'example.org';
export const PARTNER_TD = 'partner.org';

interface Identity {
  spiffeId: string;
  hint: string;
}

/** A WorkloadHandler over a real CA: grant(selector, id) and the caller with that selector gets it. */
export class TestWorkloadHandler implements WorkloadHandler {
  isReady = true;
  /** Every process attest() was asked about, in order. */
  readonly attested: PeerProcess[] = [];
  /** When set, attest() throws it (or calls it). */
  attestHook: ((peer: PeerProcess) => Promise<void>) | undefined;
  /** When set, x509State() throws it: an internal failure of the cache. */
  x509Failure: Error | undefined;
  readonly #table = new Map<string, Identity[]>();
  readonly #svids = new Map<string, X509SvidState>();
  readonly #listeners = new Set<() => void>();
  #crls: Buffer[] = [];

  private constructor(
    readonly ca: CaFixture,
    readonly partner: CaFixture,
  ) {}

  static async create(): Promise<TestWorkloadHandler> {
    const [ca, partner] = await Promise.all([caFixture({ start: Date.now() }), caFixture({ start: Date.now(), config: { trustDomain: PARTNER_TD } })]);
    const h = new TestWorkloadHandler(ca, partner);
    h.#crls = (await ca.authority.crls([])).map((c) => c.der);
    return h;
  }

  async cleanup(): Promise<void> {
    await Promise.all([this.ca.cleanup(), this.partner.cleanup()]);
  }

  /** Forgets every grant and every listener-independent setting. */
  reset(): void {
    this.#table.clear();
    this.isReady = true;
    this.attestHook = undefined;
    this.x509Failure = undefined;
    this.attested.length = 0;
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  async #mint(spiffeId: string, hint: string): Promise<X509SvidState> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const minted = await this.ca.authority.mintX509Svid({ spiffeId, publicKey, ttl: 3600 });
    return {
      spiffeId,
      certificates: minted.chain,
      privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }),
      bundle: this.ca.authority.x509Authorities(),
      hint,
    };
  }

  /** Gives `spiffeId` to callers with `selector` ("unix:uid:0"); does not notify. */
  async grant(selector: string, spiffeId: string, hint = ''): Promise<void> {
    const list = this.#table.get(selector) ?? [];
    list.push({ spiffeId, hint });
    this.#table.set(selector, list);
    if (!this.#svids.has(spiffeId)) this.#svids.set(spiffeId, await this.#mint(spiffeId, hint));
  }

  revoke(selector: string): void {
    this.#table.delete(selector);
  }

  /** Re-mints the X509-SVID of `spiffeId` (a new key and serial); does not notify. */
  async rotate(spiffeId: string): Promise<void> {
    const old = this.#svids.get(spiffeId);
    this.#svids.set(spiffeId, await this.#mint(spiffeId, old?.hint ?? ''));
  }

  /** Tells every subscriber the cache changed. */
  notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  ready(): boolean {
    return this.isReady;
  }

  async attest(peer: PeerProcess): Promise<Selector[]> {
    this.attested.push({ ...peer });
    if (this.attestHook) await this.attestHook(peer);
    return [
      { type: 'unix', value: `uid:${peer.uid}` },
      { type: 'unix', value: `gid:${peer.gid}` },
      { type: 'test', value: `pid:${peer.pid}` },
    ];
  }

  #identities(selectors: readonly Selector[]): Identity[] {
    const seen = new Set<string>();
    const out: Identity[] = [];
    for (const s of selectors) {
      for (const id of this.#table.get(`${s.type}:${s.value}`) ?? []) {
        if (!seen.has(id.spiffeId)) out.push(id);
        seen.add(id.spiffeId);
      }
    }
    return out;
  }

  x509State(selectors: readonly Selector[]): X509State {
    if (this.x509Failure) throw this.x509Failure;
    const svids = this.#identities(selectors).map((i) => this.#svids.get(i.spiffeId)!);
    return { svids, crls: [...this.#crls], federatedBundles: new Map([[PARTNER_TD, this.partner.authority.x509Authorities()]]) };
  }

  x509Bundles(selectors: readonly Selector[]): X509BundlesState {
    if (this.#identities(selectors).length === 0) throw new WritError('ERR_WORKLOAD_NO_IDENTITY', 'no identity issued');
    return {
      bundles: new Map([
        [TD, this.ca.authority.x509Authorities()],
        [PARTNER_TD, this.partner.authority.x509Authorities()],
      ]),
      crls: [...this.#crls],
    };
  }

  #jwtBundle(): JwtBundle {
    return new JwtBundle(
      parseTrustDomain(TD),
      this.ca.authority.jwtAuthorities().map((a) => [a.kid, jwkFromPublicKey(a.publicKey)] as const),
    );
  }

  jwtBundles(selectors: readonly Selector[]): Map<string, string> {
    if (this.#identities(selectors).length === 0) throw new WritError('ERR_WORKLOAD_NO_IDENTITY', 'no identity issued');
    return new Map([[TD, this.#jwtBundle().marshal()]]);
  }

  subscribe(listener: () => void): () => void {
    const l = () => listener();
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  async fetchJwtSvids(selectors: readonly Selector[], audience: readonly string[], spiffeId?: string): Promise<JwtSvidState[]> {
    const ids = this.#identities(selectors).filter((i) => spiffeId === undefined || i.spiffeId === spiffeId);
    if (ids.length === 0) throw new WritError('ERR_WORKLOAD_NO_IDENTITY', 'no identity issued');
    return Promise.all(
      ids.map(async (i) => {
        const t = await this.ca.authority.mintJwtSvid({ spiffeId: i.spiffeId, audience, ttl: 300, claims: { 'writ.test': 'yes' } });
        return { spiffeId: i.spiffeId, token: t.token, hint: i.hint };
      }),
    );
  }

  async validateJwtSvid(_selectors: readonly Selector[], token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    const svid = parseAndValidateJwtSvid(token, this.#jwtBundle(), [audience], { now: new Date(this.ca.clock.nowMs()) });
    return { spiffeId: svid.id.toString(), claims: svid.claims };
  }
}

/** A temporary directory other uids can enter (sockets inside get mode 0777 from the endpoint). */
export function socketDir(prefix: string): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves with `p`, or rejects after `ms` naming `what`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `cond` every 10 ms for at most `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Number of pidfds this process holds (entries of /proc/self/fd that are pidfd inodes). */
export function countPidfds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).includes('pidfd')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Number of /proc/<pid>/status files this process holds open (one per tracked connection). */
export function countStatusFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (/^\/proc\/\d+\/status$/.test(readlinkSync(`/proc/self/fd/${fd}`))) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Whether tests may switch uid (spawn as 65534). */
export const isRoot = (): boolean => process.getuid?.() === 0;

/** Marks the running test pending and says why on standard error. */
export function pendingBecause(ctx: Mocha.Context, reason: string): never {
  process.stderr.write(`      (pending: ${reason})\n`);
  ctx.skip();
}

const PASSER = `
const net = require('node:net');
const c = net.connect(process.argv[1]);
c.pause(); // never read: the bytes the server sends belong to whoever receives this socket
c.on('connect', () => process.send('connected'));
process.on('message', (m) => {
  if (m === 'send') process.send('socket', c, { keepOpen: false }, () => process.exit(0));
});
`;

/**
 * A connected socket to `path` whose SO_PEERCRED names a process that has exited: a child
 * connects, waits until `accepted()` says the endpoint tracked the connection (so its pidfd and
 * start time were recorded while it ran), hands the socket to us over IPC and exits.
 */
export async function socketOfExitedProcess(path: string, accepted: () => boolean): Promise<{ socket: Socket; pid: number }> {
  const child = spawn(process.execPath, ['-e', PASSER, path], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    await within(new Promise<void>((resolve, reject) => {
      child.once('message', (m) => (m === 'connected' ? resolve() : reject(new Error(String(m)))));
      child.once('exit', () => reject(new Error('the socket-passing child exited early')));
    }), 10_000, 'the child to connect');
    await waitFor(accepted, 10_000, 'the endpoint to track the connection');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const socket = await within(new Promise<Socket>((resolve, reject) => {
      child.once('message', (m, handle) => (m === 'socket' && handle instanceof Socket ? resolve(handle) : reject(new Error('no socket was passed'))));
      child.send('send');
    }), 10_000, 'the passed socket');
    await within(exited, 10_000, 'the child to exit');
    return { socket, pid: child.pid! };
  } finally {
    child.kill('SIGKILL');
  }
}

/** Splits concatenated DER (certificates as the Workload API sends them) into its elements. */
export function splitDer(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] !== 0x30) throw new Error(`no DER SEQUENCE at byte ${pos}`);
    const first = buf[pos + 1]!;
    let len = first;
    let head = 2;
    if (first & 0x80) {
      const n = first & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i]!;
      head = 2 + n;
    }
    if (pos + head + len > buf.length) throw new Error('truncated DER');
    out.push(buf.subarray(pos, pos + head + len));
    pos += head + len;
  }
  return out;
}
