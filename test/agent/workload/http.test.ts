/**
 * The HTTP (JSON) Workload API endpoint on a real Unix socket: every route, the security header,
 * body limits, the NDJSON watch (first line at once, updates, heartbeats, final error line), and
 * a connection whose process exited before the request.
 */
import { expect } from 'chai';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { request, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { silentLogger } from '../../../src/log.js';
import { startHttpWorkloadEndpoint, type HttpWorkloadEndpoint } from '../../../src/agent/workload/index.js';
import { TestWorkloadHandler, socketDir, socketOfExitedProcess, waitFor, within } from './helpers.js';

const H = { 'workload.spiffe.io': 'true' };

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

function call(target: string | Socket, method: string, path: string, headers: OutgoingHttpHeaders = H, body?: string | Buffer): Promise<Answer> {
  const where = typeof target === 'string' ? { socketPath: target, agent: false } : { createConnection: () => target };
  return within(
    new Promise((resolve, reject) => {
      const req = request({ ...where, method, path, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(body);
    }),
    10_000,
    `${method} ${path}`,
  );
}

/** Reads NDJSON lines of a watch response with bounded waits. */
class Lines {
  readonly lines: Array<Record<string, unknown>> = [];
  ended = false;
  #buf = '';
  constructor(readonly res: IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      this.#buf += d;
      let i: number;
      while ((i = this.#buf.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(this.#buf.slice(0, i)) as Record<string, unknown>);
        this.#buf = this.#buf.slice(i + 1);
      }
    });
    res.on('end', () => (this.ended = true));
  }
  /** The next line that is not a heartbeat. */
  async next(ms = 5000): Promise<Record<string, unknown>> {
    await waitFor(() => this.lines.some((l) => !('heartbeat' in l)), ms, 'an NDJSON line');
    for (;;) {
      const l = this.lines.shift()!;
      if (!('heartbeat' in l)) return l;
    }
  }
}

function openWatch(socketPath: string): Promise<Lines> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ socketPath, agent: false, path: '/v1/x509/watch', headers: H }, (res) => resolve(new Lines(res)));
      req.on('error', reject);
      req.end();
    }),
    10_000,
    'the watch response',
  );
}

type SvidJson = { spiffe_id: string; x509_svid: string; x509_svid_key: string; bundle: string; hint: string };
const serialOf = (l: Record<string, unknown>): string => new X509Certificate((l.svids as SvidJson[])[0]!.x509_svid).serialNumber;

