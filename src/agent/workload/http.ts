/**
 * The Workload API as JSON over HTTP (express) on a second Unix socket, for curl users, served by
 * the same WorkloadHandler as the gRPC endpoint. The security header `workload.spiffe.io: true` is
 * required on every request; callers are identified per connection from the kernel (peer.ts) and
 * attested per request. Errors are `{"error":{"code","message"}}` with the code's HTTP status.
 *
 *   GET  /v1/x509             X.509-SVIDs (PEM chain, PKCS#8 key, bundle), CRLs, federated bundles
 *   GET  /v1/x509/watch       the same as NDJSON lines, at once and on every change
 *   GET  /v1/bundles/x509     X.509 bundles by trust domain SPIFFE ID, CRLs
 *   GET  /v1/bundles/jwt      JWKS by trust domain SPIFFE ID
 *   POST /v1/jwt              {"audience":[...],"spiffe_id"?} → JWT-SVIDs
 *   POST /v1/jwt/validate     {"audience","svid"} → spiffe_id and claims
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { WritError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Selector } from '../../datastore/types.js';
import { SECURITY_HEADER } from '../../workloadapi/proto.js';
import {
  attestCaller,
  checkAudience,
  checkOptionalSpiffeId,
  checkSecurityHeader,
  checkValidateRequest,
  noIdentity,
  safeError,
} from './caller.js';
import type { WorkloadHandler } from './handler.js';
import { LiveList } from '../live-list.js';
import { startWatch, type OpenWatch } from './http-watch.js';
import { trackPeer, type TrackedPeer } from './peer.js';
import { jwtBundlesJson, jwtSvidsJson, x509BundlesJson, x509Json } from './render.js';
import { closeServer, DEFAULT_SOCKET_MODE, listenUnix } from './socket.js';

export const MAX_HTTP_BODY_BYTES = 64 * 1024;

export interface HttpWorkloadEndpointOptions {
  socketPath: string;
  handler: WorkloadHandler;
  logger: Logger;
  /** Default 0o777, as the gRPC socket. */
  socketMode?: number;
  /** Default 10,000. */
  maxConnections?: number;
  /** Interval of `{"heartbeat":true}` lines on /v1/x509/watch; default 30 s. */
  heartbeatMs?: number;
}

export interface HttpWorkloadEndpoint {
  socketPath: string;
  close(): Promise<void>;
  stats(): { connections: number; watches: number };
}

function sendError(res: Response, e: WritError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(e.httpStatus).json({ error: { code: e.code, message: e.message } });
}

function bodyOf(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new WritError('ERR_INPUT_INVALID', 'The request body must be a JSON object.');
  return b as Record<string, unknown>;
}

/** Body-parser failures as WritErrors: too large → 413, anything else → 400. */
function bodyError(e: unknown): WritError | undefined {
  if (typeof e !== 'object' || e === null || !('type' in e)) return undefined;
  if (e.type === 'entity.too.large') return new WritError('ERR_REQUEST_TOO_LARGE', `A Workload API request body holds at most ${MAX_HTTP_BODY_BYTES} bytes.`);
  if (typeof e.type === 'string' && (e.type.startsWith('entity.') || e.type.startsWith('encoding.') || e.type.startsWith('charset.'))) {
    return new WritError('ERR_INPUT_INVALID', 'The request body is not valid JSON.');
  }
  return undefined;
}

