/**
 * Who asked for a task, proven by an OIDC ID token instead of free text: the token is verified
 * against the configured issuer's keys (its discovery document names the JWKS, or `jwks_url`
 * does), for the configured audience, at the server's clock. Asymmetric algorithms only (no
 * `none`, no HMAC: the server holds no shared secret with the identity provider). The requester's
 * id is the `email` claim when the provider says it is verified (or does not say), else `sub`.
 * The token itself is never logged or stored; errors say what failed, never what the token held.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock.js';
import { WritError } from '../errors.js';

export interface OidcRequesterConfig {
  /** Expected `iss`, exactly. */
  issuer: string;
  /** Expected `aud` (one of). */
  audience: string;
  /** JWKS URL; default: `jwks_uri` of `<issuer>/.well-known/openid-configuration`. */
  jwksUrl?: string;
  /** PEM CA certificates trusted for the issuer's HTTPS, besides Node's Web PKI roots. */
  caFile?: string;
  /** Claim naming the requester; default `email` (when not marked unverified), else `sub`. */
  claim?: string;
}

export interface VerifiedRequester {
  id: string;
  authenticatedBy: 'oidc';
  issuer: string;
}

export const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const MAX_DOCUMENT_BYTES = 1024 * 1024;
const FETCH_TIMEOUT_MS = 10_000;
const MAX_TOKEN_LENGTH = 16 * 1024;

type FetchImpl = (url: string, init: { headers?: Headers; signal?: AbortSignal; method?: string }) => Promise<Response>;

/** A fetch over node:https trusting `ca` (PEM strings) in addition to the Web PKI, bounded in time and size. */
export function httpsFetch(ca: readonly string[] = []): FetchImpl {
  const trusted = ca.length ? [...rootCertificates, ...ca] : undefined;
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const u = new URL(url);
      if (u.protocol !== 'https:') {
        reject(new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', `The OIDC issuer's keys must be fetched over https, not ${u.protocol}.`));
        return;
      }
      const headers: Record<string, string> = {};
      init.headers?.forEach((v, k) => (headers[k] = v));
      const req = request(u, { method: 'GET', headers, ...(trusted ? { ca: trusted } : {}), timeout: FETCH_TIMEOUT_MS, signal: init.signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_DOCUMENT_BYTES) req.destroy(new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', `A document from the OIDC issuer is larger than ${MAX_DOCUMENT_BYTES} bytes.`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
          resolve(new Response(new Uint8Array(Buffer.concat(chunks)), { status: res.statusCode ?? 502, headers: h }));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', 'The OIDC issuer did not answer in time.')));
      req.on('error', reject);
      req.end();
    });
}

function readCaFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WritError('ERR_CONFIG_INVALID', `The OIDC ca_file ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new WritError('ERR_CONFIG_INVALID', `The OIDC ca_file ${path} holds no certificate.`);
  return blocks.map((b) => `${b}\n`);
}

export class OidcRequesterVerifier {
  readonly #fetch: FetchImpl;
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(
    readonly config: OidcRequesterConfig,
    private readonly clock: Clock,
    fetchImpl?: FetchImpl,
  ) {
    this.#fetch = fetchImpl ?? httpsFetch(config.caFile ? readCaFile(config.caFile) : []);
  }

  async #keys(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.#jwks) return this.#jwks;
    let url = this.config.jwksUrl;
    if (url === undefined) {
      const where = `${this.config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      let doc: { issuer?: unknown; jwks_uri?: unknown };
      try {
        const res = await this.#fetch(where, { headers: new Headers({ accept: 'application/json' }) });
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        doc = (await res.json()) as typeof doc;
      } catch (cause) {
        throw new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', `The OIDC discovery document of ${this.config.issuer} could not be read.`, { cause });
      }
      if (doc.issuer !== this.config.issuer || typeof doc.jwks_uri !== 'string') {
        throw new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', `The OIDC discovery document of ${this.config.issuer} names another issuer or no jwks_uri.`);
      }
      url = doc.jwks_uri;
    }
    this.#jwks = createRemoteJWKSet(new URL(url), { [customFetch]: this.#fetch, timeoutDuration: FETCH_TIMEOUT_MS, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
    return this.#jwks;
  }

  /** Verifies an ID token; ERR_REQUESTER_TOKEN_INVALID / _EXPIRED (401) or ERR_REQUESTER_OIDC_UNAVAILABLE (503). */
  async verify(token: string): Promise<VerifiedRequester> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3) {
      throw new WritError('ERR_REQUESTER_TOKEN_INVALID', 'The requester token is not a compact JWT.');
    }
    const keys = await this.#keys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        algorithms: ALGORITHMS,
        currentDate: this.clock.now(),
        clockTolerance: 30,
        requiredClaims: ['exp', 'iat', 'sub'],
      }));
    } catch (e) {
      throw tokenError(e, this.config.issuer);
    }
    return { id: requesterId(payload, this.config.claim), authenticatedBy: 'oidc', issuer: this.config.issuer };
  }
}

function requesterId(payload: JWTPayload, claim: string | undefined): string {
  const pick = (name: string): string | undefined => {
    const v = payload[name];
    return typeof v === 'string' && v.length > 0 && v.length <= 512 ? v : undefined;
  };
  if (claim !== undefined) {
    const v = pick(claim);
    if (v === undefined) throw new WritError('ERR_REQUESTER_TOKEN_INVALID', `The requester token has no usable "${claim}" claim.`);
    return v;
  }
  const email = pick('email');
  if (email !== undefined && payload.email_verified !== false) return email;
  return pick('sub')!;
}

function tokenError(e: unknown, issuer: string): WritError {
  if (e instanceof WritError) return e;
  if (e instanceof joseErrors.JWTExpired) return new WritError('ERR_REQUESTER_TOKEN_EXPIRED', 'The requester token has expired.');
  if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid) {
    return new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', `The keys of the OIDC issuer ${issuer} could not be fetched.`, { cause: e });
  }
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    return new WritError('ERR_REQUESTER_TOKEN_INVALID', `The requester token's "${e.claim}" claim is not acceptable (${e.reason}).`);
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return new WritError('ERR_REQUESTER_TOKEN_INVALID', 'The requester token is signed with an algorithm writ does not accept.');
  if (e instanceof joseErrors.JWKSNoMatchingKey) return new WritError('ERR_REQUESTER_TOKEN_INVALID', 'The requester token was signed by a key the OIDC issuer does not publish.');
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return new WritError('ERR_REQUESTER_TOKEN_INVALID', 'The requester token signature does not verify.');
  if (e instanceof joseErrors.JOSEError) return new WritError('ERR_REQUESTER_TOKEN_INVALID', 'The requester token is not a valid ID token.');
  return new WritError('ERR_REQUESTER_OIDC_UNAVAILABLE', `The keys of the OIDC issuer ${issuer} could not be fetched.`, { cause: e });
}
