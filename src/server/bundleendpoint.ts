/**
 * The bundle endpoint listener (SPIFFE Federation §5): HTTPS without client authentication, on
 * Mozilla's "intermediate" TLS profile (TLS 1.2 with ECDHE AEAD suites, and TLS 1.3).
 *   https_spiffe: presents the server's own X509-SVID, swapped with setSecureContext() whenever
 *                 it is renewed, so open keep-alive connections stay up.
 *   https_web:    presents a certificate chain and key from files (the key owner-only), re-read
 *                 when the files change (checked every 10 s); a bad new pair is logged and the
 *                 previous certificate kept.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { ServerContext } from './context.js';
import { type CrlOfIssuer, createBundleEndpointApp } from './bundleroutes.js';
import type { ServerSvid } from './serversvid.js';
import { ServingCertificateFiles } from './servingcert.js';

/** Mozilla intermediate (v5.7), ECDHE suites; DHE is left out (it needs dhparam files). */
export const INTERMEDIATE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const SERVING_CERT_CHECK_MS = 10_000;

export interface BundleEndpointOptions {
  ctx: ServerContext;
  /** The server's SVID (https_spiffe). */
  svid: ServerSvid;
  /** The current CRLs with the SKI of the signing CA of each. */
  crls(): Promise<CrlOfIssuer[]>;
  /** How often https_web checks its files, ms. */
  checkIntervalMs?: number;
}

export interface BundleEndpoint {
  server: Server;
  address: AddressInfo;
  profile: 'https_spiffe' | 'https_web';
  /**
   * https_web: re-reads the certificate files now if they changed; true when a new certificate
   * is being served. Throws (keeping the previous one) when the new files are bad.
   */
  reloadServingCertificate(): boolean;
  close(): Promise<void>;
}

function tlsContext(certPem: string, keyPem: string): SecureContextOptions {
  return { cert: certPem, key: keyPem, minVersion: 'TLSv1.2', ciphers: INTERMEDIATE_CIPHERS, ecdhCurve: 'X25519:prime256v1:secp384r1', honorCipherOrder: false };
}

export async function startBundleEndpoint(opts: BundleEndpointOptions): Promise<BundleEndpoint> {
  const { ctx, svid } = opts;
  const cfg = ctx.config.bundleEndpoint;
  const log = ctx.logger.child({ component: 'bundle_endpoint' });
  const files = cfg.profile === 'https_web' ? new ServingCertificateFiles(cfg.certificateFile!, cfg.keyFile!) : undefined;
  const first = files ? files.current : svid.current();
  const app = createBundleEndpointApp({ ctx, refreshHint: cfg.refreshHint, crls: opts.crls });
  const server = createServer({ ...tlsContext(first.certPem, first.keyPem), requestCert: false, headersTimeout: 10_000, requestTimeout: 30_000 }, app);
  server.keepAliveTimeout = 30_000;
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ event: 'bundle_endpoint.tls_refused', code: err.code, remote: socket.remoteAddress }, 'TLS handshake refused');
  });

  let off = () => {};
  let timer: NodeJS.Timeout | undefined;
  const reload = (): boolean => {
    const next = files?.reloadIfChanged();
    if (!next) return false;
    server.setSecureContext(tlsContext(next.certPem, next.keyPem));
    log.info({ event: 'bundle_endpoint.certificate', subject: next.subject, not_after: next.notAfter.toISOString(), fingerprint: next.fingerprint }, 'serving a new certificate');
    return true;
  };
  if (files) {
    timer = setInterval(() => {
      try {
        reload();
      } catch (err) {
        log.warn({ err, event: 'bundle_endpoint.certificate' }, 'the changed serving certificate files are not usable; keeping the previous certificate');
      }
    }, opts.checkIntervalMs ?? SERVING_CERT_CHECK_MS);
    timer.unref();
  } else {
    off = svid.onChange((m) => server.setSecureContext(tlsContext(m.certPem, m.keyPem)));
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.port, cfg.bindAddress, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    off();
    clearInterval(timer);
    throw e;
  }
  return {
    server,
    address: server.address() as AddressInfo,
    profile: cfg.profile,
    reloadServingCertificate: reload,
    close: () =>
      new Promise<void>((resolve) => {
        off();
        clearInterval(timer);
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      }),
  };
}
