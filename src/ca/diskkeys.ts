/**
 * The disk key manager: one PKCS#8 PEM file per key in a 0700 directory, each file 0600 and
 * written atomically (temporary file, fsync, rename, fsync of the directory), so a crash leaves
 * either the old key or the new one, never half of one. A key file that others can read is refused.
 */
import 'reflect-metadata';
import { Crypto } from '@peculiar/webcrypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, chmodSync, existsSync } from 'node:fs';
import { randomBytes, type webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { WritError } from '../errors.js';
import { type CaKeyType, type KeyManager, type ManagedKey, SoftwareKey, checkKeyId } from './keymanager.js';

const PEM_LABEL = 'PRIVATE KEY';

function toPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${PEM_LABEL}-----\n${b64}\n-----END ${PEM_LABEL}-----\n`;
}

function fromPem(text: string, id: string): Buffer {
  const m = /-----BEGIN PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PRIVATE KEY-----/.exec(text);
  if (!m) throw new WritError('ERR_KEYMANAGER_IO', `Key file for ${id} does not hold a PKCS#8 "PRIVATE KEY" PEM block.`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

function ioError(what: string, e: unknown): WritError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new WritError('ERR_KEYMANAGER_IO', `${what} (${code}).`, { cause: e });
}

/** Writes `data` to `path` with `mode`, atomically. */
export function writeFileAtomic(path: string, data: Buffer | string, mode: number, dir: string): void {
  const tmp = join(dir, `.${randomBytes(8).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or renamed already
    }
    throw e;
  }
}

export class DiskKeyManager implements KeyManager {
  readonly name = 'disk';
  readonly crypto: webcrypto.Crypto = new Crypto() as unknown as webcrypto.Crypto;
  readonly directory: string;
  readonly #cache = new Map<string, SoftwareKey>();

  constructor(opts: { directory: string }) {
    this.directory = opts.directory;
    try {
      mkdirSync(this.directory, { recursive: true, mode: 0o700 });
      chmodSync(this.directory, 0o700);
    } catch (e) {
      throw ioError(`Cannot create the key directory ${this.directory}`, e);
    }
  }

  #path(id: string): string {
    return join(this.directory, `${checkKeyId(id)}.key.pem`);
  }

  async generateKey(id: string, type: CaKeyType): Promise<ManagedKey> {
    const path = this.#path(id);
    const key = SoftwareKey.generate(id, type, this.crypto);
    try {
      writeFileAtomic(path, toPem(key.pkcs8()), 0o600, this.directory);
    } catch (e) {
      throw ioError(`Cannot write the key file for ${id} in ${this.directory}`, e);
    }
    this.#cache.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<ManagedKey | undefined> {
    const cached = this.#cache.get(id);
    if (cached) return cached;
    const path = this.#path(id);
    if (!existsSync(path)) return undefined;
    let text: string;
    try {
      const st = statSync(path);
      if ((st.mode & 0o077) !== 0) {
        throw new WritError('ERR_KEYMANAGER_IO', `Key file ${path} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); it must be 0600.`);
      }
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if (e instanceof WritError) throw e;
      throw ioError(`Cannot read the key file for ${id}`, e);
    }
    const key = SoftwareKey.fromPkcs8(id, 'ec-p256', fromPem(text, id), this.crypto);
    this.#cache.set(id, key);
    return key;
  }

  async deleteKey(id: string): Promise<void> {
    this.#cache.delete(id);
    try {
      unlinkSync(this.#path(id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`Cannot delete the key file for ${id}`, e);
    }
  }
}
