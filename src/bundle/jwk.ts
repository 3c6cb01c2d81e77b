/**
 * Public JWKs: build them from keys without KeyObject.export({format: 'jwk'}) (which can deadlock
 * on Node 20 for freshly generated keys), and validate JWKs read from bundles.
 */
import { type JsonWebKey, KeyObject, createPublicKey } from 'node:crypto';
import { WritError } from '../errors.js';
import { readRsaPublicKey } from './der.js';

/** EC curves by OpenSSL name: JWK name and coordinate length in bytes. */
const EC_CURVES: Record<string, { crv: string; size: number }> = {
  prime256v1: { crv: 'P-256', size: 32 },
  secp384r1: { crv: 'P-384', size: 48 },
  secp521r1: { crv: 'P-521', size: 66 },
};
const EC_SIZE_BY_CRV: Record<string, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };
const OKP_SIZE_BY_CRV: Record<string, number> = { Ed25519: 32, Ed448: 57 };

/** JWK members that carry private or symmetric key material; a bundle must never hold them. */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The public JWK (RFC 7517/7518 members only, no kid/use) of an EC (P-256, P-384, P-521), RSA or
 * Ed25519/Ed448 public key, given as a KeyObject (public or private) or as SPKI DER.
 */
export function jwkFromPublicKey(key: KeyObject | Uint8Array): JsonWebKey {
  let pub: KeyObject;
  try {
    pub = key instanceof KeyObject ? (key.type === 'public' ? key : createPublicKey(key)) : createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new WritError('ERR_BUNDLE_JWK', 'The public key is not a valid key (SPKI DER expected).', { cause });
  }
  if (pub.type !== 'public') throw new WritError('ERR_BUNDLE_JWK', 'A secret key has no public JWK.');
  const type = pub.asymmetricKeyType;
  if (type === 'ec') {
    const curve = EC_CURVES[pub.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!curve) throw new WritError('ERR_BUNDLE_JWK', `EC keys on curve ${pub.asymmetricKeyDetails?.namedCurve ?? '(unknown)'} are not supported.`);
    // The SPKI DER of an EC key ends with its uncompressed point 04 || X || Y.
    const spki = pub.export({ type: 'spki', format: 'der' });
    const point = spki.subarray(spki.length - (1 + 2 * curve.size));
    if (point[0] !== 0x04) throw new WritError('ERR_BUNDLE_JWK', 'The EC public key is not an uncompressed point.');
    return {
      kty: 'EC',
      crv: curve.crv,
      x: point.subarray(1, 1 + curve.size).toString('base64url'),
      y: point.subarray(1 + curve.size).toString('base64url'),
    };
  }
  if (type === 'rsa') {
    const parts = readRsaPublicKey(pub.export({ type: 'pkcs1', format: 'der' }));
    if (!parts) throw new WritError('ERR_BUNDLE_JWK', 'The RSA public key could not be read.');
    return { kty: 'RSA', n: parts.n.toString('base64url'), e: parts.e.toString('base64url') };
  }
  if (type === 'ed25519' || type === 'ed448') {
    const size = type === 'ed25519' ? 32 : 57;
    const spki = pub.export({ type: 'spki', format: 'der' });
    return { kty: 'OKP', crv: type === 'ed25519' ? 'Ed25519' : 'Ed448', x: spki.subarray(spki.length - size).toString('base64url') };
  }
  throw new WritError('ERR_BUNDLE_JWK', `Keys of type ${type ?? '(unknown)'} cannot be expressed as a bundle JWK.`);
}

/** Key types a bundle JWK may have; JWKs of any other kty are ignored in SPIFFE bundles (spec §4.2.1). */
export const SUPPORTED_KTY: ReadonlySet<string> = new Set(['EC', 'RSA', 'OKP']);

/** Shows an untrusted string (a kid, a use) in a sentence: quoted, and cut when long. */
export function show(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  const s = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(s);
}

function b64Member(jwk: Record<string, unknown>, name: string, where: string, size?: number): string {
  const v = jwk[name];
  if (typeof v !== 'string' || !B64URL.test(v)) {
    throw new WritError('ERR_BUNDLE_JWK', `${where} has no valid "${name}" member (base64url expected).`);
  }
  if (size !== undefined && Buffer.from(v, 'base64url').length !== size) {
    throw new WritError('ERR_BUNDLE_JWK', `${where} has a "${name}" member of the wrong length for its curve.`);
  }
  return v;
}

/**
 * Validates an untrusted public JWK and returns its normalized public members and the imported key.
 * `where` names it in error sentences ("JWK 2 in the bundle for example.org").
 */
export function importPublicJwk(input: unknown, where: string): { jwk: JsonWebKey; key: KeyObject } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new WritError('ERR_BUNDLE_JWK', `${where} is not a JSON object.`);
  }
  const raw = input as Record<string, unknown>;
  for (const m of SECRET_MEMBERS) {
    if (m in raw) throw new WritError('ERR_BUNDLE_JWK', `${where} holds private or secret key material ("${m}"); bundles hold public keys only.`);
  }
  let jwk: JsonWebKey;
  switch (raw.kty) {
    case 'EC': {
      const crv = raw.crv;
      const size = typeof crv === 'string' ? EC_SIZE_BY_CRV[crv] : undefined;
      if (size === undefined) throw new WritError('ERR_BUNDLE_JWK', `${where} has curve ${show(crv)}; P-256, P-384 and P-521 are supported.`);
      jwk = { kty: 'EC', crv: crv as string, x: b64Member(raw, 'x', where, size), y: b64Member(raw, 'y', where, size) };
      break;
    }
    case 'RSA':
      jwk = { kty: 'RSA', n: b64Member(raw, 'n', where), e: b64Member(raw, 'e', where) };
      break;
    case 'OKP': {
      const crv = raw.crv;
      const size = typeof crv === 'string' ? OKP_SIZE_BY_CRV[crv] : undefined;
      if (size === undefined) throw new WritError('ERR_BUNDLE_JWK', `${where} has curve ${show(crv)}; Ed25519 and Ed448 are supported.`);
      jwk = { kty: 'OKP', crv: crv as string, x: b64Member(raw, 'x', where, size) };
      break;
    }
    default:
      throw new WritError('ERR_BUNDLE_JWK', `${where} has key type ${show(raw.kty)}; EC, RSA and OKP are supported.`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch (cause) {
    throw new WritError('ERR_BUNDLE_JWK', `${where} is not a valid public key.`, { cause });
  }
  return { jwk, key };
}

/** Members of a public JWK in the stable order used when marshaling. */
export function orderedPublicMembers(jwk: JsonWebKey): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of ['kty', 'crv', 'x', 'y', 'n', 'e'] as const) {
    const v = jwk[m];
    if (typeof v === 'string') out[m] = v;
  }
  return out;
}

/** True when two public JWKs have the same public members. */
export function sameJwk(a: JsonWebKey, b: JsonWebKey): boolean {
  return JSON.stringify(orderedPublicMembers(a)) === JSON.stringify(orderedPublicMembers(b));
}
