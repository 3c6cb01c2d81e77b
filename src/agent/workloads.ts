/**
 * What the Workload API endpoints ask the agent: the caller's selectors from the workload
 * attestors (all run in parallel), and the SVIDs, bundles and JWT-SVIDs of the entries whose
 * selectors are a subset of them. JWT-SVIDs are cached per (entry, audience set) until half their
 * life; if the server is unreachable a still-valid cached token is served.
 */
import type { Selector } from '../datastore/types.js';
import { BundleSet } from '../bundle/index.js';
import type { Clock } from '../clock.js';
import { WritError, isWritError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ProcessFacts, WorkloadAttestor } from '../plugins/workloadattestor/types.js';
import { parseSpiffeId } from '../spiffeid/index.js';
import { parseAndValidateJwtSvid } from '../svid/index.js';
import type { AgentCache } from './cache.js';
import type { JwtSvidState, PeerProcess, WorkloadHandler, X509BundlesState, X509State } from './workload/handler.js';
import type { NodeClient } from './nodeclient.js';

const NO_IDENTITY = () => new WritError('ERR_WORKLOAD_NO_IDENTITY', 'no identity issued');
export const MAX_JWT_CACHE = 10_000;

export class AgentWorkloads implements WorkloadHandler {
  readonly #jwt = new Map<string, { token: string; issuedAt: number; expiresAt: number }>();

  constructor(
    private readonly cache: AgentCache,
    private readonly attestors: readonly WorkloadAttestor[],
    private readonly client: NodeClient,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly opts: { allowUnauthenticatedVerifiers?: boolean } = {},
  ) {}

