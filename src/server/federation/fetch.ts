/**
 * Fetching a SPIFFE bundle from a bundle endpoint (SPIFFE Federation §5): one GET over HTTPS with
 * a connect timeout and a total deadline, a cap on the body (a larger Content-Length is refused
 * before reading, a longer stream is cut at the cap), only 2xx accepted, and at most three
 * redirects, each to an https URL and checked exactly like the first hop (never persisted).
 *
 * https_web: the certificate is verified against the Web PKI roots Node ships (plus any extra CA
 * certificates configured for private PKI) and the host name, as any https client does.
 * https_spiffe: the certificate must be an X509-SVID with exactly the configured SPIFFE ID that
 * chains to the given bundle of the endpoint's trust domain; the host name plays no part. OpenSSL
 * checks the chain against that bundle's roots during the handshake, and checkServerIdentity
 * runs the library's X509-SVID verification before a byte of the request is sent.
 */
import { rootCertificates, type PeerCertificate } from 'node:tls';
import { request, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { X509Bundle } from '../../bundle/index.js';
import { WritError, isWritError } from '../../errors.js';
import { verifyX509Svid } from '../../svid/index.js';
import type { TrustDomain } from '../../spiffeid/index.js';
import type { FederationProfile } from '../../datastore/index.js';
import { checkEndpointUrl } from './relationship.js';

export const DEFAULT_MAX_BUNDLE_BYTES = 1024 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
export const MAX_REDIRECTS = 3;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);

export interface FetchTarget {
  trustDomain: TrustDomain;
  url: string;
  profile: FederationProfile;
  /** https_spiffe: the SPIFFE ID the endpoint must present. */
  endpointSpiffeId?: string;
  /** https_spiffe: the X.509 bundle of the endpoint ID's trust domain. */
  endpointBundle?: X509Bundle;
}

export interface FetchOptions {
  /** https_web: extra trusted CA certificates (PEM), added to Node's Web PKI roots. */
  extraCaPem?: string[];
  /** https_web: the full set of trusted roots (PEM); replaces Node's roots (tests). */
  caPem?: string[];
  connectTimeoutMs?: number;
  /** Covers the whole fetch, redirects included. */
  timeoutMs?: number;
  maxBytes?: number;
  /** The time SVIDs are checked at (the injected clock). */
  now?: () => Date;
  signal?: AbortSignal;
}

export interface FetchedBody {
  body: Buffer;
  /** The URL that answered (after redirects). */
  url: string;
  redirects: number;
}

/** The chain the peer presented, leaf first, as Node hands it to checkServerIdentity. */
function peerChain(cert: PeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: PeerCertificate | undefined = cert;
  const seen = new Set<string>();
  while (c && c.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(c.raw);
    const next: PeerCertificate | undefined = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
    c = next === c ? undefined : next;
  }
  return out;
}

function tlsOptions(target: FetchTarget, opts: FetchOptions, origin: string): Partial<RequestOptions> {
  if (target.profile === 'https_web') {
    if (opts.caPem) return { ca: opts.caPem };
    if (opts.extraCaPem?.length) return { ca: [...rootCertificates, ...opts.extraCaPem] };
    return {};
  }
  const bundle = target.endpointBundle;
  const want = target.endpointSpiffeId;
  if (!bundle || !want) throw new WritError('ERR_FEDERATION_NO_ENDPOINT_BUNDLE', `The https_spiffe fetch of ${origin} has no endpoint bundle or SPIFFE ID to check.`);
  return {
    ca: bundle.toPem(),
    // Called by Node after OpenSSL accepted the chain; a returned error aborts the connection.
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      try {
        const chain = peerChain(cert).filter((der, i) => i === 0 || !bundle.hasAuthority(der));
        const { id } = verifyX509Svid(chain, bundle, opts.now ? { now: opts.now() } : {});
        if (id.toString() !== want) {
          return new WritError('ERR_FEDERATION_ENDPOINT_ID', `The endpoint ${origin} presented the SPIFFE ID ${id.toString()}, not the expected ${want}.`, {
            details: { presented: id.toString(), expected: want },
          });
        }
        return undefined;
      } catch (e) {
        const reason = isWritError(e) ? e.code : 'ERR_INTERNAL';
        return new WritError('ERR_FEDERATION_TLS', `The certificate of ${origin} is not a valid X509-SVID for ${want}: ${isWritError(e) ? e.message : 'it could not be verified.'}`, {
          cause: e,
          details: { reason },
        });
      }
    },
  };
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|HOSTNAME_|ERR_OSSL)/;

