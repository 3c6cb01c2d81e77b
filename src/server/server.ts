/**
 * `writ server`: the composition root. Opens the datastore and key manager, loads the CA, keeps
 * the trust bundle current, runs the schedules, and serves the admin API (Unix socket) and the
 * health listener (loopback). stop() shuts everything down in order.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import cron from 'node-cron';
import { systemClock, type Clock } from '../clock.js';
import { WritError } from '../errors.js';
import type { Logger } from '../log.js';
import { Authority, DiskKeyManager, MemoryKeyManager, type KeyManager } from '../ca/index.js';
import { openDataStore, type BundleRecord } from '../datastore/index.js';
import { lookupGroupId } from '../platform/index.js';
import { createAdminApp, labelConnection } from './admin.js';
import { bundleContentKey, renderBundleDocument, pemOfAuthorities } from './bundle.js';
import { startBundleEndpoint, type BundleEndpoint } from './bundleendpoint.js';
import type { CrlOfIssuer } from './bundleroutes.js';
import type { ServerConfig } from './config.js';
import type { HealthReport, ServerContext } from './context.js';
import { FederationPoller, loadFederationCa } from './federation/index.js';
import { startHealthServer } from './health.js';
import { createServerMetrics } from './metrics.js';
import { AttestationSessions, createNodeApp, startNodeApiListener } from './nodeapi/index.js';
import { ServerSvid } from './serversvid.js';
import { openTaskService } from './tasks/index.js';
import { loadPlugins, NODE_ATTESTOR, SERVER_PLUGINS, type Catalog } from '../plugins/index.js';
import type { ServerNodeAttestor } from '../plugins/nodeattestor/types.js';

/** Delete records the entry change feed keeps for incremental agent syncs (older: a full sync). */
export const ENTRY_DELETES_KEPT = 100_000;
/** Seconds an expired join token is kept before the prune removes it. */
export const EXPIRED_JOIN_TOKENS_KEPT = 24 * 3600;

export interface ServerOptions {
  logger: Logger;
  clock?: Clock;
}

