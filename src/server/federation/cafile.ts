/**
 * The optional `federation.ca_file`: PEM CA certificates trusted for https_web bundle endpoints in
 * addition to the Web PKI roots Node ships (for endpoints on a private PKI). Read once at start;
 * an unreadable file or anything but CERTIFICATE blocks stops the start with ERR_CONFIG_INVALID.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { decodePem, encodePem } from '../../bundle/index.js';
import { WritError, isWritError } from '../../errors.js';

export function loadFederationCa(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WritError('ERR_CONFIG_INVALID', `federation.ca_file ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}).`, { details: { field: 'federation.ca_file' } });
  }
  try {
    const blocks = decodePem(text, 'ERR_CONFIG_INVALID', `federation.ca_file ${path}`, 'CERTIFICATE');
    if (blocks.length === 0) throw new WritError('ERR_CONFIG_INVALID', `federation.ca_file ${path} holds no certificate.`);
    return blocks.map((b, i) => {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(b.der);
      } catch {
        throw new WritError('ERR_CONFIG_INVALID', `Certificate ${i + 1} of federation.ca_file ${path} is not a valid X.509 certificate.`);
      }
      if (!cert.ca) throw new WritError('ERR_CONFIG_INVALID', `Certificate ${i + 1} of federation.ca_file ${path} is not a CA certificate.`);
      return encodePem('CERTIFICATE', b.der);
    });
  } catch (e) {
    if (isWritError(e)) throw new WritError('ERR_CONFIG_INVALID', e.message, { details: { field: 'federation.ca_file' } });
    throw e;
  }
}
