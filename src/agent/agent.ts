/**
 * `writ agent`: the composition root on each host. It loads its plugins, restores its state,
 * attests to the server (or resumes with the identity on disk), keeps the cache current with a
 * sync every `sync_interval` (capped, jittered backoff while the server is unreachable), signs
 * SVIDs as they come due, renews its own SVID at half life (at once when its authority is
 * tainted), and serves the Workload API over gRPC
 * and HTTP on Unix sockets. Workloads are served from the cache while the server is away.
 */
import { readFileSync } from 'node:fs';
import { systemClock, cryptoRandom, type Clock, type RandomSource } from '../clock.js';
import { SpiffeBundle, X509Bundle, encodePem } from '../bundle/index.js';
import { WritError, isWritError } from '../errors.js';
import type { Logger } from '../log.js';
import { AGENT_PLUGINS, loadPlugins, NODE_ATTESTOR, WORKLOAD_ATTESTOR, type Catalog } from '../plugins/index.js';
import type { AgentNodeAttestor } from '../plugins/nodeattestor/types.js';
import type { WorkloadAttestor } from '../plugins/workloadattestor/types.js';
import { parseTrustDomain } from '../spiffeid/index.js';
import { AgentCache } from './cache.js';
import type { AgentConfig } from './config.js';
import { FATAL_ATTESTATION_CODES, attestAgent, identityPem, renewAgent } from './identity.js';
import { NodeClient } from './nodeclient.js';
import { type AgentIdentity, StateFile } from './state.js';
import { signDue, syncOnce } from './sync.js';
import { startGrpcWorkloadEndpoint, startHttpWorkloadEndpoint } from './workload/index.js';
import { AgentWorkloads } from './workloads.js';

export interface AgentOptions {
  logger: Logger;
  clock?: Clock;
  random?: RandomSource;
  /** Called once when the agent cannot go on (attestation refused for good); the agent has stopped serving. */
  onFatal?: (e: WritError) => void;
  /** Longest wait between failed syncs, ms (default 30 s). */
  maxBackoffMs?: number;
}

const TICK_MS = 1000;

