/**
 * mTLS clients: options for tls.connect / https.request that present the source's SVID and check
 * the server by SPIFFE ID (never by host name), and a small request helper on top of them.
 *
 * The server check runs in checkServerIdentity, which Node calls after OpenSSL verified the chain
 * against the roots of every trust domain and before 'secureConnect': verifyX509Svid against the
 * server's own trust domain bundle and the CRLs, then the authorizer. Node skips
 * checkServerIdentity for resumed TLS sessions, so the options come with their own https.Agent
 * that caches no sessions (and never shares sockets with clients that have other authorizers).
 */
import https from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ConnectionOptions, PeerCertificate, SecureContext, TLSSocket } from 'node:tls';
import { type Clock, systemClock } from '../clock.js';
import { WritError, isWritError } from '../errors.js';
import type { Authorizer } from './authorize.js';
import { type VerifiedPeer, peerChain, verifySnapshotPeer } from './peer.js';
import { type TlsSource, type TlsState, tlsStateOf } from './state.js';

export interface MtlsClientOptions extends ConnectionOptions {
  /** A dedicated keep-alive agent without a TLS session cache, for https.request. */
  agent: https.Agent;
}

export interface MtlsClientConfig {
  clock?: Clock;
  /** Keep connections open between requests (default true). */
  keepAlive?: boolean;
}

function checkServer(state: TlsState, authorizer: Authorizer, clock: Clock, cert: PeerCertificate | undefined): VerifiedPeer {
  return verifySnapshotPeer(state.snapshot(), peerChain(cert), authorizer, clock, 'server');
}

/**
 * Options for tls.connect() and https.request(): `secureContext` is read at each connection (so
 * it is always the latest SVID and roots), `checkServerIdentity` verifies the server's SVID and
 * authorizes its SPIFFE ID, and `agent` is a dedicated https.Agent. An authorizer is required.
 */
export function mtlsClientOptions(source: TlsSource, authorizer: Authorizer, config: MtlsClientConfig = {}): MtlsClientOptions {
  if (typeof authorizer !== 'function') throw new WritError('ERR_INPUT_INVALID', 'An mTLS client needs an authorizer for the server it calls (for example authorizeId(...)).');
  const state = tlsStateOf(source);
  const clock = config.clock ?? systemClock;
  state.context(); // fail now, not at the first connection, when the source is not ready
  const agent = new https.Agent({ keepAlive: config.keepAlive ?? true, maxCachedSessions: 0 });
  return {
    get secureContext(): SecureContext {
      return state.context();
    },
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      try {
        checkServer(state, authorizer, clock, cert);
        return undefined;
      } catch (e) {
        return isWritError(e) ? e : new WritError('ERR_TLS_PEER_INVALID', "The server's X509-SVID could not be verified.", { cause: e });
      }
    },
    agent,
  };
}

export interface MtlsRequestInit {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Uint8Array;
  /** Whole-request time limit, ms (default 30 s). */
  timeoutMs?: number;
  /** Largest response body accepted, bytes (default 16 MiB). */
  maxBodyBytes?: number;
}

export interface MtlsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The server, as verified for this request. */
  peer: VerifiedPeer;
  text(): string;
  json<T = unknown>(): T;
}

function connectionError(origin: string, e: unknown): WritError {
  if (isWritError(e)) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return new WritError('ERR_TLS_CONNECTION', `The mTLS request to ${origin} failed${code ? ` (${code})` : ''}.`, { cause: e, details: { origin, ...(code ? { error: code } : {}) } });
}

/** Calls other services over mTLS with one source, one authorizer and one connection pool. */
export class MtlsClient {
  readonly options: MtlsClientOptions;
  readonly #state: TlsState;
  readonly #authorizer: Authorizer;
  readonly #clock: Clock;

  constructor(source: TlsSource, authorizer: Authorizer, config: MtlsClientConfig = {}) {
    this.options = mtlsClientOptions(source, authorizer, config);
    this.#state = tlsStateOf(source);
    this.#authorizer = authorizer;
    this.#clock = config.clock ?? systemClock;
  }

  /** The server's verified identity on an established socket (checked again after a source update). */
  #peerOf(socket: TLSSocket): VerifiedPeer {
    return checkServer(this.#state, this.#authorizer, this.#clock, socket.getPeerCertificate(true));
  }

  /** One HTTPS request; rejects with ERR_TLS_* for a refused server and ERR_TLS_CONNECTION otherwise. */
  request(url: string | URL, init: MtlsRequestInit = {}): Promise<MtlsResponse> {
    const u = new URL(url);
    if (u.protocol !== 'https:') return Promise.reject(new WritError('ERR_INPUT_INVALID', `An mTLS request needs an https: URL, not ${u.protocol}.`));
    const maxBody = init.maxBodyBytes ?? 16 * 1024 * 1024;
    return new Promise<MtlsResponse>((resolve, reject) => {
      const req = https.request(u, { ...this.options, method: init.method ?? 'GET', headers: init.headers ?? {} }, (res) => {
        let peer: VerifiedPeer;
        try {
          peer = this.#peerOf(res.socket as TLSSocket);
        } catch (e) {
          req.destroy(connectionError(u.origin, e));
          return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > maxBody) req.destroy(new WritError('ERR_TLS_CONNECTION', `The response from ${u.origin} is larger than ${maxBody} bytes.`, { details: { origin: u.origin } }));
          else parts.push(d);
        });
        res.on('end', () => {
          clearTimeout(timer);
          const body = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, peer, text: () => body.toString('utf8'), json: <T>() => JSON.parse(body.toString('utf8')) as T });
        });
        res.on('error', (e) => req.destroy(e));
      });
      const timeoutMs = init.timeoutMs ?? 30_000;
      const timer = setTimeout(() => req.destroy(new WritError('ERR_TLS_CONNECTION', `The mTLS request to ${u.origin} took longer than ${timeoutMs} ms.`, { details: { origin: u.origin } })), timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(connectionError(u.origin, e));
      });
      // A pooled connection was checked when it was opened; check it again against the current
      // source state (a new CRL, a rotated bundle) before the request goes out on it.
      req.on('socket', (socket) => {
        const s = socket as TLSSocket;
        if (!s.authorized) return; // a new connection: checkServerIdentity will run
        try {
          this.#peerOf(s);
        } catch (e) {
          req.destroy(connectionError(u.origin, e)); // destroys the pooled socket too
        }
      });
      req.end(init.body);
    });
  }

  /** Closes the pooled connections. */
  close(): void {
    this.options.agent.destroy();
  }
}

/** One request with a client made for it (no pooling); see MtlsClient.request. */
export async function mtlsFetch(source: TlsSource, authorizer: Authorizer, url: string | URL, init: MtlsRequestInit = {}): Promise<MtlsResponse> {
  const client = new MtlsClient(source, authorizer, { keepAlive: false });
  try {
    return await client.request(url, init);
  } finally {
    client.close();
  }
}
