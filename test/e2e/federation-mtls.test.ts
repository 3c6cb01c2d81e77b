/**
 * Verifying callers across trust domains, with real processes: two `writ server run` (example.org
 * and partner.org, each with its https_spiffe bundle endpoint on a kernel-chosen port), one
 * `writ agent run` for each, and this test process as the workload of both agents. A partner.org
 * service (createMtlsServer + requirePeer) is called by an example.org client (MtlsClient), each
 * holding an X509Source from its own agent.
 *
 * Before federation the client refuses the server: it has no partner.org bundle, so OpenSSL cannot
 * build the server's chain. With example.org trusting partner.org only, the client verifies the
 * server but the server refuses the client in the handshake (no example.org bundle). Federated
 * both ways the call succeeds, in both directions, each side seeing the other's SPIFFE ID. A second
 * example.org workload (its own process, selected by pid) whose entry does not federate with
 * partner.org gets no partner.org bundle and is still refused.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { MtlsClient, authorizeId, authorizeMatch } from '../../src/tls/index.js';
import { X509Source } from '../../src/workloadapi/index.js';
import type { MtlsCallResult } from '../helpers/mtls-call.js';
import { type EchoService, failureOf, startEchoService } from '../helpers/mtls-service.js';
import { until } from '../helpers/wait.js';
import { type AgentHandle, type CliResult, ROOT, type RunOptions, type ServerHandle, startAgent, startServer } from '../helpers/writ-process.js';

const EXAMPLE = 'example.org';
const PARTNER = 'partner.org';
const CLIENT_ID = 'spiffe://example.org/client/billing';
const SERVICE_ID = 'spiffe://partner.org/service/ledger';
const PLAIN_ID = 'spiffe://example.org/client/unfederated';
const ALIAS_A = 'spiffe://example.org/host/a';
const ALIAS_B = 'spiffe://partner.org/host/b';
const UID = process.getuid?.() ?? 0;
/** Entries of this process: its uid and its pid, so that a child process of the same uid does not match them. */
const SELF = ['--selector', `unix:uid:${UID}`, '--selector', `unix:pid:${process.pid}`];

