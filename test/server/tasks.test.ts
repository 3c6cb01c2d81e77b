/**
 * The task engine on an injected clock: agent identities (create, refusals, disable, enable,
 * delete), tasks (start with every refusal, the entry and the delegation record, end, deadline,
 * ids never reused), and the audit records each step writes (a real, verified hash chain).
 */
import { expect } from 'chai';
import { verifyAudit } from '../../src/audit/index.js';
import type { ErrorCode } from '../../src/errors.js';
import { WritError } from '../../src/errors.js';
import { issueX509Svids } from '../../src/server/nodeapi/index.js';
import { TASK_ID, newTaskId } from '../../src/server/tasks/index.js';
import { PARENT, ROOT_OP, TD, type TaskFixture, taskFixture } from './tasks-fixture.js';

async function code(p: Promise<unknown>): Promise<ErrorCode | 'OK'> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof WritError) return e.code;
    throw e;
  }
}

const AGENT = { name: 'summarizer', selectors: [{ type: 'unix', value: 'uid:1001' }], owner: 'team-docs', max_task_ttl: '30m', delegators: ['user:alice@example.com', 'user:root'] };
const PIN = { pid: 4242, start_time: '123456' };

describe('server/tasks: agent identities and the task lifecycle', () => {
  let f: TaskFixture;
  beforeEach(async () => {
    f = await taskFixture();
  });
  afterEach(async () => {
    await f?.done();
  });

  const start = (over: Record<string, unknown> = {}) => f.service.tasks.start({ agent: 'summarizer', requested_by: 'alice@example.com', ttl: '10m', purpose: 'summarize the Q3 docs', ...PIN, ...over }, ROOT_OP);

  it('registers an agent identity backed by a registration entry, and refuses bad input with coded errors', async () => {
    const a = await f.service.agents.create(AGENT, ROOT_OP);
    expect(a).to.deep.include({ name: 'summarizer', spiffeId: `spiffe://${TD}/agent/summarizer`, parentId: PARENT, owner: 'team-docs', maxTaskTtl: 1800, disabled: false });
    const entry = await f.store.getEntry(a.entryId!);
    expect(entry).to.deep.include({ spiffeId: a.spiffeId, parentId: PARENT, expiresAt: null });
    expect(entry!.selectors).to.deep.equal([{ type: 'unix', value: 'uid:1001' }]);
    expect(await code(f.service.agents.create(AGENT, ROOT_OP))).to.equal('ERR_AGENT_IDENTITY_EXISTS');
    const bad: Array<[Record<string, unknown>, ErrorCode]> = [
      [{ name: 'Summarizer' }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'a'.repeat(65) }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'x/y' }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', selectors: [] }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', selectors: [{ type: 'unix', value: '' }] }, 'ERR_SELECTOR_INVALID'],
      [{ name: 'b', delegators: ['friends'] }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', delegators: ['any', 'user:x'] }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', delegators: ['group:no-such-group-here'] }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', max_task_ttl: '8d' }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', max_task_ttl: '0s' }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', owner: '' }, 'ERR_AGENT_IDENTITY_INVALID'],
      [{ name: 'b', parent_id: 'spiffe://other.org/host/x' }, 'ERR_AGENT_IDENTITY_INVALID'],
    ];
    for (const [over, want] of bad) expect(await code(f.service.agents.create({ ...AGENT, ...over }, ROOT_OP)), JSON.stringify(over)).to.equal(want);
    expect((await f.service.agents.list()).map((x) => x.name)).to.deep.equal(['summarizer']);
    expect(await f.store.countEntries()).to.equal(1, 'refused creations leave no entry behind');
  });

  it('starts a task: its entry (agent selectors plus the pin, expiring at the deadline), its record and its delegation record', async () => {
    await f.service.agents.create(AGENT, ROOT_OP);
    const now = Math.floor(f.clock.nowMs() / 1000);
    const { task, delegation } = await start();
    expect(task.id).to.match(TASK_ID);
    expect(task).to.deep.include({ agentName: 'summarizer', spiffeId: `spiffe://${TD}/agent/summarizer/task/${task.id}`, parentId: PARENT, status: 'active', deadline: now + 600, pid: 4242, startTime: '123456' });
    const entry = (await f.store.getEntry(task.entryId))!;
    expect(entry.spiffeId).to.equal(task.spiffeId);
    expect(entry.expiresAt).to.equal(now + 600);
    expect(entry.selectors.map((s) => `${s.type}:${s.value}`)).to.deep.equal(['unix:pid:4242', 'unix:start_time:123456', 'unix:uid:1001']);
    expect(delegation).to.deep.equal({
      taskId: task.id,
      agent: `spiffe://${TD}/agent/summarizer`,
      requester: { id: 'alice@example.com', authenticatedBy: 'unverified' },
      approver: { id: 'root', authenticatedBy: 'os-user' },
      purpose: 'summarize the Q3 docs',
      deadline: now + 600,
      decisionId: task.decisionId,
      issuedAt: now,
    });
    expect(JSON.parse(task.delegation)).to.deep.equal(delegation);
    const [, startRec] = await f.records();
    expect(startRec).to.deep.include({ kind: 'task.start' });
    expect(startRec!.actors).to.deep.equal({ requester: delegation.requester, approver: delegation.approver, agent: delegation.agent, task: task.id });
    expect(startRec!.decision).to.deep.equal({ effect: 'allow', reason: 'no policy', policyIds: [], id: task.decisionId });
  });

  it('refuses each bad start with its code, audits the refusal, and creates nothing', async () => {
    await f.service.agents.create(AGENT, ROOT_OP);
    await f.service.agents.create({ ...AGENT, name: 'idle' }, ROOT_OP);
    await f.service.agents.disable('idle', ROOT_OP);
    const entriesBefore = await f.store.countEntries();
    const cases: Array<[Record<string, unknown>, ErrorCode]> = [
      [{ agent: 'nobody' }, 'ERR_TASK_AGENT_UNKNOWN'],
      [{ agent: 'Not A Name' }, 'ERR_TASK_AGENT_UNKNOWN'],
      [{ agent: 'idle' }, 'ERR_TASK_AGENT_DISABLED'],
      [{ ttl: '31m' }, 'ERR_TASK_TTL_TOO_LONG'],
      [{ ttl: 'soon' }, 'ERR_TASK_INVALID'],
      [{ requested_by: 'mallory@example.com' }, 'ERR_TASK_DELEGATOR_NOT_ALLOWED'],
      [{ purpose: '' }, 'ERR_TASK_INVALID'],
      [{ purpose: 'x\u0007' }, 'ERR_TASK_INVALID'],
      [{ pid: undefined }, 'ERR_TASK_INVALID'],
      [{ start_time: 'abc' }, 'ERR_TASK_INVALID'],
      [{ pid: -1 }, 'ERR_TASK_INVALID'],
      [{ requester_token: 'eyJ...' , requested_by: undefined }, 'ERR_TASK_INVALID'],
    ];
    for (const [over, want] of cases) expect(await code(start(over)), JSON.stringify(over)).to.equal(want);
    expect(await f.store.countEntries()).to.equal(entriesBefore);
    expect(await f.store.listTasks({})).to.deep.equal([]);
    const refused = (await f.records()).filter((r) => r.kind === 'task.refused');
    expect(refused.map((r) => r.details?.code)).to.deep.equal(cases.map(([, c]) => c));
    for (const r of refused) {
      expect(r.decision?.effect).to.equal('deny');
      expect(r.actors?.approver).to.deep.equal({ id: 'root', authenticatedBy: 'os-user' });
    }
    expect(refused[5]!.actors).to.deep.include({ requester: { id: 'mallory@example.com', authenticatedBy: 'unverified' }, agent: `spiffe://${TD}/agent/summarizer` });
  });

  it('takes the operator as the requester when none is named, and matches group delegators against the OS user', async () => {
    await f.service.agents.create({ ...AGENT, delegators: ['group:root'] }, ROOT_OP);
    const { delegation } = await f.service.tasks.start({ agent: 'summarizer', ttl: 60, purpose: 'p', ...PIN }, ROOT_OP);
    expect(delegation.requester).to.deep.equal({ id: 'root', authenticatedBy: 'os-user' });
    const outsider = { id: 'nobody', authenticatedBy: 'os-user' as const, gids: [65534] };
    expect(await code(f.service.tasks.start({ agent: 'summarizer', ttl: 60, purpose: 'p', ...PIN }, outsider))).to.equal('ERR_TASK_DELEGATOR_NOT_ALLOWED');
    // A free-text requester is never a group member.
    expect(await code(f.service.tasks.start({ agent: 'summarizer', requested_by: 'root', ttl: 60, purpose: 'p', ...PIN }, ROOT_OP))).to.equal('ERR_TASK_DELEGATOR_NOT_ALLOWED');
  });

  it('ends a task: entry deleted, unexpired serials on the CRL, audited; a second end is ERR_TASK_ENDED', async () => {
    await f.service.agents.create(AGENT, ROOT_OP);
    const { task } = await start();
    const [signed] = await issueX509Svids(f.ctx, f.scope, [{ entryId: task.entryId, csr: f.csr() }]);
    const serial = (signed as { serial: string }).serial;
    f.clock.advance(30_000);
    const ended = await f.service.tasks.end(task.id, 'work done', ROOT_OP);
    expect(ended.revokedSerials).to.deep.equal([serial]);
    expect(ended.task).to.deep.include({ status: 'ended', endReason: 'work done' });
    expect(await f.store.getEntry(task.entryId)).to.equal(undefined);
    expect((await f.store.listRevoked()).map((r) => r.serial)).to.include(serial);
    expect(await code(f.service.tasks.end(task.id, 'again', ROOT_OP))).to.equal('ERR_TASK_ENDED');
    expect(await code(f.service.tasks.end('zzzzzzzzzzzzzzzzzzzzzzzzzz', 'x', ROOT_OP))).to.equal('ERR_TASK_NOT_FOUND');
    expect(await code(f.service.tasks.end('not-a-task-id', 'x', ROOT_OP))).to.equal('ERR_TASK_NOT_FOUND');
    const refusedEnds = (await f.records()).filter((r) => r.kind === 'task.refused' && r.details?.action === 'task.end');
    expect(refusedEnds.map((r) => [r.actors?.task, r.details?.code, r.decision?.effect])).to.deep.equal([
      [task.id, 'ERR_TASK_ENDED', 'deny'],
      ['zzzzzzzzzzzzzzzzzzzzzzzzzz', 'ERR_TASK_NOT_FOUND', 'deny'],
      ['not-a-task-id', 'ERR_TASK_NOT_FOUND', 'deny'],
    ]);
    expect(refusedEnds[0]!.actors?.approver).to.deep.equal({ id: 'root', authenticatedBy: 'os-user' });
    const endRec = (await f.records()).find((r) => r.kind === 'task.end')!;
    expect(endRec.actors).to.deep.include({ task: task.id, requester: { id: 'alice@example.com', authenticatedBy: 'unverified' } });
    expect(endRec.details).to.deep.include({ reason: 'work done', revoked_serials: [serial], ended_by: { id: 'root', authenticatedBy: 'os-user' } });
    // The record stays; the id is never handed out again.
    expect((await f.service.tasks.get(task.id)).status).to.equal('ended');
    expect(await f.service.tasks.list({ status: 'active' })).to.deep.equal([]);
    expect((await f.service.tasks.list({})).map((t) => t.id)).to.deep.equal([task.id]);
  });

  it('ends tasks at their deadline in the sweep, without the operator, and not a second early', async () => {
    await f.service.agents.create(AGENT, ROOT_OP);
    const { task } = await start({ ttl: '2m' });
    f.clock.advance(119_000);
    expect(await f.service.sweep()).to.equal(0);
    expect((await f.service.tasks.get(task.id)).status).to.equal('active');
    f.clock.advance(1_000);
    expect(await f.service.sweep()).to.equal(1);
    const t = await f.service.tasks.get(task.id);
    expect(t).to.deep.include({ status: 'ended', endReason: 'deadline' });
    expect(t.cleanedAt).to.not.equal(null);
    expect(await f.store.getEntry(task.entryId)).to.equal(undefined);
    const endRec = (await f.records()).find((r) => r.kind === 'task.end')!;
    expect(endRec.details!.ended_by).to.deep.equal({ id: 'writ-server', authenticatedBy: 'server' });
  });

  it('finishes a cleanup that a crash interrupted (task ended, entry still there)', async () => {
    await f.service.agents.create(AGENT, ROOT_OP);
    const { task } = await start();
    await f.store.endTask(task.id, Math.floor(f.clock.nowMs() / 1000), 'crashed mid-end');
    f.clock.advance(10_000);
    await f.service.sweep();
    expect(await f.store.getEntry(task.entryId)).to.equal(undefined);
    expect((await f.service.tasks.get(task.id)).cleanedAt).to.not.equal(null);
  });

  it('disabling an agent ends all its tasks, deletes its entry and revokes its SVIDs; enabling registers it again; delete keeps task records', async () => {
    const a = await f.service.agents.create(AGENT, ROOT_OP);
    const [agentSvid] = await issueX509Svids(f.ctx, f.scope, [{ entryId: a.entryId!, csr: f.csr() }]);
    const t1 = (await start()).task;
    const t2 = (await start({ pid: 4243 })).task;
    const r = await f.service.agents.disable('summarizer', ROOT_OP);
    expect(new Set(r.endedTasks)).to.deep.equal(new Set([t1.id, t2.id]));
    expect(r.revokedSerials).to.deep.equal([(agentSvid as { serial: string }).serial]);
    expect(r.agent).to.deep.include({ disabled: true, entryId: null });
    expect(await f.store.getEntry(a.entryId!)).to.equal(undefined);
    for (const t of [t1, t2]) expect((await f.service.tasks.get(t.id)).endReason).to.equal('agent disabled');
    expect(await code(start())).to.equal('ERR_TASK_AGENT_DISABLED');
    expect(await code(f.service.agents.disable('summarizer', ROOT_OP))).to.equal('ERR_TASK_AGENT_DISABLED');
    const on = await f.service.agents.enable('summarizer', ROOT_OP);
    expect((await f.store.getEntry(on.entryId!))!.spiffeId).to.equal(a.spiffeId);
    expect(await code(start())).to.equal('OK');
    const del = await f.service.agents.delete('summarizer', ROOT_OP);
    expect(del.endedTasks).to.have.length(1);
    expect(await code(f.service.agents.get('summarizer'))).to.equal('ERR_AGENT_IDENTITY_NOT_FOUND');
    expect(await f.store.countEntries()).to.equal(0);
    expect(await f.service.tasks.list({})).to.have.length(3);
    const kinds = (await f.records()).map((x) => x.kind);
    expect(kinds).to.include.members(['agent-identity.create', 'agent-identity.disable', 'agent-identity.enable', 'agent-identity.delete']);
    const v = await verifyAudit(f.auditPath);
    expect(v.ok, JSON.stringify(v)).to.equal(true);
  });

  it('makes task ids of 128 random bits in base32, unique', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => newTaskId()));
    expect(ids.size).to.equal(2000);
    for (const id of ids) expect(id).to.match(TASK_ID);
    expect(newTaskId({ bytes: (n) => Buffer.alloc(n, 0xff) })).to.equal('7'.repeat(25) + '4');
    expect(newTaskId({ bytes: (n) => Buffer.alloc(n, 0) })).to.equal('a'.repeat(26));
  });
});
