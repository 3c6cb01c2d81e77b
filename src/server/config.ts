/**
 * Server configuration: YAML or JSON, validated once at start. A bad file stops the start with
 * ERR_CONFIG_* naming the field. Relative paths are resolved against the working directory.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { WritError } from '../errors.js';
import { configError, durationField, readConfigFile } from '../configfile.js';
import { parseSpiffeId, parseTrustDomain } from '../spiffeid/index.js';
import type { OidcRequesterConfig } from './oidc-requester.js';

export const DEFAULT_ADMIN_SOCKET = '/tmp/writ-server/private/admin.sock';

const duration = durationField;

const trustDomain = z.string().transform((v, ctx) => {
  try {
    const td = parseTrustDomain(v);
    if (td.name !== v) throw new Error(`trust_domain must be a bare name such as example.org; got "${v}".`);
    return td.name;
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: e instanceof Error ? e.message : String(e) });
    return z.NEVER;
  }
});

const schema = z
  .object({
    trust_domain: trustDomain,
    data_dir: z.string().min(1).default('./data'),
    log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    default_x509_svid_ttl: duration('default_x509_svid_ttl').default('1h'),
    default_jwt_svid_ttl: duration('default_jwt_svid_ttl').default('5m'),
    jwt_issuer: z.string().url().optional(),
    admin: z
      .object({
        socket_path: z.string().min(1).max(107).default(DEFAULT_ADMIN_SOCKET),
        group: z.union([z.string().min(1), z.number().int().nonnegative()]).optional(),
      })
      .strict()
      .default({}),
    health: z
      .object({
        enabled: z.boolean().default(true),
        bind_address: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8089),
      })
      .strict()
      .default({}),
    ca: z
      .object({
        key_manager: z.enum(['disk', 'memory']).default('disk'),
        key_type: z.enum(['ec-p256']).default('ec-p256'),
        ca_ttl: duration('ca.ca_ttl').default('24h'),
        root_ttl: duration('ca.root_ttl').default('720h'),
        subject: z
          .object({
            country: z.array(z.string().length(2)).optional(),
            organization: z.array(z.string().min(1)).optional(),
            common_name: z.string().optional(),
          })
          .strict()
          .optional(),
        crl_next_update: duration('ca.crl_next_update').default('1h'),
      })
      .strict()
      .default({}),
    datastore: z
      .object({
        type: z.literal('sqlite').default('sqlite'),
        path: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    node_api: z
      .object({
        enabled: z.boolean().default(true),
        bind_address: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8081),
      })
      .strict()
      .default({}),
    agent_ttl: duration('agent_ttl').optional(),
    node_attestors: z
      .array(z.object({ name: z.string().min(1), config: z.record(z.unknown()).default({}) }).strict())
      .default([{ name: 'join_token', config: {} }]),
    join_token_ttl: duration('join_token_ttl').default('10m'),
    bundle_refresh_hint: duration('bundle_refresh_hint').default('5m'),
    bundle_endpoint: z
      .object({
        enabled: z.boolean().default(false),
        bind_address: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8443),
        profile: z.enum(['https_spiffe', 'https_web']).default('https_spiffe'),
        certificate_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
        refresh_hint: duration('bundle_endpoint.refresh_hint').optional(),
      })
      .strict()
      .default({}),
    federation: z
      .object({
        // PEM CA certificates trusted for https_web bundle endpoints besides the Web PKI roots.
        ca_file: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    // Agents and tasks: Cedar policies evaluated at every task start, and the parent ID an agent identity gets by default.
    task_policy_files: z.array(z.string().min(1)).max(64).default([]),
    agent_identity_parent: z.string().min(1).optional(),
    // The delegation record in task X509-SVIDs (an extension under 2.25.<uuid>, which Go's crypto/x509 cannot parse); JWT-SVIDs always carry it.
    task_delegation_x509: z.boolean().default(true),
    // Requesters proven by an OIDC ID token (`writ task start --requester-token`): the issuer trusted for them.
    task_requester_oidc: z
      .object({
        issuer: z.string().url(),
        audience: z.string().min(1),
        jwks_url: z.string().url().startsWith('https://').optional(),
        ca_file: z.string().min(1).optional(),
        claim: z.string().min(1).max(64).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** SPIRE's floor for the refresh hint a bundle endpoint serves (bundleutil.MinimumRefreshHint). */
export const MIN_ENDPOINT_REFRESH_HINT = 60;

