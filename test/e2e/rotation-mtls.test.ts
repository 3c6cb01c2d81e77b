/**
 * A forced CA rotation under live mTLS traffic, with real processes: `writ server run`, `writ agent
 * run` (1 s sync) and the `writ authority x509` CLI. A service (createMtlsServer + requirePeer) and
 * a client (MtlsClient, no keep-alive: a full handshake per request, and no TLS session cache) live
 * in this process, each with an X509Source and its own SPIFFE ID. A new connection is made about
 * every 75 ms through prepare → activate → taint → revoke and a few seconds after; not one may fail.
 * After the revoke, the client's pre-rotation SVID (same bundle, same service) is refused.
 */
import { expect } from 'chai';
import { chainIssuerIds } from '../../src/ca/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import type { X509Svid } from '../../src/svid/index.js';
import { MtlsClient, type TlsSource, authorizeId } from '../../src/tls/index.js';
import { X509Source } from '../../src/workloadapi/index.js';
import { type EchoService, failureOf, startEchoService } from '../helpers/mtls-service.js';
import { until } from '../helpers/wait.js';
import { type AgentHandle, type CliResult, type ServerHandle, startAgent, startServer } from '../helpers/writ-process.js';

const ALIAS = 'spiffe://example.org/host/rotation-mtls';
const SERVICE_ID = 'spiffe://example.org/service/orders';
const CLIENT_ID = 'spiffe://example.org/client/checkout';
const td = parseTrustDomain('example.org');
const SYNC_MS = 1000;
/** Time between the starts of two requests of the stream. */
const EVERY_MS = 75;
const PHASES = ['initial', 'prepared', 'activated', 'tainted', 'revoked'] as const;
type Phase = (typeof PHASES)[number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = <T>(r: CliResult): T => {
  expect(r.code, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as T;
};
/** The root (authority ID) an SVID's chain runs to: the AKI of its signing CA. */
const rootOf = (svid: X509Svid) => chainIssuerIds(svid.certificates)[1];
const pick = (id: string) => (svids: readonly X509Svid[]) => {
  const s = svids.find((x) => x.id.toString() === id);
  if (!s) throw new Error(`no SVID for ${id} yet`);
  return s;
};

/** The mTLS request stream: one fresh connection every EVERY_MS, each outcome counted in the current phase. */
class Stream {
  phase: Phase = 'initial';
  readonly attempted: Record<Phase, number> = { initial: 0, prepared: 0, activated: 0, tainted: 0, revoked: 0 };
  readonly succeeded: Record<Phase, number> = { initial: 0, prepared: 0, activated: 0, tainted: 0, revoked: 0 };
  readonly failures: Array<{ phase: Phase; reason: string }> = [];
  #running = true;
  readonly done: Promise<void>;

  constructor(client: MtlsClient, url: string, deadline: number) {
    this.done = this.#run(client, url, deadline);
  }

  async #run(client: MtlsClient, url: string, deadline: number): Promise<void> {
    while (this.#running && Date.now() < deadline) {
      const start = Date.now();
      const phase = this.phase;
      this.attempted[phase]++;
      try {
        const r = await client.request(url, { timeoutMs: 10_000 });
        const body = r.json<{ spiffeId: string }>();
        if (r.status === 200 && body.spiffeId === CLIENT_ID && r.peer.spiffeId.toString() === SERVICE_ID) this.succeeded[phase]++;
        else this.failures.push({ phase, reason: `HTTP ${r.status} ${r.text()}` });
      } catch (e) {
        this.failures.push({ phase, reason: failureOf(e) });
      }
      await sleep(Math.max(0, EVERY_MS - (Date.now() - start)));
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.done;
  }

  total(of: Record<Phase, number>): number {
    return PHASES.reduce((n, p) => n + of[p], 0);
  }
}

describe('e2e: forced CA rotation under a stream of mTLS handshakes', function () {
  this.timeout(120_000);
  let srv: ServerHandle | undefined;
  let agent: AgentHandle | undefined;
  let serviceSource: X509Source | undefined;
  let clientSource: X509Source | undefined;
  let service: EchoService | undefined;
  let stream: Stream | undefined;
  const clients: MtlsClient[] = [];

  const authority = async (args: string[]) => json<{ authority: { authority_id: string; status: string } }>(await srv!.cli(['authority', 'x509', ...args, '--output', 'json'], { timeoutMs: 60_000 })).authority;
  const ownRoots = (s: X509Source) => s.getX509BundleForTrustDomain(td).authorities();
  const both = (fn: (s: X509Source) => boolean) => (fn(serviceSource!) && fn(clientSource!) ? true : undefined);
  const newClient = (source: TlsSource) => {
    const c = new MtlsClient(source, authorizeId(SERVICE_ID), { keepAlive: false });
    clients.push(c);
    return c;
  };
  /** The client's SVID `svid` held fixed, with the client's current bundles and CRLs. */
  const fixedSvid = (svid: X509Svid): TlsSource => ({
    getX509Svid: () => svid,
    bundles: () => clientSource!.bundles(),
    getCrls: () => clientSource!.getCrls(),
    on: () => undefined,
    off: () => undefined,
  });

  before(async () => {
    srv = await startServer();
    agent = await startAgent(srv, { alias: ALIAS, syncInterval: `${SYNC_MS / 1000}s` });
    const uid = String(process.getuid?.() ?? 0);
    for (const id of [SERVICE_ID, CLIENT_ID]) {
      const r = await srv.cli(['entry', 'create', '--parent-id', ALIAS, '--spiffe-id', id, '--selector', `unix:uid:${uid}`, '--x509-svid-ttl', '1h'], { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`entry create failed: ${r.stderr}`);
    }
    const address = `unix://${agent.socketPath}`;
    [serviceSource, clientSource] = await Promise.all([X509Source.open({ address, picker: pick(SERVICE_ID), timeoutMs: 30_000 }), X509Source.open({ address, picker: pick(CLIENT_ID), timeoutMs: 30_000 })]);
    await until('both SVIDs in both sources', async () => both((s) => s.getX509Svids().length === 2), 20_000, 100);
    service = await startEchoService(serviceSource, authorizeId(CLIENT_ID));
  });

  after(async () => {
    await stream?.stop();
    for (const c of clients) c.close();
    await service?.close();
    serviceSource?.close();
    clientSource?.close();
    await agent?.cleanup();
    await srv?.cleanup();
  });

  it('prepare → activate → taint → revoke with zero failed handshakes; the old SVID is refused afterwards', async () => {
    const r1 = rootOf(clientSource!.getX509Svid())!;
    expect(rootOf(serviceSource!.getX509Svid())).to.equal(r1);
    const oldClientSvid = clientSource!.getX509Svid();
    const conns0 = service!.secureConnections();
    stream = new Stream(newClient(clientSource!), service!.url, Date.now() + 60_000);
    await sleep(1500);

    const r2 = (await authority(['prepare'])).authority_id;
    stream.phase = 'prepared';
    await until('the new root in both sources', async () => both((s) => ownRoots(s).length === 2), 15_000, 100);
    await sleep(2.5 * SYNC_MS); // the SRE's wait: every peer holds the new root before anything is signed under it

    expect((await authority(['activate', '--authority-id', r2])).status).to.equal('active');
    stream.phase = 'activated';
    await sleep(2.5 * SYNC_MS);

    await authority(['taint', '--authority-id', r1]);
    stream.phase = 'tainted';
    await until('both SVIDs re-issued under the new root', async () => both((s) => rootOf(s.getX509Svid()) === r2), 20_000, 100);
    // Before the revoke the old SVID still chains to a root in the bundle and is let in.
    const before = await newClient(fixedSvid(oldClientSvid)).request(service!.url, { timeoutMs: 10_000 });
    expect(before.json()).to.deep.equal({ spiffeId: CLIENT_ID });
    await sleep(2 * SYNC_MS);

    // Refused (ERR_CA_AUTHORITY_STATE) while the agent has not yet renewed its own SVID under r2.
    await until(
      'the revoke to be accepted',
      async () => {
        const r = await srv!.cli(['authority', 'x509', 'revoke', '--authority-id', r1, '--output', 'json'], { timeoutMs: 60_000 });
        if (r.code === 0) return true;
        expect(r.stderr).to.match(/^ERR_CA_AUTHORITY_STATE: .*still holds an agent SVID/);
        return undefined;
      },
      15_000,
      500,
    );
    stream.phase = 'revoked';
    await until('the revoked root gone from both sources', async () => both((s) => ownRoots(s).length === 1), 15_000, 100);
    expect(both((s) => rootOf(s.getX509Svid()) === r2)).to.equal(true);
    await sleep(3000);
    await stream.stop();

    const { attempted, succeeded, failures } = stream;
    console.log(
      `      rotation under mTLS: ${stream.total(attempted)} handshakes attempted, ${stream.total(succeeded)} succeeded, ${failures.length} failed; per phase ` +
        PHASES.map((p) => `${p} ${succeeded[p]}/${attempted[p]}`).join(', ') +
        (failures.length ? `; failures: ${JSON.stringify(failures.slice(0, 10))}` : ''),
    );
    expect(failures).to.deep.equal([]);
    for (const p of PHASES) expect(succeeded[p], `requests in phase ${p}`).to.be.greaterThan(0);
    // Each request was its own connection with a full handshake (no keep-alive, no resumption).
    expect(service!.secureConnections() - conns0).to.be.at.least(stream.total(attempted));
    expect(service!.refused).to.deep.equal([]);

    // The SVID held before the rotation, with the current bundle: the service's handshake refuses it.
    const seen0 = service!.handshakeErrors.length;
    let failure: string | undefined;
    try {
      await newClient(fixedSvid(oldClientSvid)).request(service!.url, { timeoutMs: 10_000 });
    } catch (e) {
      failure = failureOf(e);
    }
    expect(failure).to.equal('ERR_TLS_CONNECTION/ECONNRESET');
    await until('the service to record the refused handshake', async () => (service!.handshakeErrors.length > seen0 ? true : undefined), 5_000, 50);
    expect(service!.handshakeErrors.slice(seen0)).to.deep.equal(['refused UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);
  });
});
