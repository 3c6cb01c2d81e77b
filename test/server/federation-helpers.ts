/**
 * Fixtures for the federation tests: a test Web PKI (a CA and a server certificate for 127.0.0.1),
 * foreign trust domains with their own in-process Authority (so the endpoint's certificate is a
 * real X509-SVID of partner.org), SPIFFE bundle documents, real HTTPS bundle endpoints on
 * 127.0.0.1 whose certificate and answer each test sets, and a logger that keeps what it logs.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { JsonWebKey } from 'node:crypto';
import { SpiffeBundle, encodePem, jwkFromPublicKey } from '../../src/bundle/index.js';
import type { Logger } from '../../src/log.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { caFixture, workloadKey, type CaFixture } from '../ca/helpers.js';
import { EKU, makeCert, makeRoot, newKey, type TestCert } from '../svid/pki.js';

export interface WebPki {
  ca: TestCert;
  caPem: string;
  /** Server certificate with IP SAN 127.0.0.1. */
  server: { cert: string; key: string };
  /** Server certificate for another name only (host name mismatch). */
  otherName: { cert: string; key: string };
}

const keyPem = (c: TestCert) => encodePem('PRIVATE KEY', c.key.pkcs8);

export async function makeWebPki(): Promise<WebPki> {
  const ca = await makeCert({ subject: 'CN=writ federation test web CA', ca: true }, await newKey());
  const san = (names: x509.JsonGeneralName[]) => [new x509.SubjectAlternativeNameExtension(names, false)];
  const leaf = await makeCert({ subject: 'CN=127.0.0.1', ca: false, eku: [EKU.serverAuth], extensions: san([{ type: 'ip', value: '127.0.0.1' }]) }, await newKey(), ca);
  const other = await makeCert({ subject: 'CN=bundle.other.test', ca: false, eku: [EKU.serverAuth], extensions: san([{ type: 'dns', value: 'bundle.other.test' }]) }, await newKey(), ca);
  const chain = (c: TestCert) => encodePem('CERTIFICATE', c.der) + encodePem('CERTIFICATE', ca.der);
  return { ca, caPem: encodePem('CERTIFICATE', ca.der), server: { cert: chain(leaf), key: keyPem(leaf) }, otherName: { cert: chain(other), key: keyPem(other) } };
}

/** A foreign trust domain's CA (an Authority on its own store), started `agoMs` before now. */
export async function foreignCa(td: string, agoMs = 0): Promise<CaFixture> {
  return caFixture({ config: { trustDomain: td }, start: Date.now() - agoMs });
}

/** An X509-SVID of `id` from `ca` as PEM chain and key; `backMs` mints it that long ago (1 h TTL). */
export async function svidPem(ca: CaFixture, id: string, backMs = 0): Promise<{ cert: string; key: string }> {
  const key = workloadKey();
  ca.clock.set(Date.now() - backMs);
  try {
    const svid = await ca.authority.mintX509Svid({ spiffeId: id, publicKey: key.publicKey, ttl: 3600 });
    return { cert: svid.chain.map((d) => encodePem('CERTIFICATE', d)).join(''), key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  } finally {
    ca.clock.set(Date.now());
  }
}

export interface BundleSpec {
  x509?: Buffer[];
  jwt?: Array<[string, JsonWebKey]>;
  sequence?: number;
  refreshHint?: number;
}

export function bundleDoc(td: string, spec: BundleSpec): string {
  const init: ConstructorParameters<typeof SpiffeBundle>[1] = { x509Authorities: spec.x509 ?? [], jwtAuthorities: spec.jwt ?? [] };
  if (spec.sequence !== undefined) init.sequenceNumber = spec.sequence;
  if (spec.refreshHint !== undefined) init.refreshHint = spec.refreshHint;
  return new SpiffeBundle(parseTrustDomain(td), init).marshal();
}

/** A JWT authority (kid, public JWK) for bundle documents. */
export function jwtKey(kid: string): [string, JsonWebKey] {
  return [kid, jwkFromPublicKey(workloadKey().publicKey.export({ type: 'spki', format: 'der' }))];
}

/** A root CA certificate of another trust domain (its URI SAN names that trust domain). */
export async function otherTdRoot(td: string): Promise<Buffer> {
  return (await makeRoot(td)).der;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface Endpoint {
  server: Server;
  port: number;
  /** Requests answered so far, by path. */
  hits: string[];
  handler: Handler;
  url(path?: string): string;
  /** Serves a new certificate to new connections. */
  setCert(c: { cert: string; key: string }): void;
  close(): Promise<void>;
}

/** Serves `doc` as application/json. */
export const serveJson =
  (doc: string, status = 200): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(doc);
  };

export async function startEndpoint(c: { cert: string; key: string }): Promise<Endpoint> {
  const sockets = new Set<Socket>();
  const ep: Endpoint = {
    server: undefined as unknown as Server,
    port: 0,
    hits: [],
    handler: serveJson('{}'),
    url: (path = '/') => `https://127.0.0.1:${ep.port}${path}`,
    setCert: (n) => ep.server.setSecureContext({ cert: n.cert, key: n.key }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        ep.server.close(() => resolve());
      }),
  };
  ep.server = createServer({ cert: c.cert, key: c.key }, (req, res) => {
    ep.hits.push(req.url ?? '');
    ep.handler(req, res);
  });
  ep.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => ep.server.listen(0, '127.0.0.1', resolve));
  ep.port = (ep.server.address() as AddressInfo).port;
  return ep;
}

export interface LogRecord {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

/** A Logger that keeps every record (bindings of children merged in). */
export function recordingLogger(records: LogRecord[] = [], bindings: Record<string, unknown> = {}): Logger & { records: LogRecord[] } {
  const at =
    (level: string) =>
    (obj: Record<string, unknown> | string, msg?: string): void => {
      if (typeof obj === 'string') records.push({ level, obj: { ...bindings }, msg: obj });
      else records.push({ level, obj: { ...bindings, ...obj }, msg: msg ?? '' });
    };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => recordingLogger(records, { ...bindings, ...b }) };
}
