/**
 * What the bundle endpoint serves, GET and HEAD only (other methods 405 with Allow, other paths
 * 404), with no client authentication:
 *   /                                   the trust domain's SPIFFE bundle (application/json)
 *   /bundle.pem                         its X.509 authorities (roots) as PEM
 *   /crl                                every current CRL as PEM: one per signing CA, then one per root (nginx ssl_crl)
 *   /crl.der                            the CRL of the active signing CA, DER (application/pkix-crl)
 *   /crl/<issuer-ski-hex>.der           the CRL of one signing CA, DER
 *   /.well-known/openid-configuration   OIDC discovery; /keys: the JWT-SVID keys as a JWKS
 * Bundle documents carry an ETag from spiffe_sequence and may be cached for a quarter of the
 * refresh hint (the interval SPIRE polls at); CRLs carry an ETag of their bytes and `no-cache`.
 */
import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Counter } from 'prom-client';
import { SpiffeBundle, encodePem } from '../bundle/index.js';
import { isWritError } from '../errors.js';
import { parseTrustDomain } from '../spiffeid/index.js';
import { pemOfAuthorities } from './bundle.js';
import type { ServerContext } from './context.js';
import { OIDC_DISCOVERY_PATH, OIDC_KEYS_PATH, discoveryDocument, issuerFor, oidcJwks } from './oidc.js';

export interface CrlOfIssuer {
  /** Hex SKI of the signing CA that signed the CRL. */
  issuerSki: string;
  der: Buffer;
}

export interface BundleRoutesDeps {
  ctx: ServerContext;
  /** spiffe_refresh_hint served, seconds. */
  refreshHint: number;
  crls(): Promise<CrlOfIssuer[]>;
}

const ALLOW = 'GET, HEAD';
const CRL_BY_SKI = /^\/crl\/([0-9a-fA-F]{8,128})\.der$/;
const FIXED_PATHS = ['/', '/bundle.pem', '/crl', '/crl.der', OIDC_DISCOVERY_PATH, OIDC_KEYS_PATH];
const METRIC = 'writ_bundle_endpoint_requests_total';

interface Rendered {
  document: string;
  sequence: number;
  json: string;
  pem: string;
  keys: string;
}

/** Route name for metrics and logs: one of the served paths, or "other" (bounded label values). */
function routeLabel(path: string): string {
  if (FIXED_PATHS.includes(path)) return path;
  return CRL_BY_SKI.test(path) ? '/crl/{ski}.der' : 'other';
}

function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}

function send(req: Request, res: Response, type: string, body: string | Buffer, cacheControl: string, etag?: string): void {
  const headers: Record<string, string> = { 'cache-control': cacheControl, 'x-content-type-options': 'nosniff' };
  if (etag) headers.etag = etag;
  if (etag && matches(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  // HEAD: node:http drops the body and keeps the headers, Content-Length included.
  res.writeHead(200, { ...headers, 'content-type': type, 'content-length': String(Buffer.byteLength(body)) }).end(body);
}

function plain(res: Response, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra }).end(`${text}\n`);
}

function requestCounter(ctx: ServerContext): Counter<'path' | 'status'> {
  const existing = ctx.metrics.registry.getSingleMetric(METRIC);
  if (existing) return existing as Counter<'path' | 'status'>;
  return new Counter({ name: METRIC, help: 'Bundle endpoint requests by path and HTTP status.', labelNames: ['path', 'status'], registers: [ctx.metrics.registry] });
}