export interface ServerConfig {
  trustDomain: string;
  dataDir: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  defaultX509SvidTtl: number;
  defaultJwtSvidTtl: number;
  jwtIssuer?: string;
  admin: { socketPath: string; group?: string | number };
  health: { enabled: boolean; bindAddress: string; port: number };
  ca: {
    keyManager: 'disk' | 'memory';
    keyType: 'ec-p256';
    caTtl: number;
    rootTtl: number;
    subject?: { country?: string[]; organization?: string[]; commonName?: string };
    crlNextUpdate: number;
  };
  datastore: { type: 'sqlite'; path: string };
  nodeApi: { enabled: boolean; bindAddress: string; port: number };
  /** Lifetime of agent SVIDs, seconds (default: the default X509-SVID TTL). */
  agentTtl: number;
  nodeAttestors: Array<{ name: string; config: Record<string, unknown> }>;
  joinTokenTtl: number;
  bundleRefreshHint: number;
  /** The HTTPS bundle endpoint (SPIFFE federation) with the CRLs and OIDC discovery. */
  bundleEndpoint: {
    enabled: boolean;
    bindAddress: string;
    port: number;
    profile: 'https_spiffe' | 'https_web';
    /** https_web only: PEM chain and PEM key (owner-only mode). */
    certificateFile?: string;
    keyFile?: string;
    /** spiffe_refresh_hint served, seconds, at least MIN_ENDPOINT_REFRESH_HINT. */
    refreshHint: number;
  };
  /** Fetching foreign bundles (federation relationships are in the datastore). */
  federation: { caFile?: string };
  /** Cedar policy files evaluated at task start (empty: tasks allowed, recorded as "no policy"). */
  taskPolicyFiles: string[];
  /** Parent ID of an agent identity created without one (default spiffe://<td>/host/dev, the alias of `npm start`). */
  agentIdentityParent: string;
  /** Task X509-SVIDs carry the delegation extension. */
  taskDelegationX509: boolean;
  /** The OIDC issuer whose ID tokens prove a task's requester; absent: requester tokens are refused. */
  taskRequesterOidc?: OidcRequesterConfig;
  /** Sentences about settings that work but are unwise (logged at start). */
  warnings: string[];
}


