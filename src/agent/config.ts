/**
 * Agent configuration: YAML or JSON, validated once at start; a bad file stops the start with
 * ERR_CONFIG_* naming the field. Relative paths are resolved against the working directory.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { WritError } from '../errors.js';
import { checkedString, configError, durationField, readConfigFile } from '../configfile.js';
import { parseSpiffeId, parseTrustDomain } from '../spiffeid/index.js';

export const DEFAULT_AGENT_SOCKET = '/tmp/writ-agent/public/api.sock';

const duration = durationField;
const checked = checkedString;

const plugin = z.object({ name: z.string().min(1), config: z.record(z.unknown()).default({}) }).strict();

const schema = z
  .object({
    trust_domain: checked(parseTrustDomain),
    data_dir: z.string().min(1).default('./data/agent'),
    log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    server_address: z.string().regex(/^[^\s/]+:\d{1,5}$/, 'must be host:port').default('127.0.0.1:8081'),
    server_spiffe_id: checked(parseSpiffeId).optional(),
    trust_bundle_path: z.string().min(1).optional(),
    socket_path: z.string().min(1).max(107).default(DEFAULT_AGENT_SOCKET),
    http_socket_path: z.string().min(1).max(107).optional(),
    sync_interval: duration('sync_interval').default('5s'),
    node_attestor: plugin,
    workload_attestors: z.array(plugin).min(1).default([{ name: 'unix', config: {} }]),
    /** SPIRE's option: callers matching no entry may still fetch bundles and validate JWT-SVIDs. */
    allow_unauthenticated_verifiers: z.boolean().default(false),
    health: z
      .object({ enabled: z.boolean().default(false), bind_address: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8090) })
      .strict()
      .default({}),
  })
  .strict();

export interface AgentConfig {
  trustDomain: string;
  dataDir: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  serverAddress: { host: string; port: number };
  serverSpiffeId: string;
  /** PEM or SPIFFE bundle JSON used to trust the server before the first sync; absent only if state on disk has a bundle. */
  trustBundlePath?: string;
  socketPath: string;
  httpSocketPath: string;
  syncInterval: number;
  nodeAttestor: { name: string; config: Record<string, unknown> };
  workloadAttestors: Array<{ name: string; config: Record<string, unknown> }>;
  /** Callers that match no entry may fetch the own trust domain's bundles and validate JWT-SVIDs against it (default false, as SPIRE). */
  allowUnauthenticatedVerifiers: boolean;
  health: { enabled: boolean; bindAddress: string; port: number };
}

export function validateAgentConfig(raw: unknown, source = 'config'): AgentConfig {
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) throw configError(parsed.error, source);
  const c = parsed.data;
  const td = parseTrustDomain(c.trust_domain).name;
  const serverId = c.server_spiffe_id ?? `spiffe://${td}/writ/server`;
  if (parseSpiffeId(serverId).trustDomain.name !== td) {
    throw new WritError('ERR_CONFIG_INVALID', `${source}: field "server_spiffe_id": must be in the trust domain ${td}.`, { details: { field: 'server_spiffe_id' } });
  }
  if (c.sync_interval < 1) throw new WritError('ERR_CONFIG_INVALID', `${source}: field "sync_interval": must be at least 1s.`, { details: { field: 'sync_interval' } });
  const i = c.server_address.lastIndexOf(':');
  const port = Number(c.server_address.slice(i + 1));
  if (port < 1 || port > 65535) throw new WritError('ERR_CONFIG_INVALID', `${source}: field "server_address": the port must be 1 to 65535.`, { details: { field: 'server_address' } });
  const socketPath = resolve(c.socket_path);
  return {
    trustDomain: td,
    dataDir: resolve(c.data_dir),
    logLevel: c.log_level,
    serverAddress: { host: c.server_address.slice(0, i), port },
    serverSpiffeId: serverId,
    ...(c.trust_bundle_path ? { trustBundlePath: resolve(c.trust_bundle_path) } : {}),
    socketPath,
    httpSocketPath: resolve(c.http_socket_path ?? socketPath.replace(/(\.sock)?$/, '-http.sock')),
    syncInterval: c.sync_interval,
    nodeAttestor: c.node_attestor,
    workloadAttestors: c.workload_attestors,
    allowUnauthenticatedVerifiers: c.allow_unauthenticated_verifiers,
    health: { enabled: c.health.enabled, bindAddress: c.health.bind_address, port: c.health.port },
  };
}

export function loadAgentConfig(path: string): AgentConfig {
  return validateAgentConfig(readConfigFile(path), path);
}
