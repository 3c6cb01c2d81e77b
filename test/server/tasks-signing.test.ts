/**
 * Tasks at signing time, on an injected clock: task X509-SVIDs and JWT-SVIDs live no longer than
 * the task and carry its delegation record (checked by writ's own verifier and decoders and by
 * @peculiar/x509), task-shaped entries without a task are refused, an SVID signed while its task
 * ends is revoked at once, the task policy decides starts, agents serving tasks get a sync hint,
 * and a pinned task entry is a process's default SVID.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { validateServerConfig } from '../../src/server/config.js';
import { WritServer } from '../../src/server/server.js';
import { AgentCache } from '../../src/agent/cache.js';
import { X509Bundle } from '../../src/bundle/index.js';
import type { DataStore } from '../../src/datastore/index.js';
import { WritError } from '../../src/errors.js';
import { DELEGATION_CLAIM, DELEGATION_OID, decodeDelegationFromCertificate, encodeOidContent } from '../../src/policy/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { DerReader } from '../../src/svid/x509/der.js';
import { verifyX509Svid } from '../../src/svid/index.js';
import { issueJwtSvid, issueX509Svids, syncEntries } from '../../src/server/nodeapi/index.js';
import { HINT_AFTER_END_MS, TASK_SYNC_HINT_MS, loadTaskPolicy } from '../../src/server/tasks/index.js';
import { PARENT, ROOT_OP, TD, type TaskFixture, taskFixture } from './tasks-fixture.js';

const AGENT = { name: 'summarizer', selectors: [{ type: 'unix', value: 'uid:1001' }], owner: 'team-docs', max_task_ttl: '30m', delegators: ['any'] };
const START = { agent: 'summarizer', requested_by: 'alice@example.com', ttl: '10m', purpose: 'summarize', pid: 4242, start_time: '99' };

/** Each extension's OID (the delegation OID compared as DER bytes: its 128-bit arc is beyond most readers) and critical flag. */
function extensionsOf(der: Buffer): Array<{ oid: string; critical: boolean }> {
  const delegation = encodeOidContent(DELEGATION_OID);
  const r = new DerReader(der);
  const tbs = r.children(r.children(r.node(0))[0]!);
  const exts = tbs.find((n) => n.tag === 0xa3)!;
  return r.children(r.children(exts)[0]!).map((e) => {
    const parts = r.children(e);
    const oid = r.content(parts[0]!).equals(delegation) ? DELEGATION_OID : r.oid(parts[0]!);
    return { oid, critical: parts.length === 3 && r.boolean(parts[1]!) };
  });
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('server/tasks: signing, policy and the sync hint', () => {
  let f: TaskFixture;
  beforeEach(async () => {
    f = await taskFixture();
    await f.service.agents.create(AGENT, ROOT_OP);
  });
  afterEach(async () => {
    await f?.done();
  });

  it('signs a task X509-SVID that ends at the deadline and carries the delegation record in a non-critical extension', async () => {
    const { task, delegation } = await f.service.tasks.start(START, ROOT_OP);
    const [r] = await issueX509Svids(f.ctx, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    if (!r || 'error' in r) throw new Error(`not signed: ${JSON.stringify(r)}`);
    expect(Math.floor(r.notAfter.getTime() / 1000)).to.equal(task.deadline, 'the 1 h default TTL is cut to the 10 min task');
    expect(decodeDelegationFromCertificate(r.chain[0]!)).to.deep.equal(delegation);
    const issuedRec = (await f.records()).find((x) => x.kind === 'svid.issue');
    expect(issuedRec?.actors).to.deep.equal({ requester: delegation.requester, approver: delegation.approver, agent: delegation.agent, task: task.id });
    expect(issuedRec?.details?.serials).to.deep.equal([r.serial]);
    expect(issuedRec?.decision?.id).to.equal(task.decisionId);
    expect(extensionsOf(r.chain[0]!).filter((e) => e.oid === DELEGATION_OID)).to.deep.equal([{ oid: DELEGATION_OID, critical: false }]);
    // @peculiar/x509 (asn1js) reads the certificate too, though it shortens the 128-bit arc.
    expect(new x509.X509Certificate(r.chain[0]!).extensions.filter((e) => e.type.startsWith('2.25')).map((e) => e.critical)).to.deep.equal([false]);
    // SPIFFE validation ignores the unknown non-critical extension.
    const v = verifyX509Svid(r.chain, new X509Bundle(parseTrustDomain(TD), f.authority.x509Authorities()), { now: f.clock.now() });
    expect(v.id.toString()).to.equal(task.spiffeId);
    // Near the deadline the SVID is shorter still; past it, nothing is signed.
    f.clock.advance(590_000);
    const [late] = await issueX509Svids(f.ctx, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    if (!late || 'error' in late) throw new Error('not signed');
    expect(Math.floor(late.notAfter.getTime() / 1000)).to.equal(task.deadline);
    f.clock.advance(10_000);
    const [none] = await issueX509Svids(f.ctx, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    expect(none).to.deep.include({ error: { code: 'ERR_TASK_ENDED', message: `Task ${task.id} has ended.` } });
  });

  it('signs task JWT-SVIDs with exp capped at the deadline and the delegation claim', async () => {
    const { task, delegation } = await f.service.tasks.start({ ...START, ttl: '2m' }, ROOT_OP);
    const jwt = await issueJwtSvid(f.ctx, f.scope, task.entryId, ['billing']);
    const p = payloadOf(jwt.token);
    expect(p.sub).to.equal(task.spiffeId);
    expect(p.exp).to.equal(Math.floor(f.clock.nowMs() / 1000) + 120, 'the 5 min default is cut to the 2 min task');
    expect(p[DELEGATION_CLAIM]).to.deep.equal(delegation);
    // An ordinary entry's token has no such claim.
    const agentEntry = (await f.service.agents.get('summarizer')).entryId!;
    expect(payloadOf((await issueJwtSvid(f.ctx, f.scope, agentEntry, ['billing'])).token)).to.not.have.property(DELEGATION_CLAIM);
  });

  it('with task_delegation_x509 off, signs task X509-SVIDs without the extension (for Go peers) and still puts the claim in JWT-SVIDs', async () => {
    await f.done();
    f = await taskFixture({ x509Delegation: false });
    await f.service.agents.create(AGENT, ROOT_OP);
    const { task, delegation } = await f.service.tasks.start(START, ROOT_OP);
    const [r] = await issueX509Svids(f.ctx, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    if (!r || 'error' in r) throw new Error(`not signed: ${JSON.stringify(r)}`);
    expect(decodeDelegationFromCertificate(r.chain[0]!)).to.equal(undefined);
    expect(extensionsOf(r.chain[0]!).map((e) => e.oid)).to.not.include(DELEGATION_OID);
    expect(Math.floor(r.notAfter.getTime() / 1000)).to.equal(task.deadline);
    expect(payloadOf((await issueJwtSvid(f.ctx, f.scope, task.entryId, ['billing'])).token)[DELEGATION_CLAIM]).to.deep.equal(delegation);
    expect(validateServerConfig({ trust_domain: TD, task_delegation_x509: false }).taskDelegationX509).to.equal(false);
    expect(validateServerConfig({ trust_domain: TD }).taskDelegationX509).to.equal(true);
  });

  it('refuses task-shaped entries that no task started, and tasks ended but not yet cleaned up', async () => {
    const [forged] = await f.store.createEntries([
      { spiffeId: `spiffe://${TD}/agent/summarizer/task/aaaaaaaaaaaaaaaaaaaaaaaaaa`, parentId: PARENT, selectors: [{ type: 'unix', value: 'uid:1001' }], x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null },
    ]);
    const [r] = await issueX509Svids(f.ctx, f.scope, [{ entryId: forged!.id, csr: f.csr() }]);
    expect((r as { error: { code: string } }).error.code).to.equal('ERR_TASK_NOT_FOUND');
    const { task } = await f.service.tasks.start(START, ROOT_OP);
    await f.store.endTask(task.id, Math.floor(f.clock.nowMs() / 1000), 'ended elsewhere');
    const [ended] = await issueX509Svids(f.ctx, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    expect((ended as { error: { code: string } }).error.code).to.equal('ERR_TASK_ENDED');
    let jwtCode = '';
    await issueJwtSvid(f.ctx, f.scope, task.entryId, ['a']).catch((e: WritError) => (jwtCode = e.code));
    expect(jwtCode).to.equal('ERR_TASK_ENDED');
  });

  it('revokes at once an SVID whose task ended while it was being signed', async () => {
    const { task } = await f.service.tasks.start(START, ROOT_OP);
    // The task ends between signing and recording: ending lists the serials before this one is recorded.
    const racing = new Proxy(f.store, {
      get: (target, prop, recv) => {
        if (prop !== 'recordIssued') return Reflect.get(target, prop, recv) as unknown;
        return async (list: Parameters<DataStore['recordIssued']>[0]) => {
          await f.service.tasks.end(task.id, 'ended during signing', ROOT_OP);
          await target.recordIssued(list);
        };
      },
    });
    const [r] = await issueX509Svids({ ...f.ctx, datastore: racing }, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    const serial = (r as { serial: string }).serial;
    expect(serial).to.be.a('string');
    expect((await f.store.listRevoked()).map((x) => x.serial)).to.include(serial);
  });

  it('asks agents serving agent identities to sync within 500 ms, and every agent while a task runs or just ended', async () => {
    const other = new Set([`spiffe://${TD}/host/elsewhere`]);
    const hint = async (parents: ReadonlySet<string>) => {
      await f.service.issuance.refreshHint();
      return f.service.issuance.syncHintMs(parents);
    };
    expect(await hint(f.scope.parents)).to.equal(TASK_SYNC_HINT_MS);
    expect(await hint(other)).to.equal(undefined, 'no task anywhere: other agents keep their interval');
    f.ctx.ownBundle = async () => ({ trustDomain: TD, document: '{"keys":[]}', sequence: 1, refreshHint: 300, updatedAt: 0 });
    expect((await syncEntries(f.ctx, f.scope, { since: 0, aliasKey: '', federatesWith: [] })).next_sync_ms).to.equal(TASK_SYNC_HINT_MS);
    expect(await syncEntries(f.ctx, { ...f.scope, parents: other }, { since: 0, aliasKey: '', federatesWith: [] })).to.not.have.property('next_sync_ms');
    // While a task runs, every agent syncs soon: the CRL its end brings matters to services on every host.
    const { task } = await f.service.tasks.start(START, ROOT_OP);
    expect(await hint(other)).to.equal(TASK_SYNC_HINT_MS);
    await f.service.tasks.end(task.id, 'done', ROOT_OP);
    expect(await hint(other)).to.equal(TASK_SYNC_HINT_MS, 'just ended: one more quick sync for everyone');
    f.clock.advance(HINT_AFTER_END_MS);
    expect(await hint(other)).to.equal(undefined);
    await f.service.agents.disable('summarizer', ROOT_OP);
    f.clock.advance(HINT_AFTER_END_MS);
    expect(await hint(f.scope.parents)).to.equal(undefined, 'no enabled agent identity under this parent');
  });

  it('lets the task policy decide: an unverified requester forbidden, an OS user allowed, both audited with the policy ids', async () => {
    await f.done();
    f = await taskFixture({
      policy: `@id("verified-requesters-only")
forbid (principal, action == Writ::Action::"task.start", resource)
when { context.delegation.requester.authenticatedBy == "unverified" };

@id("docs-agents")
permit (principal, action == Writ::Action::"task.start", resource is Writ::AgentIdentity)
when { resource.owner == "team-docs" && context.ttl <= 3600 && context.pinned };
`,
    });
    await f.service.agents.create(AGENT, ROOT_OP);
    let refused: WritError | undefined;
    await f.service.tasks.start(START, ROOT_OP).catch((e: WritError) => (refused = e));
    expect(refused?.code).to.equal('ERR_TASK_POLICY_DENIED');
    expect(refused?.message).to.contain('verified-requesters-only');
    const { task } = await f.service.tasks.start({ ...START, requested_by: undefined }, ROOT_OP);
    const recs = await f.records();
    const deny = recs.find((r) => r.kind === 'task.refused')!;
    expect(deny.decision).to.deep.include({ effect: 'deny', reason: 'policy', policyIds: ['verified-requesters-only'] });
    const allow = recs.find((r) => r.kind === 'task.start')!;
    expect(allow.decision).to.deep.equal({ effect: 'allow', reason: 'policy', policyIds: ['docs-agents'], id: task.decisionId });
  });

  it('refuses a bad policy file at load, naming the file and the line', async () => {
    let e: WritError | undefined;
    await loadTaskPolicy(['/nonexistent/tasks.cedar'], f.clock).catch((x: WritError) => (e = x));
    expect(e?.code).to.equal('ERR_POLICY_READ');
    const file = `${f.dir}/bad.cedar`;
    writeFileSync(file, 'permit (principal, action, resource);\n\nforbid (principal, action resource);\n');
    await loadTaskPolicy([file], f.clock).catch((x: WritError) => (e = x));
    expect(e?.code).to.equal('ERR_POLICY_PARSE');
    expect(e?.message).to.match(new RegExp(`^${file} line 3`));
  });

  it('puts a process-pinned entry first, so a task process presents its task SVID by default', () => {
    const cache = new AgentCache(TD);
    const base = { parentId: PARENT, x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null, revision: 1 };
    cache.putEntry({ ...base, id: 'agent', spiffeId: `spiffe://${TD}/agent/summarizer`, selectors: [{ type: 'unix', value: 'uid:1001' }], createdAt: 100 });
    cache.putEntry({ ...base, id: 'task', spiffeId: `spiffe://${TD}/agent/summarizer/task/x`, selectors: [{ type: 'unix', value: 'pid:7' }, { type: 'unix', value: 'uid:1001' }], createdAt: 200 });
    cache.putEntry({ ...base, id: 'older', spiffeId: `spiffe://${TD}/w/old`, selectors: [{ type: 'unix', value: 'uid:1001' }], createdAt: 50 });
    const sel = (...v: string[]) => v.map((value) => ({ type: 'unix', value }));
    expect(cache.matching(sel('uid:1001', 'pid:7', 'start_time:1')).map((e) => e.id)).to.deep.equal(['task', 'older', 'agent']);
    expect(cache.matching(sel('uid:1001', 'pid:8')).map((e) => e.id)).to.deep.equal(['older', 'agent']);
  });

  it('reads task_policy_files and agent_identity_parent from the config, and a server with a bad policy file does not start', async () => {
    const base = { trust_domain: TD, data_dir: `${f.dir}/srv`, health: { enabled: false }, node_api: { enabled: false }, ca: { key_manager: 'memory' }, admin: { socket_path: `${f.dir}/admin.sock` } };
    const c = validateServerConfig({ ...base, task_policy_files: ['rel/tasks.cedar'], agent_identity_parent: `spiffe://${TD}/host/ai` });
    expect(c.taskPolicyFiles).to.deep.equal([resolve('rel/tasks.cedar')]);
    expect(c.agentIdentityParent).to.equal(`spiffe://${TD}/host/ai`);
    expect(validateServerConfig(base).agentIdentityParent).to.equal(`spiffe://${TD}/host/dev`);
    for (const bad of ['spiffe://other.org/host/x', `spiffe://${TD}`, 'not an id']) {
      let e: WritError | undefined;
      try {
        validateServerConfig({ ...base, agent_identity_parent: bad });
      } catch (x) {
        e = x as WritError;
      }
      expect(e?.code, bad).to.equal('ERR_CONFIG_INVALID');
      expect(e?.details?.field).to.equal('agent_identity_parent');
    }
    const file = `${f.dir}/broken.cedar`;
    writeFileSync(file, '@id("a")\npermit (principal, action, resource)\nwhen { nonsense here };\n');
    let e: WritError | undefined;
    await WritServer.start(validateServerConfig({ ...base, task_policy_files: [file] }), { logger: silentLogger }).then(
      (s) => s.stop(),
      (x: WritError) => (e = x),
    );
    expect(e?.code).to.equal('ERR_POLICY_PARSE');
    expect(e?.message).to.match(new RegExp(`^${file} line 3`));
    expect(existsSync(`${f.dir}/admin.sock`)).to.equal(false, 'nothing is left listening');
  });
});
