/**
 * Fixtures for the mTLS tests: trust domains with writ's own CA (in memory, on the real clock),
 * SVIDs minted by it, a source object whose SVID, bundles and CRLs a test sets, and loopback
 * servers and clients that are always closed.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Server as NetServer } from 'node:net';
import { BundleSet, X509Bundle, encodePem } from '../../src/bundle/index.js';
import { Authority, MemoryKeyManager, type CaSlotStore, type MintedX509Svid, newWorkloadKey } from '../../src/ca/index.js';
import { type Clock, systemClock } from '../../src/clock.js';
import type { CaSlotRecord } from '../../src/datastore/index.js';
import { silentLogger } from '../../src/log.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { type X509Svid, parseX509Svid } from '../../src/svid/index.js';
import type { TlsSource } from '../../src/tls/index.js';
import { type CertSpec, EKU, KU, type TestCert, makeCert, makeRoot, newKey } from '../svid/pki.js';

function slotStore(): CaSlotStore {
  const m = new Map<string, CaSlotRecord>();
  return {
    listCaSlots: async (kind) => [...m.values()].filter((r) => !kind || r.kind === kind),
    putCaSlot: async (r) => void m.set(`${r.kind}/${r.slot}`, r),
    deleteCaSlot: async (kind, slot) => void m.delete(`${kind}/${slot}`),
  };
}

export interface Minted {
  svid: X509Svid;
  minted: MintedX509Svid;
  /** PEM chain and PKCS#8 key, for hand-configured node:tls peers and openssl. */
  certPem: string;
  keyPem: string;
}

/** One trust domain's CA: a root and a signing CA from writ's Authority. */
export class TestCa {
  private constructor(
    readonly trustDomain: string,
    readonly authority: Authority,
  ) {}

  /** `clock`: the CA's clock (a ManualClock in the past mints SVIDs that have expired by now). */
  static async create(trustDomain: string, clock: Clock = systemClock): Promise<TestCa> {
    const authority = await Authority.load({
      config: { trustDomain, caTtl: 86400, rootTtl: 30 * 86400 },
      keyManager: new MemoryKeyManager(),
      store: slotStore(),
      clock,
      logger: silentLogger,
    });
    await authority.rotate();
    return new TestCa(trustDomain, authority);
  }

  async mint(spiffeId: string, ttl = 3600, dnsNames?: string[]): Promise<Minted> {
    const key = newWorkloadKey();
    const minted = await this.authority.mintX509Svid({ spiffeId, publicKey: key.spki, ttl, ...(dnsNames ? { dnsNames } : {}) });
    return {
      svid: parseX509Svid(minted.chain, key.pkcs8),
      minted,
      certPem: minted.chain.map((c) => encodePem('CERTIFICATE', c)).join(''),
      keyPem: encodePem('PRIVATE KEY', key.pkcs8),
    };
  }

  roots(): Buffer[] {
    return this.authority.x509Authorities();
  }

  rootsPem(): string {
    return this.roots().map((r) => encodePem('CERTIFICATE', r)).join('');
  }

  x509Bundle(): X509Bundle {
    return new X509Bundle(parseTrustDomain(this.trustDomain), this.roots());
  }

  /** The CRLs of this CA's signing CAs, listing `revoked`. */
  async crls(revoked: Minted[]): Promise<Buffer[]> {
    const rows = revoked.map((m) => ({ serial: m.minted.serial, issuerSki: m.minted.issuerSki, revokedAt: Math.floor(m.minted.notBefore.getTime() / 1000), notAfter: Math.floor(m.minted.notAfter.getTime() / 1000), reason: 'test' }));
    return (await this.authority.crls(rows)).map((c) => c.der);
  }
}

/** A bundle set with `cas`' roots per trust domain (several CAs of one trust domain are merged). */
export function bundleSetOf(...cas: TestCa[]): BundleSet {
  const byTd = new Map<string, Buffer[]>();
  for (const ca of cas) byTd.set(ca.trustDomain, [...(byTd.get(ca.trustDomain) ?? []), ...ca.roots()]);
  return new BundleSet([...byTd].map(([td, roots]) => new X509Bundle(parseTrustDomain(td), roots)));
}