const ok = (r: CliResult, what: string): CliResult => {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`);
  return r;
};

/** The bundle endpoint URL from a server's ready log line ("https://127.0.0.1:PORT/ (https_spiffe)"). */
function bundleEndpointOf(srv: ServerHandle): string {
  const ready = srv.logs.find((l) => l.event === 'ready');
  const m = /^(https:\/\/\S+)/.exec(String(ready?.bundle_endpoint ?? ''));
  if (!m) throw new Error(`the server logged no bundle endpoint: ${JSON.stringify(ready)}`);
  return m[1]!;
}

describe('e2e: mTLS between federated trust domains (two servers, two agents)', function () {
  this.timeout(120_000);
  let dir: string;
  let srvA: ServerHandle | undefined;
  let srvB: ServerHandle | undefined;
  let agentA: AgentHandle | undefined;
  let agentB: AgentHandle | undefined;
  let clientSource: X509Source | undefined;
  let serviceSource: X509Source | undefined;
  let service: EchoService | undefined;
  /** The reverse direction: a service of example.org called by the partner.org workload. */
  let reverse: EchoService | undefined;
  const clients: MtlsClient[] = [];

  const cli = (srv: ServerHandle | undefined, args: string[], opts: RunOptions = {}) => srv!.cli(args, { timeoutMs: 60_000, ...opts });

  /** One call with a fresh connection; the result is the answer, or the failure's short form. */
  const call = async (client: MtlsClient, url: string): Promise<{ status: number; body: { spiffeId: string }; serverId: string } | { failure: string }> => {
    try {
      const r = await client.request(url, { timeoutMs: 15_000 });
      return { status: r.status, body: r.json<{ spiffeId: string }>(), serverId: r.peer.spiffeId.toString() };
    } catch (e) {
      return { failure: failureOf(e) };
    }
  };
  const newClient = (source: X509Source, serverId: string): MtlsClient => {
    const c = new MtlsClient(source, authorizeId(serverId), { keepAlive: false });
    clients.push(c);
    return c;
  };
  const hasBundle = (source: X509Source, td: string) => source.bundles().has(parseTrustDomain(td));

  /** `writ federation create` on `srv` for the other server's trust domain, bootstrapped from its `bundle show --format spiffe`. */
  const federate = async (srv: ServerHandle | undefined, other: ServerHandle | undefined, otherTd: string): Promise<void> => {
    const bundle = ok(await cli(other, ['bundle', 'show', '--format', 'spiffe']), 'bundle show');
    const path = join(dir, `${otherTd}.bundle.json`);
    writeFileSync(path, bundle.stdout);
    const c = await cli(srv, [
      'federation', 'create', '--trust-domain', otherTd, '--bundle-endpoint-url', bundleEndpointOf(other!), '--profile', 'https_spiffe',
      '--endpoint-spiffe-id', `spiffe://${otherTd}/writ/server`, '--trust-domain-bundle-path', path, '--trust-domain-bundle-format', 'spiffe',
    ]);
    expect(c.code, c.stderr).to.equal(0);
    // The bootstrap bundle was only for the first fetch: the fetch over the bundle endpoint must work.
    const r = await cli(srv, ['federation', 'refresh', '--trust-domain', otherTd]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain(otherTd);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-fed-mtls-'));
    const endpoint = { bundle_endpoint: { enabled: true, port: 0, profile: 'https_spiffe' } };
    [srvA, srvB] = await Promise.all([startServer({ trust_domain: EXAMPLE, ...endpoint }), startServer({ trust_domain: PARTNER, ...endpoint })]);
    [agentA, agentB] = await Promise.all([startAgent(srvA, { alias: ALIAS_A }), startAgent(srvB, { alias: ALIAS_B, extra: { trust_domain: PARTNER } })]);
    // The entries already name the foreign trust domain; without a relationship it brings no bundle.
    ok(await cli(srvA, ['entry', 'create', '--parent-id', ALIAS_A, '--spiffe-id', CLIENT_ID, ...SELF, '--federates-with', PARTNER]), 'entry create (client)');
    ok(await cli(srvB, ['entry', 'create', '--parent-id', ALIAS_B, '--spiffe-id', SERVICE_ID, ...SELF, '--federates-with', EXAMPLE]), 'entry create (service)');
    [clientSource, serviceSource] = await Promise.all([
      X509Source.open({ address: `unix://${agentA.socketPath}`, timeoutMs: 30_000 }),
      X509Source.open({ address: `unix://${agentB.socketPath}`, timeoutMs: 30_000 }),
    ]);
    service = await startEchoService(serviceSource, authorizeMatch('spiffe://example.org/client/*'));
    reverse = await startEchoService(clientSource, authorizeMatch('spiffe://partner.org/service/*'));
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.allSettled([service?.close(), reverse?.close()]);
    clientSource?.close();
    serviceSource?.close();
    await Promise.allSettled([agentA?.cleanup(), agentB?.cleanup()]);
    await Promise.allSettled([srvA?.cleanup(), srvB?.cleanup()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('before federation: the client refuses the partner.org server (it has no partner.org bundle)', async () => {
    expect(clientSource!.getX509Svid().id.toString()).to.equal(CLIENT_ID);
    expect(serviceSource!.getX509Svid().id.toString()).to.equal(SERVICE_ID);
    expect(clientSource!.bundles().trustDomainNames()).to.deep.equal([EXAMPLE]);
    expect(serviceSource!.bundles().trustDomainNames()).to.deep.equal([PARTNER]);
    const client = newClient(clientSource!, SERVICE_ID);
    const seen0 = service!.handshakeErrors.length;
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await call(client, service!.url));
    // OpenSSL in the client cannot find an issuer for the server's partner.org chain.
    expect(results).to.deep.equal(Array(3).fill({ failure: 'ERR_TLS_CONNECTION/UNABLE_TO_GET_ISSUER_CERT_LOCALLY' }));
    // The server saw each client hang up inside the handshake; none got to the strict check.
    await until('the server to record the failed handshakes', async () => (service!.handshakeErrors.length - seen0 >= 3 ? true : undefined), 5_000, 50);
    expect(service!.handshakeErrors.slice(seen0)).to.deep.equal(Array(3).fill('ECONNRESET'));
    expect(service!.refused).to.deep.equal([]);
  });

  it('example.org trusting partner.org only: the client verifies the server, the server refuses the client', async () => {
    await federate(srvA, srvB, PARTNER);
    await until('the partner.org bundle in the client\'s X509Source', async () => (hasBundle(clientSource!, PARTNER) ? true : undefined), 20_000, 100);
    expect(hasBundle(serviceSource!, EXAMPLE)).to.equal(false);
    const client = newClient(clientSource!, SERVICE_ID);
    const seen0 = service!.handshakeErrors.length;
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await call(client, service!.url));
    // TLS 1.3: the client finished its side of the handshake (the server verified) and sent its
    // request; the server, unable to build the client's example.org chain, dropped the connection
    // without an alert, as Node does for its own rejectUnauthorized failures.
    expect(results).to.deep.equal(Array(3).fill({ failure: 'ERR_TLS_CONNECTION/ECONNRESET' }));
    await until('the server to record the refused handshakes', async () => (service!.handshakeErrors.length - seen0 >= 3 ? true : undefined), 5_000, 50);
    expect(service!.handshakeErrors.slice(seen0)).to.deep.equal(Array(3).fill('refused UNABLE_TO_GET_ISSUER_CERT_LOCALLY'));
    expect(service!.refused).to.deep.equal([]);
  });

  it('federated both ways: the call succeeds with the right identity on both sides, in both directions', async () => {
    await federate(srvB, srvA, EXAMPLE);
    await until('the example.org bundle in the service\'s X509Source', async () => (hasBundle(serviceSource!, EXAMPLE) ? true : undefined), 20_000, 100);
    // The federated bundle is partner.org's real one: the service's SVID chains to it.
    const partnerRoots = clientSource!.bundles().getX509BundleForTrustDomain(parseTrustDomain(PARTNER)).authorities();
    expect(serviceSource!.bundles().getX509BundleForTrustDomain(parseTrustDomain(PARTNER)).authorities()).to.deep.equal(partnerRoots);
    const forward = newClient(clientSource!, SERVICE_ID);
    const back = newClient(serviceSource!, CLIENT_ID);
    for (let i = 0; i < 3; i++) {
      expect(await call(forward, service!.url)).to.deep.equal({ status: 200, body: { spiffeId: CLIENT_ID }, serverId: SERVICE_ID });
      expect(await call(back, reverse!.url)).to.deep.equal({ status: 200, body: { spiffeId: SERVICE_ID }, serverId: CLIENT_ID });
    }
    // The client authorizes the server by ID: the right server under another expected ID is refused.
    const seen0 = service!.handshakeErrors.length;
    const wrong = newClient(clientSource!, 'spiffe://partner.org/service/other');
    expect(await call(wrong, service!.url)).to.deep.equal({ failure: 'ERR_TLS_PEER_NOT_AUTHORIZED' });
    await until('the server to see the refusing client hang up', async () => (service!.handshakeErrors.length > seen0 ? true : undefined), 5_000, 50);
    expect(service!.handshakeErrors.slice(seen0)).to.deep.equal(['ECONNRESET']);
    expect(service!.refused).to.deep.equal([]);
  });

  it('an example.org workload whose entry does not federate with partner.org is still refused', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'mtls-call.ts'), `unix://${agentA!.socketPath}`, service!.url, SERVICE_ID], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      ok(await cli(srvA, ['entry', 'create', '--parent-id', ALIAS_A, '--spiffe-id', PLAIN_ID, '--selector', `unix:uid:${UID}`, '--selector', `unix:pid:${child.pid}`]), 'entry create (unfederated)');
      const seen0 = service!.handshakeErrors.length;
      child.stdin.end('go\n');
      const code = await exited;
      expect(code, stderr).to.equal(0);
      const r = JSON.parse(stdout) as MtlsCallResult;
      expect(r.spiffeIds).to.deep.equal([PLAIN_ID]);
      expect(r.trustDomains).to.deep.equal([EXAMPLE]);
      expect(r).to.include({ ok: false, code: 'ERR_TLS_CONNECTION', tlsError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' });
      await until('the server to record the failed handshake', async () => (service!.handshakeErrors.length > seen0 ? true : undefined), 5_000, 50);
      expect(service!.handshakeErrors.slice(seen0)).to.deep.equal(['ECONNRESET']);
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // The federating client of the same trust domain still gets through.
    expect(await call(newClient(clientSource!, SERVICE_ID), service!.url)).to.have.property('status', 200);
  });
});
