/** JWT-SVIDs: parse, validate and verify JWS compact tokens against JWT bundles (JWT-SVID spec). */
import type { JwtBundle, JwtBundleSource } from '../../bundle/index.js';
import { isWritError } from '../../errors.js';
import { type SpiffeId, parseSpiffeId } from '../../spiffeid/index.js';
import { DEFAULT_JWT_CLOCK_SKEW_SECONDS, JWT_SVID_ALGORITHMS, type JwtSvidAlgorithm, jwtViolation } from './rules.js';
import { keyUnsuitable, verifyJws } from './signature.js';

export interface JwtSvidHeader {
  alg: JwtSvidAlgorithm;
  kid: string;
  typ?: 'JWT' | 'JOSE';
}

export interface ValidateJwtSvidOptions {
  /** The time to check exp/nbf/iat at; default now. */
  now?: Date;
  /** Leeway for exp, nbf and iat in seconds; default DEFAULT_JWT_CLOCK_SKEW_SECONDS (30). */
  clockSkewSeconds?: number;
}

export class JwtSvid {
  /** @internal Use parseAndValidateJwtSvid() or parseInsecureJwtSvid(). */
  constructor(
    readonly id: SpiffeId,
    readonly audience: string[],
    readonly expiry: Date,
    readonly issuedAt: Date | undefined,
    /** Every claim of the token, as decoded. */
    readonly claims: Record<string, unknown>,
    /** The compact token itself; treat it as a secret (it is a bearer credential). */
    readonly token: string,
    readonly header: JwtSvidHeader,
  ) {}

  /** The token, for an Authorization: Bearer header. */
  marshal(): string {
    return this.token;
  }

