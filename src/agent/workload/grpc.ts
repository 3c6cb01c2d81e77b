/**
 * The agent's gRPC Workload API endpoint on a Unix socket. grpc-js cannot name the caller of a
 * socket it accepted itself, so this endpoint accepts connections with net.createServer, reads the
 * kernel's record of each caller (peer.ts), labels the socket with a unique address string, and
 * hands it to grpc-js through a connection injector. grpc-js reports that label as the call's
 * peer (`call.getPeer()` is the session socket's remoteAddress), which maps every call back to the
 * tracked peer of its own connection.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { systemClock, type Clock } from '../../clock.js';
import { WritError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { workloadServiceDefinition } from '../../workloadapi/proto.js';
import type { WorkloadHandler } from './handler.js';
import { serverDefinition, workloadServiceImplementation, type CallContext, type OpenStream } from './grpc-calls.js';
import { LiveList } from '../live-list.js';
import { MessageMemo } from './memo.js';
import { trackPeer, type TrackedPeer } from './peer.js';
import { closeServer, DEFAULT_SOCKET_MODE, listenUnix } from './socket.js';

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 100;
/** Requests are tiny (an audience list, a token); anything bigger is refused with RESOURCE_EXHAUSTED. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface GrpcWorkloadEndpointOptions {
  socketPath: string;
  handler: WorkloadHandler;
  logger: Logger;
  /** Mode of the socket file; default 0o777 (as SPIRE's public socket). */
  socketMode?: number;
  /** Connections beyond this are closed at accept; default 10,000. */
  maxConnections?: number;
  /** HTTP/2 concurrent streams per connection; default 100. */
  maxStreamsPerConnection?: number;
  /** Server keepalive ping interval; default 5 minutes (the kernel reports closed Unix sockets anyway). */
  keepaliveTimeMs?: number;
  /** The handler's clock, for when a rendered message holding an SVID goes stale; default the system clock. */
  clock?: Clock;
}

export interface GrpcWorkloadEndpoint {
  socketPath: string;
  /** Ends open streams (Unavailable), closes connections and pidfds, removes the socket file. */
  close(): Promise<void>;
  stats(): { connections: number; streams: number };
}

/** Makes grpc-js's `getPeer()` (remoteAddress, no port on a Unix socket) return `label`. */
function labelSocket(socket: Socket, label: string): void {
  Object.defineProperty(socket, 'remoteAddress', { value: label, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: undefined, configurable: true });
}

export async function startGrpcWorkloadEndpoint(opts: GrpcWorkloadEndpointOptions): Promise<GrpcWorkloadEndpoint> {
  const logger = opts.logger.child({ transport: 'grpc' });
  const peers = new Map<string, TrackedPeer>();
  const sockets = new LiveList<Socket>();
  const streams = new LiveList<OpenStream>();
  let shutdown: WritError | undefined;
  const memo = new MessageMemo(opts.handler, opts.clock ?? systemClock);
  const ctx: CallContext = { handler: opts.handler, logger, peerOf: (label) => peers.get(label), streams, closing: () => shutdown, memo };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    'grpc.max_concurrent_streams': opts.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
    'grpc.keepalive_time_ms': opts.keepaliveTimeMs ?? 5 * 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.enable_channelz': 0,
  });
  const def = serverDefinition(workloadServiceDefinition());
  server.addService(def, workloadServiceImplementation(ctx, def));
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  // One label per connection, never reused; the random part keeps them distinct from any real address.
  const labelPrefix = `uds-${randomBytes(6).toString('hex')}-`;
  let seq = 0;
  const listener = createServer((socket) => {
    if (shutdown) {
      socket.destroy();
      return;
    }
    let peer: TrackedPeer;
    try {
      peer = trackPeer(socket);
    } catch (e) {
      logger.warn({ err: e instanceof WritError ? e.message : String(e) }, 'refused a connection whose caller the kernel did not name');
      socket.destroy();
      return;
    }
    const label = `${labelPrefix}${++seq}`;
    labelSocket(socket, label);
    peers.set(label, peer);
    const unregister = sockets.add(socket);
    socket.once('close', () => {
      peers.delete(label);
      unregister();
    });
    socket.on('error', () => undefined); // the http2 session reports it; never crash on ECONNRESET
    logger.debug({ pid: peer.pid, uid: peer.uid, gid: peer.gid, pidfd: peer.hasPidfd }, 'workload connected');
    injector.injectConnection(socket);
  });
  listener.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  listener.on('error', (e) => logger.error({ err: e }, 'Workload API listener error'));
  listener.on('drop', () => logger.warn({ max: listener.maxConnections }, 'refused a Workload API connection: too many connections'));

  let file: Awaited<ReturnType<typeof listenUnix>>;
  try {
    file = await listenUnix(listener, opts.socketPath, opts.socketMode ?? DEFAULT_SOCKET_MODE);
  } catch (e) {
    server.forceShutdown();
    throw e;
  }
  logger.info({ socket: opts.socketPath }, 'Workload API (gRPC) listening');

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    shutdown = new WritError('ERR_AGENT_NOT_READY', 'The agent is shutting down.');
    const stopped = closeServer(listener);
    for (const s of streams.values()) s.end(shutdown);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 2000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    for (const s of sockets.values()) s.destroy();
    for (const p of peers.values()) p.close();
    memo.close();
    await stopped;
    file.remove();
    logger.info({ socket: opts.socketPath }, 'Workload API (gRPC) closed');
  };

  return {
    socketPath: opts.socketPath,
    close: () => (closed ??= close()),
    stats: () => ({ connections: peers.size, streams: streams.size }),
  };
}
