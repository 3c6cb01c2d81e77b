import { expect } from 'chai';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { jwkFromPublicKey } from '../../src/bundle/index.js';
import { ManualClock } from '../../src/clock.js';
import { WritError } from '../../src/errors.js';
import { OidcRequesterVerifier } from '../../src/server/oidc-requester.js';
import { hasOpenssl, skipBecause, OPENSSL_MISSING } from '../ca/helpers.js';
import { issueWebCert, makeWebCa } from './bundleendpoint-helpers.js';
import { ROOT_OP, taskFixture } from './tasks-fixture.js';

const NOW = Date.UTC(2026, 11, 1, 12);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    expect(e).to.be.instanceOf(WritError);
    return (e as WritError).code;
  }
}

describe('server/oidc-requester: requesters proven by an OIDC ID token', function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server;
  let issuer: string;
  let caFile: string;
  let jwksHits = 0;
  let discoveryIssuer: string | undefined;
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const clock = new ManualClock(NOW);

  before(async function () {
    if (!hasOpenssl()) skipBecause(this, OPENSSL_MISSING);
    dir = mkdtempSync(join(tmpdir(), 'writ-oidc-'));
    caFile = makeWebCa(dir);
    issueWebCert(dir, join(dir, 'cert.pem'), join(dir, 'key.pem'));
    server = createServer({ cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) }, (req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer: discoveryIssuer ?? issuer, jwks_uri: `${issuer}/keys` }));
      else if (req.url === '/keys') {
        jwksHits++;
        res.end(JSON.stringify({ keys: [{ ...jwkFromPublicKey(key.publicKey), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    issuer = `https://localhost:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    await new Promise((r) => server?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const token = (claims: Record<string, unknown>, opts: { key?: KeyObject; kid?: string; iat?: number; exp?: number; aud?: string; iss?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? 'k1' })
      .setIssuer(opts.iss ?? issuer)
      .setAudience(opts.aud ?? 'writ')
      .setSubject('user-1234')
      .setIssuedAt(opts.iat ?? Math.floor(NOW / 1000) - 60)
      .setExpirationTime(opts.exp ?? Math.floor(NOW / 1000) + 600)
      .sign(opts.key ?? key.privateKey);

  it('takes the verified email as the requester, through discovery over HTTPS with the configured CA', async () => {
    const v = new OidcRequesterVerifier({ issuer, audience: 'writ', caFile }, clock);
    expect(await v.verify(await token({ email: 'alice@example.com', email_verified: true }))).to.deep.equal({ id: 'alice@example.com', authenticatedBy: 'oidc', issuer });
    expect((await v.verify(await token({ email: 'bob@example.com', email_verified: false }))).id, 'an unverified email is not used').to.equal('user-1234');
    expect((await v.verify(await token({}))).id).to.equal('user-1234');
    const hits = jwksHits;
    await v.verify(await token({}));
    expect(jwksHits, 'keys are cached').to.equal(hits);
    const named = new OidcRequesterVerifier({ issuer, audience: 'writ', caFile, claim: 'preferred_username' }, clock);
    expect((await named.verify(await token({ preferred_username: 'alice' }))).id).to.equal('alice');
    expect(await codeOf(named.verify(await token({})))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
  });

  it('refuses expired, foreign, forged and malformed tokens with coded errors', async () => {
    const v = new OidcRequesterVerifier({ issuer, audience: 'writ', caFile }, clock);
    const now = Math.floor(NOW / 1000);
    expect(await codeOf(v.verify(await token({}, { exp: now - 120, iat: now - 900 })))).to.equal('ERR_REQUESTER_TOKEN_EXPIRED');
    expect(await codeOf(v.verify(await token({}, { aud: 'someone-else' })))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    expect(await codeOf(v.verify(await token({}, { iss: 'https://evil.example' })))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    expect(await codeOf(v.verify(await token({}, { key: other.privateKey })))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    expect(await codeOf(v.verify(await token({}, { key: other.privateKey, kid: 'unknown' })))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setIssuer(issuer).setAudience('writ').setSubject('x').setIssuedAt(now).setExpirationTime(now + 60).sign(Buffer.alloc(32, 1));
    expect(await codeOf(v.verify(hs)), 'HMAC is refused').to.equal('ERR_REQUESTER_TOKEN_INVALID');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: issuer, aud: 'writ', sub: 'x', exp: now + 60, iat: now })).toString('base64url')}.`;
    expect(await codeOf(v.verify(none))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    for (const bad of ['', 'abc', 'a.b', 'a.b.c', 'x'.repeat(20_000)]) expect(await codeOf(v.verify(bad)), bad.slice(0, 10)).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    const good = await token({ email: 'alice@example.com' });
    const [h, p, s] = good.split('.') as [string, string, string];
    const edited = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), email: 'mallory@example.com' })).toString('base64url')}.${s}`;
    expect(await codeOf(v.verify(edited))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
    try {
      await v.verify(edited);
    } catch (e) {
      expect((e as Error).message, 'no token content in the error').to.not.contain('mallory');
    }
  });

  it('proves a task requester: the delegation record says oidc with the issuer; a bad token is refused and audited', async () => {
    const f = await taskFixture({ clockStart: NOW, requesterVerifier: new OidcRequesterVerifier({ issuer, audience: 'writ', caFile }, clock) });
    try {
      await f.service.agents.create({ name: 'summarizer', selectors: [{ type: 'unix', value: 'uid:1001' }], owner: 'team-docs', max_task_ttl: '30m', delegators: ['user:alice@example.com'] }, ROOT_OP);
      const start = (token: string) => f.service.tasks.start({ agent: 'summarizer', requester_token: token, ttl: '10m', purpose: 'summarize ticket 4411', pid: 4242, start_time: '1' }, ROOT_OP);
      const { delegation } = await start(await token({ email: 'alice@example.com' }));
      expect(delegation.requester).to.deep.equal({ id: 'alice@example.com', authenticatedBy: 'oidc', issuer });
      expect(await codeOf(start(await token({ email: 'mallory@example.com' }))), 'a verified requester still needs to be a delegator').to.equal('ERR_TASK_DELEGATOR_NOT_ALLOWED');
      const now = Math.floor(NOW / 1000);
      expect(await codeOf(start(await token({ email: 'alice@example.com' }, { exp: now - 120, iat: now - 900 })))).to.equal('ERR_REQUESTER_TOKEN_EXPIRED');
      expect(await codeOf(start(await token({ email: 'alice@example.com' }, { key: other.privateKey })))).to.equal('ERR_REQUESTER_TOKEN_INVALID');
      const refused = (await f.records()).filter((r) => r.kind === 'task.refused').map((r) => r.details?.code);
      expect(refused).to.deep.equal(['ERR_TASK_DELEGATOR_NOT_ALLOWED', 'ERR_REQUESTER_TOKEN_EXPIRED', 'ERR_REQUESTER_TOKEN_INVALID']);
    } finally {
      await f.done();
    }
  });

  it('answers unavailable when the issuer cannot be reached or is not trusted, and refuses a discovery document of another issuer', async () => {
    expect(await codeOf(new OidcRequesterVerifier({ issuer, audience: 'writ' }, clock).verify(await token({}))), 'the test CA is not a Web PKI root').to.equal('ERR_REQUESTER_OIDC_UNAVAILABLE');
    const gone = 'https://localhost:1';
    expect(await codeOf(new OidcRequesterVerifier({ issuer: gone, audience: 'writ', caFile }, clock).verify(await token({}, { iss: gone })))).to.equal('ERR_REQUESTER_OIDC_UNAVAILABLE');
    discoveryIssuer = 'https://someone-else.example';
    try {
      expect(await codeOf(new OidcRequesterVerifier({ issuer, audience: 'writ', caFile }, clock).verify(await token({})))).to.equal('ERR_REQUESTER_OIDC_UNAVAILABLE');
    } finally {
      discoveryIssuer = undefined;
    }
    expect(() => new OidcRequesterVerifier({ issuer, audience: 'writ', caFile: join(dir, 'missing.pem') }, clock)).to.throw(WritError).with.property('code', 'ERR_CONFIG_INVALID');
  });
});
