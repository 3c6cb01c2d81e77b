/**
 * The node API against a real in-process server (SQLite in a temporary directory, HTTPS on a
 * loopback port): attestation, mTLS authentication (also on resumed TLS sessions), incremental
 * sync, batched signing with per-item authorization, renewal, eviction and bans.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attestAgent, identityPem } from '../../src/agent/identity.js';
import { NodeClient } from '../../src/agent/nodeclient.js';
import type { AgentIdentity } from '../../src/agent/state.js';
import { buildCsrDer, newWorkloadKey } from '../../src/ca/index.js';
import { encodePem } from '../../src/bundle/index.js';
import { silentLogger } from '../../src/log.js';
import { joinTokenAgentPlugin, x509PopAgentPlugin } from '../../src/plugins/index.js';
import { makeCert, makeRoot, newKey } from '../svid/pki.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { validateServerConfig } from '../../src/server/config.js';
import { EXPIRED_JOIN_TOKENS_KEPT, WritServer } from '../../src/server/server.js';

const TD = 'example.org';

describe('server/node API', function () {
  this.timeout(60_000);
  let dir: string;
  let server: WritServer;
  let identity: AgentIdentity;
  let client: NodeClient;
  let port: number;

  const caPem = () => server.ctx.authority.x509Authorities().map((d) => encodePem('CERTIFICATE', d)).join('');
  const newClient = (withCert: boolean) =>
    new NodeClient({ host: '127.0.0.1', port, serverId: `spiffe://${TD}/writ/server` }, () => ({ caPem: caPem(), ...(withCert ? identityPem(identity) : {}) }));
  const token = async (alias?: string) => {
    const t = randomBytes(24).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    await server.ctx.datastore.createJoinToken({ tokenHash: createHash('sha256').update(t).digest('hex'), expiresAt: now + 600, spiffeId: alias ?? null, createdAt: now, usedAt: null });
    return t;
  };
  const attest = async (alias?: string) => {
    const plugin = await joinTokenAgentPlugin.create({ token: await token(alias) } as never, { logger: silentLogger, clock: systemClock, trustDomain: TD });
    return (await attestAgent(newClient(false), plugin, silentLogger)).identity;
  };
  const codeOf = (p: Promise<unknown>) => p.then(() => 'OK', (e: { code?: string }) => e.code);
  const csr = () => {
    const k = newWorkloadKey();
    return buildCsrDer(k.spki, k.privateKey).toString('base64');
  };
  const entry = async (spiffeId: string, parentId: string) =>
    (
      await server.ctx.datastore.createEntries([
        { spiffeId, parentId, selectors: [{ type: 'unix', value: `uid:${randomBytes(3).readUIntBE(0, 3)}` }], x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null },
      ])
    )[0]!;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-nodeapi-'));
    const config = validateServerConfig({ trust_domain: TD, data_dir: join(dir, 'data'), admin: { socket_path: join(dir, 'admin.sock') }, health: { enabled: false }, node_api: { port: 0 }, ca: { key_manager: 'memory' } });
    server = await WritServer.start(config, { logger: silentLogger });
    port = server.nodeApiAddress!.port;
    identity = await attest(`spiffe://${TD}/host/a`);
    client = newClient(true);
  });
  after(async () => {
    client?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('attests with a join token: an agent record, its SVID, and the node alias the token names', async () => {
    expect(identity.spiffeId).to.match(new RegExp(`^spiffe://${TD}/writ/agent/join_token/[0-9a-f]{32}$`));
    const rec = await server.ctx.datastore.getAgent(identity.spiffeId);
    expect(rec).to.deep.include({ attestationType: 'join_token', banned: false, canReattest: false });
    const alias = await server.ctx.datastore.listEntries({ spiffeId: `spiffe://${TD}/host/a` });
    expect(alias.entries[0]!.parentId).to.equal(`spiffe://${TD}/writ/server`);
    expect((await server.ctx.datastore.listIssued({ spiffeId: identity.spiffeId })).length).to.equal(1);
  });

  it('refuses calls without the agent SVID, and keeps authenticating on a resumed TLS session', async () => {
    expect(await codeOf(newClient(false).post('/v1/node/sync', { since: 0 }))).to.equal('ERR_UNAUTHENTICATED');
    const pem = identityPem(identity);
    const agent = new Agent({ keepAlive: false, ca: caPem(), cert: pem.certPem, key: pem.keyPem, checkServerIdentity: () => undefined });
    const call = () =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/node/sync', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: (req.socket as import('node:tls').TLSSocket).isSessionReused() }));
        });
        req.on('error', reject);
        req.end('{"since":0}');
      });
    expect((await call()).status).to.equal(200);
    const second = await call();
    expect(second.reused, 'the second connection resumes the TLS session').to.equal(true);
    expect(second.status).to.equal(200);
  });

  it('syncs in full, then incrementally: changed entries, removed ids, and a full sync when the alias set changes', async () => {
    const mine = await entry(`spiffe://${TD}/wl/one`, identity.spiffeId);
    const viaAlias = await entry(`spiffe://${TD}/wl/two`, `spiffe://${TD}/host/a`);
    await entry(`spiffe://${TD}/wl/other`, `spiffe://${TD}/writ/agent/join_token/someone-else`);
    type S = { revision: number; full: boolean; alias_key: string; entries: Array<{ id: string }>; removed: string[]; crls: string[]; bundle: { document: string } };
    const full = await client.post<S>('/v1/node/sync', { since: 0, alias_key: '' });
    expect(full.full).to.equal(true);
    expect(full.entries.map((e) => e.id).sort()).to.deep.equal([mine.id, viaAlias.id].sort());
    expect(full.crls.length).to.be.greaterThan(0);
    expect(JSON.parse(full.bundle.document).keys.length).to.be.greaterThan(0);
    const none = await client.post<S>('/v1/node/sync', { since: full.revision, alias_key: full.alias_key });
    expect(none).to.deep.include({ full: false, entries: [], removed: [] });
    const three = await entry(`spiffe://${TD}/wl/three`, identity.spiffeId);
    await server.ctx.datastore.deleteEntries([mine.id]);
    const inc = await client.post<S>('/v1/node/sync', { since: none.revision, alias_key: none.alias_key });
    expect(inc.full).to.equal(false);
    expect(inc.entries.map((e) => e.id)).to.deep.equal([three.id]);
    expect(inc.removed).to.include(mine.id);
    const stale = await client.post<S>('/v1/node/sync', { since: inc.revision, alias_key: 'not-the-current-key' });
    expect(stale.full).to.equal(true);
    // An agent behind pruned delete records gets the full set (so it drops what it missed), one after them does not.
    await server.ctx.datastore.deleteEntries([three.id]);
    await server.ctx.datastore.pruneEntryChanges(0);
    const behind = await client.post<S>('/v1/node/sync', { since: inc.revision, alias_key: inc.alias_key });
    expect(behind.full).to.equal(true);
    expect(behind.entries.map((e) => e.id)).to.deep.equal([viaAlias.id]);
    const current = await client.post<S>('/v1/node/sync', { since: behind.revision, alias_key: behind.alias_key });
    expect(current).to.deep.include({ full: false, entries: [], removed: [] });
  });

  it('signs a batch: authorized entries get SVIDs (recorded), others and bad CSRs fail per item', async () => {
    const ok = await entry(`spiffe://${TD}/wl/signed`, identity.spiffeId);
    const foreign = await entry(`spiffe://${TD}/wl/notmine`, `spiffe://${TD}/writ/agent/join_token/another`);
    type R = { results: Array<{ entry_id: string; svid?: string[]; serial?: string; error?: { code: string } }> };
    const r = await client.post<R>('/v1/node/svids', {
      requests: [
        { entry_id: ok.id, csr: csr() },
        { entry_id: foreign.id, csr: csr() },
        { entry_id: 'no-such-entry', csr: csr() },
        { entry_id: ok.id, csr: Buffer.from('junk').toString('base64') },
      ],
    });
    expect(r.results.map((x) => x.error?.code ?? 'OK')).to.deep.equal(['OK', 'ERR_NODE_NOT_AUTHORIZED', 'ERR_NODE_NOT_AUTHORIZED', 'ERR_CA_CSR']);
    expect(r.results[0]!.svid).to.have.length(2);
    const issued = await server.ctx.datastore.listIssued({ entryId: ok.id });
    expect(issued.map((i) => i.serial)).to.deep.equal([r.results[0]!.serial]);
    expect(issued[0]!.agentId).to.equal(identity.spiffeId);
    expect(await codeOf(client.post('/v1/node/svids', { requests: [] }))).to.equal('ERR_INPUT_INVALID');
    expect(await codeOf(client.post('/v1/node/jwt', { entry_id: foreign.id, audience: ['a'] }))).to.equal('ERR_NODE_NOT_AUTHORIZED');
    const jwt = await client.post<{ token: string }>('/v1/node/jwt', { entry_id: ok.id, audience: ['a'] });
    expect(jwt.token.split('.')).to.have.length(3);
  });

  it('renews the agent SVID, refuses an evicted agent and a banned one', async () => {
    const renewed = await client.post<{ svid: string[] }>('/v1/node/renew', { csr: csr() });
    expect(renewed.svid).to.have.length(2);
    const other = await attest();
    const otherClient = new NodeClient({ host: '127.0.0.1', port, serverId: `spiffe://${TD}/writ/server` }, () => ({ caPem: caPem(), ...identityPem(other) }));
    try {
      expect(await codeOf(otherClient.post('/v1/node/sync', { since: 0 }))).to.equal('OK');
      const rec = (await server.ctx.datastore.getAgent(other.spiffeId))!;
      await server.ctx.datastore.upsertAgent({ ...rec, banned: true });
      expect(await codeOf(otherClient.post('/v1/node/sync', { since: 0 }))).to.equal('ERR_AGENT_BANNED');
      await server.ctx.datastore.deleteAgent(other.spiffeId);
      expect(await codeOf(otherClient.post('/v1/node/sync', { since: 0 }))).to.equal('ERR_AGENT_NOT_FOUND');
    } finally {
      otherClient.close();
    }
  });

  it('keeps an expired join token through the prune for a day, so its refusal says it expired', async () => {
    const ds = server.ctx.datastore;
    const now = Math.floor(Date.now() / 1000);
    const make = async (expiresAt: number) => {
      const hash = createHash('sha256').update(randomBytes(24)).digest('hex');
      await ds.createJoinToken({ tokenHash: hash, expiresAt, spiffeId: null, createdAt: expiresAt - 600, usedAt: null });
      return hash;
    };
    const recent = await make(now - 10);
    const old = await make(now - EXPIRED_JOIN_TOKENS_KEPT - 60);
    await server.prune();
    expect(await codeOf(ds.consumeJoinToken(recent, now))).to.equal('ERR_TOKEN_EXPIRED');
    expect(await codeOf(ds.consumeJoinToken(old, now)), 'pruned').to.equal('ERR_TOKEN_INVALID');
  });

  it('refuses unknown attestors and sessions, oversized and malformed bodies, and unknown paths', async () => {
    const anon = newClient(false);
    try {
      expect(await codeOf(anon.post('/v1/node/attest', { attestor: 'aws_iid', payload: {}, csr: csr() }))).to.equal('ERR_NODE_ATTESTATION');
      expect(await codeOf(anon.post('/v1/node/attest/respond', { session: 'nope', response: {} }))).to.equal('ERR_NODE_ATTESTATION');
      expect(await codeOf(anon.post('/v1/node/attest', { attestor: 'join_token', payload: { token: 'a'.repeat(40) }, csr: csr() }))).to.equal('ERR_TOKEN_INVALID');
      expect(await codeOf(anon.post('/v1/node/attest', { attestor: 'join_token', payload: { token: 'x' }, csr: 'x'.repeat(5 * 1024 * 1024) }))).to.equal('ERR_REQUEST_TOO_LARGE');
      expect(await codeOf(anon.post('/v1/node/nothing', {}))).to.equal('ERR_NOT_FOUND');
      expect(await codeOf(anon.post('/v1/node/attest', ['not', 'an', 'object']))).to.equal('ERR_INPUT_INVALID');
    } finally {
      anon.close();
    }
  });
});

describe('server/node API with x509pop', function () {
  this.timeout(60_000);
  let dir: string;
  let server: WritServer;
  let anon: NodeClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-nodeapi-pop-'));
    const root = await makeRoot('nodes.example');
    const leaf = await makeCert({ subject: 'CN=node-9', ca: false }, await newKey('P-256'), root);
    writeFileSync(join(dir, 'ca.pem'), root.pem);
    writeFileSync(join(dir, 'node.pem'), leaf.pem);
    writeFileSync(join(dir, 'node.key'), encodePem('PRIVATE KEY', leaf.key.pkcs8), { mode: 0o600 });
    const config = validateServerConfig({
      trust_domain: TD,
      data_dir: join(dir, 'data'),
      admin: { socket_path: join(dir, 'admin.sock') },
      health: { enabled: false },
      node_api: { port: 0 },
      ca: { key_manager: 'memory' },
      node_attestors: [{ name: 'x509pop', config: { ca_bundle_path: join(dir, 'ca.pem') } }],
    });
    server = await WritServer.start(config, { logger: silentLogger });
    const caPem = server.ctx.authority.x509Authorities().map((d) => encodePem('CERTIFICATE', d)).join('');
    anon = new NodeClient({ host: '127.0.0.1', port: server.nodeApiAddress!.port, serverId: `spiffe://${TD}/writ/server` }, () => ({ caPem }));
  });
  after(async () => {
    anon?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const agentSide = () => x509PopAgentPlugin.create({ certificate_path: join(dir, 'node.pem'), private_key_path: join(dir, 'node.key') } as never, { logger: silentLogger, clock: systemClock, trustDomain: TD });
  const csr = () => {
    const k = newWorkloadKey();
    return buildCsrDer(k.spki, k.privateKey).toString('base64');
  };

  it('sends a challenge, refuses a forged answer and a replayed session, and accepts the real one', async () => {
    const plugin = await agentSide();
    type Step = { session?: string; challenge?: unknown; spiffe_id?: string };
    const first = await anon.post<Step>('/v1/node/attest', { attestor: 'x509pop', payload: await plugin.payload(), csr: csr() });
    expect(first.session).to.be.a('string');
    const forged = await anon.post('/v1/node/attest/respond', { session: first.session, response: { signature: Buffer.alloc(64, 7).toString('base64') } }).then(
      () => 'accepted',
      (e: { code?: string }) => e.code,
    );
    expect(forged).to.equal('ERR_NODE_ATTESTATION');
    const replay = await anon.post('/v1/node/attest/respond', { session: first.session, response: await plugin.respond(first.challenge) }).then(
      () => 'accepted',
      (e: { code?: string }) => e.code,
    );
    expect(replay, 'a finished session takes no second answer').to.equal('ERR_NODE_ATTESTATION');
    const again = await anon.post<Step>('/v1/node/attest', { attestor: 'x509pop', payload: await plugin.payload(), csr: csr() });
    const done = await anon.post<Step>('/v1/node/attest/respond', { session: again.session, response: await plugin.respond(again.challenge) });
    expect(done.spiffe_id).to.match(new RegExp(`^spiffe://${TD}/writ/agent/x509pop/[0-9a-f]{40}$`));
    const rec = await server.ctx.datastore.getAgent(done.spiffe_id!);
    expect(rec?.selectors).to.deep.include({ type: 'x509pop', value: 'subject:cn:node-9' });
  });
});

/**
 * An agent keeps one TLS connection to the node API and the server verifies its SVID once per
 * connection: these calls all go over one kept-alive connection (checked) and show that the check
 * is made again when it must be.
 */
