/**
 * mTLS servers on node:tls / node:https. Node cannot run a JavaScript verify callback inside the
 * handshake, so the work is split in two:
 * - OpenSSL, in the handshake: a client certificate is required and must chain to a root of some
 *   trust domain the source knows (the union of all bundles), with a valid signature and dates.
 * - The strict check, on 'secureConnection', before any application data is read: verifyX509Svid
 *   against the bundle of the client's own trust domain only, the SVID rules, the source's CRLs,
 *   then the authorizer. A refused socket is destroyed at once (see applyPeerCheck).
 * CRLs are not handed to OpenSSL: Node's `crl` option turns on CRL checking for every certificate
 * of every chain, which fails handshakes for CAs without a CRL; the strict check applies them.
 */
import { constants } from 'node:crypto';
import https from 'node:https';
import type { RequestListener } from 'node:http';
import type { PeerCertificate, Server as TlsServer, TLSSocket, TlsOptions } from 'node:tls';
import { type Clock, systemClock } from '../clock.js';
import { WritError, isWritError } from '../errors.js';
import type { Authorizer } from './authorize.js';
import { type VerifiedPeer, peerChain, verifySnapshotLeaf } from './peer.js';
import { type TlsSnapshot, type TlsSource, type TlsState, tlsStateOf } from './state.js';

export interface PeerCheckOptions {
  /** Time for validity checks; default the system clock. */
  clock?: Clock;
  /** Called with the coded reason before a refused connection is destroyed (for logs and metrics). */
  onRefused?: (reason: WritError, socket: TLSSocket) => void;
}

/** The outcome of the strict check for one socket, at one source update. */
interface SocketPeer {
  check: PeerCheck;
  generation: number;
  peer?: VerifiedPeer;
  error?: WritError;
}

const kPeer = Symbol('writ.tls.peer');
type CheckedSocket = TLSSocket & { [kPeer]?: SocketPeer; server?: unknown };

function asTlsError(e: unknown): WritError {
  return isWritError(e) ? e : new WritError('ERR_TLS_PEER_INVALID', "The peer's X509-SVID could not be verified.", { cause: e });
}

/** @internal A source's state plus an authorizer: verifies sockets, caching the result on each. */
export class PeerCheck {
  constructor(
    readonly state: TlsState,
    readonly authorizer: Authorizer,
    readonly clock: Clock = systemClock,
  ) {}

  /** The socket's result for the current source update (verified again after each update). */
  run(socket: TLSSocket): SocketPeer {
    const s = socket as CheckedSocket;
    const snap: TlsSnapshot = this.state.snapshot();
    const prev = s[kPeer];
    if (prev && prev.check === this && prev.generation === snap.generation) return prev;
    let result: SocketPeer;
    try {
      // The leaf alone (getPeerCertificate(false)) is cheap and keys the cache; the whole chain
      // (getPeerCertificate(true), about a tenth of a handshake) is read only for a new leaf.
      const leaf = (socket.getPeerCertificate(false) as PeerCertificate | null)?.raw;
      const peer = verifySnapshotLeaf(snap, Buffer.isBuffer(leaf) ? leaf : undefined, () => peerChain(socket.getPeerCertificate(true)), this.authorizer, this.clock, 'client');
      result = { check: this, generation: snap.generation, peer };
    } catch (e) {
      result = { check: this, generation: snap.generation, error: asTlsError(e) };
    }
    s[kPeer] = result;
    return result;
  }
}

/** What applyPeerCheck attached; close() detaches it (the server keeps its current context). */
export interface PeerCheckBinding {
  close(): void;
}

const bindings = new WeakMap<object, { check: PeerCheck; binding: PeerCheckBinding }>();
/** mtlsServerOptions() results, found again through the `ca` array a server keeps from its options. */
const byRoots = new WeakMap<object, { check: PeerCheck; generation: number }>();

/** Server fields that setSecureContext() would reset; they are handed back on every swap. */
const KEPT_FIELDS = ['ciphers', 'sigalgs', 'ecdhCurve', 'dhparam', 'minVersion', 'maxVersion', 'secureProtocol', 'secureOptions', 'honorCipherOrder', 'crl', 'sessionIdContext', 'ticketKeys', 'sessionTimeout'] as const;

/** `madeAt`: the source update the server's current context was built from, when known. */
function bind(server: TlsServer, check: PeerCheck, opts: PeerCheckOptions, madeAt?: number): PeerCheckBinding {
  if (bindings.has(server)) {
    throw new WritError('ERR_TLS_NOT_CONFIGURED', 'This server already has a peer check; apply it once per server.');
  }
  const onSecure = (socket: TLSSocket): void => {
    const r = check.run(socket);
    if (!r.error) return;
    try {
      opts.onRefused?.(r.error, socket);
    } catch {
      // A failing log hook must not keep the socket open or throw into the server's emitter.
    }
    // No error argument: the reason goes to onRefused, not to 'error'/'clientError' handlers
    // (http's default one would try to answer 400 on the socket).
    socket.destroy();
  };
  const swap = (snap: TlsSnapshot): void => {
    const fields = server as unknown as Record<string, unknown>;
    const kept: Record<string, unknown> = {};
    for (const k of KEPT_FIELDS) if (fields[k] !== undefined) kept[k] = fields[k];
    // Without an SVID (none yet, or withdrawn by the Workload API) the context has no certificate,
    // so new handshakes fail until one arrives; open connections are left alone.
    server.setSecureContext({ ...kept, ...(snap.contextOptions ?? { ca: snap.roots }) });
  };
  // Prepended: the check runs before http's connection listener and any other.
  server.prependListener('secureConnection', onSecure);
  const stop = check.state.onUpdate(swap);
  const binding: PeerCheckBinding = {
    close: () => {
      server.off('secureConnection', onSecure);
      server.off('close', binding.close);
      stop();
      bindings.delete(server);
    },
  };
  server.once('close', binding.close);
  bindings.set(server, { check, binding });
  // The server's context may predate the latest update, or not come from the source at all.
  const snap = check.state.snapshot();
  if (snap.generation !== madeAt) swap(snap);
  return binding;
}