  /** A loggable form: never the token. */
  toJSON(): { spiffe_id: string; audience: string[]; expiry: string; kid: string } {
    return { spiffe_id: this.id.toString(), audience: this.audience, expiry: this.expiry.toISOString(), kid: this.header.kid };
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const HEADER_MEMBERS = new Set(['alg', 'kid', 'typ']);
const ALGS: ReadonlySet<string> = new Set(JWT_SVID_ALGORITHMS);

function show(v: unknown): string {
  if (typeof v !== 'string') return v === null ? 'null' : typeof v;
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
}

function decodePart(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (cause) {
    throw jwtViolation('compact-jws', `The token's ${what} is not base64url-encoded JSON.`, {}, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw jwtViolation('compact-jws', `The token's ${what} is not a JSON object.`);
  return value as Record<string, unknown>;
}

interface Parsed {
  header: JwtSvidHeader;
  claims: Record<string, unknown>;
  id: SpiffeId;
  audience: string[];
  exp: number;
  signingInput: Buffer;
  signature: Buffer;
}

/** Structure, header and claim rules, in the order of JWT_SVID_RULES; no signature or time checks. */
function parseToken(token: string): Parsed {
  if (typeof token !== 'string') throw jwtViolation('compact-jws', 'The token must be a string.');
  const parts = token.split('.');
  if (parts.length !== 3) throw jwtViolation('compact-jws', `The token has ${parts.length} dot-separated parts; a JWS compact token has 3.`, { parts: parts.length });
  const [h, p, s] = parts as [string, string, string];
  if (!B64URL.test(h)) throw jwtViolation('compact-jws', "The token's header part is empty or not base64url.");
  const rawHeader = decodePart(h, 'header');
  const alg = rawHeader.alg;
  if (typeof alg !== 'string' || !ALGS.has(alg)) {
    throw jwtViolation('alg-allowed', `The token's alg is ${show(alg)}; JWT-SVIDs allow only ${JWT_SVID_ALGORITHMS.join(', ')}.`, {
      alg: typeof alg === 'string' ? alg.slice(0, 40) : null,
    });
  }
  const typ = rawHeader.typ;
  if (typ !== undefined && typ !== 'JWT' && typ !== 'JOSE') throw jwtViolation('typ-jwt-or-jose', `The token's typ is ${show(typ)}; only "JWT" or "JOSE" are allowed.`);
  const extra = Object.keys(rawHeader).filter((k) => !HEADER_MEMBERS.has(k));
  if (extra.length > 0) {
    const names = extra.slice(0, 5).map((k) => show(k));
    throw jwtViolation('header-members', `The token's header has ${names.join(', ')}; a JWT-SVID header may hold only alg, kid and typ.`, {
      members: extra.slice(0, 5).map((k) => k.slice(0, 40)),
    });
  }
  const kid = rawHeader.kid;
  if (typeof kid !== 'string' || kid.length === 0) throw jwtViolation('kid-present', "The token's header has no kid, so its signing key cannot be found.");
  const header: JwtSvidHeader = typ === undefined ? { alg: alg as JwtSvidAlgorithm, kid } : { alg: alg as JwtSvidAlgorithm, kid, typ };

  // The header is judged first, so that an "alg": "none" token (empty signature) is refused as such.
  if (!B64URL.test(p) || !B64URL.test(s)) throw jwtViolation('compact-jws', "The token's claims or signature part is empty or not base64url.");
  const claims = decodePart(p, 'claims');
  const sub = claims.sub;
  if (typeof sub !== 'string') throw jwtViolation('sub-spiffe-id', `The token's sub claim is ${sub === undefined ? 'missing' : `a ${show(sub)}`}; it must be a SPIFFE ID.`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(sub);
  } catch (cause) {
    if (!isWritError(cause)) throw cause;
    throw jwtViolation('sub-spiffe-id', `The token's sub claim ${show(sub)} is not a valid SPIFFE ID: ${cause.message}`, {}, cause);
  }
  const aud = claims.aud;
  const audience = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
  if (!audience || audience.length === 0 || !audience.every((a): a is string => typeof a === 'string' && a.length > 0)) {
    const why = aud === undefined ? 'missing' : 'not a non-empty string or a non-empty array of non-empty strings';
    throw jwtViolation('aud-present', `The token's aud claim is ${why}.`);
  }
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw jwtViolation('exp-present', `The token's exp claim is ${exp === undefined ? 'missing' : 'not a NumericDate'}; JWT-SVIDs must expire.`);
  }
  for (const name of ['iat', 'nbf'] as const) {
    const v = claims[name];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw jwtViolation('time-claims', `The token's ${name} claim is not a NumericDate.`, { claim: name });
  }
  return {
    header,
    claims,
    id,
    audience: [...(audience as string[])],
    exp,
    signingInput: Buffer.from(`${h}.${p}`, 'latin1'),
    signature: Buffer.from(s, 'base64url'),
  };
}

function checkSignature(t: Parsed, bundles: JwtBundleSource): void {
  const td = t.id.trustDomain;
  let bundle: JwtBundle;
  try {
    bundle = bundles.getJwtBundleForTrustDomain(td);
  } catch (cause) {
    if (isWritError(cause) && cause.code === 'ERR_BUNDLE_NOT_FOUND') {
      throw jwtViolation('bundle-for-sub-trust-domain', `There is no JWT bundle for ${td.name}, the trust domain of ${t.id.toString()}.`, { trust_domain: td.name }, cause);
    }
    throw cause;
  }
  const key = bundle.publicKey(t.header.kid);
  if (!key) {
    throw jwtViolation('key-for-kid', `The JWT bundle for ${td.name} has no key with ID ${show(t.header.kid)}.`, {
      trust_domain: td.name,
      kid: t.header.kid.slice(0, 64),
    });
  }
  const unsuitable = keyUnsuitable(t.header.alg, key);
  if (unsuitable) throw jwtViolation('signature', `The key ${show(t.header.kid)} cannot verify this token: ${unsuitable}.`, { alg: t.header.alg });
  if (!verifyJws(t.header.alg, key, t.signingInput, t.signature)) {
    throw jwtViolation('signature', `The token's signature does not verify with key ${show(t.header.kid)} of ${td.name}.`, { alg: t.header.alg });
  }
}

function checkTimeAndAudience(t: Parsed, token: string, expected: readonly string[], opts: ValidateJwtSvidOptions): JwtSvid {
  const skew = opts.clockSkewSeconds ?? DEFAULT_JWT_CLOCK_SKEW_SECONDS;
  if (!Number.isFinite(skew) || skew < 0) throw new RangeError('clockSkewSeconds must be a non-negative number.');
  const now = (opts.now ?? new Date()).getTime() / 1000;
  if (now - skew >= t.exp) {
    throw jwtViolation('not-expired', `The token expired at ${new Date(t.exp * 1000).toISOString()}.`, { exp: t.exp, clock_skew_seconds: skew });
  }
  for (const name of ['nbf', 'iat'] as const) {
    const v = t.claims[name] as number | undefined;
    if (v !== undefined && v > now + skew) {
      throw jwtViolation('not-before', `The token's ${name} is ${new Date(v * 1000).toISOString()}, in the future.`, { claim: name, clock_skew_seconds: skew });
    }
  }
  if (!Array.isArray(expected) || expected.length === 0) throw jwtViolation('aud-match', 'No expected audience was given; a JWT-SVID is only valid for a named audience.');
  if (!t.audience.some((a) => expected.includes(a))) {
    throw jwtViolation('aud-match', `The token's audience does not include ${expected.length === 1 ? show(expected[0]) : 'any of the expected audiences'}.`, {
      expected: expected.slice(0, 10),
    });
  }
  const iat = t.claims.iat as number | undefined;
  return new JwtSvid(t.id, t.audience, new Date(t.exp * 1000), iat === undefined ? undefined : new Date(iat * 1000), t.claims, token, t.header);
}

/**
 * Parses a JWT-SVID and validates it (JWT-SVID §4): structure, header, claims, the signature with
 * the key of the subject's trust domain bundle found by kid, exp/nbf/iat at `now` within the clock
 * skew, and that aud holds at least one of `audience`. Throws WritError ERR_SVID_JWT_* naming the rule.
 */
export function parseAndValidateJwtSvid(token: string, bundles: JwtBundleSource, audience: readonly string[], opts: ValidateJwtSvidOptions = {}): JwtSvid {
  const t = parseToken(token);
  checkSignature(t, bundles);
  return checkTimeAndAudience(t, token, audience, opts);
}

/**
 * Parses a JWT-SVID and checks everything but the signature (structure, header, claims, time,
 * audience). Only for callers that already trust the channel the token came over.
 */
export function parseInsecureJwtSvid(token: string, audience: readonly string[], opts: ValidateJwtSvidOptions = {}): JwtSvid {
  const t = parseToken(token);
  return checkTimeAndAudience(t, token, audience, opts);
}
