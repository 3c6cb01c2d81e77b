/**
 * Express middleware for mTLS services: requirePeer() puts the caller's verified SPIFFE identity on
 * `req.peer`, or answers 401 (no or invalid client SVID), 403 (not authorized) or 503 (source not
 * ready) with a JSON body {code, message}. It imports express types only: a service that does not
 * use express pulls in nothing from here.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { TLSSocket } from 'node:tls';
import { type Clock, systemClock } from '../clock.js';
import { WritError, isWritError } from '../errors.js';
import { type Authorizer, runAuthorizer } from './authorize.js';
import { type VerifiedPeer, peerChain, verifySnapshotPeer } from './peer.js';
import { peerCheckOf } from './server.js';
import { type TlsSource, tlsStateOf } from './state.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The caller's verified X509-SVID identity, set by requirePeer(). */
    peer?: VerifiedPeer;
  }
}

export interface RequirePeerOptions {
  /**
   * A further, per-route authorizer, run after the server's own check (a refusal is 403). With
   * `source`, the only authorizer (default: any verified peer).
   */
  authorizer?: Authorizer;
  /**
   * Verify the client here against this source, instead of relying on the server's peer check:
   * for servers not built with mtlsServerOptions/applyPeerCheck (for example one that accepts
   * connections without a client certificate, so that it can answer 401 itself).
   */
  source?: TlsSource;
  clock?: Clock;
}

function refuse(res: Response, err: WritError): void {
  res.status(err.httpStatus).json({ code: err.code, message: err.message });
}

/**
 * The middleware. Without `source` it uses the peer check of the server the request came in on
 * (checking the connection again when the source has changed since, so a revoked caller on a
 * keep-alive connection is refused at its next request); ERR_TLS_NOT_CONFIGURED (500) if none.
 */
export function requirePeer(opts: RequirePeerOptions = {}): RequestHandler {
  const clock = opts.clock ?? systemClock;
  return (req: Request, res: Response, next: NextFunction): void => {
    try {
      req.peer = verifyRequest(req, opts, clock);
      next();
    } catch (e) {
      refuse(res, isWritError(e) ? e : new WritError('ERR_INTERNAL', 'The peer check failed.', { cause: e }));
    }
  };
}

function verifyRequest(req: Request, opts: RequirePeerOptions, clock: Clock): VerifiedPeer {
  const socket = req.socket as TLSSocket;
  if (!socket || socket.encrypted !== true) throw new WritError('ERR_TLS_PEER_MISSING', 'The request did not arrive over TLS; a client X509-SVID is required.');
  if (opts.source) {
    return verifySnapshotPeer(tlsStateOf(opts.source).snapshot(), peerChain(socket.getPeerCertificate(true)), opts.authorizer ?? (() => undefined), clock, 'client');
  }
  const check = peerCheckOf(socket);
  if (!check) {
    throw new WritError('ERR_TLS_NOT_CONFIGURED', 'requirePeer() found no peer check for this server; build it with mtlsServerOptions() or applyPeerCheck(), or pass a source.');
  }
  const r = check.run(socket);
  if (r.error) throw r.error;
  const peer = r.peer!;
  if (opts.authorizer) {
    const refused = runAuthorizer(opts.authorizer, peer.spiffeId, peer.chain);
    if (refused) throw refused;
  }
  return peer;
}

/** The verified peer requirePeer() put on `req`; ERR_TLS_PEER_MISSING when it did not run or refused. */
export function peerOf(req: Request): VerifiedPeer {
  if (!req.peer) throw new WritError('ERR_TLS_PEER_MISSING', 'The request has no verified peer; put requirePeer() before this handler.');
  return req.peer;
}