function transportError(e: unknown, origin: string): WritError {
  if (isWritError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? (err.name === 'AbortError' ? 'ABORT_ERR' : 'unknown');
  if (code === 'ABORT_ERR') return new WritError('ERR_FEDERATION_FETCH', `The fetch from ${origin} was stopped.`, { details: { reason: code } });
  if (TLS_CODES.test(code)) {
    return new WritError('ERR_FEDERATION_TLS', `The TLS certificate of ${origin} was refused (${code}).`, { cause: e, details: { reason: code } });
  }
  return new WritError('ERR_FEDERATION_FETCH', `The bundle endpoint ${origin} could not be reached (${code}).`, { cause: e, details: { reason: code } });
}

type Hop = { redirect: string } | { body: Buffer };

function getOnce(url: URL, target: FetchTarget, opts: FetchOptions, deadline: number): Promise<Hop> {
  const origin = url.origin;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const connectMs = opts.connectTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  return new Promise<Hop>((resolve, reject) => {
    let settled = false;
    const finish = (err: WritError | undefined, hop?: Hop) => {
      if (settled) return;
      settled = true;
      clearTimeout(total);
      clearTimeout(connect);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(hop!);
    };
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    let tls: Partial<RequestOptions>;
    try {
      tls = tlsOptions(target, opts, origin);
    } catch (e) {
      reject(transportError(e, origin));
      return;
    }
    const req = request(
      {
        host,
        port: url.port === '' ? 443 : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': 'writ-federation' },
        // A fresh agent per fetch: no pooled sockets and no TLS session reuse, so every hop is
        // checked in full (Node skips checkServerIdentity on resumed sessions).
        agent: false,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        minVersion: 'TLSv1.2',
        rejectUnauthorized: true,
        ...tls,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (res: IncomingMessage) => onResponse(res),
    );
    const total = setTimeout(
      () => finish(new WritError('ERR_FEDERATION_TIMEOUT', `The bundle endpoint ${origin} did not answer within ${span(opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS)}.`)),
      Math.max(0, deadline - Date.now()),
    );
    const connect = setTimeout(() => finish(new WritError('ERR_FEDERATION_TIMEOUT', `The bundle endpoint ${origin} did not complete a TLS handshake within ${span(connectMs)}.`)), connectMs);
    req.on('socket', (s) => s.once('secureConnect', () => clearTimeout(connect)));
    req.on('error', (e) => finish(transportError(e, origin)));

    const onResponse = (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (REDIRECT_STATUS.has(status) && typeof res.headers.location === 'string') {
        res.resume();
        finish(undefined, { redirect: res.headers.location });
        return;
      }
      if (status < 200 || status > 299) {
        finish(new WritError('ERR_FEDERATION_HTTP_STATUS', `The bundle endpoint ${origin} answered HTTP ${status}.`, { details: { status } }));
        return;
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > maxBytes) {
        finish(tooLarge(origin, maxBytes, declared));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) finish(tooLarge(origin, maxBytes));
        else chunks.push(c);
      });
      res.on('end', () => finish(undefined, { body: Buffer.concat(chunks) }));
      res.on('error', (e) => finish(transportError(e, origin)));
      // After 'end' this is a no-op; before it, the peer hung up mid-answer.
      res.on('close', () => finish(new WritError('ERR_FEDERATION_FETCH', `The bundle endpoint ${origin} closed the connection mid-answer.`)));
    };
    req.end();
  });
}

const span = (ms: number) => (ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`);

function tooLarge(origin: string, max: number, declared?: number): WritError {
  return new WritError('ERR_FEDERATION_TOO_LARGE', `The answer of ${origin} is larger than ${max} bytes; it was not read.`, {
    details: { max_bytes: max, ...(declared !== undefined ? { content_length: declared } : {}) },
  });
}

/** GETs the bundle document, following up to three redirects with the same checks. */
export async function fetchBundleDocument(target: FetchTarget, opts: FetchOptions = {}): Promise<FetchedBody> {
  let url = checkEndpointUrl(target.url);
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS);
  for (let redirects = 0; ; redirects++) {
    const hop = await getOnce(url, target, opts, deadline);
    if ('body' in hop) return { body: hop.body, url: url.toString(), redirects };
    if (redirects >= MAX_REDIRECTS) {
      throw new WritError('ERR_FEDERATION_REDIRECT', `The bundle endpoint ${target.url} redirected more than ${MAX_REDIRECTS} times.`);
    }
    let next: URL;
    try {
      next = checkEndpointUrl(new URL(hop.redirect, url).toString(), 'the redirect target');
    } catch (e) {
      const why = isWritError(e) ? e.message : 'it is not a valid URL.';
      throw new WritError('ERR_FEDERATION_REDIRECT', `The bundle endpoint ${url.origin} redirected to a URL that was refused: ${why}`, { cause: e });
    }
    url = next;
  }
}