  /** The entries of a verifier (bundles, validation): ERR_WORKLOAD_NO_IDENTITY for none unless allowed. */
  #verifierEntries(selectors: readonly Selector[]) {
    const entries = this.cache.matching(selectors);
    if (!this.cache.bundle || (entries.length === 0 && !this.opts.allowUnauthenticatedVerifiers)) throw NO_IDENTITY();
    return entries;
  }

  ready(): boolean {
    return this.cache.bundle !== undefined;
  }

  /**
   * All attestors in parallel. As SPIRE does, one that fails is logged and the others' selectors are
   * used (fewer selectors can only match fewer entries); when every attestor fails, so does the call.
   */
  async attest(peer: PeerProcess): Promise<Selector[]> {
    // The start time read at accept (verifySamePeer proves the process is still that one) saves the unix attestor a /proc read per call.
    const facts: ProcessFacts = {
      ...(peer.startTime !== undefined ? { startTime: peer.startTime } : {}),
      ...(peer.statusFd !== undefined && peer.statusFd >= 0 ? { statusFd: peer.statusFd } : {}),
    };
    if (this.attestors.length === 1) {
      // The usual case (unix alone), without allSettled's per-call arrays and promises.
      const only = this.attestors[0]!;
      try {
        return await only.attest(peer.pid, facts);
      } catch (e) {
        this.#attestorFailed(only, peer.pid, e);
        throw new WritError('ERR_WORKLOAD_ATTESTATION', 'workload attestation failed');
      }
    }
    const results = await Promise.allSettled(this.attestors.map((a) => a.attest(peer.pid, facts)));
    const out: Selector[] = [];
    let ok = 0;
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') {
        ok++;
        out.push(...r.value);
      } else {
        this.#attestorFailed(this.attestors[i], peer.pid, r.reason);
      }
    }
    if (ok === 0) throw new WritError('ERR_WORKLOAD_ATTESTATION', 'workload attestation failed');
    return out;
  }

  #attestorFailed(attestor: WorkloadAttestor | undefined, pid: number, e: unknown): void {
    this.logger.warn({ attestor: attestor?.name, pid, reason: e instanceof Error ? e.message : String(e) }, 'a workload attestor failed');
  }

  #svids(selectors: readonly Selector[]) {
    const now = this.clock.nowMs();
    return this.cache
      .matching(selectors)
      .map((e) => ({ entry: e, svid: this.cache.svids.get(e.id) }))
      .filter((x) => x.svid !== undefined && x.svid.notAfter > now);
  }

  #federatedFor(federatesWith: Iterable<string>): Map<string, Buffer[]> {
    const out = new Map<string, Buffer[]>();
    for (const td of federatesWith) {
      const b = this.cache.federated.get(td);
      if (b) out.set(td, b.x509Authorities);
    }
    return out;
  }

  x509State(selectors: readonly Selector[]): X509State {
    const own = this.cache.bundle?.x509Authorities ?? [];
    const hints = new Set<string>();
    const svids: X509State['svids'] = [];
    const federates = new Set<string>();
    for (const { entry, svid } of this.#svids(selectors)) {
      // Hints are unique within a response: the oldest entry's SVID wins.
      if (entry.hint !== '' && hints.has(entry.hint)) continue;
      if (entry.hint !== '') hints.add(entry.hint);
      svids.push({ spiffeId: entry.spiffeId, certificates: svid!.chain, privateKey: svid!.key, bundle: own, hint: entry.hint, notAfter: svid!.notAfter });
      for (const td of entry.federatesWith) federates.add(td);
    }
    return { svids, crls: svids.length ? this.cache.crls : [], federatedBundles: svids.length ? this.#federatedFor(federates) : new Map() };
  }

  x509Bundles(selectors: readonly Selector[]): X509BundlesState {
    const entries = this.#verifierEntries(selectors);
    const bundles = this.#federatedFor(new Set(entries.flatMap((e) => e.federatesWith)));
    bundles.set(this.cache.trustDomain, this.cache.bundle!.x509Authorities);
    return { bundles, crls: this.cache.crls };
  }

  jwtBundles(selectors: readonly Selector[]): Map<string, string> {
    const out = new Map<string, string>();
    for (const b of this.#jwtBundlesFor(selectors)) out.set(b.trustDomain.name, b.jwtBundle().marshal());
    return out;
  }

  /** The own bundle, then those of the trust domains the caller's entries federate with. */
  #jwtBundlesFor(selectors: readonly Selector[]) {
    const entries = this.#verifierEntries(selectors);
    const out = [this.cache.bundle!];
    for (const td of new Set(entries.flatMap((e) => e.federatesWith))) {
      const b = this.cache.federated.get(td);
      if (b) out.push(b);
    }
    return out;
  }

  subscribe(listener: () => void): () => void {
    return this.cache.subscribe(listener);
  }

  async fetchJwtSvids(selectors: readonly Selector[], audience: readonly string[], spiffeId?: string): Promise<JwtSvidState[]> {
    if (audience.length === 0 || audience.some((a) => a.length === 0)) throw new WritError('ERR_INPUT_INVALID', 'audience must hold at least one non-empty value.');
    const wanted = spiffeId === undefined || spiffeId === '' ? undefined : parseSpiffeId(spiffeId).toString();
    const entries = this.cache.matching(selectors).filter((e) => wanted === undefined || e.spiffeId === wanted);
    if (entries.length === 0) throw NO_IDENTITY();
    const aud = [...audience];
    const out: JwtSvidState[] = [];
    for (const e of entries) out.push({ spiffeId: e.spiffeId, token: await this.#jwtFor(e.id, aud), hint: e.hint });
    return out;
  }

  async #jwtFor(entryId: string, audience: string[]): Promise<string> {
    const key = `${entryId}\u0000${[...audience].sort().join('\u0000')}`;
    const now = this.clock.nowMs();
    const hit = this.#jwt.get(key);
    if (hit && now < hit.issuedAt + (hit.expiresAt - hit.issuedAt) / 2) return hit.token;
    try {
      const r = await this.client.post<{ token: string; expires_at: number }>('/v1/node/jwt', { entry_id: entryId, audience });
      if (this.#jwt.size >= MAX_JWT_CACHE) this.#jwt.delete(this.#jwt.keys().next().value as string);
      this.#jwt.set(key, { token: r.token, issuedAt: now, expiresAt: r.expires_at * 1000 });
      return r.token;
    } catch (e) {
      if (hit && now < hit.expiresAt) return hit.token;
      if (isWritError(e) && (e.code === 'ERR_SERVER_UNREACHABLE' || e.code === 'ERR_SERVER_RESPONSE')) {
        throw new WritError('ERR_AGENT_NOT_READY', 'The agent cannot reach the server to sign a JWT-SVID right now.', { cause: e });
      }
      throw e;
    }
  }

  async validateJwtSvid(selectors: readonly Selector[], token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    if (!token || !audience) throw new WritError('ERR_INPUT_INVALID', 'Both the token and the audience are required.');
    // As SPIRE: the caller's own trust domain and those its entries federate with, not every bundle the agent holds.
    const set = new BundleSet(this.#jwtBundlesFor(selectors));
    const svid = parseAndValidateJwtSvid(token, set, [audience], { now: this.clock.now() });
    return { spiffeId: svid.id.toString(), claims: svid.claims };
  }

  /** Forgets cached JWT-SVIDs of entries no longer present, and those of a tainted or unpublished key. */
  pruneJwtCache(): void {
    const now = this.clock.nowMs();
    for (const [k, v] of this.#jwt) if (v.expiresAt <= now || !this.cache.entries.has(k.split('\u0000')[0]!) || !this.cache.jwtKeyUsable(v.token)) this.#jwt.delete(k);
  }
}