/** A TlsSource a test drives: set() changes the state and fires 'update'. */
export class FakeSource implements TlsSource {
  #svid: X509Svid | undefined;
  #bundles: BundleSet;
  #crls: Buffer[];
  readonly #listeners = new Set<() => void>();
  updates = 0;

  constructor(init: { svid?: X509Svid; bundles: BundleSet; crls?: Buffer[] }) {
    this.#svid = init.svid;
    this.#bundles = init.bundles;
    this.#crls = init.crls ?? [];
  }

  set(change: { svid?: X509Svid | null; bundles?: BundleSet; crls?: Buffer[] }): void {
    if (change.svid !== undefined) this.#svid = change.svid ?? undefined;
    if (change.bundles) this.#bundles = change.bundles;
    if (change.crls) this.#crls = change.crls;
    this.updates++;
    for (const fn of [...this.#listeners]) fn();
  }

  getX509Svid(): X509Svid {
    if (!this.#svid) throw new Error('no SVID');
    return this.#svid;
  }

  bundles(): BundleSet {
    return this.#bundles;
  }

  getCrls(): Buffer[] {
    return this.#crls;
  }

  on(_event: 'update', fn: () => void): this {
    this.#listeners.add(fn);
    return this;
  }

  off(_event: 'update', fn: () => void): this {
    this.#listeners.delete(fn);
    return this;
  }
}

/** Closes servers (and their connections) registered during a test. */
export class Cleanup {
  readonly #fns: Array<() => void | Promise<void>> = [];

  add(fn: () => void | Promise<void>): void {
    this.#fns.push(fn);
  }

  server<T extends NetServer>(server: T): T {
    this.add(async () => {
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
    });
    return server;
  }

  async run(): Promise<void> {
    for (const fn of this.#fns.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // best effort: the next cleanup still runs
      }
    }
  }
}

/** Listens on 127.0.0.1, port 0; returns the port. */
export async function listen(server: NetServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export interface RawOutcome {
  /** What the client saw, in order: 'secureConnect', 'data:<text>', 'end', 'error:<code>'. */
  events: string[];
  serverCertSerial?: string;
}

/**
 * A hand-configured node:tls client (cert/key/ca given directly, host names not checked) that
 * writes `send` after the handshake and collects what happens until the socket closes (10 s max).
 */
export async function rawClient(port: number, opts: { cert?: string; key?: string; ca: string; send?: string; maxVersion?: tls.SecureVersion; servername?: string }): Promise<RawOutcome> {
  const events: string[] = [];
  const out: RawOutcome = { events };
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: opts.ca,
    ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
    ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
    ...(opts.servername ? { servername: opts.servername } : {}),
    checkServerIdentity: () => undefined,
  });
  socket.on('secureConnect', () => {
    events.push('secureConnect');
    out.serverCertSerial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase();
    if (opts.send !== undefined) socket.write(opts.send);
  });
  socket.on('data', (d: Buffer) => events.push(`data:${d.toString()}`));
  socket.on('end', () => events.push('end'));
  socket.on('error', (e: NodeJS.ErrnoException) => events.push(`error:${e.code ?? e.message}`));
  const timer = setTimeout(() => socket.destroy(), 10_000);
  await new Promise<void>((r) => socket.once('close', () => r())); // not events.once: it rejects on 'error'
  clearTimeout(timer);
  return out;
}

/** Lower-case hex without leading zeros, to compare serials from different APIs. */
export const bareSerial = (s: string): string => s.toLowerCase().replace(/^0+/, '');

/** A certificate built by hand (test/svid/pki.ts), for peers that break a rule on purpose. */
export interface HandMade {
  certPem: string;
  keyPem: string;
  chain: Buffer[];
}

/** A leaf issued by `issuer` (defaults: EKU serverAuth+clientAuth, keyUsage digitalSignature). */
export async function handMadeLeaf(issuer: TestCert, spec: CertSpec): Promise<HandMade> {
  const leaf = await makeCert({ eku: [EKU.serverAuth, EKU.clientAuth], ...spec }, await newKey('P-256'), issuer);
  return { certPem: leaf.pem + '\n', keyPem: encodePem('PRIVATE KEY', leaf.key.pkcs8), chain: [leaf.der] };
}

/** A root for `td` made by hand, whose DER can be put in a bundle. */
export async function handMadeRoot(td: string): Promise<TestCert> {
  return makeRoot(td);
}

export { KU };