export function createBundleEndpointApp(deps: BundleRoutesDeps): express.Express {
  const { ctx, refreshHint } = deps;
  const td = parseTrustDomain(ctx.config.trustDomain);
  const log = ctx.logger.child({ component: 'bundle_endpoint' });
  const requests = requestCounter(ctx);
  const maxAge = `public, max-age=${Math.max(1, Math.floor(refreshHint / 4))}`;
  let rendered: Rendered | undefined;

  const current = async (): Promise<Rendered> => {
    const rec = await ctx.ownBundle();
    if (rendered && rendered.sequence === rec.sequence && rendered.document === rec.document) return rendered;
    const bundle = SpiffeBundle.parse(td, rec.document);
    bundle.refreshHint = refreshHint;
    rendered = { document: rec.document, sequence: rec.sequence, json: bundle.marshal(), pem: pemOfAuthorities(bundle.x509Authorities), keys: JSON.stringify(oidcJwks(bundle)) };
    return rendered;
  };
  const crlTag = (ders: readonly Buffer[]) => {
    const h = createHash('sha256');
    for (const d of ders) h.update(d);
    return `"crl-${h.digest('hex').slice(0, 32)}"`;
  };
  const sendCrl = (req: Request, res: Response, der: Buffer) => send(req, res, 'application/pkix-crl', der, 'no-cache', crlTag([der]));

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((req, res, next) => {
    res.on('finish', () => {
      const path = req.path;
      requests.inc({ path: routeLabel(path), status: String(res.statusCode) });
      if (res.statusCode >= 400) {
        log.debug({ event: 'bundle_endpoint.refused', method: req.method.slice(0, 16), path: path.slice(0, 200), status: res.statusCode, remote: req.socket.remoteAddress }, 'bundle endpoint request refused');
      }
    });
    next();
  });

  app.get('/', async (req, res) => {
    const r = await current();
    send(req, res, 'application/json', r.json, maxAge, `"${r.sequence}-${refreshHint}"`);
  });
  app.get('/bundle.pem', async (req, res) => {
    const r = await current();
    send(req, res, 'application/x-pem-file', r.pem, maxAge, `"pem-${r.sequence}"`);
  });
  app.get(OIDC_KEYS_PATH, async (req, res) => {
    const r = await current();
    send(req, res, 'application/json', r.keys, maxAge, `"keys-${r.sequence}"`);
  });
  app.get(OIDC_DISCOVERY_PATH, (req, res) => {
    const local = `${req.socket.localAddress?.includes(':') ? `[${req.socket.localAddress}]` : req.socket.localAddress}:${req.socket.localPort}`;
    const issuer = issuerFor(ctx.config.jwtIssuer, req.headers.host, local);
    send(req, res, 'application/json', JSON.stringify(discoveryDocument(issuer)), maxAge);
  });
  app.get('/crl', async (req, res) => {
    const crls = await deps.crls();
    const pem = crls.map((c) => encodePem('X509 CRL', c.der)).join('');
    send(req, res, 'application/x-pem-file', pem, 'no-cache', crlTag(crls.map((c) => c.der)));
  });
  app.get('/crl.der', async (req, res) => {
    const active = ctx.authority.signingCa().ski;
    const crl = (await deps.crls()).find((c) => c.issuerSki === active);
    if (!crl) return plain(res, 503, 'no CRL for the active signing CA yet');
    sendCrl(req, res, crl.der);
  });
  app.get(CRL_BY_SKI, async (req, res) => {
    const ski = CRL_BY_SKI.exec(req.path)![1]!.toLowerCase();
    const crl = (await deps.crls()).find((c) => c.issuerSki === ski);
    if (!crl) return plain(res, 404, 'no CRL of a current signing CA with that key identifier');
    sendCrl(req, res, crl.der);
  });

  const notAllowed = (_req: Request, res: Response) => plain(res, 405, 'method not allowed', { allow: ALLOW });
  for (const p of FIXED_PATHS) app.all(p, notAllowed);
  app.all(CRL_BY_SKI, notAllowed);
  app.use((_req: Request, res: Response) => plain(res, 404, 'not found'));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (isWritError(err) && err.httpStatus === 400) return plain(res, 400, err.message);
    log.warn({ err, event: 'bundle_endpoint.error' }, 'bundle endpoint could not answer');
    if (!res.headersSent) plain(res, 503, 'temporarily unavailable');
    else res.destroy();
  });
  return app;
}
