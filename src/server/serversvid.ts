/**
 * The server's own X509-SVID (spiffe://<td>/writ/server), which the node API presents to agents.
 * Minted by the server's CA with a fresh key, renewed at half its life (or when the signing CA
 * changes), and handed to listeners as PEM so they can swap it with setSecureContext() without
 * dropping connections.
 */
import { newWorkloadKey, type Authority } from '../ca/index.js';
import { encodePem } from '../bundle/index.js';
import type { Clock } from '../clock.js';

export const SERVER_ID_PATH = '/writ/server';

export interface ServerTlsMaterial {
  spiffeId: string;
  /** Leaf and signing CA, PEM. */
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  /** The trust domain's roots, PEM (to verify agents' client certificates). */
  caPem: string;
  notAfter: Date;
  serial: string;
}

export class ServerSvid {
  #current: ServerTlsMaterial | undefined;
  #issuer = '';
  #renewAt = 0;
  readonly #listeners = new Set<(m: ServerTlsMaterial) => void>();

  constructor(
    private readonly authority: Authority,
    private readonly clock: Clock,
    private readonly ttl: number,
  ) {}

  get spiffeId(): string {
    return `spiffe://${this.authority.trustDomain}${SERVER_ID_PATH}`;
  }

  current(): ServerTlsMaterial {
    if (!this.#current) throw new Error('ServerSvid.refresh() has not run');
    return this.#current;
  }

  onChange(fn: (m: ServerTlsMaterial) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Mints a new SVID when there is none, at half life, or when the signing CA or roots changed. */
  async refresh(): Promise<boolean> {
    const ca = this.authority.signingCa();
    const roots = this.authority.x509Authorities();
    const caPem = roots.map((d) => encodePem('CERTIFICATE', d)).join('');
    const now = this.clock.nowMs();
    if (this.#current && this.#issuer === ca.ski && now < this.#renewAt && this.#current.caPem === caPem) return false;
    const key = newWorkloadKey();
    const svid = await this.authority.mintX509Svid({ spiffeId: this.spiffeId, publicKey: key.spki, ttl: this.ttl, dnsNames: ['localhost'] });
    this.#current = {
      spiffeId: this.spiffeId,
      certPem: svid.chain.map((d) => encodePem('CERTIFICATE', d)).join(''),
      keyPem: encodePem('PRIVATE KEY', key.pkcs8),
      caPem,
      notAfter: svid.notAfter,
      serial: svid.serial,
    };
    this.#issuer = ca.ski;
    this.#renewAt = svid.notBefore.getTime() + (svid.notAfter.getTime() - svid.notBefore.getTime()) / 2;
    for (const fn of this.#listeners) fn(this.#current);
    return true;
  }
}