function agentIdentityParentOf(raw: string | undefined, td: string, source: string): string {
  const fail = (why: string): never => {
    throw new WritError('ERR_CONFIG_INVALID', `${source}: field "agent_identity_parent": ${why}`, { details: { field: 'agent_identity_parent' } });
  };
  if (raw === undefined) return `spiffe://${td}/host/dev`;
  let id;
  try {
    id = parseSpiffeId(raw);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (id.trustDomain.name !== td || id.path === '') fail(`must be a SPIFFE ID with a path in ${td}.`);
  return id.toString();
}

/** Validates an already-parsed config object. */
export function validateServerConfig(raw: unknown, source = 'config'): ServerConfig {
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) throw configError(parsed.error, source);
  const c = parsed.data;
  const warnings: string[] = [];
  const maxSvid = Math.max(c.default_x509_svid_ttl, c.default_jwt_svid_ttl);
  if (c.ca.root_ttl < c.ca.ca_ttl) {
    throw new WritError('ERR_CONFIG_INVALID', `${source}: field "ca.root_ttl": must be at least ca.ca_ttl.`, { details: { field: 'ca.root_ttl' } });
  }
  if (c.ca.ca_ttl <= maxSvid) {
    throw new WritError('ERR_CONFIG_INVALID', `${source}: field "ca.ca_ttl": must be longer than the default SVID TTLs (keep it at least 6 times longer).`, {
      details: { field: 'ca.ca_ttl' },
    });
  }
  if (c.ca.ca_ttl < 6 * maxSvid) {
    warnings.push(`ca.ca_ttl is less than 6 times the default SVID TTL; SVIDs near a CA rotation will be shortened to the CA's expiry.`);
  }
  if (c.default_x509_svid_ttl === 0 || c.default_jwt_svid_ttl === 0) {
    throw new WritError('ERR_CONFIG_INVALID', `${source}: default SVID TTLs must be greater than zero.`, { details: { field: 'default_x509_svid_ttl' } });
  }
  if (c.agent_ttl !== undefined && (c.agent_ttl <= 0 || c.agent_ttl >= c.ca.ca_ttl)) {
    throw new WritError('ERR_CONFIG_INVALID', `${source}: field "agent_ttl": must be above zero and shorter than ca.ca_ttl.`, { details: { field: 'agent_ttl' } });
  }
  const be = c.bundle_endpoint;
  if (be.profile === 'https_web') {
    for (const f of ['certificate_file', 'key_file'] as const) {
      if (be[f] === undefined) {
        throw new WritError('ERR_CONFIG_INVALID', `${source}: field "bundle_endpoint.${f}": is required with profile https_web.`, { details: { field: `bundle_endpoint.${f}` } });
      }
    }
  } else {
    const f = be.certificate_file !== undefined ? 'certificate_file' : be.key_file !== undefined ? 'key_file' : undefined;
    if (f) {
      throw new WritError('ERR_CONFIG_INVALID', `${source}: field "bundle_endpoint.${f}": is only used with profile https_web (https_spiffe serves the server's own SVID).`, {
        details: { field: `bundle_endpoint.${f}` },
      });
    }
  }
  const wantedHint = be.refresh_hint ?? c.bundle_refresh_hint;
  if (be.enabled && wantedHint < MIN_ENDPOINT_REFRESH_HINT) {
    warnings.push(`bundle_endpoint.refresh_hint of ${wantedHint}s is below one minute; the endpoint serves 60s.`);
  }
  const dataDir = resolve(c.data_dir);
  return {
    trustDomain: c.trust_domain,
    dataDir,
    logLevel: c.log_level,
    defaultX509SvidTtl: c.default_x509_svid_ttl,
    defaultJwtSvidTtl: c.default_jwt_svid_ttl,
    ...(c.jwt_issuer ? { jwtIssuer: c.jwt_issuer } : {}),
    admin: { socketPath: resolve(c.admin.socket_path), ...(c.admin.group !== undefined ? { group: c.admin.group } : {}) },
    health: { enabled: c.health.enabled, bindAddress: c.health.bind_address, port: c.health.port },
    ca: {
      keyManager: c.ca.key_manager,
      keyType: c.ca.key_type,
      caTtl: c.ca.ca_ttl,
      rootTtl: c.ca.root_ttl,
      ...(c.ca.subject
        ? {
            subject: {
              ...(c.ca.subject.country ? { country: c.ca.subject.country } : {}),
              ...(c.ca.subject.organization ? { organization: c.ca.subject.organization } : {}),
              ...(c.ca.subject.common_name ? { commonName: c.ca.subject.common_name } : {}),
            },
          }
        : {}),
      crlNextUpdate: c.ca.crl_next_update,
    },
    datastore: { type: 'sqlite', path: resolve(c.datastore.path ?? `${c.data_dir}/datastore.sqlite3`) },
    nodeApi: { enabled: c.node_api.enabled, bindAddress: c.node_api.bind_address, port: c.node_api.port },
    agentTtl: c.agent_ttl ?? c.default_x509_svid_ttl,
    nodeAttestors: c.node_attestors.map((a) => ({ name: a.name, config: a.config })),
    joinTokenTtl: c.join_token_ttl,
    bundleRefreshHint: c.bundle_refresh_hint,
    bundleEndpoint: {
      enabled: be.enabled,
      bindAddress: be.bind_address,
      port: be.port,
      profile: be.profile,
      ...(be.certificate_file !== undefined ? { certificateFile: resolve(be.certificate_file) } : {}),
      ...(be.key_file !== undefined ? { keyFile: resolve(be.key_file) } : {}),
      refreshHint: Math.max(MIN_ENDPOINT_REFRESH_HINT, wantedHint),
    },
    federation: c.federation.ca_file !== undefined ? { caFile: resolve(c.federation.ca_file) } : {},
    taskPolicyFiles: c.task_policy_files.map((f) => resolve(f)),
    agentIdentityParent: agentIdentityParentOf(c.agent_identity_parent, c.trust_domain, source),
    taskDelegationX509: c.task_delegation_x509,
    ...(c.task_requester_oidc
      ? {
          taskRequesterOidc: {
            issuer: c.task_requester_oidc.issuer,
            audience: c.task_requester_oidc.audience,
            ...(c.task_requester_oidc.jwks_url !== undefined ? { jwksUrl: c.task_requester_oidc.jwks_url } : {}),
            ...(c.task_requester_oidc.ca_file !== undefined ? { caFile: resolve(c.task_requester_oidc.ca_file) } : {}),
            ...(c.task_requester_oidc.claim !== undefined ? { claim: c.task_requester_oidc.claim } : {}),
          },
        }
      : {}),
    warnings,
  };
}

/** Reads, parses (YAML is a superset of JSON) and validates a config file. */
export function loadServerConfig(path: string): ServerConfig {
  return validateServerConfig(readConfigFile(path), path);
}
