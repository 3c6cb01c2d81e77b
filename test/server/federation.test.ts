/**
 * Federation against real HTTPS bundle endpoints on 127.0.0.1: https_web verified with a test CA,
 * https_spiffe verified as an X509-SVID of partner.org (bootstrap bundle, then the fetched one
 * across a CA rotation), and every refusal with its code, nothing stored, the status recorded and
 * no body in the logs. Relationship validation, the cadence and the poller's schedule on an
 * injected clock are in the second half.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpiffeBundle } from '../../src/bundle/index.js';
import { ManualClock } from '../../src/clock.js';
import { openDataStore, type DataStore, type FederationRelationship } from '../../src/datastore/index.js';
import type { ErrorCode } from '../../src/errors.js';
import { refreshRelationship, type FetchOptions, type RefreshOutcome } from '../../src/server/federation/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import type { CaFixture } from '../ca/helpers.js';
import {
  bundleDoc,
  foreignCa,
  jwtKey,
  makeWebPki,
  otherTdRoot,
  recordingLogger,
  serveJson,
  startEndpoint,
  svidPem,
  type Endpoint,
  type WebPki,
} from './federation-helpers.js';

const TD = 'partner.org';
const EP_ID = 'spiffe://partner.org/writ/server';

describe('federation: fetching foreign bundles', function () {
  this.timeout(60_000);
  let dir: string;
  let store: DataStore;
  let clock: ManualClock;
  let pki: WebPki;
  let web: Endpoint;
  let spiffe: Endpoint;
  let a0: CaFixture;
  let a1: CaFixture;
  let other: CaFixture;
  let svid0: { cert: string; key: string };
  const log = recordingLogger();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-federation-'));
    pki = await makeWebPki();
    // A0 started 3 h ago so it can also mint an SVID that has already expired.
    [a0, a1, other] = await Promise.all([foreignCa(TD, 3 * 3600_000), foreignCa(TD), foreignCa('other.org')]);
    svid0 = await svidPem(a0, EP_ID);
    web = await startEndpoint(pki.server);
    spiffe = await startEndpoint(svid0);
  });
  after(async () => {
    await Promise.allSettled([web?.close(), spiffe?.close()]);
    await Promise.allSettled([a0, a1, other].map((f) => f?.cleanup()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  let n = 0;
  beforeEach(async () => {
    store = await openDataStore({ type: 'sqlite', path: join(dir, `ds${++n}.sqlite3`) }, { clock: new ManualClock(), logger: log });
    clock = new ManualClock(Date.now());
    log.records.length = 0;
    web.setCert(pki.server);
    spiffe.setCert(svid0);
    web.hits.length = 0;
    spiffe.hits.length = 0;
  });
  afterEach(async () => {
    await store?.close();
  });

  const webFetch: Omit<FetchOptions, 'now' | 'signal'> = {};
  const rel = async (overrides: Partial<FederationRelationship> = {}): Promise<FederationRelationship> =>
    store.createFederation({ trustDomain: TD, bundleEndpointUrl: web.url('/bundle'), profile: 'https_web', endpointSpiffeId: null, ...overrides }, 1000);
  const spiffeRel = () => rel({ bundleEndpointUrl: spiffe.url('/'), profile: 'https_spiffe', endpointSpiffeId: EP_ID });
  const refresh = (r: FederationRelationship, fetch: Omit<FetchOptions, 'now' | 'signal'> = { extraCaPem: [pki.caPem], ...webFetch }) =>
    refreshRelationship(r, { datastore: store, clock, logger: log, fetch });
  const storedDoc = async () => (await store.getBundle(TD))?.document;
  const bootstrap = (ca: CaFixture) => store.setBundle(TD, bundleDoc(TD, { x509: ca.authority.x509Authorities() }), 0, 1000);

  /** The refresh is refused with `code`, nothing new is stored, the status says so, and no body is logged. */
  async function expectRefused(r: FederationRelationship, code: ErrorCode, fetch?: Omit<FetchOptions, 'now' | 'signal'>, secret?: string): Promise<RefreshOutcome> {
    const before = await storedDoc();
    const o = await refresh(r, fetch);
    expect(o, o.message).to.deep.include({ ok: false, result: 'refused', code });
    expect(await storedDoc()).to.equal(before, 'nothing stored');
    expect((await store.getFederation(TD))?.lastRefresh).to.deep.include({ ok: false, code, message: o.message });
    expect(log.records.some((l) => l.level === 'warn' && l.obj.code === code && l.obj.trust_domain === TD)).to.equal(true, 'logged');
    if (secret) expect(JSON.stringify(log.records)).to.not.contain(secret);
    return o;
  }

  describe('https_web', () => {
    it('fetches, verifies with the configured CA and stores the bundle under its trust domain only; an equal bundle is left alone', async () => {
      const doc = bundleDoc(TD, { x509: a0.authority.x509Authorities(), jwt: [jwtKey('k1')], sequence: 7, refreshHint: 300 });
      web.handler = serveJson(doc);
      const r = await rel();
      const o = await refresh(r);
      expect(o, o.message).to.deep.include({ ok: true, result: 'updated', sequence: 7, refreshHint: 300 });
      const stored = SpiffeBundle.parse(parseTrustDomain(TD), (await storedDoc())!);
      expect(stored.equals(SpiffeBundle.parse(parseTrustDomain(TD), doc))).to.equal(true);
      expect((await store.listBundles()).map((b) => b.trustDomain)).to.deep.equal([TD]);
      expect((await store.getFederation(TD))?.lastRefresh).to.deep.include({ ok: true, code: null, sequence: 7 });
      const seq = (await store.getBundle(TD))!.sequence;
      expect(await refresh(r)).to.deep.include({ ok: true, result: 'unchanged', sequence: 7 });
      expect((await store.getBundle(TD))!.sequence).to.equal(seq, 'an unchanged bundle is not written again');
    });

    it('refuses a certificate from a CA it does not trust, and one for another host name (ERR_FEDERATION_TLS)', async () => {
      web.handler = serveJson(bundleDoc(TD, { x509: a0.authority.x509Authorities(), sequence: 1 }));
      const r = await rel();
      const o = await expectRefused(r, 'ERR_FEDERATION_TLS', {});
      expect(o.message).to.match(/127\.0\.0\.1/);
      web.setCert(pki.otherName);
      const o2 = await expectRefused(r, 'ERR_FEDERATION_TLS');
      expect(o2.message).to.contain('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('follows up to three https redirects with the same checks, and refuses a redirect to http or a fourth one (ERR_FEDERATION_REDIRECT)', async () => {
      const doc = bundleDoc(TD, { x509: a0.authority.x509Authorities(), sequence: 2 });
      let target = '/final';
      web.handler = (req, res) => {
        const hop = /^\/hop(\d)$/.exec(req.url ?? '');
        if (req.url === '/final') return serveJson(doc)(req, res);
        if (req.url === '/to-http') {
          res.writeHead(302, { location: `http://127.0.0.1:${web.port}/final` }).end();
          return;
        }
        res.writeHead(307, { location: hop && Number(hop[1]) < 3 ? `/hop${Number(hop[1]) + 1}` : target }).end();
      };
      web.hits.length = 0;
      const o = await refresh(await rel({ bundleEndpointUrl: web.url('/hop1') }));
      expect(o, o.message).to.deep.include({ ok: true, result: 'updated', sequence: 2 });
      expect(web.hits).to.deep.equal(['/hop1', '/hop2', '/hop3', '/final']);
      expect((await store.getFederation(TD))?.bundleEndpointUrl).to.equal(web.url('/hop1'), 'the redirect is not persisted');
      await store.deleteBundle(TD);
      target = '/hop1';
      await expectRefused((await store.getFederation(TD))!, 'ERR_FEDERATION_REDIRECT');
      await store.updateFederation(TD, { bundleEndpointUrl: web.url('/to-http') }, 1001);
      const o3 = await expectRefused((await store.getFederation(TD))!, 'ERR_FEDERATION_REDIRECT');
      expect(o3.message).to.match(/https/);
    });
  });

  describe('https_spiffe', () => {
    it('checks the endpoint with the bootstrap bundle, then always with the latest fetched one across a CA rotation', async () => {
      await bootstrap(a0);
      const both = [...a0.authority.x509Authorities(), ...a1.authority.x509Authorities()];
      spiffe.handler = serveJson(bundleDoc(TD, { x509: both, sequence: 2, refreshHint: 60 }));
      const r = await spiffeRel();
      expect(await refresh(r)).to.deep.include({ ok: true, result: 'updated', sequence: 2 });
      // The foreign CA rotates: the endpoint now presents an SVID of the new CA, and drops the old root.
      spiffe.setCert(await svidPem(a1, EP_ID));
      spiffe.handler = serveJson(bundleDoc(TD, { x509: a1.authority.x509Authorities(), sequence: 3, refreshHint: 60 }));
      expect(await refresh(r)).to.deep.include({ ok: true, result: 'updated', sequence: 3 });
      expect(SpiffeBundle.parse(parseTrustDomain(TD), (await storedDoc())!).x509Authorities).to.deep.equal(a1.authority.x509Authorities());
      // With only the bootstrap bundle, the new CA's SVID would have been refused: the fetched bundle is what made it pass.
      await bootstrap(a0);
      await expectRefused(r, 'ERR_FEDERATION_TLS');
    });

    it('refuses an endpoint SVID with another SPIFFE ID (ERR_FEDERATION_ENDPOINT_ID), whatever the host name says', async () => {
      await bootstrap(a0);
      spiffe.setCert(await svidPem(a0, 'spiffe://partner.org/not-the-endpoint'));
      spiffe.handler = serveJson(bundleDoc(TD, { x509: a0.authority.x509Authorities(), sequence: 9 }));
      const o = await expectRefused(await spiffeRel(), 'ERR_FEDERATION_ENDPOINT_ID');
      expect(o.message).to.contain('spiffe://partner.org/not-the-endpoint');
      expect(spiffe.hits.filter((h) => h === '/')).to.have.length(0, 'no request was sent to it');
    });

    it('refuses an expired endpoint SVID, an SVID of another trust domain, and a missing endpoint bundle', async () => {
      await bootstrap(a0);
      const r = await spiffeRel();
      spiffe.handler = serveJson(bundleDoc(TD, { x509: a0.authority.x509Authorities(), sequence: 9 }));
      spiffe.setCert(await svidPem(a0, EP_ID, 2 * 3600_000));
      expect((await expectRefused(r, 'ERR_FEDERATION_TLS')).message).to.match(/EXPIRED/i);
      spiffe.setCert(await svidPem(other, 'spiffe://other.org/writ/server'));
      await expectRefused(r, 'ERR_FEDERATION_TLS');
      await store.deleteBundle(TD);
      spiffe.setCert(svid0);
      const o = await expectRefused(r, 'ERR_FEDERATION_NO_ENDPOINT_BUNDLE');
      expect(o.message).to.match(/bootstrap bundle/);
    });
  });

  describe('refusals of what the endpoint answers', () => {
    it('HTTP 500 (ERR_FEDERATION_HTTP_STATUS)', async () => {
      web.handler = serveJson('{"keys":[]}', 500);
      expect((await expectRefused(await rel(), 'ERR_FEDERATION_HTTP_STATUS')).message).to.contain('HTTP 500');
    });

    it('a body that is not JSON (ERR_FEDERATION_NOT_JSON), never logged', async () => {
      web.handler = serveJson('<html>secret-garbage-body</html>');
      await expectRefused(await rel(), 'ERR_FEDERATION_NOT_JSON', undefined, 'secret-garbage-body');
    });

    it('JSON that is not a SPIFFE bundle, and keys whose parameters do not match their certificate (ERR_FEDERATION_BUNDLE_INVALID)', async () => {
      web.handler = serveJson('{"hello":"world"}');
      const r = await rel();
      await expectRefused(r, 'ERR_FEDERATION_BUNDLE_INVALID');
      const doc = JSON.parse(bundleDoc(TD, { x509: [...a0.authority.x509Authorities(), ...a1.authority.x509Authorities()], sequence: 3 })) as { keys: Array<Record<string, unknown>> };
      doc.keys[0]!.x = doc.keys[1]!.x;
      web.handler = serveJson(JSON.stringify(doc));
      const o = await expectRefused(r, 'ERR_FEDERATION_BUNDLE_INVALID');
      expect(o.message).to.match(/JWK 1/);
    });

    it('an x509 authority of another trust domain (ERR_FEDERATION_BUNDLE_TRUST_DOMAIN): bundles are never merged', async () => {
      web.handler = serveJson(bundleDoc(TD, { x509: [...a0.authority.x509Authorities(), await otherTdRoot('other.org')], sequence: 4 }));
      const o = await expectRefused(await rel(), 'ERR_FEDERATION_BUNDLE_TRUST_DOMAIN');
      expect(o.message).to.contain('other.org');
      expect(await store.listBundles()).to.deep.equal([]);
    });

    it('a body over the cap: a declared Content-Length unread, and a stream cut at the cap (ERR_FEDERATION_TOO_LARGE)', async () => {
      const r = await rel();
      web.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(50 * 1024 * 1024) });
        res.write('{"keys":[');
      };
      await expectRefused(r, 'ERR_FEDERATION_TOO_LARGE');
      let written = 0;
      let closedEarly: Promise<boolean> = Promise.resolve(false);
      web.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        closedEarly = new Promise((resolve) => res.on('close', () => resolve(!res.writableFinished)));
        const pump = () => {
          while (written < 16 * 1024 * 1024 && !res.destroyed) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      };
      await expectRefused(r, 'ERR_FEDERATION_TOO_LARGE', { extraCaPem: [pki.caPem], maxBytes: 256 * 1024 });
      expect(await closedEarly).to.equal(true, 'the client hung up before the server finished');
      expect(written).to.be.lessThan(16 * 1024 * 1024);
    });

    it('an endpoint that does not answer in time (ERR_FEDERATION_TIMEOUT)', async () => {
      web.handler = () => undefined;
      const t0 = Date.now();
      await expectRefused(await rel(), 'ERR_FEDERATION_TIMEOUT', { extraCaPem: [pki.caPem], timeoutMs: 400 });
      expect(Date.now() - t0).to.be.lessThan(5000);
    });

    it('keeps the newest by spiffe_sequence: lower or equal with other content refused (ERR_FEDERATION_STALE_SEQUENCE)', async () => {
      const r = await rel();
      web.handler = serveJson(bundleDoc(TD, { x509: a0.authority.x509Authorities(), sequence: 5 }));
      expect(await refresh(r)).to.deep.include({ result: 'updated', sequence: 5 });
      web.handler = serveJson(bundleDoc(TD, { x509: a1.authority.x509Authorities(), sequence: 5 }));
      const o = await expectRefused(r, 'ERR_FEDERATION_STALE_SEQUENCE');
      expect(o.sequence).to.equal(5);
      web.handler = serveJson(bundleDoc(TD, { x509: a1.authority.x509Authorities(), sequence: 4 }));
      await expectRefused(r, 'ERR_FEDERATION_STALE_SEQUENCE');
      // The same content under a lower number is not stale, just not newer.
      web.handler = serveJson(bundleDoc(TD, { x509: a0.authority.x509Authorities(), sequence: 3 }));
      expect(await refresh(r)).to.deep.include({ ok: true, result: 'unchanged', sequence: 5 });
      web.handler = serveJson(bundleDoc(TD, { x509: a1.authority.x509Authorities(), sequence: 6 }));
      expect(await refresh(r)).to.deep.include({ ok: true, result: 'updated', sequence: 6 });
    });

    it('without spiffe_sequence, a bundle replaces the held one only when its content differs', async () => {
      const r = await rel();
      web.handler = serveJson(bundleDoc(TD, { x509: a0.authority.x509Authorities() }));
      expect(await refresh(r)).to.deep.include({ result: 'updated', sequence: null });
      const first = (await store.getBundle(TD))!.sequence;
      expect(await refresh(r)).to.deep.include({ result: 'unchanged' });
      expect((await store.getBundle(TD))!.sequence).to.equal(first);
      web.handler = serveJson(bundleDoc(TD, { x509: a1.authority.x509Authorities() }));
      expect(await refresh(r)).to.deep.include({ result: 'updated' });
      expect((await store.getBundle(TD))!.sequence).to.equal(first + 1);
    });

    it('an unreachable endpoint (ERR_FEDERATION_FETCH)', async () => {
      const closed = await startEndpoint(pki.server);
      const url = closed.url('/');
      await closed.close();
      const o = await expectRefused(await rel({ bundleEndpointUrl: url }), 'ERR_FEDERATION_FETCH');
      expect(o.message).to.contain('ECONNREFUSED');
    });
  });
});
