/**
 * The https_web serving certificate of the bundle endpoint: a PEM certificate chain and a PEM
 * private key read from files. The key file must be accessible by its owner only, and the key must
 * belong to the first certificate. The files are re-read when their inode, size, mtime or ctime
 * changes (a rename, as certbot and most deploy tools do, changes the inode; a chmod, the ctime).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { WritError } from '../errors.js';

export interface ServingCertificate {
  /** The chain as read (leaf first), PEM. */
  certPem: string;
  keyPem: string;
  subject: string;
  notAfter: Date;
  /** SHA-256 fingerprint of the leaf, colon-separated hex. */
  fingerprint: string;
}

function stamp(path: string, what: string): string {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (e) {
    throw new WritError('ERR_SERVING_CERT', `Cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'unknown error'}).`, { details: { path } });
  }
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new WritError('ERR_SERVING_CERT', `Cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'unknown error'}).`, { details: { path } });
  }
}

/** Refuses a key file that its group or others may read, write or execute. */
export function checkKeyFileMode(path: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (e) {
    throw new WritError('ERR_SERVING_CERT', `Cannot read the key file ${path} (${(e as NodeJS.ErrnoException).code ?? 'unknown error'}).`, { details: { path } });
  }
  if ((mode & 0o077) !== 0) {
    const shown = `0${mode.toString(8).padStart(3, '0')}`;
    throw new WritError('ERR_KEY_FILE_MODE', `The key file ${path} has mode ${shown}; it must be accessible by its owner only (chmod 600).`, {
      details: { path, mode: shown },
    });
  }
}

/** Reads and checks a certificate chain and its private key; ERR_SERVING_CERT or ERR_KEY_FILE_MODE. */
export function loadServingCertificate(certFile: string, keyFile: string): ServingCertificate {
  checkKeyFileMode(keyFile);
  const certPem = readText(certFile, 'certificate file');
  const keyPem = readText(keyFile, 'key file');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (cause) {
    throw new WritError('ERR_SERVING_CERT', `The certificate file ${certFile} holds no PEM certificate.`, { cause, details: { path: certFile } });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (cause) {
    throw new WritError('ERR_SERVING_CERT', `The key file ${keyFile} holds no PEM private key (or it is encrypted).`, { cause, details: { path: keyFile } });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new WritError('ERR_SERVING_CERT', `The key in ${keyFile} does not belong to the first certificate in ${certFile}.`, { details: { path: keyFile } });
  }
  return { certPem, keyPem, subject: cert.subject.replace(/\n/g, ', '), notAfter: new Date(cert.validTo), fingerprint: cert.fingerprint256 };
}

/** The serving certificate files, re-read by reloadIfChanged() when either file changed. */
export class ServingCertificateFiles {
  #stamp: string;
  #current: ServingCertificate;

  constructor(
    readonly certFile: string,
    readonly keyFile: string,
  ) {
    this.#stamp = this.#stamps();
    this.#current = loadServingCertificate(certFile, keyFile);
  }

  get current(): ServingCertificate {
    return this.#current;
  }

  #stamps(): string {
    return `${stamp(this.certFile, 'certificate file')}|${stamp(this.keyFile, 'key file')}`;
  }

  /**
   * The new certificate when a file changed and the new pair is good; undefined when nothing
   * changed. Throws when the new files are bad; the previous certificate stays current, and the
   * same bad files are not reported again until they change.
   */
  reloadIfChanged(): ServingCertificate | undefined {
    const now = this.#stamps();
    if (now === this.#stamp) return undefined;
    // Taken before reading: a write that lands after the read changes the stamp again.
    this.#stamp = now;
    this.#current = loadServingCertificate(this.certFile, this.keyFile);
    return this.#current;
  }
}
