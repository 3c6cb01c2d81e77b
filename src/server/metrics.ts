/**
 * Prometheus metrics of one server, on its own registry (so tests can run several servers in one
 * process), served at /metrics on the health listener.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  registry: Registry;
  adminRequests: Counter<'action' | 'code'>;
  nodeRequests: Counter<'action' | 'code'>;
  svidsMinted: Counter<'type'>;
  caRotations: Counter<'event'>;
  entries: Gauge;
  signingCaNotAfter: Gauge;
  bundleSequence: Gauge;
}

export function createServerMetrics(countEntries: () => Promise<number>): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'writ_server_' });
  return {
    registry,
    adminRequests: new Counter({ name: 'writ_admin_requests_total', help: 'Admin API requests by action and result code.', labelNames: ['action', 'code'], registers: [registry] }),
    nodeRequests: new Counter({ name: 'writ_node_api_requests_total', help: 'Node API requests (agents) by action and result code.', labelNames: ['action', 'code'], registers: [registry] }),
    svidsMinted: new Counter({ name: 'writ_svids_minted_total', help: 'SVIDs signed by the CA, by type.', labelNames: ['type'], registers: [registry] }),
    caRotations: new Counter({ name: 'writ_ca_rotation_events_total', help: 'CA rotation events (prepared, activated, dropped) by kind.', labelNames: ['event'], registers: [registry] }),
    entries: new Gauge({
      name: 'writ_registration_entries',
      help: 'Registration entries in the datastore.',
      registers: [registry],
      async collect() {
        this.set(await countEntries());
      },
    }),
    signingCaNotAfter: new Gauge({ name: 'writ_ca_signing_not_after_seconds', help: 'Expiry of the active signing CA, Unix seconds.', registers: [registry] }),
    bundleSequence: new Gauge({ name: 'writ_bundle_sequence', help: 'spiffe_sequence of the trust domain bundle.', registers: [registry] }),
  };
}
