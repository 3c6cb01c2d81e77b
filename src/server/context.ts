/** What the server's handlers share. */
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Authority } from '../ca/index.js';
import type { BundleRecord, DataStore } from '../datastore/index.js';
import type { ServerConfig } from './config.js';
import type { ServerMetrics } from './metrics.js';
import type { TaskService } from './tasks/index.js';
import type { FederationPoller } from './federation/index.js';

export interface HealthReport {
  live: boolean;
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface ServerContext {
  config: ServerConfig;
  datastore: DataStore;
  authority: Authority;
  clock: Clock;
  logger: Logger;
  metrics: ServerMetrics;
  /** The trust domain's own bundle record (SPIFFE bundle JSON with its sequence). */
  ownBundle(): Promise<BundleRecord>;
  /** The trust domain's X.509 authorities as PEM. */
  bundlePem(): string;
  /** DER CRLs of the signing CAs, regenerated when the revoked set changes or they near nextUpdate. */
  crls(): Promise<Buffer[]>;
  health(): Promise<HealthReport>;
  /** Fetches the bundles of federated trust domains; set by the server once started. */
  federation?: FederationPoller;
  /** Agent identities and tasks; set by the server once started (absent in some tests). */
  tasks?: TaskService;
}