/** Refuses to take over a socket another live process is serving; removes a stale one. */
async function claimSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) {
    throw new WritError('ERR_SOCKET_IN_USE', `${path} exists and is not a socket; refusing to replace it.`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const s: Socket = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new WritError('ERR_SOCKET_IN_USE', `Another process is serving the admin socket ${path}.`);
  unlinkSync(path);
}

export class WritServer {
  private readonly tasks: Array<{ stop(): unknown }> = [];
  private adminServer: HttpServer | undefined;
  private healthServer: HttpServer | undefined;
  private stopping: Promise<void> | undefined;
  healthAddress: AddressInfo | undefined;
  private bundle: BundleRecord | undefined;
  private bundleKey = '';
  /** authority.slotsKey() of the roots and JWT keys when the bundle was last found current. */
  private bundleSlots = '';
  private crlCache: { key: string; refreshAt: number; ders: Buffer[]; byIssuer: CrlOfIssuer[] } | undefined;
  private nodeApi: { close(): Promise<void>; address: AddressInfo } | undefined;
  private sessions: AttestationSessions | undefined;
  private plugins: Catalog<(typeof SERVER_PLUGINS)[number]> | undefined;
  readonly serverSvid: ServerSvid;
  nodeApiAddress: AddressInfo | undefined;
  /** The HTTPS bundle endpoint (bundle, CRLs, OIDC discovery) when bundle_endpoint.enabled. */
  bundleEndpoint: BundleEndpoint | undefined;
  bundleEndpointAddress: AddressInfo | undefined;

  private constructor(
    readonly config: ServerConfig,
    readonly ctx: ServerContext,
    private readonly keyManager: KeyManager,
  ) {
    this.serverSvid = new ServerSvid(ctx.authority, ctx.clock, Math.min(config.defaultX509SvidTtl, config.agentTtl));
  }

  get adminSocketPath(): string {
    return this.config.admin.socketPath;
  }

  static async start(config: ServerConfig, opts: ServerOptions): Promise<WritServer> {
    const clock = opts.clock ?? systemClock;
    const logger = opts.logger;
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    for (const w of config.warnings) logger.warn({ event: 'config' }, w);

    const datastore = await openDataStore({ type: 'sqlite', path: config.datastore.path }, { clock, logger });
    let server: WritServer | undefined;
    try {
      const keyManager: KeyManager =
        config.ca.keyManager === 'disk' ? new DiskKeyManager({ directory: join(config.dataDir, 'keys') }) : new MemoryKeyManager();
      const authority = await Authority.load({
        config: {
          trustDomain: config.trustDomain,
          caTtl: config.ca.caTtl,
          rootTtl: config.ca.rootTtl,
          ...(config.ca.subject ? { subject: config.ca.subject } : {}),
          ...(config.jwtIssuer ? { jwtIssuer: config.jwtIssuer } : {}),
        },
        keyManager,
        store: datastore,
        clock,
        logger: logger.child({ component: 'ca' }),
      });
      const metrics = createServerMetrics(() => datastore.countEntries());
      const ctx: ServerContext = {
        config,
        datastore,
        authority,
        clock,
        logger,
        metrics,
        ownBundle: async () => server!.currentBundle(),
        bundlePem: () => pemOfAuthorities(authority.x509Authorities()),
        crls: async () => server!.currentCrls(),
        health: async () => server!.health(),
        federation: new FederationPoller({ datastore, clock, logger, fetch: config.federation.caFile ? { extraCaPem: loadFederationCa(config.federation.caFile) } : {} }),
        tasks: await openTaskService(config, datastore, clock, logger),
      };
      server = new WritServer(config, ctx, keyManager);
      authority.onAuthorityChange(() => server!.publishAfterForcedStep());
      await server.rotateAndPublish();
      await server.loadNodeAttestors();
      server.schedule();
      await server.listen();
      ctx.federation?.kick();
      logger.info(
        {
          event: 'ready',
          trust_domain: config.trustDomain,
          admin_socket: config.admin.socketPath,
          health: server.healthAddress ? `${server.healthAddress.address}:${server.healthAddress.port}` : null,
          node_api: server.nodeApiAddress ? `${server.nodeApiAddress.address}:${server.nodeApiAddress.port}` : null,
          bundle_endpoint: server.bundleEndpointAddress ? `https://${server.bundleEndpointAddress.address}:${server.bundleEndpointAddress.port}/ (${config.bundleEndpoint.profile})` : null,
          data_dir: config.dataDir,
          key_manager: keyManager.name,
        },
        'writ server ready',
      );
      return server;
    } catch (e) {
      if (server) await server.stop();
      else await datastore.close();
      throw e;
    }
  }

  /** CA tick: prepare/activate/drop per the clock, then republish the bundle if it changed. */
  async rotateAndPublish(): Promise<void> {
    const events = await this.ctx.authority.rotate();
    for (const ev of events) {
      this.ctx.metrics.caRotations.inc({ event: String((ev as { event?: string }).event ?? 'rotation') });
      this.ctx.logger.info({ event: 'ca.rotation', detail: ev }, 'CA rotation');
    }
    await this.publishBundle();
    await this.serverSvid.refresh();
    this.ctx.metrics.signingCaNotAfter.set(Math.floor(this.ctx.authority.signingCa().notAfter.getTime() / 1000));
  }

  /**
   * After `writ authority prepare|activate|taint|revoke`: the bundle is written again even when its
   * keys did not change (spiffe_sequence grows, so peers refetch), the CRLs are rebuilt and the
   * server's own SVID moves to the active signing CA. The admin call returns once this is done.
   */
  async publishAfterForcedStep(): Promise<void> {
    this.crlCache = undefined;
    await this.publishBundle(true);
    await this.currentCrls();
    await this.serverSvid.refresh();
  }

  /** Writes the trust domain bundle when its keys changed (or `force`); the store bumps spiffe_sequence. */
  async publishBundle(force = false): Promise<BundleRecord> {
    const { config, authority, datastore, clock } = this.ctx;
    if (!this.bundle) {
      this.bundle = await datastore.getBundle(config.trustDomain);
      this.bundleKey = this.bundle ? bundleContentKey(config.trustDomain, this.bundle.document) : '';
    }
    // The CA tick runs every 10 s and nearly always finds nothing new: compare the slots first, and
    // render (PEM, JWKs, a content key) only when a root or JWT key changed.
    const slots = authority.slotsKey('x509-root', 'jwt');
    if (!force && this.bundle && slots === this.bundleSlots && this.bundle.refreshHint === config.bundleRefreshHint) return this.bundle;
    const x509 = authority.x509Authorities();
    const jwt = authority.jwtAuthorities();
    const next = (this.bundle?.sequence ?? 0) + 1;
    const candidate = renderBundleDocument(config.trustDomain, x509, jwt, config.bundleRefreshHint, next);
    const key = bundleContentKey(config.trustDomain, candidate);
    if (!force && this.bundle && key === this.bundleKey && this.bundle.refreshHint === config.bundleRefreshHint) {
      this.bundleSlots = slots;
      return this.bundle;
    }
    let rec = await datastore.setBundle(config.trustDomain, candidate, config.bundleRefreshHint, Math.floor(clock.nowMs() / 1000));
    if (rec.sequence !== next) {
      // Another writer moved the sequence: render again with the store's number.
      const doc = renderBundleDocument(config.trustDomain, x509, jwt, config.bundleRefreshHint, rec.sequence + 1);
      rec = await datastore.setBundle(config.trustDomain, doc, config.bundleRefreshHint, Math.floor(clock.nowMs() / 1000));
    }
    this.bundle = rec;
    this.bundleKey = key;
    this.bundleSlots = slots;
    this.ctx.metrics.bundleSequence.set(rec.sequence);
    this.ctx.logger.info({ event: 'bundle.published', sequence: rec.sequence, x509_authorities: x509.length, jwt_authorities: jwt.length }, 'trust bundle published');
    return rec;
  }

  /** The CRLs, rebuilt when the revoked set or the signing CAs change, or at half their validity. */
  async currentCrls(): Promise<Buffer[]> {
    await this.currentCrlsByIssuer();
    return this.crlCache!.ders;
  }

  /** The same CRLs, each with the SKI of the signing CA that signed it. */
  async currentCrlsByIssuer(): Promise<CrlOfIssuer[]> {
    const { authority, datastore, clock, config } = this.ctx;
    const revoked = await datastore.listRevoked();
    const key = `${authority.signingCas().map((c) => c.ski).join(',')}|${revoked.map((r) => `${r.issuerSki}/${r.serial}`).join(',')}`;
    const now = clock.nowMs();
    if (this.crlCache && this.crlCache.key === key && now < this.crlCache.refreshAt) return this.crlCache.byIssuer;
    const crls = await authority.crls(revoked, config.ca.crlNextUpdate);
    const byIssuer = crls.map((c) => ({ issuerSki: c.issuerSki, der: c.der }));
    this.crlCache = { key, refreshAt: now + (config.ca.crlNextUpdate * 1000) / 2, ders: crls.map((c) => c.der), byIssuer };
    return byIssuer;
  }

  private async loadNodeAttestors(): Promise<void> {
    const { config, logger, clock, datastore } = this.ctx;
    this.plugins = await loadPlugins(
      SERVER_PLUGINS,
      config.nodeAttestors.map((a) => ({ type: NODE_ATTESTOR, name: a.name, config: a.config })),
      { logger: logger.child({ component: 'plugins' }), clock, trustDomain: config.trustDomain, store: datastore },
    );
    const attestors = new Map<string, ServerNodeAttestor>();
    for (const a of this.plugins.all(NODE_ATTESTOR) as ServerNodeAttestor[]) attestors.set(a.name, a);
    this.sessions = new AttestationSessions(this.ctx, attestors);
  }

  async currentBundle(): Promise<BundleRecord> {
    return this.bundle ?? this.publishBundle();
  }

  async health(): Promise<HealthReport> {
    const checks: HealthReport['checks'] = {};
    try {
      await this.ctx.datastore.ping();
      checks.datastore = { ok: true };
    } catch (e) {
      checks.datastore = { ok: false, detail: e instanceof Error ? e.message : String(e) };
    }
    try {
      const ca = this.ctx.authority.signingCa();
      const ok = ca.notAfter.getTime() > this.ctx.clock.nowMs();
      checks.ca = ok ? { ok } : { ok, detail: 'the signing CA has expired' };
    } catch (e) {
      checks.ca = { ok: false, detail: e instanceof Error ? e.message : String(e) };
    }
    const ready = Object.values(checks).every((c) => c.ok) && this.adminServer !== undefined && this.stopping === undefined;
    return { live: this.stopping === undefined, ready, checks };
  }

  private schedule(): void {
    const log = this.ctx.logger;
    const guard = (name: string, fn: () => Promise<unknown>) => async () => {
      try {
        await fn();
      } catch (e) {
        log.error({ err: e, task: name }, `scheduled task ${name} failed`);
      }
    };
    // SPIRE checks its CA every 10 s; the same here, and prunes once a minute.
    this.tasks.push(cron.schedule('*/10 * * * * *', guard('ca-rotation', () => this.rotateAndPublish()), { name: 'ca-rotation', noOverlap: true }));
    // Federation: relationships re-read and due bundle endpoints fetched every 10 s (as SPIRE reconciles).
    this.tasks.push(cron.schedule('5,15,25,35,45,55 * * * * *', guard('federation', async () => this.ctx.federation?.tick()), { name: 'federation', noOverlap: true }));
    // Tasks end at their deadline: checked every second (their SVIDs expire at the deadline anyway).
    this.tasks.push(cron.schedule('* * * * * *', guard('task-deadlines', async () => this.ctx.tasks?.sweep()), { name: 'task-deadlines', noOverlap: true }));
    this.tasks.push(cron.schedule('30 * * * * *', guard('prune', () => this.prune()), { name: 'prune', noOverlap: true }));
  }

  /** The once-a-minute clean-up of expired records (public for tests). */
  async prune(): Promise<void> {
    const { datastore, clock, logger } = this.ctx;
    const now = Math.floor(clock.nowMs() / 1000);
    const entries = await datastore.pruneExpiredEntries(now);
    // Expired join tokens are kept a while, so that an agent that brings one is told it expired
    // (ERR_TOKEN_EXPIRED) rather than that it was never valid.
    const tokens = await datastore.pruneJoinTokens(now - EXPIRED_JOIN_TOKENS_KEPT);
    const revoked = await datastore.pruneRevoked(now);
    const issued = await datastore.pruneIssued(now);
    // The change feed keeps its newest deletes; an agent further behind gets a full sync.
    const changes = await datastore.pruneEntryChanges(ENTRY_DELETES_KEPT);
    if (entries.length + tokens + revoked + issued + changes > 0) logger.info({ event: 'prune', entries, tokens, revoked, issued, entry_changes: changes }, 'pruned expired records');
  }

  private async listen(): Promise<void> {
    const { config, logger } = this.ctx;
    const path = config.admin.socketPath;
    const adminGid = config.admin.group === undefined ? undefined : lookupGroupId(config.admin.group);
    if (config.admin.group !== undefined && adminGid === undefined) {
      throw new WritError('ERR_CONFIG_INVALID', `admin.group "${config.admin.group}" is not a known group.`, { details: { field: 'admin.group' } });
    }
    const dir = dirname(path);
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: adminGid === undefined ? 0o700 : 0o750 });
      if (adminGid !== undefined) chownSync(dir, process.getuid?.() ?? 0, adminGid);
    }
    await claimSocketPath(path);
    const app = createAdminApp(this.ctx, adminGid);
    const server = createHttpServer(app);
    server.on('connection', (socket: Socket) => {
      try {
        labelConnection(socket);
      } catch (e) {
        logger.warn({ err: e }, 'could not read peer credentials; closing connection');
        socket.destroy();
      }
    });
    // The socket file is created with the process umask; restrict it before anyone can connect.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    if (adminGid !== undefined) {
      chownSync(path, process.getuid?.() ?? 0, adminGid);
      chmodSync(path, 0o660);
    } else {
      chmodSync(path, 0o600);
    }
    this.adminServer = server;
    if (config.nodeApi.enabled) {
      const n = await startNodeApiListener(createNodeApp(this.ctx, this.sessions!), this.serverSvid, config.nodeApi.bindAddress, config.nodeApi.port);
      this.nodeApi = n;
      this.nodeApiAddress = n.address;
    }
    if (config.bundleEndpoint.enabled) {
      this.bundleEndpoint = await startBundleEndpoint({ ctx: this.ctx, svid: this.serverSvid, crls: () => this.currentCrlsByIssuer() });
      this.bundleEndpointAddress = this.bundleEndpoint.address;
    }
    if (config.health.enabled) {
      const h = await startHealthServer(this.ctx, config.health.bindAddress, config.health.port);
      this.healthServer = h.server;
      this.healthAddress = h.address;
    }
  }

  /** Graceful shutdown: stop schedules, stop accepting, let requests finish, close the store. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.tasks) t.stop();
      await this.ctx.federation?.stop();
      const close = (s: HttpServer | undefined) =>
        new Promise<void>((resolve) => {
          if (!s) return resolve();
          s.close(() => resolve());
          s.closeIdleConnections();
          setTimeout(() => s.closeAllConnections(), 5000).unref();
        });
      this.sessions?.close();
      await Promise.all([close(this.adminServer), close(this.healthServer), this.nodeApi?.close(), this.bundleEndpoint?.close()]);
      await this.plugins?.close();
      try {
        if (existsSync(this.config.admin.socketPath)) unlinkSync(this.config.admin.socketPath);
      } catch {
        // already gone
      }
      await this.ctx.tasks?.close();
      await this.ctx.datastore.close();
      this.ctx.logger.info({ event: 'stopped' }, 'writ server stopped');
    })();
    return this.stopping;
  }
}
