/**
 * Key managers hold the CA's private keys. The CA sees only ManagedKey: the public key, a sign
 * operation, and the key pair inside a WebCrypto provider (@peculiar/webcrypto here) for
 * @peculiar/x509. A PKCS#11 manager (node-webcrypto-p11) can implement the same contract without
 * touching the CA. Private key bytes never leave the manager except to its own storage.
 */
import 'reflect-metadata';
import { Crypto } from '@peculiar/webcrypto';
import { type KeyObject, type webcrypto, createPrivateKey, createPublicKey, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { WritError } from '../errors.js';

export type CaKeyType = 'ec-p256';
export const CA_KEY_TYPES: readonly CaKeyType[] = ['ec-p256'];

export interface ManagedKey {
  readonly id: string;
  readonly type: CaKeyType;
  /** SubjectPublicKeyInfo DER. */
  readonly publicKeyDer: Buffer;
  readonly publicKey: KeyObject;
  /** ECDSA over SHA-256 of `data`: DER (for X.509) or r||s (`ieee-p1363`, for JWS). */
  sign(data: Buffer, encoding?: 'der' | 'ieee-p1363'): Promise<Buffer>;
  /** The same key pair in the manager's WebCrypto provider, for @peculiar/x509. */
  cryptoKeyPair(): Promise<webcrypto.CryptoKeyPair>;
}

export interface KeyManager {
  readonly name: string;
  /** The WebCrypto provider the key pairs live in. */
  readonly crypto: webcrypto.Crypto;
  /** Generates a key under `id`, replacing any key already there. */
  generateKey(id: string, type: CaKeyType): Promise<ManagedKey>;
  getKey(id: string): Promise<ManagedKey | undefined>;
  deleteKey(id: string): Promise<void>;
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkKeyId(id: string): string {
  if (!KEY_ID.test(id)) throw new WritError('ERR_INPUT_INVALID', `Key id "${id.slice(0, 64)}" must be 1 to 128 letters, digits, ".", "-" or "_".`);
  return id;
}

export function checkKeyType(type: string): CaKeyType {
  if (!(CA_KEY_TYPES as readonly string[]).includes(type)) {
    throw new WritError('ERR_CA_KEY_TYPE', `Key type "${type}" is not supported; use one of ${CA_KEY_TYPES.join(', ')}.`);
  }
  return type as CaKeyType;
}

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** A key held as a node:crypto KeyObject (memory and disk managers). */
export class SoftwareKey implements ManagedKey {
  readonly publicKey: KeyObject;
  readonly publicKeyDer: Buffer;
  #pair: Promise<webcrypto.CryptoKeyPair> | undefined;

  constructor(
    readonly id: string,
    readonly type: CaKeyType,
    private readonly privateKey: KeyObject,
    private readonly provider: webcrypto.Crypto,
  ) {
    this.publicKey = createPublicKey(privateKey);
    this.publicKeyDer = this.publicKey.export({ type: 'spki', format: 'der' });
  }

  /** Reads a PKCS#8 DER key; ERR_CA_KEY_TYPE when it is not of `type`. */
  static fromPkcs8(id: string, type: CaKeyType, pkcs8: Buffer, provider: webcrypto.Crypto): SoftwareKey {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    } catch (cause) {
      throw new WritError('ERR_KEYMANAGER_IO', `Key ${id} is not a readable PKCS#8 private key.`, { cause });
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new WritError('ERR_CA_KEY_TYPE', `Key ${id} is not an ${type} key.`);
    }
    return new SoftwareKey(id, type, key, provider);
  }

  static generate(id: string, type: CaKeyType, provider: webcrypto.Crypto): SoftwareKey {
    checkKeyType(type);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return new SoftwareKey(id, type, privateKey, provider);
  }

  /** PKCS#8 DER, for the disk manager's file only. */
  pkcs8(): Buffer {
    return this.privateKey.export({ type: 'pkcs8', format: 'der' });
  }

  sign(data: Buffer, encoding: 'der' | 'ieee-p1363' = 'der'): Promise<Buffer> {
    return Promise.resolve(nodeSign('sha256', data, { key: this.privateKey, dsaEncoding: encoding }));
  }

  /** Synchronous signing for the leaf minting hot path (software keys only). */
  signSync(data: Buffer, encoding: 'der' | 'ieee-p1363' = 'der'): Buffer {
    return nodeSign('sha256', data, { key: this.privateKey, dsaEncoding: encoding });
  }

  cryptoKeyPair(): Promise<webcrypto.CryptoKeyPair> {
    this.#pair ??= (async () => {
      const subtle = this.provider.subtle;
      const privateKey = await subtle.importKey('pkcs8', this.pkcs8(), EC_P256, false, ['sign']);
      const publicKey = await subtle.importKey('spki', this.publicKeyDer, EC_P256, true, ['verify']);
      return { privateKey, publicKey };
    })();
    return this.#pair;
  }
}

/** Keys in process memory only: gone at exit (the CA then starts fresh authorities). */
export class MemoryKeyManager implements KeyManager {
  readonly name = 'memory';
  readonly crypto: webcrypto.Crypto = new Crypto() as unknown as webcrypto.Crypto;
  readonly #keys = new Map<string, SoftwareKey>();

  async generateKey(id: string, type: CaKeyType): Promise<ManagedKey> {
    const key = SoftwareKey.generate(checkKeyId(id), type, this.crypto);
    this.#keys.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<ManagedKey | undefined> {
    return this.#keys.get(checkKeyId(id));
  }

  async deleteKey(id: string): Promise<void> {
    this.#keys.delete(checkKeyId(id));
  }
}
