/**
 * The node API listener: HTTPS with the server's X509-SVID, asking every client for a certificate
 * (attestation calls come without one; the routes decide). The certificate and the roots used to
 * check agents are swapped with setSecureContext() whenever the server SVID or the bundle changes,
 * without dropping connections.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { constants } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import type { ServerSvid, ServerTlsMaterial } from '../serversvid.js';
import type express from 'express';

function contextOf(m: ServerTlsMaterial): SecureContextOptions {
  // No TLS 1.2 renegotiation: a connection's client certificate is fixed, so agents.ts verifies it once per connection.
  return { cert: m.certPem, key: m.keyPem, ca: m.caPem, minVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
}

export async function startNodeApiListener(app: express.Express, svid: ServerSvid, bindAddress: string, port: number): Promise<{ server: Server; address: AddressInfo; close(): Promise<void> }> {
  const server = createServer({ ...contextOf(svid.current()), requestCert: true, rejectUnauthorized: false, headersTimeout: 10_000, requestTimeout: 60_000 }, app);
  server.keepAliveTimeout = 30_000;
  const off = svid.onChange((m) => server.setSecureContext(contextOf(m)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bindAddress, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        off();
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      }),
  };
}
