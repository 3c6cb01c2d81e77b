/**
 * Clients for the bundle endpoint tests: an http.Agent whose connections verify the server's
 * certificate as an X509-SVID (rejectUnauthorized is off so the test clock, not the wall clock,
 * decides validity; verifyX509Svid does the checking), plain HTTPS requests, and a test Web PKI
 * (CA and server certificates) made with openssl.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { Agent, type ClientRequestArgs, type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  socket: TLSSocket;
}

/** DER certificates the peer sent, leaf first. */
export function peerChain(s: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  let c: PeerCertificate | undefined = s.getPeerCertificate(true);
  while (c?.raw && !seen.has(c.fingerprint256)) {
    out.push(c.raw);
    seen.add(c.fingerprint256);
    c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

export function fingerprintOfPem(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Keep-alive agent, one socket, that refuses a connection unless verify(chain) passes. */
export class VerifyingAgent extends Agent {
  connections = 0;
  leafFingerprints: string[] = [];

  constructor(
    private readonly verify: (chain: Buffer[]) => void,
    private readonly tlsOptions: Record<string, unknown> = {},
  ) {
    super({ keepAlive: true, maxSockets: 1 });
  }

  override createConnection(opts: ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): Duplex | null | undefined {
    const s = connect({ host: opts.host ?? '127.0.0.1', port: Number(opts.port), rejectUnauthorized: false, ...this.tlsOptions });
    const onError = (e: Error) => cb?.(e, s);
    s.once('error', onError);
    s.once('secureConnect', () => {
      s.off('error', onError);
      try {
        const chain = peerChain(s);
        this.verify(chain);
        this.connections++;
        this.leafFingerprints.push(new X509Certificate(chain[0]!).fingerprint256);
        cb?.(null, s);
      } catch (e) {
        s.destroy();
        cb?.(e as Error, s);
      }
    });
    return undefined;
  }
}

export interface Call {
  port: number;
  path: string;
  method?: string;
  headers?: Record<string, string>;
}

function collect(req: ReturnType<typeof httpRequest>, resolve: (r: Reply) => void, reject: (e: Error) => void): void {
  req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
  req.on('response', (res) => {
    const parts: Buffer[] = [];
    res.on('data', (d: Buffer) => parts.push(d));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), socket: res.socket as TLSSocket }));
    res.on('error', reject);
  });
  req.on('error', reject);
  req.end();
}

/** A request through a VerifyingAgent. */
export function viaAgent(agent: Agent, c: Call): Promise<Reply> {
  return new Promise((resolve, reject) => {
    collect(httpRequest({ host: '127.0.0.1', port: c.port, path: c.path, method: c.method ?? 'GET', agent, headers: c.headers ?? {} }), resolve, reject);
  });
}

/** A plain HTTPS request with Node's own certificate checks (Web PKI). */
export function viaHttps(c: Call & { ca: string; host?: string; tls?: RequestOptions }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    collect(httpsRequest({ host: c.host ?? '127.0.0.1', port: c.port, path: c.path, method: c.method ?? 'GET', ca: c.ca, agent: false, headers: c.headers ?? {}, ...c.tls }), resolve, reject);
  });
}

/** A fetch for jose's customFetch: GET over HTTPS trusting `ca`, returning a WHATWG Response. */
export function fetchTrusting(ca: string) {
  return async (url: string, init: { headers?: Headers; signal?: AbortSignal }): Promise<Response> => {
    const u = new URL(url);
    const r = await viaHttps({ port: Number(u.port), host: u.hostname, path: `${u.pathname}${u.search}`, ca, headers: Object.fromEntries(init.headers?.entries() ?? []) });
    return new Response(new Uint8Array(r.body), { status: r.status, headers: Object.entries(r.headers).map(([k, v]) => [k, String(v)] as [string, string]) });
  };
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/** A test CA (ca.pem, ca.key) in `dir`. */
export function makeWebCa(dir: string): string {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=writ test web CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return join(dir, 'ca.pem');
}

/**
 * A server certificate for localhost and 127.0.0.1 from the test CA, written atomically (rename)
 * to certFile and keyFile (mode `keyMode`); returns the leaf PEM.
 */
export function issueWebCert(dir: string, certFile: string, keyFile: string, keyMode = 0o600): string {
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key.tmp', '-out', 'leaf.csr', '-subj', '/CN=localhost']);
  openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`, '-days', '1', '-extfile', 'ext.cnf', '-out', 'leaf.pem.tmp']);
  chmodSync(join(dir, 'leaf.key.tmp'), keyMode);
  renameSync(join(dir, 'leaf.pem.tmp'), certFile);
  renameSync(join(dir, 'leaf.key.tmp'), keyFile);
  return readFileSync(certFile, 'utf8');
}
