/**
 * Contract: agent identities and tasks. Names are unique; task ids are never reused (ended
 * tasks stay as records); ending is won by exactly one of concurrent callers; filters (agent,
 * status, due, uncleaned) and the newest-first order hold; cleanup is recorded once.
 */
import { expect } from 'chai';
import type { AgentIdentity, TaskRecord } from '../../src/datastore/index.js';
import { expectWritError, sels, TD, useStore, type OpenStore } from './contract-helpers.js';

const NOW = 1_900_000_000;

function agent(name: string, overrides: Partial<AgentIdentity> = {}): AgentIdentity {
  return {
    name,
    spiffeId: `${TD}/agent/${name}`,
    parentId: `${TD}/host/dev`,
    selectors: sels('unix:uid:1001', 'unix:gid:1001'),
    owner: 'team-docs',
    maxTaskTtl: 1800,
    delegators: ['group:docs', 'user:alice'],
    entryId: `entry-${name}`,
    disabled: false,
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

let n = 0;
function task(agentName: string, overrides: Partial<TaskRecord> = {}): TaskRecord {
  n += 1;
  const id = `task${String(n).padStart(22, 'a')}`.slice(0, 26);
  return {
    id,
    agentName,
    spiffeId: `${TD}/agent/${agentName}/task/${id}`,
    entryId: `entry-task-${n}`,
    parentId: `${TD}/host/dev`,
    selectors: sels('unix:uid:1001', `unix:pid:${1000 + n}`, 'unix:start_time:42'),
    pid: 1000 + n,
    startTime: '42',
    delegation: '{"taskId":"x"}',
    decisionId: `d-${n}`,
    deadline: NOW + 600,
    createdAt: NOW + n,
    status: 'active',
    endedAt: null,
    endReason: null,
    cleanedAt: null,
    ...overrides,
  };
}

export function tasksContract(open: OpenStore): void {
  describe('agent identities', () => {
    const store = useStore(open);

    it('creates, reads, lists by name, updates and deletes them', async () => {
      expect(await store().getAgentIdentity('summarizer')).to.equal(undefined);
      const a = await store().createAgentIdentity(agent('summarizer', { selectors: sels('unix:uid:1001', 'unix:gid:1001', 'unix:uid:1001') }));
      // Selectors come back canonical: sorted, no duplicates.
      expect(a.selectors).to.deep.equal(sels('unix:gid:1001', 'unix:uid:1001'));
      await store().createAgentIdentity(agent('analyst', { delegators: ['any'] }));
      expect(await store().getAgentIdentity('summarizer')).to.deep.equal(a);
      expect((await store().listAgentIdentities()).map((x) => x.name)).to.deep.equal(['analyst', 'summarizer']);
      const off = await store().updateAgentIdentity('summarizer', { disabled: true, entryId: null, updatedAt: NOW + 5 });
      expect(off).to.deep.include({ disabled: true, entryId: null, updatedAt: NOW + 5, owner: 'team-docs', maxTaskTtl: 1800 });
      expect(off.delegators).to.deep.equal(['group:docs', 'user:alice']);
      const on = await store().updateAgentIdentity('summarizer', { disabled: false, entryId: 'e2', updatedAt: NOW + 6 });
      expect(on).to.deep.include({ disabled: false, entryId: 'e2' });
      expect(await store().deleteAgentIdentity('summarizer')).to.equal(true);
      expect(await store().deleteAgentIdentity('summarizer')).to.equal(false);
      expect(await store().getAgentIdentity('summarizer')).to.equal(undefined);
    });

    it('refuses a taken name with ERR_AGENT_IDENTITY_EXISTS and an unknown one on update with ERR_AGENT_IDENTITY_NOT_FOUND', async () => {
      await store().createAgentIdentity(agent('summarizer'));
      await expectWritError(store().createAgentIdentity(agent('summarizer', { owner: 'other' })), 'ERR_AGENT_IDENTITY_EXISTS', /summarizer/);
      expect((await store().getAgentIdentity('summarizer'))!.owner).to.equal('team-docs');
      await expectWritError(store().updateAgentIdentity('nobody', { disabled: true }), 'ERR_AGENT_IDENTITY_NOT_FOUND');
    });
  });

  describe('tasks', () => {
    const store = useStore(open);

    it('stores a task and reads it back whole', async () => {
      const t = task('summarizer');
      const stored = await store().createTask(t);
      expect(stored.selectors).to.deep.equal(sels('unix:pid:' + t.pid, 'unix:start_time:42', 'unix:uid:1001'));
      expect(await store().getTask(t.id)).to.deep.equal(stored);
      expect(await store().getTask('nope')).to.equal(undefined);
    });

    it('never reuses a task id, not even of an ended task', async () => {
      const t = await store().createTask(task('summarizer'));
      await expectWritError(store().createTask({ ...t, agentName: 'other' }), 'ERR_TASK_EXISTS', /never reused/);
      expect(await store().endTask(t.id, NOW + 10, 'done')).to.not.equal(undefined);
      await expectWritError(store().createTask({ ...t, status: 'active', endedAt: null }), 'ERR_TASK_EXISTS');
      expect((await store().getTask(t.id))!.status).to.equal('ended');
    });

    it('ends an active task once: later and concurrent callers get undefined', async () => {
      const t = await store().createTask(task('summarizer'));
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store().endTask(t.id, NOW + 20, `caller ${i}`)));
      const winners = results.filter((r) => r !== undefined);
      expect(winners).to.have.length(1);
      expect(winners[0]).to.deep.include({ status: 'ended', endedAt: NOW + 20, cleanedAt: null });
      expect(await store().endTask(t.id, NOW + 30, 'again')).to.equal(undefined);
      expect(await store().endTask('unknown', NOW, 'x')).to.equal(undefined);
      expect((await store().getTask(t.id))!.endReason).to.equal(winners[0]!.endReason);
    });

    it('filters by agent, status, deadline and cleanup, newest first, with a limit', async () => {
      const a1 = await store().createTask(task('summarizer', { deadline: NOW + 100 }));
      const a2 = await store().createTask(task('summarizer', { deadline: NOW + 900 }));
      const b1 = await store().createTask(task('analyst', { deadline: NOW + 50 }));
      await store().endTask(b1.id, NOW + 1, 'done');
      const ids = (list: TaskRecord[]) => list.map((t) => t.id);
      expect(ids(await store().listTasks())).to.deep.equal([b1.id, a2.id, a1.id]);
      expect(ids(await store().listTasks({ agentName: 'summarizer' }))).to.deep.equal([a2.id, a1.id]);
      expect(ids(await store().listTasks({ status: 'active' }))).to.deep.equal([a2.id, a1.id]);
      expect(ids(await store().listTasks({ status: 'ended' }))).to.deep.equal([b1.id]);
      // Due: active tasks whose deadline has come; the ended one is not due even though its deadline passed.
      expect(ids(await store().listTasks({ dueAt: NOW + 100 }))).to.deep.equal([a1.id]);
      expect(ids(await store().listTasks({ dueAt: NOW + 10_000 }))).to.deep.equal([a2.id, a1.id]);
      expect(ids(await store().listTasks({ uncleaned: true }))).to.deep.equal([b1.id]);
      await store().markTaskCleaned(b1.id, NOW + 2);
      await store().markTaskCleaned(b1.id, NOW + 99);
      expect(await store().listTasks({ uncleaned: true })).to.deep.equal([]);
      expect((await store().getTask(b1.id))!.cleanedAt).to.equal(NOW + 2, 'the first cleanup time is kept');
      expect(ids(await store().listTasks({ limit: 1 }))).to.deep.equal([b1.id]);
    });

    it('keeps tasks as records when their agent identity is deleted', async () => {
      await store().createAgentIdentity(agent('summarizer'));
      const t = await store().createTask(task('summarizer'));
      await store().deleteAgentIdentity('summarizer');
      expect((await store().getTask(t.id))!.agentName).to.equal('summarizer');
    });
  });
}