describe('agent/workload HTTP endpoint', function () {
  this.timeout(30_000);
  const uid = process.getuid!();
  const ME = `spiffe://example.org/uid/${uid}`;
  let handler: TestWorkloadHandler;
  let dir: ReturnType<typeof socketDir>;
  let ep: HttpWorkloadEndpoint;
  const watches: Lines[] = [];

  before(async () => {
    handler = await TestWorkloadHandler.create();
    dir = socketDir('writ-wl-http-');
    ep = await startHttpWorkloadEndpoint({ socketPath: dir.path('http.sock'), handler, logger: silentLogger, heartbeatMs: 150 });
  });
  after(async () => {
    await ep?.close();
    await handler?.cleanup();
    dir?.cleanup();
  });
  beforeEach(async () => {
    handler.reset();
    await handler.grant(`unix:uid:${uid}`, ME, 'internal');
  });
  afterEach(() => {
    for (const w of watches.splice(0)) w.res.destroy();
  });

  it('requires exactly one workload.spiffe.io: true header (400 ERR_WORKLOAD_HEADER)', async () => {
    const bad: OutgoingHttpHeaders[] = [{}, { 'workload.spiffe.io': 'false' }, { 'workload.spiffe.io': 'TRUE' }, { 'workload.spiffe.io': ['true', 'true'] }];
    for (const headers of bad) {
      for (const [method, path] of [['GET', '/v1/x509'], ['GET', '/v1/x509/watch'], ['POST', '/v1/jwt'], ['GET', '/nowhere']] as const) {
        const a = await call(ep.socketPath, method, path, headers, method === 'POST' ? '{"audience":["a"]}' : undefined);
        expect([a.status, a.body], `${method} ${path} ${JSON.stringify(headers)}`).to.deep.equal([400, { error: { code: 'ERR_WORKLOAD_HEADER', message: 'security header missing from request' } }]);
      }
    }
    expect(handler.attested).to.have.length(0);
  });

  it('GET /v1/x509: PEM chain, PKCS#8 key, bundle, hint, CRLs and federated bundles', async () => {
    const { status, body } = await call(ep.socketPath, 'GET', '/v1/x509');
    expect(status).to.equal(200);
    const svid = (body.svids as SvidJson[])[0]!;
    expect([svid.spiffe_id, svid.hint]).to.deep.equal([ME, 'internal']);
    const leaf = new X509Certificate(svid.x509_svid);
    expect(leaf.subjectAltName).to.equal(`URI:${ME}`);
    expect(leaf.checkPrivateKey(createPrivateKey(svid.x509_svid_key))).to.equal(true);
    expect(svid.x509_svid.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
    expect(new X509Certificate(svid.bundle).ca).to.equal(true);
    expect((body.crls as string[])[0]).to.match(/^-----BEGIN X509 CRL-----/);
    expect(Object.keys(body.federated_bundles as object)).to.deep.equal(['spiffe://partner.org']);
    expect(handler.attested[0]).to.include({ pid: process.pid, uid });
  });

  it('GET /v1/bundles/x509 and /v1/bundles/jwt', async () => {
    const x = await call(ep.socketPath, 'GET', '/v1/bundles/x509');
    expect(x.status).to.equal(200);
    expect(Object.keys(x.body.bundles as object).sort()).to.deep.equal(['spiffe://example.org', 'spiffe://partner.org']);
    const j = await call(ep.socketPath, 'GET', '/v1/bundles/jwt');
    const jwks = (j.body.bundles as Record<string, { keys: Array<Record<string, unknown>> }>)['spiffe://example.org']!;
    expect(jwks.keys[0]).to.include.keys('kid', 'kty');
  });

  it('POST /v1/jwt and /v1/jwt/validate round-trip; bad input is 400', async () => {
    const f = await call(ep.socketPath, 'POST', '/v1/jwt', H, JSON.stringify({ audience: ['svc'] }));
    expect(f.status).to.equal(200);
    const svids = f.body.svids as Array<{ spiffe_id: string; svid: string }>;
    expect(svids.map((s) => s.spiffe_id)).to.deep.equal([ME]);
    const v = await call(ep.socketPath, 'POST', '/v1/jwt/validate', H, JSON.stringify({ audience: 'svc', svid: svids[0]!.svid }));
    expect(v.status).to.equal(200);
    expect(v.body.spiffe_id).to.equal(ME);
    expect(v.body.claims).to.include({ sub: ME, 'writ.test': 'yes' });
    const bad: Array<[string, string, string]> = [
      ['/v1/jwt', '{"audience":[]}', 'ERR_INPUT_INVALID'],
      ['/v1/jwt', '{"audience":"svc"}', 'ERR_INPUT_INVALID'],
      ['/v1/jwt', '{"audience":["a"],"spiffe_id":"nope"}', 'ERR_SPIFFEID_SCHEME'],
      ['/v1/jwt', '{not json', 'ERR_INPUT_INVALID'],
      ['/v1/jwt', '[1]', 'ERR_INPUT_INVALID'],
      ['/v1/jwt/validate', '{"audience":"svc"}', 'ERR_INPUT_INVALID'],
      ['/v1/jwt/validate', `{"audience":"other","svid":"${svids[0]!.svid}"}`, 'ERR_SVID_JWT_AUD'],
    ];
    for (const [path, body, code] of bad) {
      const a = await call(ep.socketPath, 'POST', path, H, body);
      expect([a.status, (a.body.error as { code: string }).code], `${path} ${body}`).to.deep.equal([400, code]);
    }
  });

  it('refuses a body over 64 KiB (413) and unknown routes (404), and keeps serving', async () => {
    const big = await call(ep.socketPath, 'POST', '/v1/jwt', H, JSON.stringify({ audience: ['x'.repeat(70 * 1024)] }));
    expect([big.status, (big.body.error as { code: string }).code]).to.deep.equal([413, 'ERR_REQUEST_TOO_LARGE']);
    const none = await call(ep.socketPath, 'GET', '/v1/nothing');
    expect([none.status, (none.body.error as { code: string }).code]).to.deep.equal([404, 'ERR_NOT_FOUND']);
    expect((await call(ep.socketPath, 'GET', '/v1/x509')).status).to.equal(200);
  });

  it('answers 403 to a caller without identity and 503 while not ready', async () => {
    handler.revoke(`unix:uid:${uid}`);
    for (const [m, p, b] of [['GET', '/v1/x509'], ['GET', '/v1/x509/watch'], ['GET', '/v1/bundles/x509'], ['POST', '/v1/jwt', '{"audience":["a"]}']] as const) {
      const a = await call(ep.socketPath, m, p, H, b);
      expect([a.status, a.body], p).to.deep.equal([403, { error: { code: 'ERR_WORKLOAD_NO_IDENTITY', message: 'no identity issued' } }]);
    }
    handler.isReady = false;
    expect((await call(ep.socketPath, 'GET', '/v1/x509')).status).to.equal(503);
  });

  it('GET /v1/x509/watch: the state at once, an update on change, heartbeats, a final error line when the identity goes away', async () => {
    const w = await openWatch(ep.socketPath);
    watches.push(w);
    expect(w.res.statusCode).to.equal(200);
    expect(w.res.headers['content-type']).to.match(/^application\/x-ndjson/);
    const first = await w.next(3000);
    expect((first.svids as SvidJson[])[0]!.spiffe_id).to.equal(ME);
    await waitFor(() => handler.subscribers > 0, 2000, 'the watch to subscribe');
    handler.notify();
    await waitFor(() => w.lines.some((l) => 'heartbeat' in l), 3000, 'a heartbeat');
    expect(w.lines.filter((l) => !('heartbeat' in l))).to.have.length(0);
    await handler.rotate(ME);
    handler.notify();
    expect(serialOf(await w.next())).to.not.equal(serialOf(first));
    handler.revoke(`unix:uid:${uid}`);
    handler.notify();
    expect(await w.next()).to.deep.equal({ error: { code: 'ERR_WORKLOAD_NO_IDENTITY', message: 'no identity issued' } });
    await waitFor(() => w.ended, 3000, 'the watch to end');
    await waitFor(() => ep.stats().watches === 0 && handler.subscribers === 0, 2000, 'the watch to unsubscribe');
  });

  it('answers 503 when the process that connected exited before the request', async () => {
    await waitFor(() => ep.stats().connections === 0, 10_000, 'earlier connections to close');
    const { socket, pid } = await socketOfExitedProcess(ep.socketPath, () => ep.stats().connections === 1);
    const a = await call(socket, 'GET', '/v1/x509');
    expect([a.status, a.body]).to.deep.equal([503, { error: { code: 'ERR_WORKLOAD_ATTESTATION', message: 'workload attestation failed' } }]);
    expect(handler.attested.map((p) => p.pid)).to.include(pid);
  });

  it('close() ends open watches with a final error line and removes the socket', async () => {
    const second = await startHttpWorkloadEndpoint({ socketPath: dir.path('second.sock'), handler, logger: silentLogger });
    const w = await openWatch(second.socketPath);
    await w.next();
    await second.close();
    expect(await w.next()).to.deep.equal({ error: { code: 'ERR_AGENT_NOT_READY', message: 'The agent is shutting down.' } });
    await waitFor(() => w.ended, 3000, 'the watch to end');
    const { existsSync } = await import('node:fs');
    expect(existsSync(second.socketPath)).to.equal(false);
  });
});
