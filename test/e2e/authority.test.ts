/**
 * Forced CA rotation with real processes: `writ server run`, `writ agent run` (1 s sync) and the
 * `writ authority` CLI. prepare → activate → taint → revoke: the workload's X509-SVID (1 h TTL, so
 * half life never comes) is re-issued under the new authority within seconds of the taint, the
 * revoked authority leaves the bundle the workload holds and its old SVID stops verifying, and the
 * agent keeps talking to the server. The same for the JWT key; wrong steps are refused.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { chainIssuerIds } from '../../src/ca/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { parseAndValidateJwtSvid, verifyX509Svid } from '../../src/svid/index.js';
import { WorkloadApiClient, type X509Context } from '../../src/workloadapi/index.js';
import { type AgentHandle, type CliResult, type ServerHandle, startAgent, startServer } from '../helpers/writ-process.js';
import { until } from '../helpers/wait.js';

const ALIAS = 'spiffe://example.org/host/rotation';
const WORKLOAD = 'spiffe://example.org/workload/rotating';
const td = parseTrustDomain('example.org');

interface AuthorityJson {
  authority_id: string;
  status: string;
  tainted: boolean;
  signing_cas?: Array<{ ski: string; status: string }>;
}

const json = <T>(r: CliResult): T => {
  expect(r.code, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as T;
};

describe('e2e: forced CA rotation (writ authority)', function () {
  this.timeout(180_000);
  let srv: ServerHandle;
  let agent: AgentHandle;
  /** An agent that syncs once an hour: it does not renew its own SVID after a taint. */
  let slow: AgentHandle;
  let client: WorkloadApiClient;

  const fetch = () => client.fetchX509Context();
  const serialOf = (c: X509Context) => new X509Certificate(c.svids[0]!.certificates[0]!).serialNumber;
  const rootsOf = (c: X509Context) => c.bundles.getX509BundleForTrustDomain(td).authorities();
  const show = async (kind: 'x509' | 'jwt') => json<{ x509: AuthorityJson[]; jwt: AuthorityJson[]; bundle_sequence: number }>(await srv.cli(['authority', 'show', '--kind', kind, '--output', 'json']));
  const step = async (args: string[]) => json<{ authority: AuthorityJson; bundle_sequence: number }>(await srv.cli(['authority', ...args, '--output', 'json']));
  const refused = async (args: string[], code: string, sentence: RegExp) => {
    const r = await srv.cli(['authority', ...args]);
    expect(r.code, r.stdout).to.not.equal(0);
    expect(r.stderr).to.match(new RegExp(`^${code}: `));
    expect(r.stderr).to.match(sentence);
    expect(r.stderr).to.not.match(/\n\s+at /); // no stack trace
  };

  before(async () => {
    srv = await startServer();
    agent = await startAgent(srv, { alias: ALIAS, syncInterval: '1s' });
    slow = await startAgent(srv, { syncInterval: '1h' });
    const r = await srv.cli(['entry', 'create', '--parent-id', ALIAS, '--spiffe-id', WORKLOAD, '--selector', `unix:uid:${process.getuid?.() ?? 0}`, '--x509-svid-ttl', '1h']);
    if (r.code !== 0) throw new Error(r.stderr);
    client = new WorkloadApiClient({ address: `unix://${agent.socketPath}`, timeoutMs: 10_000 });
    await until('the first SVID', async () => ((await fetch().catch(() => undefined))?.svids.length ? true : undefined));
  });
  after(async () => {
    client?.close();
    await slow?.cleanup();
    await agent?.cleanup();
    await srv?.cleanup();
  });

  it('shows the authorities and refuses wrong steps with a code and one sentence', async () => {
    const pretty = await srv.cli(['authority', 'show']);
    expect(pretty.code, pretty.stderr).to.equal(0);
    expect(pretty.stdout).to.match(/^Active X\.509 authority:\n {2}Authority ID : [0-9a-f]{40}\n/);
    expect(pretty.stdout).to.contain('No prepared X.509 authority found');
    expect(pretty.stdout).to.contain('Active JWT authority:');
    expect(pretty.stdout).to.match(/Signing CA {3}: [0-9a-f]{40} \(active/);
    const [r1] = (await show('x509')).x509;
    await refused(['x509', 'activate', '--authority-id', r1!.authority_id], 'ERR_CA_AUTHORITY_STATE', /already active/);
    await refused(['taint', '--authority-id', r1!.authority_id], 'ERR_CA_AUTHORITY_STATE', /prepare and activate its successor first/);
    await refused(['x509', 'revoke', '--authority-id', r1!.authority_id], 'ERR_CA_AUTHORITY_STATE', /not tainted/);
    await refused(['jwt', 'taint', '--authority-id', 'nosuchkid'], 'ERR_CA_AUTHORITY_NOT_FOUND', /No JWT authority has the ID nosuchkid/);
    await refused(['x509', 'taint'], 'ERR_INPUT_INVALID', /authority-id/);
    await refused(['prepare', '--kind', 'rsa'], 'ERR_INPUT_INVALID', /rsa/);
    // Through the SPIRE spelling too.
    const spire = await srv.cli(['localauthority', 'x509', 'show']);
    expect(spire.code, spire.stderr).to.equal(0);
    expect(spire.stdout).to.contain(r1!.authority_id);
  });

  it('prepare → activate → taint re-issues the SVID under the new authority at once; revoke ends the old one', async () => {
    const ctx0 = await fetch();
    const oldChain = ctx0.svids[0]!.certificates;
    const r1 = chainIssuerIds(oldChain)[1]!;
    const seq0 = (await show('x509')).bundle_sequence;

    const prepared = await step(['x509', 'prepare']);
    const r2 = prepared.authority.authority_id;
    expect(prepared.authority.status).to.equal('prepared');
    expect(prepared.bundle_sequence).to.be.greaterThan(seq0);
    // The workload learns the new root before anything is signed under it.
    await until('the new root in the workload\'s bundle', async () => ((rootsOf(await fetch()).length === 2 ? true : undefined)), 15_000);
    expect(serialOf(await fetch())).to.equal(serialOf(ctx0));

    // The flat spelling, kind x509 by default; the output says what to do next.
    const act = await srv.cli(['authority', 'activate', '--authority-id', r2]);
    expect(act.code, act.stderr).to.equal(0);
    expect(act.stdout).to.match(/^Activated X\.509 authority:\n/);
    expect(act.stdout).to.contain(`writ authority x509 taint --authority-id ${r1}`);
    await new Promise((r) => setTimeout(r, 2500)); // more than two agent syncs
    expect(serialOf(await fetch()), 'activation alone does not re-issue before half life').to.equal(serialOf(ctx0));

    const t0 = Date.now();
    const tainted = await step(['x509', 'taint', '--authority-id', r1]);
    expect(tainted.authority.tainted).to.equal(true);
    const ctx1 = await until(
      'the SVID re-issued under the new authority',
      async () => {
        const c = await fetch();
        return chainIssuerIds(c.svids[0]!.certificates)[1] === r2 ? c : undefined;
      },
      15_000,
      100,
    );
    const reissueMs = Date.now() - t0;
    process.stderr.write(`      (taint to re-issued SVID: ${reissueMs} ms with a 1 s agent sync)\n`);
    expect(reissueMs).to.be.below(10_000);
    expect(serialOf(ctx1)).to.not.equal(serialOf(ctx0));
    verifyX509Svid(ctx1.svids[0]!.certificates, ctx1.bundles, { crls: ctx1.crls });
    await agent.waitForLog((l) => l.event === 'agent.svid_tainted', 10_000);
    await agent.waitForLog((l) => l.event === 'agent.renewed', 10_000);

    // The hourly agent still holds an agent SVID of r1: revoking now would lock it out, so it takes --force.
    await refused(['x509', 'revoke', '--authority-id', r1], 'ERR_CA_AUTHORITY_STATE', new RegExp(`1 agent still holds an agent SVID of this authority \\(${slow.agentId}\\).*--force`));
    const seqBefore = (await show('x509')).bundle_sequence;
    const revoked = await step(['x509', 'revoke', '--authority-id', r1, '--force']);
    expect(revoked.bundle_sequence).to.be.greaterThan(seqBefore);
    expect((await show('x509')).x509.map((a) => a.authority_id)).to.deep.equal([r2]);
    const ctx2 = await until('the revoked root gone from the workload\'s bundle', async () => {
      const c = await fetch();
      return rootsOf(c).length === 1 ? c : undefined;
    }, 15_000);
    expect(() => verifyX509Svid(oldChain, ctx2.bundles, { crls: ctx2.crls })).to.throw(/does not chain to an authority/);
    verifyX509Svid(ctx2.svids[0]!.certificates, ctx2.bundles, { crls: ctx2.crls });

    // The agent renewed its own SVID at the taint, so it still reaches the server: a new entry arrives.
    const e = await srv.cli(['entry', 'create', '--parent-id', ALIAS, '--spiffe-id', `${WORKLOAD}-2`, '--selector', `unix:uid:${process.getuid?.() ?? 0}`]);
    expect(e.code, e.stderr).to.equal(0);
    await until('the new entry served after the revoke', async () => ((await fetch()).svids.length === 2 ? true : undefined), 15_000);
    // Every step was logged with the admin caller.
    const actions = srv.logs.filter((l) => l.event === 'admin' && String(l.action).startsWith('authority.')).map((l) => `${String(l.action)} ${typeof (l.caller as { uid?: number })?.uid}`);
    expect(actions).to.deep.equal(['authority.prepare number', 'authority.activate number', 'authority.taint number', 'authority.revoke number']);
  });

  it('drops cached JWT-SVIDs of a tainted key and serves ones of the new key', async () => {
    const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    const first = await client.fetchJwtSvid({ audience: 'billing' });
    const k1 = kidOf(first.token);
    const k2 = (await step(['jwt', 'prepare'])).authority.authority_id;
    await step(['jwt', 'activate', '--authority-id', k2]);
    expect((await client.fetchJwtSvid({ audience: 'billing' })).token, 'cached until half life').to.equal(first.token);
    await step(['jwt', 'taint', '--authority-id', k1]);
    const fresh = await until('a JWT-SVID of the new key', async () => {
      const j = await client.fetchJwtSvid({ audience: 'billing' });
      return kidOf(j.token) === k2 ? j : undefined;
    }, 15_000, 100);
    await step(['jwt', 'revoke', '--authority-id', k1]);
    const bundles = await until('the JWT bundle without the revoked key', async () => {
      const b = await client.fetchJwtBundles();
      return b.getJwtBundleForTrustDomain(td).authorities().has(k1) ? undefined : b;
    }, 15_000);
    expect(() => parseAndValidateJwtSvid(first.token, bundles, ['billing'])).to.throw();
    expect(parseAndValidateJwtSvid(fresh.token, bundles, ['billing']).id.toString()).to.equal(WORKLOAD);
  });
});
