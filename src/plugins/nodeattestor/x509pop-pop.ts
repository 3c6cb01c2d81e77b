/**
 * The proof-of-possession step of x509pop: the server's challenge is a fresh 32-byte nonce; the
 * agent signs "writ-x509pop-v1\n" + nonce (the base64 text) with its leaf key and the server checks
 * the signature with the leaf certificate's public key. ECDSA uses the hash of its curve size
 * (P-256: SHA-256, P-384: SHA-384, P-521: SHA-512), RSA uses RSA-PSS with SHA-256 and a 32-byte
 * salt, Ed25519 and Ed448 sign the message itself. Also the strict parsers of both messages.
 */
import { type KeyObject, constants, sign, verify } from 'node:crypto';
import { attestationError, expectObject } from './types.js';

const NAME = 'x509pop';
export const X509POP_CONTEXT = 'writ-x509pop-v1\n';
export const NONCE_BYTES = 32;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NONCE_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
/** Large enough for an RSA-8192 signature (1024 bytes); anything longer is refused unread. */
const MAX_SIGNATURE_B64 = 1400;

export interface X509PopChallenge {
  nonce: string;
}

export interface X509PopResponse {
  signature: string;
}

/** True for strict (canonical, padded) standard base64. */
export function isBase64(s: string): boolean {
  return BASE64.test(s) && Buffer.from(s, 'base64').toString('base64') === s;
}

interface SignParams {
  hash: string | null;
  key: KeyObject | { key: KeyObject; padding: number; saltLength: number };
}

/** How to sign/verify with `key`; undefined for key types x509pop does not support. */
export function signParams(key: KeyObject): SignParams | undefined {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const hash = curve === 'prime256v1' ? 'sha256' : curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : undefined;
      return hash ? { hash, key } : undefined;
    }
    case 'rsa':
    case 'rsa-pss':
      return { hash: 'sha256', key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } };
    case 'ed25519':
    case 'ed448':
      return { hash: null, key };
    default:
      return undefined;
  }
}

function message(nonce: string): Buffer {
  return Buffer.from(X509POP_CONTEXT + nonce, 'utf8');
}

/** The agent's answer to a challenge: the signature over the context string and the nonce. */
export function signChallenge(privateKey: KeyObject, nonce: string): X509PopResponse {
  const p = signParams(privateKey);
  if (!p) throw attestationError(NAME, 'The x509pop private key is of a type that can not answer challenges.');
  return { signature: sign(p.hash, message(nonce), p.key).toString('base64') };
}

/** True when `signature` is the leaf key's signature over the context string and `nonce`. */
export function verifyChallenge(publicKey: KeyObject, nonce: string, signature: string): boolean {
  const p = signParams(publicKey);
  if (!p) return false;
  try {
    return verify(p.hash, message(nonce), p.key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** Agent side: checks the server's challenge is { nonce: base64 of 32 bytes }. */
export function parseX509PopChallenge(challenge: unknown): X509PopChallenge {
  const o = expectObject(NAME, 'challenge', challenge, ['nonce']);
  const nonce = o.nonce;
  if (typeof nonce !== 'string' || !NONCE_RE.test(nonce)) {
    throw attestationError(NAME, `The x509pop challenge is malformed: "nonce" must be the base64 of ${NONCE_BYTES} bytes.`);
  }
  return { nonce };
}

/** Server side: checks the agent's response is { signature: base64 }. */
export function parseX509PopResponse(response: unknown): X509PopResponse {
  const o = expectObject(NAME, 'challenge response', response, ['signature']);
  const sig = o.signature;
  if (typeof sig !== 'string' || sig.length === 0 || sig.length > MAX_SIGNATURE_B64 || !isBase64(sig)) {
    throw attestationError(NAME, 'The x509pop challenge response is malformed: "signature" must be base64.');
  }
  return { signature: sig };
}
