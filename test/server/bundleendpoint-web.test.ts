/**
 * The bundle endpoint, https_web profile: a certificate from a test CA (openssl) on a real
 * in-process server; Node's own Web PKI checks; OIDC discovery and a JWT-SVID verified by jose
 * (createRemoteJWKSet over real HTTPS); reloading the certificate files; and the config rules
 * (profiles, files, key file mode, refresh hint floor).
 */
import { expect } from 'chai';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify } from 'jose';
import { SpiffeBundle } from '../../src/bundle/index.js';
import { WritError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { startBundleEndpoint, type BundleEndpoint } from '../../src/server/bundleendpoint.js';
import { validateServerConfig } from '../../src/server/config.js';
import { WritServer } from '../../src/server/server.js';
import { loadServingCertificate } from '../../src/server/servingcert.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { freePort } from '../helpers/openssl.js';
import { until } from '../helpers/wait.js';
import { fetchTrusting, fingerprintOfPem, issueWebCert, makeWebCa, viaHttps } from './bundleendpoint-helpers.js';

const TD = 'example.org';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(WritError);
    return (e as WritError).code;
  }
  return 'accepted';
}

describe('server/bundle endpoint (https_web)', function () {
  this.timeout(60_000);
  let dir: string;
  let server: WritServer;
  let port: number;
  let caPem: string;
  let issuer: string;
  const certFile = () => join(dir, 'serving.pem');
  const keyFile = () => join(dir, 'serving.key');
  const servedLeaf = async (p: number) => fingerprintOfPem((await viaHttps({ port: p, path: '/', ca: caPem })).socket.getPeerX509Certificate()!.toString());

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-bundle-web-'));
    caPem = readFileSync(makeWebCa(dir), 'utf8');
    issueWebCert(dir, certFile(), keyFile());
    port = await freePort();
    issuer = `https://127.0.0.1:${port}`;
    const config = validateServerConfig({
      trust_domain: TD,
      data_dir: join(dir, 'data'),
      jwt_issuer: issuer,
      admin: { socket_path: join(dir, 'admin.sock') },
      health: { enabled: false },
      node_api: { enabled: false },
      ca: { key_manager: 'memory' },
      bundle_endpoint: { enabled: true, port, profile: 'https_web', certificate_file: certFile(), key_file: keyFile(), refresh_hint: '10m' },
    });
    server = await WritServer.start(config, { logger: silentLogger });
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the bundle with the Web PKI certificate, verified by Node against the test CA, with the configured refresh hint', async () => {
    const r = await viaHttps({ port, path: '/', ca: caPem });
    expect(r.status).to.equal(200);
    expect(r.socket.authorized).to.equal(true);
    const served = SpiffeBundle.parse(parseTrustDomain(TD), r.body);
    expect(served.refreshHint).to.equal(600);
    const stored = SpiffeBundle.parse(parseTrustDomain(TD), (await server.ctx.datastore.getBundle(TD))!.document);
    expect(served.sequenceNumber).to.equal(stored.sequenceNumber);
    expect(served.x509Bundle().equals(stored.x509Bundle()) && served.jwtBundle().equals(stored.jwtBundle())).to.equal(true);
    let err: NodeJS.ErrnoException | undefined;
    await viaHttps({ port, path: '/', ca: server.ctx.bundlePem() }).catch((e: NodeJS.ErrnoException) => (err = e));
    expect(err?.code, 'a client trusting another CA refuses the endpoint').to.match(/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
  });

  it('lets a standard OIDC library (jose) discover the keys and verify a JWT-SVID minted by the CA', async () => {
    const fetchImpl = fetchTrusting(caPem);
    const disco = (await (await fetchImpl(`${issuer}/.well-known/openid-configuration`, {})).json()) as { issuer: string; jwks_uri: string };
    expect(disco.issuer).to.equal(issuer);
    expect(disco.jwks_uri).to.equal(`${issuer}/keys`);
    const jwks = createRemoteJWKSet(new URL(disco.jwks_uri), { [customFetch]: fetchImpl, timeoutDuration: 10_000 });
    const spiffeId = `spiffe://${TD}/agent/summarizer`;
    const minted = await server.ctx.authority.mintJwtSvid({ spiffeId, audience: ['billing'], ttl: 300 });
    const { payload, protectedHeader } = await jwtVerify(minted.token, jwks, { issuer: disco.issuer, audience: 'billing', algorithms: ['ES256'], typ: 'JWT' });
    expect(payload.sub).to.equal(spiffeId);
    expect(protectedHeader.kid).to.equal(minted.kid);
    const [h, , s] = minted.token.split('.') as [string, string, string];
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: `spiffe://${TD}/agent/admin` })).toString('base64url')}.${s}`;
    const failure = (t: string, aud: string) => jwtVerify(t, jwks, { issuer: disco.issuer, audience: aud, algorithms: ['ES256'] }).then(() => 'accepted', (e: Error) => e.constructor.name);
    expect(await failure(forged, 'billing')).to.equal(joseErrors.JWSSignatureVerificationFailed.name);
    expect(await failure(minted.token, 'payroll')).to.equal(joseErrors.JWTClaimValidationFailed.name);
  });

  it('serves a replaced certificate after reloading, and keeps the old one when the new key file is group-readable', async () => {
    const before = await servedLeaf(port);
    expect(server.bundleEndpoint!.reloadServingCertificate(), 'nothing changed').to.equal(false);
    const second = issueWebCert(dir, certFile(), keyFile());
    expect(server.bundleEndpoint!.reloadServingCertificate()).to.equal(true);
    const now = await servedLeaf(port);
    expect(now).to.equal(fingerprintOfPem(second));
    expect(now).to.not.equal(before);
    issueWebCert(dir, certFile(), keyFile(), 0o644);
    expect(codeOf(() => server.bundleEndpoint!.reloadServingCertificate())).to.equal('ERR_KEY_FILE_MODE');
    expect(await servedLeaf(port), 'the previous certificate is still served').to.equal(now);
    chmodSync(keyFile(), 0o600); // a mode change alone is noticed too (ctime)
    expect(server.bundleEndpoint!.reloadServingCertificate()).to.equal(true);
    expect(await servedLeaf(port)).to.not.equal(now);
  });

  it('notices changed files on its own periodic check', async () => {
    const ctx = { ...server.ctx, config: { ...server.ctx.config, bundleEndpoint: { ...server.ctx.config.bundleEndpoint, port: 0 } } };
    let ep: BundleEndpoint | undefined;
    try {
      ep = await startBundleEndpoint({ ctx, svid: server.serverSvid, crls: () => server.currentCrlsByIssuer(), checkIntervalMs: 50 });
      const p = ep.address.port;
      const next = fingerprintOfPem(issueWebCert(dir, certFile(), keyFile()));
      await until('the new certificate', async () => ((await servedLeaf(p)) === next ? true : undefined), 10_000, 50);
    } finally {
      await ep?.close();
    }
  });
});

describe('server/bundle endpoint config', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-bundle-cfg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const base = { trust_domain: TD };
  const fieldOf = (raw: unknown): string => {
    try {
      validateServerConfig(raw);
    } catch (e) {
      expect((e as WritError).code).to.equal('ERR_CONFIG_INVALID');
      return String((e as WritError).details?.field);
    }
    return 'accepted';
  };

  it('is off by default, https_spiffe on 127.0.0.1:8443 with the bundle refresh hint, and never serves a hint under a minute', () => {
    expect(validateServerConfig(base).bundleEndpoint).to.deep.equal({ enabled: false, bindAddress: '127.0.0.1', port: 8443, profile: 'https_spiffe', refreshHint: 300 });
    const low = validateServerConfig({ ...base, bundle_endpoint: { enabled: true, refresh_hint: '10s' } });
    expect(low.bundleEndpoint.refreshHint).to.equal(60);
    expect(low.warnings.join(' ')).to.match(/below one minute/);
    expect(validateServerConfig({ ...base, bundle_refresh_hint: '30s' }).bundleEndpoint.refreshHint).to.equal(60);
    expect(validateServerConfig({ ...base, bundle_endpoint: { refresh_hint: '2h' } }).bundleEndpoint.refreshHint).to.equal(7200);
  });

  it('refuses an unknown profile, https_web without its files, and files with https_spiffe, naming the field', () => {
    expect(fieldOf({ ...base, bundle_endpoint: { profile: 'https_acme' } })).to.equal('bundle_endpoint.profile');
    expect(fieldOf({ ...base, bundle_endpoint: { profile: 'https_web' } })).to.equal('bundle_endpoint.certificate_file');
    expect(fieldOf({ ...base, bundle_endpoint: { profile: 'https_web', certificate_file: 'c.pem' } })).to.equal('bundle_endpoint.key_file');
    expect(fieldOf({ ...base, bundle_endpoint: { key_file: 'k.pem' } })).to.equal('bundle_endpoint.key_file');
    expect(fieldOf({ ...base, bundle_endpoint: { port: 65536 } })).to.equal('bundle_endpoint.port');
    expect(fieldOf({ ...base, bundle_endpoint: { enabled: true, ssl: true } })).to.equal('bundle_endpoint');
  });

  it('refuses a key file readable by others, a key of another certificate and missing files, with coded errors that quote no key', async () => {
    makeWebCa(dir);
    const cert = join(dir, 'c.pem');
    const key = join(dir, 'k.pem');
    issueWebCert(dir, cert, key, 0o644);
    expect(codeOf(() => loadServingCertificate(cert, key))).to.equal('ERR_KEY_FILE_MODE');
    const config = validateServerConfig({
      ...base,
      data_dir: join(dir, 'data'),
      admin: { socket_path: join(dir, 'admin.sock') },
      health: { enabled: false },
      node_api: { enabled: false },
      ca: { key_manager: 'memory' },
      bundle_endpoint: { enabled: true, port: 0, profile: 'https_web', certificate_file: cert, key_file: key },
    });
    const started = await WritServer.start(config, { logger: silentLogger }).then(
      async (s) => {
        await s.stop();
        return 'started';
      },
      (e: WritError) => e.code,
    );
    expect(started).to.equal('ERR_KEY_FILE_MODE');
    chmodSync(key, 0o600);
    expect(loadServingCertificate(cert, key).certPem).to.contain('BEGIN CERTIFICATE');
    const other = join(dir, 'other.pem');
    issueWebCert(dir, other, join(dir, 'other.key'));
    expect(codeOf(() => loadServingCertificate(other, key))).to.equal('ERR_SERVING_CERT');
    expect(codeOf(() => loadServingCertificate(join(dir, 'missing.pem'), key))).to.equal('ERR_SERVING_CERT');
    writeFileSync(join(dir, 'junk.key'), 'not a key', { mode: 0o600 });
    try {
      loadServingCertificate(cert, join(dir, 'junk.key'));
      expect.fail('accepted');
    } catch (e) {
      expect((e as WritError).code).to.equal('ERR_SERVING_CERT');
      expect((e as WritError).message).to.not.contain('not a key');
    }
  });
});
