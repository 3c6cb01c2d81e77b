/** JWS signature checks for the JWT-SVID algorithms with node:crypto (synchronous). */
import { type KeyObject, constants, verify } from 'node:crypto';
import type { JwtSvidAlgorithm } from './rules.js';

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };
const EC_CURVE: Record<string, { curve: string; name: string; sigLength: number }> = {
  ES256: { curve: 'prime256v1', name: 'P-256', sigLength: 64 },
  ES384: { curve: 'secp384r1', name: 'P-384', sigLength: 96 },
  ES512: { curve: 'secp521r1', name: 'P-521', sigLength: 132 },
};
/** RFC 7518 §3.3: RSA keys of 2048 bits or more. */
export const MIN_RSA_BITS = 2048;

/** Why `key` cannot be used for `alg`, or undefined when it can. */
export function keyUnsuitable(alg: JwtSvidAlgorithm, key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  if (alg.startsWith('ES')) {
    const want = EC_CURVE[alg]!;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (type !== 'ec' || curve !== want.curve) return `${alg} needs an EC ${want.name} key but the key is ${type === 'ec' ? `EC on ${curve ?? 'an unknown curve'}` : (type ?? 'unknown')}`;
    return undefined;
  }
  const rsaOk = alg.startsWith('PS') ? type === 'rsa' || type === 'rsa-pss' : type === 'rsa';
  if (!rsaOk) return `${alg} needs an RSA key but the key is ${type ?? 'unknown'}`;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) return `${alg} needs an RSA key of at least ${MIN_RSA_BITS} bits but the key has ${bits}`;
  return undefined;
}

/** Verifies a JWS signature (ECDSA signatures in the JOSE r||s form). The key must be suitable. */
export function verifyJws(alg: JwtSvidAlgorithm, key: KeyObject, signingInput: Buffer, signature: Buffer): boolean {
  const hash = HASH[alg.slice(2)]!;
  try {
    if (alg.startsWith('ES')) {
      if (signature.length !== EC_CURVE[alg]!.sigLength) return false;
      return verify(hash, signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    if (alg.startsWith('PS')) {
      return verify(hash, signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
    }
    return verify(hash, signingInput, key, signature);
  } catch {
    return false;
  }
}
