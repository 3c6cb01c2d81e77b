/**
 * Federation, the parts around a fetch: relationship input rules, operator bundles, the poll
 * cadence, and the poller's schedule driven by an injected clock against a real HTTPS endpoint
 * (first fetch at once, hint/4 with a 1-minute floor, 5 minutes without a bundle, failures retried
 * at the next interval, forced refresh, changed and deleted relationships, stop during a fetch).
 * Also: a datastore at schema version 2 gains the federation table on open.
 */
import { expect } from 'chai';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ManualClock, type RandomSource } from '../../src/clock.js';
import { MIGRATIONS } from '../../src/datastore/sqlite-migrations.js';
import { openDataStore, type DataStore } from '../../src/datastore/index.js';
import { WritError, type ErrorCode } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { validateServerConfig } from '../../src/server/config.js';
import { FederationPoller, loadFederationCa, parseOperatorBundle, pollInterval, validateNewRelationship, validateRelationshipPatch } from '../../src/server/federation/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { encodePem } from '../../src/bundle/index.js';
import { makeCert, makeRoot, newKey } from '../svid/pki.js';
import { bundleDoc, jwtKey, makeWebPki, serveJson, startEndpoint, type Endpoint, type WebPki } from './federation-helpers.js';

const OWN = 'example.org';

