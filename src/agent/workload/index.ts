/**
 * The agent's Workload API endpoints: gRPC (the SPIFFE Workload API) and JSON over HTTP, each on
 * its own Unix socket, both served by one WorkloadHandler (the contract with the agent's cache),
 * with callers identified from the kernel per connection and re-checked after attestation.
 */
export type { JwtSvidState, PeerProcess, WorkloadHandler, X509BundlesState, X509State, X509SvidState } from './handler.js';
export {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_STREAMS_PER_CONNECTION,
  MAX_REQUEST_BYTES,
  startGrpcWorkloadEndpoint,
  type GrpcWorkloadEndpoint,
  type GrpcWorkloadEndpointOptions,
} from './grpc.js';
export { MAX_HTTP_BODY_BYTES, startHttpWorkloadEndpoint, type HttpWorkloadEndpoint, type HttpWorkloadEndpointOptions } from './http.js';
export { ATTESTATION_FAILED, TrackedPeer, parseStartTime, readStartTime, trackPeer, type TrackedPeerOptions } from './peer.js';
export { HEADER_MISSING, NO_IDENTITY } from './caller.js';
export { DEFAULT_SOCKET_MODE, prepareSocketPath } from './socket.js';
