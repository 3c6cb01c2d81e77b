/**
 * The Workload API client library: endpoint addresses, the client (one-shot fetches and watchers
 * that reconnect), and the auto-updating X509Source and JwtSource that services and agents use.
 */
export { ENDPOINT_ENV, type EndpointAddress, endpointFromEnv, parseEndpointAddress, resolveEndpoint } from './address.js';
export { DEFAULT_TIMEOUT_MS, type JwtSvidParams, WorkloadApiClient, type WorkloadApiClientOptions } from './client.js';
export { JwtSource, type JwtSourceOptions } from './jwtsource.js';
export type { ValidatedJwtSvid, X509BundlesUpdate, X509Context } from './parse.js';
export { SECURITY_HEADER, WORKLOAD_API_SERVICE } from './proto.js';
export { type BackoffOptions, DEFAULT_BACKOFF, LinearBackoff, type Watcher } from './watch.js';
export { X509Source, type X509SourceOptions } from './x509source.js';