export async function startHttpWorkloadEndpoint(opts: HttpWorkloadEndpointOptions): Promise<HttpWorkloadEndpoint> {
  const logger = opts.logger.child({ transport: 'http' });
  const { handler } = opts;
  const peers = new WeakMap<Socket, TrackedPeer>();
  const sockets = new LiveList<Socket>();
  const watches = new LiveList<OpenWatch>();
  let shutdown: WritError | undefined;

  const selectorsOf = (req: Request): Promise<Selector[]> => attestCaller(handler, peers.get(req.socket), logger);
  type Route = (req: Request, res: Response) => Promise<void>;
  const route =
    (name: string, fn: Route) =>
    (req: Request, res: Response): void => {
      fn(req, res).catch((e: unknown) => {
        const err = safeError(e, logger, name);
        logger.debug({ call: name, code: err.code }, 'Workload API call refused');
        sendError(res, err);
      });
    };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((req: Request, res: Response, next: NextFunction) => {
    res.setHeader('cache-control', 'no-store');
    try {
      checkSecurityHeader(req.headersDistinct[SECURITY_HEADER] ?? []);
      next();
    } catch (e) {
      sendError(res, safeError(e, logger, 'header'));
    }
  });
  // Any content type is read as JSON (curl -d sends form encoding); the security header already
  // keeps browsers out, as it needs a CORS preflight this endpoint never answers.
  app.use(express.json({ limit: MAX_HTTP_BODY_BYTES, type: () => true, strict: true }));

  app.get(
    '/v1/x509',
    route('x509', async (req, res) => {
      const state = handler.x509State(await selectorsOf(req));
      if (state.svids.length === 0) throw noIdentity();
      res.json(x509Json(state));
    }),
  );
  app.get(
    '/v1/x509/watch',
    route('x509/watch', async (req, res) => {
      const selectors = await selectorsOf(req);
      if (shutdown) throw shutdown;
      startWatch({ res, handler, selectors, logger, heartbeatMs: opts.heartbeatMs ?? 30_000, watches });
    }),
  );
  app.get(
    '/v1/bundles/x509',
    route('bundles/x509', async (req, res) => {
      res.json(x509BundlesJson(handler.x509Bundles(await selectorsOf(req))));
    }),
  );
  app.get(
    '/v1/bundles/jwt',
    route('bundles/jwt', async (req, res) => {
      res.json(jwtBundlesJson(handler.jwtBundles(await selectorsOf(req))));
    }),
  );
  app.post(
    '/v1/jwt',
    route('jwt', async (req, res) => {
      const body = bodyOf(req);
      const audience = checkAudience(body.audience);
      const spiffeId = checkOptionalSpiffeId(body.spiffe_id);
      const svids = await handler.fetchJwtSvids(await selectorsOf(req), audience, spiffeId);
      if (svids.length === 0) throw noIdentity();
      res.json(jwtSvidsJson(svids));
    }),
  );
  app.post(
    '/v1/jwt/validate',
    route('jwt/validate', async (req, res) => {
      const body = bodyOf(req);
      const { audience, svid } = checkValidateRequest(body.audience, body.svid);
      const { spiffeId, claims } = await handler.validateJwtSvid(await selectorsOf(req), svid, audience);
      res.json({ spiffe_id: spiffeId, claims });
    }),
  );
  app.use((_req: Request, res: Response) => sendError(res, new WritError('ERR_NOT_FOUND', 'There is no such Workload API route.')));
  app.use((e: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendError(res, bodyError(e) ?? safeError(e, logger, 'http'));
  });

  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, maxHeaderSize: 16 * 1024 }, app);
  server.maxConnections = opts.maxConnections ?? 10_000;
  server.on('connection', (socket: Socket) => {
    if (shutdown) {
      socket.destroy();
      return;
    }
    try {
      peers.set(socket, trackPeer(socket));
    } catch (e) {
      logger.warn({ err: e instanceof WritError ? e.message : String(e) }, 'refused a connection whose caller the kernel did not name');
      socket.destroy();
      return;
    }
    socket.once('close', sockets.add(socket));
  });
  server.on('error', (e) => logger.error({ err: e }, 'Workload API (HTTP) listener error'));

  const file = await listenUnix(server, opts.socketPath, opts.socketMode ?? DEFAULT_SOCKET_MODE);
  logger.info({ socket: opts.socketPath }, 'Workload API (HTTP) listening');

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    shutdown = new WritError('ERR_AGENT_NOT_READY', 'The agent is shutting down.');
    const stopped = closeServer(server);
    for (const w of watches.values()) w.end(shutdown);
    server.closeIdleConnections();
    // Give in-flight answers a moment, then cut what is left.
    const deadline = Date.now() + 1000;
    while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets.values()) s.destroy();
    await stopped; // each socket's close event closed its peer's pidfd (peer.ts)
    file.remove();
    logger.info({ socket: opts.socketPath }, 'Workload API (HTTP) closed');
  };

  return {
    socketPath: opts.socketPath,
    close: () => (closed ??= close()),
    stats: () => ({ connections: sockets.size, watches: watches.size }),
  };
}
