/**
 * The agent without its server, with real processes: workloads keep their cached SVIDs while the
 * server is down (also across an agent restart, from the state file), and rotation resumes when
 * the server is back, without restarting the agent. Also node attestation with x509pop.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/openssl.js';
import { makeCert, makeRoot, newKey } from '../svid/pki.js';
import { type AgentHandle, type ServerHandle, startAgent, startServer } from '../helpers/writ-process.js';
import { until } from '../helpers/wait.js';

const ALIAS = 'spiffe://example.org/host/outage';

async function serialOf(agent: AgentHandle): Promise<string | undefined> {
  const r = await agent.api(['fetch', 'x509', '--output', 'json']);
  if (r.code !== 0) return undefined;
  const pem = (JSON.parse(r.stdout) as { svids: Array<{ chain_pem: string }> }).svids[0]?.chain_pem;
  if (!pem) return undefined;
  const { X509Certificate } = await import('node:crypto');
  return new X509Certificate(pem).serialNumber;
}

describe('e2e: the agent while the server is away', function () {
  this.timeout(180_000);
  let srv: ServerHandle;
  let agent: AgentHandle;

  before(async () => {
    srv = await startServer({ node_api: { port: await freePort() } });
    agent = await startAgent(srv, { alias: ALIAS, syncInterval: '1s' });
    const r = await srv.cli(['entry', 'create', '--parent-id', ALIAS, '--spiffe-id', 'spiffe://example.org/workload/steady', '--selector', 'unix:uid:0', '--x509-svid-ttl', '20s']);
    if (r.code !== 0) throw new Error(r.stderr);
    await until('the first SVID', () => serialOf(agent));
  });
  after(async () => {
    await agent?.cleanup();
    await srv?.cleanup();
  });

  it('serves cached SVIDs while the server is down, also after an agent restart', async () => {
    const before = await serialOf(agent);
    expect(await srv.stop()).to.equal(0);
    await agent.waitForLog((l) => l.event === 'agent.server_error' && l.code === 'ERR_SERVER_UNREACHABLE', 15_000);
    await new Promise((r) => setTimeout(r, 2500)); // longer than the sync interval
    const during = await serialOf(agent);
    expect(during, 'a workload still gets an SVID').to.be.a('string');
    // Restart the agent while the server is still down: it resumes from its state file.
    await agent.stop();
    agent = await agent.restart();
    expect(agent.logs.some((l) => l.event === 'agent.resumed')).to.equal(true);
    const afterRestart = await serialOf(agent);
    expect(afterRestart).to.be.a('string');
    expect([before, during]).to.include(afterRestart);
  });

  it('resumes rotation when the server is back, without restarting the agent', async () => {
    const cached = await serialOf(agent);
    srv = await srv.restart();
    const rotated = await until('a rotated SVID after the server came back', async () => {
      const s = await serialOf(agent);
      return s !== undefined && s !== cached ? s : undefined;
    });
    expect(rotated).to.not.equal(cached);
    expect(agent.exitCode()).to.equal(undefined);
  });
});

describe('e2e: x509pop node attestation', function () {
  this.timeout(120_000);
  let srv: ServerHandle;
  let dir: string;
  const agents: AgentHandle[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-x509pop-'));
    const root = await makeRoot('nodes.example', 'P-256', { subject: 'CN=node CA, O=writ tests' });
    const leaf = await makeCert({ subject: 'CN=node-1, O=writ tests', dns: ['node-1.example'], ca: false }, await newKey('P-256'), root);
    writeFileSync(join(dir, 'ca.pem'), root.pem);
    writeFileSync(join(dir, 'node.pem'), leaf.pem);
    writeFileSync(join(dir, 'node.key'), `-----BEGIN PRIVATE KEY-----\n${leaf.key.pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
    const other = await newKey('P-256');
    writeFileSync(join(dir, 'other.key'), `-----BEGIN PRIVATE KEY-----\n${other.pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
    srv = await startServer({ node_attestors: [{ name: 'x509pop', config: { ca_bundle_path: join(dir, 'ca.pem') } }, { name: 'join_token' }] });
  });
  after(async () => {
    for (const a of agents) await a.cleanup();
    await srv?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('attests a node by proof of possession and serves entries parented to a node alias of its selectors', async () => {
    const node = await srv.cli(['entry', 'create', '--node', '--spiffe-id', 'spiffe://example.org/host/cn-node-1', '--selector', 'x509pop:subject:cn:node-1']);
    expect(node.code, node.stderr).to.equal(0);
    const wl = await srv.cli(['entry', 'create', '--parent-id', 'spiffe://example.org/host/cn-node-1', '--spiffe-id', 'spiffe://example.org/workload/on-node-1', '--selector', 'unix:uid:0']);
    expect(wl.code, wl.stderr).to.equal(0);
    const agent = await startAgent(srv, { nodeAttestor: { name: 'x509pop', config: { certificate_path: join(dir, 'node.pem'), private_key_path: join(dir, 'node.key') } } });
    agents.push(agent);
    expect(agent.agentId).to.match(/^spiffe:\/\/example\.org\/writ\/agent\/x509pop\/[0-9a-f]{40}$/);
    const got = await until('the workload SVID', async () => {
      const r = await agent.api(['fetch', 'x509', '--output', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as { svids: Array<{ spiffe_id: string }> }) : undefined;
    });
    expect(got.svids.map((s) => s.spiffe_id)).to.deep.equal(['spiffe://example.org/workload/on-node-1']);
    const shown = await srv.cli(['agent', 'show', '--spiffe-id', agent.agentId, '--output', 'json']);
    expect(JSON.parse(shown.stdout).agent.selectors).to.deep.include({ type: 'x509pop', value: 'subject:cn:node-1' });
  });

  it('refuses an agent whose key does not match its certificate: it exits, the server keeps running', async () => {
    let err: Error | undefined;
    try {
      agents.push(await startAgent(srv, { nodeAttestor: { name: 'x509pop', config: { certificate_path: join(dir, 'node.pem'), private_key_path: join(dir, 'other.key') } }, timeoutMs: 15_000 }));
    } catch (e) {
      err = e as Error;
    }
    expect(err).to.not.equal(undefined);
    expect(err!.message).to.match(/ERR_PLUGIN_CONFIG|ERR_NODE_ATTESTATION|exited with 1/);
    const h = await srv.cli(['healthcheck']);
    expect(h.code, h.stderr).to.equal(0);
  });
});
