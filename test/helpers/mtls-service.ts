/**
 * An mTLS echo service for e2e tests: createMtlsServer on a loopback port with an express app
 * behind requirePeer() that answers the caller's SPIFFE ID. It counts what the server saw:
 * connections that passed the handshake, handshakes OpenSSL or Node refused (tlsClientError),
 * and connections the strict peer check refused (onRefused), each with its reason.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import express from 'express';
import { isWritError } from '../../src/errors.js';
import { type Authorizer, type TlsSource, createMtlsServer, requirePeer } from '../../src/tls/index.js';

export interface EchoService {
  url: string;
  /** Connections that completed the handshake (before the strict check). */
  secureConnections(): number;
  /**
   * Failed handshakes: `refused <verify error>` when the server refused the client's chain itself,
   * else the error code (ECONNRESET: the client hung up, e.g. because it refused the server).
   */
  handshakeErrors: string[];
  /** Connections refused by the strict peer check: the WritError code and its details.reason. */
  refused: string[];
  close(): Promise<void>;
}

/** What one failed call or handshake looked like, as a short stable string. */
export function failureOf(e: unknown): string {
  if (isWritError(e)) {
    const inner = e.details?.error ?? e.details?.reason;
    return typeof inner === 'string' ? `${e.code}/${inner}` : e.code;
  }
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code ?? String(e);
}

export async function startEchoService(source: TlsSource, authorizer: Authorizer): Promise<EchoService> {
  const app = express();
  app.use(requirePeer());
  app.get('/', (req, res) => {
    res.json({ spiffeId: req.peer!.spiffeId.toString() });
  });
  const handshakeErrors: string[] = [];
  const refused: string[] = [];
  let secure = 0;
  const server = createMtlsServer(source, authorizer, app, { onRefused: (e) => refused.push(failureOf(e)) });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', () => secure++);
  // A handshake the server refused itself (OpenSSL/Node could not verify the client's chain) shows
  // up as a hang-up with the socket's authorizationError set; a client that hung up has none.
  server.on('tlsClientError', (e: NodeJS.ErrnoException, s: TLSSocket) => {
    handshakeErrors.push(s.authorizationError ? `refused ${String(s.authorizationError)}` : (e.code ?? e.message));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/`,
    secureConnections: () => secure,
    handshakeErrors,
    refused,
    close: async () => {
      if (!server.listening) return;
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
