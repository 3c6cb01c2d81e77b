/**
 * Federation with real processes: `writ server run` (with `federation.ca_file` for the https_web
 * endpoint's private CA) and `writ agent run`, driven by the `writ` CLI; the foreign bundle
 * endpoints are HTTPS servers in this process, one presenting an X509-SVID of partner.org minted
 * by an in-process Authority. A workload's Workload API answer shows the fetched bundle, its
 * rotation, and its removal.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { decodePem, encodePem } from '../../src/bundle/index.js';
import type { CaFixture } from '../ca/helpers.js';
import { until } from '../helpers/wait.js';
import { startAgent, startServer, type AgentHandle, type RunOptions, type ServerHandle } from '../helpers/writ-process.js';
import { bundleDoc, foreignCa, jwtKey, makeWebPki, otherTdRoot, serveJson, startEndpoint, svidPem, type Endpoint } from '../server/federation-helpers.js';

const EP_ID = 'spiffe://partner.org/writ/server';
const ALIAS = 'spiffe://example.org/host/federation';
const pemOf = (ders: Buffer[]) => ders.map((d) => encodePem('CERTIFICATE', d)).join('');
const certsIn = (pem: string) => decodePem(pem, 'ERR_BUNDLE_PEM', 'test output', 'CERTIFICATE').map((b) => b.der);

describe('e2e: federation and foreign bundles through the CLI', function () {
  this.timeout(180_000);
  let dir: string;
  let srv: ServerHandle;
  let agent: AgentHandle;
  let web: Endpoint;
  let spiffe: Endpoint;
  let a0: CaFixture;
  let a1: CaFixture;
  let w: CaFixture;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-fed-e2e-'));
    const pki = await makeWebPki();
    [a0, a1, w] = await Promise.all([foreignCa('partner.org'), foreignCa('partner.org'), foreignCa('webpartner.test')]);
    web = await startEndpoint(pki.server);
    spiffe = await startEndpoint(await svidPem(a0, EP_ID));
    writeFileSync(join(dir, 'web-ca.pem'), pki.caPem);
    writeFileSync(join(dir, 'partner-bootstrap.pem'), pemOf(a0.authority.x509Authorities()));
    srv = await startServer({ federation: { ca_file: join(dir, 'web-ca.pem') } });
    agent = await startAgent(srv, { alias: ALIAS });
    const e = await cli(['entry', 'create', '--parent-id', ALIAS, '--spiffe-id', 'spiffe://example.org/workload/fed', '--selector', `unix:uid:${process.getuid?.() ?? 0}`, '--federates-with', 'partner.org']);
    if (e.code !== 0) throw new Error(e.stderr);
  });
  after(async () => {
    await agent?.cleanup();
    await srv?.cleanup();
    await Promise.allSettled([web?.close(), spiffe?.close(), ...[a0, a1, w].map((f) => f?.cleanup())]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The CLI against the server, bounded at 60 s (the machine may be busy). */
  const cli = (args: string[], opts: RunOptions = {}) => srv.cli(args, { timeoutMs: 60_000, ...opts });

  /** The partner.org roots the workload gets in its Workload API answer (federated_bundle.0.*.pem), or undefined. */
  const workloadPartnerRoots = async (): Promise<Buffer[] | undefined> => {
    const out = mkdtempSync(join(dir, 'fetch-'));
    const r = await agent.api(['fetch', 'x509', '--write', join(out, 'w'), '--output', 'json'], { timeoutMs: 60_000 });
    if (r.code !== 0) return undefined;
    if (!(JSON.parse(r.stdout) as { trust_domains: string[] }).trust_domains.includes('partner.org')) return undefined;
    const f = join(out, 'w', 'federated_bundle.0.0.pem');
    return existsSync(f) ? certsIn(readFileSync(f, 'utf8')) : undefined;
  };
  const sameRoots = (got: Buffer[] | undefined, want: Buffer[]) => got !== undefined && got.length === want.length && got.every((d, i) => d.equals(want[i]!));

  it('creates an https_spiffe relationship with a bootstrap bundle; refresh fetches it and the workload receives it', async () => {
    const both = [...a0.authority.x509Authorities(), ...a1.authority.x509Authorities()];
    spiffe.handler = serveJson(bundleDoc('partner.org', { x509: both, sequence: 2, refreshHint: 300 }));
    const c = await cli([
      'federation', 'create', '--trust-domain', 'partner.org', '--bundle-endpoint-url', spiffe.url('/'), '--profile', 'https_spiffe',
      '--endpoint-spiffe-id', EP_ID, '--trust-domain-bundle-path', join(dir, 'partner-bootstrap.pem'), '--trust-domain-bundle-format', 'pem',
    ]);
    expect(c.code, c.stderr).to.equal(0);
    expect(c.stdout).to.contain('Trust domain              : partner.org').and.contain(`Endpoint SPIFFE ID        : ${EP_ID}`).and.contain('Bundle endpoint profile   : https_spiffe');
    const r = await cli(['federation', 'refresh', '--trust-domain', 'partner.org']);
    expect(r.code, r.stderr).to.equal(0);
    // The create already started a fetch, so this one may find the bundle unchanged.
    expect(r.stdout).to.match(/(Stored the bundle of partner\.org with spiffe_sequence 2|The bundle of partner\.org at .* is unchanged \(spiffe_sequence 2\))/);
    const show = await cli(['federation', 'show', '--trust-domain', 'partner.org', '--output', 'json']);
    expect(show.code, show.stderr).to.equal(0);
    const rel = (JSON.parse(show.stdout) as { relationship: { last_refresh: { ok: boolean; sequence: number }; next_refresh_at: number } }).relationship;
    expect(rel.last_refresh).to.include({ ok: true, sequence: 2 });
    expect(rel.next_refresh_at * 1000).to.be.greaterThan(Date.now() + 50_000);
    await until('the workload to receive the partner.org bundle', async () => (sameRoots(await workloadPartnerRoots(), both) ? true : undefined));
  });

  it('carries a rotation of the partner CA to the workload: the new endpoint SVID is checked with the fetched bundle', async () => {
    spiffe.setCert(await svidPem(a1, EP_ID));
    spiffe.handler = serveJson(bundleDoc('partner.org', { x509: a1.authority.x509Authorities(), sequence: 3, refreshHint: 300 }));
    const r = await cli(['federation', 'refresh', '--trust-domain', 'partner.org']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('Stored the bundle of partner.org with spiffe_sequence 3');
    await until('the workload to receive the rotated bundle', async () => (sameRoots(await workloadPartnerRoots(), a1.authority.x509Authorities()) ? true : undefined));
  });

  it('verifies an https_web endpoint with federation.ca_file; a refused refresh prints its code and exits 1', async () => {
    web.handler = serveJson(bundleDoc('webpartner.test', { x509: w.authority.x509Authorities(), jwt: [jwtKey('w1')], sequence: 1 }));
    const c = await cli(['federation', 'create', '--trust-domain', 'webpartner.test', '--bundle-endpoint-url', web.url('/bundle'), '--bundle-endpoint-profile', 'https_web']);
    expect(c.code, c.stderr).to.equal(0);
    const r = await cli(['federation', 'refresh', '--trust-domain', 'webpartner.test']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/webpartner\.test .*spiffe_sequence 1/);
    const list = await cli(['federation', 'list']);
    expect(list.stdout).to.match(/^Found 2 federation relationships/).and.contain('Trust domain              : webpartner.test');
    web.handler = serveJson('{}', 500);
    const bad = await cli(['federation', 'refresh', '--trust-domain', 'webpartner.test']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/^ERR_FEDERATION_HTTP_STATUS: The bundle endpoint https:\/\/127\.0\.0\.1:\d+ answered HTTP 500\.\n$/);
    const show = await cli(['federation', 'show', '--trust-domain', 'webpartner.test']);
    expect(show.stdout).to.match(/Last refresh {14}: \S+ FAILED ERR_FEDERATION_HTTP_STATUS/).and.contain('Bundle sequence           : 1');
    const upd = await cli(['federation', 'update', '--trust-domain', 'webpartner.test', '--bundle-endpoint-url', web.url('/v2')]);
    expect(upd.code, upd.stderr).to.equal(0);
    expect(upd.stdout).to.contain(`Bundle endpoint URL       : ${web.url('/v2')}`);
  });

  it('refuses bad relationships with coded one-line errors', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--trust-domain', 'example.org', '--bundle-endpoint-url', 'https://x.test/', '--profile', 'https_web'], /^ERR_FEDERATION_OWN_TRUST_DOMAIN: /],
      [['--trust-domain', 'x.test', '--bundle-endpoint-url', 'http://x.test/', '--profile', 'https_web'], /^ERR_FEDERATION_INVALID: bundle_endpoint_url must use https/],
      [['--trust-domain', 'x.test', '--bundle-endpoint-url', 'https://x.test/', '--profile', 'https_spiffe'], /^ERR_FEDERATION_INVALID: endpoint_spiffe_id/],
      [['--trust-domain', 'partner.org', '--bundle-endpoint-url', 'https://x.test/', '--profile', 'https_web'], /^ERR_FEDERATION_EXISTS: /],
    ];
    for (const [args, want] of cases) {
      const r = await cli(['federation', 'create', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(1);
      expect(r.stderr, args.join(' ')).to.match(want);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
    }
    const missing = await cli(['federation', 'show', '--trust-domain', 'nobody.test']);
    expect(missing.stderr).to.match(/^ERR_FEDERATION_NOT_FOUND: /);
  });

  it('lists, sets and deletes foreign bundles; the own bundle is untouchable and `bundle show` still prints it', async () => {
    const list = await cli(['bundle', 'list', '--output', 'json']);
    expect(list.code, list.stderr).to.equal(0);
    const bundles = (JSON.parse(list.stdout) as { bundles: Array<{ trust_domain: string; federated: boolean; spiffe_sequence?: number }> }).bundles;
    expect(bundles.map((b) => [b.trust_domain, b.federated, b.spiffe_sequence])).to.deep.equal([
      ['partner.org', true, 3],
      ['webpartner.test', true, 1],
    ]);
    const one = await cli(['bundle', 'list', '--id', 'spiffe://partner.org']);
    expect(one.stdout).to.match(/^\*+\n\* partner\.org\n\*+\n-----BEGIN CERTIFICATE-----/);
    expect(certsIn(one.stdout.replace(/^(\*.*\n)+/, ''))).to.deep.equal(a1.authority.x509Authorities());

    const otherPem = join(dir, 'other.pem');
    writeFileSync(otherPem, pemOf([await otherTdRoot('other.test')]));
    const set = await cli(['bundle', 'set', '--id', 'other.test', '--path', otherPem, '--format', 'pem']);
    expect(set.code, set.stderr).to.equal(0);
    expect(set.stdout).to.match(/^Bundle set for other\.test: 1 X\.509 and 0 JWT authorities/);
    const viaStdin = await cli(['bundle', 'set', '--id', 'third.test', '--format', 'spiffe'], { stdin: bundleDoc('third.test', { jwt: [jwtKey('t1')], sequence: 9 }) });
    expect(viaStdin.code, viaStdin.stderr).to.equal(0);
    const wrongTd = await cli(['bundle', 'set', '--id', 'fourth.test', '--path', otherPem]);
    expect(wrongTd.stderr).to.match(/^ERR_BUNDLE_TRUST_DOMAIN: .*other\.test/);

    for (const args of [['set', '--id', 'example.org', '--path', otherPem], ['delete', '--id', 'example.org']]) {
      const r = await cli(['bundle', ...args]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/^ERR_FEDERATION_OWN_TRUST_DOMAIN: example\.org is this server's own trust domain/);
    }
    const inUse = await cli(['bundle', 'delete', '--id', 'partner.org']);
    expect(inUse.stderr).to.match(/^ERR_FEDERATION_BUNDLE_IN_USE: .*--force/);
    expect((await cli(['bundle', 'delete', '--id', 'other.test'])).stdout).to.equal('Bundle of other.test deleted.\n');
    expect((await cli(['bundle', 'delete', '--id', 'other.test'])).stderr).to.match(/^ERR_BUNDLE_NOT_FOUND: /);

    const own = await cli(['bundle', 'show']);
    expect(own.code, own.stderr).to.equal(0);
    const ownRoot = new X509Certificate(certsIn(own.stdout)[0]!);
    expect(ownRoot.subjectAltName).to.contain('spiffe://example.org');
  });

  it('deletes the relationship (keeping the bundle), then the bundle, and the workload stops receiving it', async () => {
    const del = await cli(['federation', 'delete', '--trust-domain', 'partner.org']);
    expect(del.code, del.stderr).to.equal(0);
    expect(del.stdout).to.equal('Federation relationship with partner.org deleted.\n');
    expect((await cli(['federation', 'show', '--trust-domain', 'partner.org'])).stderr).to.match(/^ERR_FEDERATION_NOT_FOUND: /);
    expect((await cli(['bundle', 'list', '--id', 'partner.org'])).code).to.equal(0);
    const drop = await cli(['bundle', 'delete', '--id', 'partner.org']);
    expect(drop.code, drop.stderr).to.equal(0);
    await until('the workload to lose the partner.org bundle', async () => {
      const r = await agent.api(['fetch', 'x509', '--output', 'json'], { timeoutMs: 60_000 });
      return r.code === 0 && !(JSON.parse(r.stdout) as { trust_domains: string[] }).trust_domains.includes('partner.org') ? true : undefined;
    });
  });
});
