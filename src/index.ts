/**
 * The `writ` package entry: the library layer that services and agents import. It pulls in no
 * database, no gRPC server and no logger.
 */
export * from './errors.js';
export * from './spiffeid/index.js';
export * from './bundle/index.js';
export * from './svid/index.js';
export * from './workloadapi/index.js';
