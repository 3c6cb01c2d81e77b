/**
 * The `writ` package entry: the library layer that services and agents import. It pulls in no
 * database, no gRPC server and no logger.
 */
export * from './errors.js';
export * from './spiffeid/index.js';
export * from './bundle/index.js';
export * from './svid/index.js';
export * from './workloadapi/index.js';
export * from './tls/index.js';
export * from './policy/index.js';
// The audit engine uses node:fs and node:crypto only: services keep their own decision logs with it.
export * from './audit/index.js';