function expectCode(fn: () => unknown, code: ErrorCode): void {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(WritError);
    expect((e as WritError).code, (e as Error).message).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

describe('federation: relationship rules and operator bundles', () => {
  const ok = { trust_domain: 'partner.org', bundle_endpoint_url: 'https://partner.org/bundle', bundle_endpoint_profile: 'https_spiffe', endpoint_spiffe_id: 'spiffe://partner.org/writ/server' };

  it('accepts the three parameters SPIFFE Federation asks for, with a spiffe:// trust domain too', () => {
    expect(validateNewRelationship(ok, OWN)).to.deep.equal({ trustDomain: 'partner.org', bundleEndpointUrl: 'https://partner.org/bundle', profile: 'https_spiffe', endpointSpiffeId: 'spiffe://partner.org/writ/server' });
    expect(validateNewRelationship({ ...ok, trust_domain: 'spiffe://partner.org', bundle_endpoint_profile: 'https_web', endpoint_spiffe_id: undefined }, OWN)).to.include({ trustDomain: 'partner.org', endpointSpiffeId: null });
  });

  const refusals: Array<[string, Record<string, unknown>, ErrorCode]> = [
    ['the own trust domain', { trust_domain: OWN }, 'ERR_FEDERATION_OWN_TRUST_DOMAIN'],
    ['a trust domain with a path', { trust_domain: 'spiffe://partner.org/x' }, 'ERR_FEDERATION_INVALID'],
    ['an upper-case trust domain', { trust_domain: 'Partner.org' }, 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
    ['http', { bundle_endpoint_url: 'http://partner.org/' }, 'ERR_FEDERATION_INVALID'],
    ['userinfo', { bundle_endpoint_url: 'https://user:pw@partner.org/' }, 'ERR_FEDERATION_INVALID'],
    ['no URL', { bundle_endpoint_url: undefined }, 'ERR_FEDERATION_INVALID'],
    ['an unknown profile', { bundle_endpoint_profile: 'https' }, 'ERR_FEDERATION_INVALID'],
    ['https_spiffe without an endpoint ID', { endpoint_spiffe_id: undefined }, 'ERR_FEDERATION_INVALID'],
    ['a bad endpoint ID', { endpoint_spiffe_id: 'spiffe://partner.org/a//b' }, 'ERR_SPIFFEID_PATH'],
    ['https_web with an endpoint ID', { bundle_endpoint_profile: 'https_web' }, 'ERR_FEDERATION_INVALID'],
  ];
  for (const [what, change, code] of refusals) {
    it(`refuses ${what} with ${code}`, () => expectCode(() => validateNewRelationship({ ...ok, ...change }, OWN), code));
  }

  it('patches only the fields given and refuses an endpoint ID with https_web', () => {
    expect(validateRelationshipPatch({ bundle_endpoint_url: 'https://b.partner.org/' })).to.deep.equal({ bundleEndpointUrl: 'https://b.partner.org/' });
    expectCode(() => validateRelationshipPatch({ bundle_endpoint_profile: 'https_web', endpoint_spiffe_id: 'spiffe://partner.org/x' }), 'ERR_FEDERATION_INVALID');
    expectCode(() => validateRelationshipPatch({ bundle_endpoint_url: 'ftp://x/' }), 'ERR_FEDERATION_INVALID');
  });

  it('takes operator bundles as PEM or SPIFFE JSON and refuses authorities of another trust domain or non-CA certificates', async () => {
    const td = parseTrustDomain('partner.org');
    const root = await makeRoot('partner.org');
    const pem = encodePem('CERTIFICATE', root.der);
    expect(parseOperatorBundle(td, 'pem', pem).x509Authorities).to.deep.equal([root.der]);
    expect(parseOperatorBundle(td, 'spiffe', bundleDoc('partner.org', { x509: [root.der], sequence: 3 })).sequenceNumber).to.equal(3);
    const foreign = pem + encodePem('CERTIFICATE', (await makeRoot('other.org')).der);
    expectCode(() => parseOperatorBundle(td, 'pem', foreign), 'ERR_BUNDLE_TRUST_DOMAIN');
    const leaf = await makeCert({ ca: false }, await newKey(), root);
    expectCode(() => parseOperatorBundle(td, 'pem', encodePem('CERTIFICATE', leaf.der)), 'ERR_INPUT_INVALID');
    expectCode(() => parseOperatorBundle(td, 'der', pem), 'ERR_INPUT_INVALID');
    expectCode(() => parseOperatorBundle(td, 'spiffe', '{"keys":[]}'), 'ERR_BUNDLE_EMPTY');
  });
});

describe('federation: poll cadence', () => {
  it('polls at a quarter of the refresh hint, 5 minutes without one, never under a minute, jittered ±10 %', () => {
    const table: Array<[number | undefined, number, number]> = [
      [undefined, 0.5, 300],
      [0, 0.5, 300],
      [300, 0.5, 75],
      [3600, 0.5, 900],
      [3600, 0, 810],
      [3600, 0.99999, 990],
      [60, 0.5, 60],
      [200, 0, 60],
      [undefined, 0, 270],
    ];
    for (const [hint, unit, want] of table) expect(pollInterval(hint, unit), `hint ${hint} unit ${unit}`).to.equal(want);
  });
});

describe('federation: the poller on an injected clock', function () {
  this.timeout(60_000);
  let dir: string;
  let pki: WebPki;
  let ep: Endpoint;
  let store: DataStore;
  let clock: ManualClock;
  let poller: FederationPoller;
  const half: RandomSource = { bytes: (n) => Buffer.alloc(n, 0x80) }; // unit 0.5: no jitter
  const TD = 'partner.org';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-fedpoll-'));
    pki = await makeWebPki();
    ep = await startEndpoint(pki.server);
  });
  after(async () => {
    await ep?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  let n = 0;
  beforeEach(async () => {
    clock = new ManualClock(Date.now());
    store = await openDataStore({ type: 'sqlite', path: join(dir, `p${++n}.sqlite3`) }, { clock, logger: silentLogger });
    poller = new FederationPoller({ datastore: store, clock, logger: silentLogger, random: half, fetch: { extraCaPem: [pki.caPem] } });
    ep.hits.length = 0;
    ep.handler = serveJson(bundleDoc(TD, { jwt: [jwtKey('k1')], sequence: 1, refreshHint: 300 }));
  });
  afterEach(async () => {
    await poller?.stop();
    await store?.close();
  });
  const create = (td: string, path: string) => store.createFederation({ trustDomain: td, bundleEndpointUrl: ep.url(path), profile: 'https_web', endpointSpiffeId: null }, 1);
  const hits = (path: string) => ep.hits.filter((h) => h === path).length;
  const advance = async (s: number) => {
    clock.advance(s * 1000);
    await poller.tick();
  };

  it('fetches a new relationship at once, then at hint/4, and retries a failure at the next interval, not sooner', async () => {
    await create(TD, '/a');
    await poller.tick();
    expect(hits('/a')).to.equal(1);
    expect(poller.nextRefreshAt(TD)).to.equal(Math.ceil((clock.nowMs() + 75_000) / 1000));
    await poller.tick();
    await advance(74);
    expect(hits('/a')).to.equal(1, 'not before 75 s');
    await advance(1);
    expect(hits('/a')).to.equal(2);
    ep.handler = serveJson('oops', 500);
    await advance(75);
    expect(hits('/a')).to.equal(3);
    expect((await store.getFederation(TD))?.lastRefresh).to.include({ ok: false, code: 'ERR_FEDERATION_HTTP_STATUS', sequence: 1 });
    await advance(30);
    await advance(30);
    expect(hits('/a')).to.equal(3, 'a failure is not retried aggressively');
    ep.handler = serveJson(bundleDoc(TD, { jwt: [jwtKey('k2')], sequence: 2, refreshHint: 60 }));
    await advance(15);
    expect(hits('/a')).to.equal(4);
    expect((await store.getFederation(TD))?.lastRefresh).to.include({ ok: true, sequence: 2 });
    // A hint of 60 s would mean a poll every 15 s; the floor keeps it at a minute.
    await advance(59);
    expect(hits('/a')).to.equal(4);
    await advance(1);
    expect(hits('/a')).to.equal(5);
  });

  it('waits 5 minutes after a failure when there is no bundle yet; a forced refresh ignores the schedule', async () => {
    ep.handler = serveJson('nope', 503);
    await create(TD, '/b');
    await poller.tick();
    expect(hits('/b')).to.equal(1);
    await advance(299);
    expect(hits('/b')).to.equal(1);
    ep.handler = serveJson(bundleDoc(TD, { jwt: [jwtKey('k1')], sequence: 4 }));
    const o = await poller.refresh(TD);
    expect(o).to.include({ ok: true, result: 'updated', sequence: 4 });
    expect(hits('/b')).to.equal(2);
    expect(await poller.refresh(TD)).to.include({ ok: true, result: 'unchanged' });
    expect(hits('/b')).to.equal(3, 'forced refreshes are not held to the floor');
    try {
      await poller.refresh('nobody.example');
      expect.fail('expected ERR_FEDERATION_NOT_FOUND');
    } catch (e) {
      expect((e as WritError).code).to.equal('ERR_FEDERATION_NOT_FOUND');
    }
  });

  it('fetches a changed relationship at once, forgets a deleted one (keeping its bundle), and polls several trust domains', async () => {
    await create(TD, '/c1');
    await create('acme.test', '/acme');
    await poller.tick();
    expect([hits('/c1'), hits('/acme')]).to.deep.equal([1, 1]);
    await store.updateFederation(TD, { bundleEndpointUrl: ep.url('/c2') }, 2);
    await advance(1);
    expect([hits('/c1'), hits('/c2'), hits('/acme')]).to.deep.equal([1, 1, 1]);
    await store.deleteFederation('acme.test');
    await advance(400);
    expect(hits('/acme')).to.equal(1);
    expect(hits('/c2')).to.equal(2);
    expect(poller.nextRefreshAt('acme.test')).to.equal(undefined);
    expect(await store.getBundle('acme.test')).to.not.equal(undefined);
  });

  it('stops at once while a fetch hangs, recording it as stopped', async () => {
    ep.handler = () => undefined;
    await create(TD, '/hang');
    const pass = poller.tick();
    const t0 = Date.now();
    while (hits('/hang') === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    await poller.stop();
    await pass;
    expect(Date.now() - t0).to.be.lessThan(5000);
    expect((await store.getFederation(TD))?.lastRefresh).to.include({ ok: false, code: 'ERR_FEDERATION_FETCH' });
    try {
      await poller.refresh(TD);
      expect.fail('a stopped poller refuses refreshes');
    } catch (e) {
      expect((e as WritError).code).to.equal('ERR_FEDERATION_FETCH');
    }
  });
});

describe('federation: federation.ca_file', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-fedca-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is optional, resolved to an absolute path, and strict about its fields', () => {
    expect(validateServerConfig({ trust_domain: OWN }).federation).to.deep.equal({});
    expect(validateServerConfig({ trust_domain: OWN, federation: { ca_file: 'x/ca.pem' } }).federation.caFile).to.equal(join(process.cwd(), 'x/ca.pem'));
    expectCode(() => validateServerConfig({ trust_domain: OWN, federation: { ca: 'x' } }), 'ERR_CONFIG_INVALID');
  });

  it('loads CA certificates and refuses a missing file, non-PEM text and a certificate that is not a CA (ERR_CONFIG_INVALID)', async () => {
    const ca = await makeRoot('ca.test');
    const good = join(dir, 'ca.pem');
    writeFileSync(good, encodePem('CERTIFICATE', ca.der));
    expect(loadFederationCa(good)).to.deep.equal([encodePem('CERTIFICATE', ca.der)]);
    const leaf = join(dir, 'leaf.pem');
    writeFileSync(leaf, encodePem('CERTIFICATE', (await makeCert({ ca: false }, await newKey(), ca)).der));
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not pem');
    const unreadable = join(dir, 'unreadable.pem');
    writeFileSync(unreadable, encodePem('CERTIFICATE', ca.der));
    chmodSync(unreadable, 0o000);
    const paths = [join(dir, 'missing.pem'), junk, leaf, ...(process.getuid?.() === 0 ? [] : [unreadable])];
    for (const p of paths) expectCode(() => loadFederationCa(p), 'ERR_CONFIG_INVALID');
  });
});

describe('federation: datastore upgrade', () => {
  it('adds the relationships table to a store at schema version 2 and keeps its bundles', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-fedmig-'));
    try {
      const path = join(dir, 'old.sqlite3');
      const raw = new Database(path);
      for (const m of MIGRATIONS.filter((x) => x.version <= 2)) raw.exec(m.sql);
      raw.pragma('user_version = 2');
      raw.prepare('INSERT INTO bundles (trust_domain, document, sequence, refresh_hint, updated_at) VALUES (?, ?, 1, 0, 1)').run('partner.org', '{"keys":[]}');
      raw.close();
      const store = await openDataStore({ type: 'sqlite', path }, { clock: new ManualClock(), logger: silentLogger });
      try {
        expect(await store.getBundle('partner.org')).to.include({ sequence: 1 });
        await store.createFederation({ trustDomain: 'partner.org', bundleEndpointUrl: 'https://partner.org/', profile: 'https_web', endpointSpiffeId: null }, 5);
        expect((await store.listFederations()).map((r) => r.trustDomain)).to.deep.equal(['partner.org']);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