/** Reads a bootstrap bundle file: PEM certificates or SPIFFE bundle JSON. */
export function readBootstrapBundle(path: string, trustDomain: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WritError('ERR_CONFIG_READ', `Cannot read the trust bundle ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  const td = parseTrustDomain(trustDomain);
  const roots = text.trimStart().startsWith('{') ? SpiffeBundle.parse(td, text).x509Authorities : X509Bundle.parsePem(td, text).authorities();
  if (roots.length === 0) throw new WritError('ERR_BUNDLE_EMPTY', `The trust bundle ${path} holds no CA certificate.`);
  return roots.map((d) => encodePem('CERTIFICATE', d)).join('');
}

export class WritAgent {
  #identity: AgentIdentity | undefined;
  #pem: { certPem: string; keyPem: string } | undefined;
  #bootstrapCa: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;
  #nextSync = 0;
  #failures = 0;
  #dirty = false;
  #stopped = false;
  #resolveReady!: () => void;
  #isReady = false;
  #everAttested = false;
  readonly ready: Promise<void> = new Promise((r) => (this.#resolveReady = r));
  readonly endpoints: Array<{ close(): Promise<void>; socketPath: string; stats(): { connections: number; streams?: number; watches?: number } }> = [];
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly cache: AgentCache;
  readonly client: NodeClient;
  readonly workloads: AgentWorkloads;
  readonly state: StateFile;
  lastSyncAt = 0;

  private constructor(
    readonly config: AgentConfig,
    private readonly opts: AgentOptions,
    private readonly plugins: Catalog<(typeof AGENT_PLUGINS)[number]>,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? cryptoRandom;
    this.cache = new AgentCache(config.trustDomain);
    this.state = new StateFile(config.dataDir, opts.logger);
    this.client = new NodeClient({ host: config.serverAddress.host, port: config.serverAddress.port, serverId: config.serverSpiffeId }, () => ({
      caPem: this.cache.bundle ? this.cache.bundle.x509Authorities.map((d) => encodePem('CERTIFICATE', d)).join('') : (this.#bootstrapCa ?? ''),
      ...(this.#pem ?? {}),
    }));
    this.workloads = new AgentWorkloads(this.cache, plugins.all(WORKLOAD_ATTESTOR) as WorkloadAttestor[], this.client, this.clock, opts.logger.child({ component: 'workloads' }), {
      allowUnauthenticatedVerifiers: config.allowUnauthenticatedVerifiers,
    });
  }

  #readyResolve(): void {
    if (this.#isReady) return;
    this.#isReady = true;
    this.opts.logger.info(
      { event: 'agent.ready', agent_id: this.#identity?.spiffeId, socket_path: this.config.socketPath, http_socket_path: this.config.httpSocketPath, entries: this.cache.entries.size },
      'agent ready: the Workload API is serving',
    );
    this.#resolveReady();
  }

  get identity(): AgentIdentity | undefined {
    return this.#identity;
  }

  static async start(config: AgentConfig, opts: AgentOptions): Promise<WritAgent> {
    const logger = opts.logger;
    const plugins = await loadPlugins(
      AGENT_PLUGINS,
      [{ type: NODE_ATTESTOR, name: config.nodeAttestor.name, config: config.nodeAttestor.config }, ...config.workloadAttestors.map((w) => ({ type: WORKLOAD_ATTESTOR, name: w.name, config: w.config }))],
      { logger: logger.child({ component: 'plugins' }), clock: opts.clock ?? systemClock, trustDomain: config.trustDomain },
    );
    const agent = new WritAgent(config, opts, plugins);
    try {
      agent.#identity = agent.state.load(agent.cache, agent.clock.nowMs());
      if (agent.#identity) {
        agent.#pem = identityPem(agent.#identity);
        agent.#everAttested = true;
      }
      if (!agent.cache.bundle) {
        if (!config.trustBundlePath) throw new WritError('ERR_CONFIG_INVALID', 'trust_bundle_path is required until the agent has synced a bundle once.', { details: { field: 'trust_bundle_path' } });
        agent.#bootstrapCa = readBootstrapBundle(config.trustBundlePath, config.trustDomain);
      }
      const grpcEndpoint = await startGrpcWorkloadEndpoint({ socketPath: config.socketPath, handler: agent.workloads, logger: logger.child({ component: 'workload-api' }), clock: agent.clock });
      agent.endpoints.push(grpcEndpoint);
      agent.endpoints.push(await startHttpWorkloadEndpoint({ socketPath: config.httpSocketPath, handler: agent.workloads, logger: logger.child({ component: 'workload-http' }) }));
      if (agent.#identity) {
        logger.info({ event: 'agent.resumed', agent_id: agent.#identity.spiffeId, svids: agent.cache.svids.size }, 'agent resumed from its state file');
        agent.#readyResolve();
      }
      agent.#schedule(0);
      return agent;
    } catch (e) {
      await agent.stop();
      throw e;
    }
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), ms);
  }

  #backoff(): number {
    const max = this.opts.maxBackoffMs ?? 30_000;
    const base = Math.min(max, this.config.syncInterval * 1000 * 2 ** Math.min(this.#failures, 10));
    return Math.floor(base * (0.8 + 0.4 * (this.random.bytes(1)[0]! / 255)));
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    const log = this.opts.logger;
    try {
      const now = this.clock.nowMs();
      if (!this.#identity) {
        if (now < this.#nextSync) return;
        const out = await attestAgent(this.client, this.plugins.require(NODE_ATTESTOR, this.config.nodeAttestor.name) as AgentNodeAttestor, log);
        this.#setIdentity(out.identity);
        this.cache.setBundle(out.bundleDocument);
        this.#nextSync = 0;
      }
      const id = this.#identity!;
      if (now >= id.notBefore + (id.notAfter - id.notBefore) / 2) this.#setIdentity(await renewAgent(this.client, id, log));
      let changed = false;
      if (now >= this.#nextSync) {
        const revision = this.cache.revision;
        const hint: { nextSyncMs?: number } = {};
        changed = await syncOnce(this.cache, this.client, hint);
        this.#failures = 0;
        // The server asks agents serving tasks to sync sooner, so ended tasks reach workloads fast.
        this.#nextSync = now + Math.min(this.config.syncInterval * 1000, hint.nextSyncMs ?? Infinity);
        this.lastSyncAt = now;
        if (this.cache.revision !== revision) this.#dirty = true;
        if (this.cache.chainTainted(this.#identity!.chain)) {
          log.info({ event: 'agent.svid_tainted', agent_id: id.spiffeId }, 'the agent SVID was issued under a tainted authority; renewing it now');
          this.#setIdentity(await renewAgent(this.client, this.#identity!, log));
        }
      }
      const replaced = await signDue(this.cache, this.client, this.clock.nowMs(), this.random, log);
      if (changed || replaced > 0) {
        this.#dirty = true;
        this.workloads.pruneJwtCache();
        this.cache.notify();
      }
      this.#readyResolve();
    } catch (e) {
      this.#onError(e);
    } finally {
      if (this.#dirty && !this.#stopped) this.#save();
      this.#ticking = false;
      this.#schedule(Math.max(50, Math.min(TICK_MS, this.#nextSync - this.clock.nowMs())));
    }
  }

  #setIdentity(id: AgentIdentity): void {
    this.#identity = id;
    this.#everAttested = true;
    this.#pem = identityPem(id);
    this.#dirty = true;
  }

  #onError(e: unknown): void {
    const log = this.opts.logger;
    const code = isWritError(e) ? e.code : 'ERR_INTERNAL';
    if (!this.#identity && FATAL_ATTESTATION_CODES.has(code)) {
      if (!this.#everAttested && this.cache.svids.size === 0) {
        log.error({ event: 'agent.fatal', code, reason: (e as Error).message }, 'node attestation was refused; the agent stops');
        this.opts.onFatal?.(e as WritError);
        void this.stop();
        return;
      }
      // Attested before (or holding SVIDs): keep serving what is cached until it expires, and keep trying.
      log.error({ event: 'agent.reattestation_refused', code, reason: (e as Error).message, cached_svids: this.cache.svids.size }, 'node attestation was refused; serving cached SVIDs until they expire');
    }
    if (this.#identity && code === 'ERR_AGENT_NOT_FOUND') {
      log.warn({ code }, 'the server no longer knows this agent (evicted); attesting again');
      this.#identity = undefined;
      this.#pem = undefined;
    }
    this.#failures++;
    const wait = this.#backoff();
    this.#nextSync = this.clock.nowMs() + wait;
    log.warn({ event: 'agent.server_error', code, reason: e instanceof Error ? e.message : String(e), retry_in_ms: wait, cached_svids: this.cache.svids.size }, 'server call failed; serving from the cache');
  }

  #save(): void {
    try {
      this.state.save(this.#identity, this.cache);
      this.#dirty = false;
    } catch (e) {
      this.opts.logger.error({ err: e, path: this.state.path }, 'could not write the agent state file');
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const ep of this.endpoints.splice(0)) await ep.close();
    this.client.close();
    if (this.#dirty) this.#save();
    await this.plugins.close();
    this.opts.logger.info({ event: 'stopped' }, 'writ agent stopped');
  }
}