/**
 * Applies the strict peer check to an existing tls.Server or https.Server: every connection's
 * client SVID is verified (own trust domain bundle, SVID rules, CRLs) and authorized on
 * 'secureConnection', and a refused socket is destroyed before any data is read. On every source
 * update the server's context is swapped (server.setSecureContext) to the new SVID and roots;
 * open connections are not dropped; while the source has no SVID, new handshakes fail. The
 * server should require client certificates (mtlsServerOptions does); when it does not,
 * connections without one are refused here. Throws ERR_TLS_NOT_CONFIGURED if applied twice.
 */
export function applyPeerCheck(server: TlsServer, source: TlsSource, authorizer: Authorizer, opts: PeerCheckOptions = {}): PeerCheckBinding {
  return bind(server, new PeerCheck(tlsStateOf(source), authorizer, opts.clock), opts, optionsOf(server, source)?.generation);
}

/**
 * Options for tls.createServer / https.createServer from a source: the current SVID and key, the
 * roots of every trust domain as `ca`, requestCert and rejectUnauthorized (OpenSSL refuses clients
 * without a certificate chaining to one of those roots), TLS 1.2 at least, and an SNICallback that
 * serves the latest update's context to clients that send a server name; renegotiation is off.
 *
 * On their own these options do NOT bind a client to its own trust domain, apply CRLs, check the
 * SVID rules or run the authorizer, and a client that sends no server name gets the SVID and
 * roots of the moment the options were made. All of that is added by applyPeerCheck(server, ...)
 * (or createMtlsServer), and also, on the first request it sees, by the requirePeer() express
 * middleware, which then checks that request itself and applies the check to the server.
 * Throws ERR_TLS_SOURCE_NOT_READY when the source has no SVID.
 */
export function mtlsServerOptions(source: TlsSource, authorizer: Authorizer, opts: { clock?: Clock } = {}): TlsOptions {
  const state = tlsStateOf(source);
  const base = state.contextOptions();
  const ca = [...((base.ca as string[] | undefined) ?? [])];
  byRoots.set(ca, { check: new PeerCheck(state, authorizer, opts.clock), generation: state.snapshot().generation });
  return {
    cert: base.cert,
    key: base.key,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    // A TLS 1.2 renegotiation could present another certificate after the check ran.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    SNICallback: (_servername, cb) => {
      try {
        cb(null, state.context());
      } catch (e) {
        cb(e instanceof Error ? e : new Error('The X.509 source has no SVID.'), undefined);
      }
    },
  };
}

/** An https.Server from mtlsServerOptions with applyPeerCheck applied. */
export function createMtlsServer(source: TlsSource, authorizer: Authorizer, requestListener?: RequestListener, opts: PeerCheckOptions & { serverOptions?: https.ServerOptions } = {}): https.Server {
  const server = https.createServer({ ...opts.serverOptions, ...mtlsServerOptions(source, authorizer, opts) }, requestListener);
  applyPeerCheck(server, source, authorizer, opts);
  return server;
}

/** The mtlsServerOptions() a server was made from (while it still has their context). */
function optionsOf(server: TlsServer, source?: TlsSource): { check: PeerCheck; generation: number } | undefined {
  const roots = (server as unknown as { ca?: unknown }).ca;
  const made = roots && typeof roots === 'object' ? byRoots.get(roots) : undefined;
  return made && (source === undefined || made.check.state.source === source) ? made : undefined;
}

/**
 * The server-level peer check that covers `socket`: the one applied to its server, else the one
 * of the mtlsServerOptions the server was made from (which is then applied to the server).
 */
export function peerCheckOf(socket: TLSSocket): PeerCheck | undefined {
  const server = (socket as CheckedSocket).server as TlsServer | undefined;
  if (!server || typeof server !== 'object') return undefined;
  const bound = bindings.get(server);
  if (bound) return bound.check;
  const made = optionsOf(server);
  if (!made || typeof server.prependListener !== 'function' || typeof server.setSecureContext !== 'function') return undefined;
  bind(server, made.check, {}, made.generation);
  return made.check;
}

/**
 * The verified peer of a server-side socket, as the server's peer check found it at the current
 * source update (checking again if the source changed since); throws its coded refusal otherwise:
 * ERR_TLS_PEER_MISSING, ERR_TLS_PEER_INVALID, ERR_TLS_PEER_NOT_AUTHORIZED, or ERR_TLS_NOT_CONFIGURED
 * when no peer check covers the socket.
 */
export function verifiedPeerOf(socket: TLSSocket): VerifiedPeer {
  const check = peerCheckOf(socket);
  if (!check) throw new WritError('ERR_TLS_NOT_CONFIGURED', 'No peer check covers this connection; build the server with mtlsServerOptions() or call applyPeerCheck().');
  const r = check.run(socket);
  if (r.error) throw r.error;
  return r.peer!;
}