describe('server/node API on one kept-alive connection', function () {
  this.timeout(60_000);
  let dir: string;
  let server: WritServer;
  let port: number;
  const clock = new ManualClock(Date.now());

  const caPem = () => server.ctx.authority.x509Authorities().map((d) => encodePem('CERTIFICATE', d)).join('');
  const attest = async () => {
    const t = randomBytes(24).toString('base64url');
    const now = Math.floor(clock.nowMs() / 1000);
    await server.ctx.datastore.createJoinToken({ tokenHash: createHash('sha256').update(t).digest('hex'), expiresAt: now + 600, spiffeId: null, createdAt: now, usedAt: null });
    const plugin = await joinTokenAgentPlugin.create({ token: t } as never, { logger: silentLogger, clock: systemClock, trustDomain: TD });
    const anon = new NodeClient({ host: '127.0.0.1', port, serverId: `spiffe://${TD}/writ/server` }, () => ({ caPem: caPem() }));
    try {
      return (await attestAgent(anon, plugin, silentLogger)).identity;
    } finally {
      anon.close();
    }
  };
  /** One keep-alive connection as `identity`; each call says whether it went over the first call's socket. */
  const connection = (identity: AgentIdentity) => {
    const pem = identityPem(identity);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem(), cert: pem.certPem, key: pem.keyPem, checkServerIdentity: () => undefined });
    let first: import('node:net').Socket | undefined;
    const call = () =>
      new Promise<{ status: number; code?: string; sameSocket: boolean }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/node/sync', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            first ??= req.socket!;
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: string } };
            resolve({ status: res.statusCode ?? 0, ...(body.error?.code ? { code: body.error.code } : {}), sameSocket: req.socket === first });
          });
        });
        req.on('error', reject);
        req.end('{"since":0}');
      });
    return { call, close: () => agent.destroy() };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-nodeapi-conn-'));
    const config = validateServerConfig({ trust_domain: TD, data_dir: join(dir, 'data'), admin: { socket_path: join(dir, 'admin.sock') }, health: { enabled: false }, node_api: { port: 0 }, ca: { key_manager: 'memory' } });
    server = await WritServer.start(config, { logger: silentLogger, clock });
    port = server.nodeApiAddress!.port;
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses TLS 1.2 renegotiation, so a connection cannot change its client certificate', async () => {
    const pem = identityPem(await attest());
    const { connect } = await import('node:tls');
    const socket = connect({ host: '127.0.0.1', port, ca: caPem(), cert: pem.certPem, key: pem.keyPem, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined });
    try {
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      const outcome = await new Promise<string>((resolve) => {
        socket.once('close', () => resolve('closed'));
        socket.once('error', (e: Error & { code?: string }) => resolve(`error ${e.code ?? e.message}`));
        const asked = socket.renegotiate({ rejectUnauthorized: false }, (e) => resolve(e ? `error ${(e as Error & { code?: string }).code ?? e.message}` : 'renegotiated'));
        if (!asked) resolve('not sent');
      });
      expect(outcome).to.not.equal('renegotiated');
    } finally {
      socket.destroy();
    }
  });

  it('checks the agent SVID again once it has expired', async () => {
    const identity = await attest();
    const conn = connection(identity);
    try {
      expect(await conn.call()).to.deep.include({ status: 200 });
      expect(await conn.call()).to.deep.equal({ status: 200, sameSocket: true });
      const trust = server.ctx.authority.slotsKey('x509-root', 'x509-signing');
      clock.set(identity.notAfter + 1000);
      // Past the SVID but not past a CA's rotation point: only the expiry can refuse it.
      expect(server.ctx.authority.slotsKey('x509-root', 'x509-signing')).to.equal(trust);
      expect(await conn.call()).to.deep.equal({ status: 401, code: 'ERR_UNAUTHENTICATED', sameSocket: true });
    } finally {
      conn.close();
      clock.set(Date.now());
    }
  });

  it('checks the agent SVID again when its authority is revoked', async () => {
    const identity = await attest();
    const conn = connection(identity);
    try {
      expect(await conn.call()).to.deep.include({ status: 200 });
      const authority = server.ctx.authority;
      const old = authority.localAuthorities('x509').find((a) => a.status === 'active')!.authorityId;
      const next = (await authority.prepareAuthority('x509')).authorityId;
      expect(await conn.call(), 'a new root alone changes nothing for this SVID').to.deep.equal({ status: 200, sameSocket: true });
      await authority.activateAuthority('x509', next);
      await authority.taintAuthority('x509', old);
      await authority.revokeAuthority('x509', old);
      expect(await conn.call()).to.deep.equal({ status: 401, code: 'ERR_UNAUTHENTICATED', sameSocket: true });
    } finally {
      conn.close();
    }
  });
});
