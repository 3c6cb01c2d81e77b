/**
 * The whole story of a task, with real processes: `writ server run` and `writ agent run`, an agent
 * identity for uid 65534, and `writ task run --user 65534` starting a small Node script that gets
 * its task X509-SVID over the Workload API (X509Source) and calls a service over mTLS (MtlsClient).
 * The service runs in this test process: createMtlsServer + requirePeer, a Cedar PolicySet that
 * reads the caller's delegation record, and its own DecisionLog. Checked: the allowed action is
 * 200 with the deciding policy ids, another action 403 with the forbid that decided it, every
 * decision is in the service's log and the log verifies; after `writ task end` the service refuses
 * the task's process within 2 s (measured and printed), both the process as it is (its source
 * drops the task SVID, so it calls as the bare agent and the policy denies) and a copy of the task
 * SVID kept by the process (refused by the service's CRL check); the server's audit log tells the
 * story, verifies, and a one-byte edit in a copy is found. Then disabling the agent takes its
 * identity away while the operator's own uid keeps its SVID. (What tasks.test.ts covers already,
 * the command's exit ending its task and the disabled agent's stream, is not repeated here.)
 */
import { expect } from 'chai';
import express from 'express';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type https from 'node:https';
import { type AuditRecord, DecisionLog, readAudit, verifyAudit } from '../../src/audit/index.js';
import type { WritError } from '../../src/errors.js';
import { PolicySet } from '../../src/policy/index.js';
import { authorizeMemberOf, createMtlsServer, requirePeer } from '../../src/tls/index.js';
import { X509Source } from '../../src/workloadapi/index.js';
import { type AgentHandle, ROOT, type ServerHandle, WRIT_BIN, startAgent, startServer } from '../helpers/writ-process.js';
import { type Answer, JsonLines, type Line, TASK_SERVICE_WORKER } from '../helpers/task-worker.js';
import { until } from '../helpers/wait.js';

const ALIAS = 'spiffe://example.org/host/task-service-e2e';
const AGENT_ID = 'spiffe://example.org/agent/summarizer';
const SERVICE_ID = 'spiffe://example.org/service/tickets';
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
/** The stated target for "task end → the service refuses the task's process". */
const REFUSAL_TARGET_MS = 2000;

const POLICY = `
@id("summarize-for-delegated-tasks")
permit (principal, action == Writ::Action::"summarize", resource is Writ::Ticket)
when {
  principal.kind == "task" &&
  principal in Writ::Agent::"${AGENT_ID}" &&
  context has delegation &&
  context.delegation.purpose != "" &&
  context.delegation.requester.id != "" &&
  context.time < context.delegation.deadline
};
@id("only-summarize")
forbid (principal, action, resource) unless { action == Writ::Action::"summarize" };
`;

const hex = (s: string) => s.toLowerCase().replace(/^(00)+/, '');

describe('e2e: a task calls a service over mTLS, is judged by Cedar, and is refused once ended', function () {
  this.timeout(90_000);
  let srv: ServerHandle | undefined;
  let agent: AgentHandle | undefined;
  let dir: string | undefined;
  let source: X509Source | undefined;
  let service: https.Server | undefined;
  let decisions: DecisionLog | undefined;
  let decisionsPath: string;
  let serviceUrl: string;
  let run: JsonLines | undefined;
  /** Every request the service decided, and every connection its peer check refused. */
  const handled: Answer[] = [];
  const refusedConnections: WritError[] = [];
  let taskId: string;

  const cliOk = async (args: string[]) => {
    const r = await srv!.cli(args);
    expect(r.code, `writ ${args.join(' ')}: ${r.stderr}`).to.equal(0);
    return r.stdout;
  };

  before(async function () {
    if (!isRoot) {
      process.stderr.write('      (pending: the task process runs as uid 65534, which needs root; CI runs as root)\n');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'writ-task-service-e2e-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'worker.mjs'), TASK_SERVICE_WORKER);
    chmodSync(join(dir, 'worker.mjs'), 0o644);
    srv = await startServer();
    // The agent's own interval stays at 5 s: the server's sync hint (500 ms while tasks run or just ended) bounds the refusal.
    agent = await startAgent(srv, { alias: ALIAS, syncInterval: '5s' });
    await cliOk(['agent-identity', 'create', 'summarizer', '--selector', `unix:uid:${NOBODY}`, '--owner', 'team-docs', '--max-task-ttl', '30m', '--delegators', 'user:alice@example.com', '--parent', ALIAS]);
    // The service is this process (root): an ordinary workload entry for uid 0.
    await cliOk(['entry', 'create', '--parent-id', ALIAS, '--spiffe-id', SERVICE_ID, '--selector', 'unix:uid:0']);
    source = await until('the service SVID', async () => X509Source.open({ address: `unix://${agent!.socketPath}`, timeoutMs: 3000 }).catch(() => undefined), 30_000, 500);
    expect(source.getX509Svid().id.toString()).to.equal(SERVICE_ID);

    const policies = await PolicySet.fromText(POLICY);
    decisionsPath = join(dir, 'decisions.log');
    decisions = await DecisionLog.open(decisionsPath);
    const log = decisions;
    const app = express();
    app.use(requirePeer());
    app.post('/tickets/:id/:action', async (req, res) => {
      const peer = req.peer!;
      const action = String(req.params.action);
      const resource = { type: 'Writ::Ticket', id: String(req.params.id) };
      const result = policies.authorize({ principal: peer.spiffeId, action, resource, context: { ...(peer.delegation ? { delegation: peer.delegation } : {}) } });
      await log.record({ spiffeId: peer.spiffeId, ...(peer.delegation ? { delegation: peer.delegation } : {}) }, { action, resource }, result);
      const answer: Answer = { decision: result.decision, policyIds: result.policyIds, principal: peer.spiffeId.toString(), serial: peer.serial };
      if (peer.delegation) Object.assign(answer, { taskId: peer.delegation.taskId, decisionId: peer.delegation.decisionId });
      handled.push(answer);
      res.status(result.decision === 'allow' ? 200 : 403).json(answer);
    });
    // The connection check admits any SVID of the trust domain; what a caller may do is the policy's.
    service = createMtlsServer(source, authorizeMemberOf('example.org'), app, { onRefused: (e) => void refusedConnections.push(e) });
    await new Promise<void>((r) => service!.listen(0, '127.0.0.1', r));
    serviceUrl = `https://127.0.0.1:${(service.address() as AddressInfo).port}`;
  });

  after(async () => {
    if (run) {
      // SIGTERM first: the CLI ends the task and passes the signal on to its command.
      if (run.proc.exitCode === null && run.proc.signalCode === null) run.proc.kill('SIGTERM');
      await Promise.race([run.exited, new Promise((r) => setTimeout(r, 5000))]);
      run.kill();
      await run.exited;
      const pid = run.lines.find((l) => l.event === 'ready')?.pid;
      let cmdline = '';
      try {
        cmdline = pid ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      } catch {
        // gone already
      }
      if (pid && cmdline.includes('worker.mjs')) process.kill(pid, 'SIGKILL');
    }
    service?.closeAllConnections();
    await new Promise<void>((r) => (service ? service.close(() => r()) : r()));
    source?.close();
    await decisions?.close().catch(() => undefined);
    await agent?.cleanup();
    await srv?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('allows the delegated action with the permit that decided it, forbids another, and logs every decision', async () => {
    run = new JsonLines(
      spawn(
        process.execPath,
        [WRIT_BIN, 'task', 'run', '--agent', 'summarizer', '--requested-by', 'alice@example.com', '--ttl', '10m', '--purpose', 'summarize ticket T-4411', '--user', String(NOBODY), '--socket-path', srv!.socketPath, '--', process.execPath, join(dir!, 'worker.mjs'), agent!.socketPath, serviceUrl, SERVICE_ID],
        { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    const ready = await run.waitFor('the task process to hold its task SVID', (l) => l.event === 'ready' || l.event === 'error');
    expect(ready.event, JSON.stringify(ready)).to.equal('ready');
    taskId = /task ([a-z2-7]{26}) started/.exec(run.stderr)![1]!;
    expect(ready.id).to.equal(`${AGENT_ID}/task/${taskId}`);
    const [allowed, denied] = await Promise.all(['summarize', 'delete'].map((a) => run!.waitFor(`the ${a} answer`, (l) => l.event === 'call' && l.action === a)));
    expect(allowed!.status, JSON.stringify(allowed)).to.equal(200);
    expect(allowed!.body).to.deep.include({ decision: 'allow', policyIds: ['summarize-for-delegated-tasks'], principal: ready.id, taskId });
    expect(denied!.status, JSON.stringify(denied)).to.equal(403);
    expect(denied!.body).to.deep.include({ decision: 'deny', policyIds: ['only-summarize'], principal: ready.id });

    const records: AuditRecord[] = [];
    for await (const r of readAudit(decisionsPath)) records.push(r);
    expect(records.map((r) => [r.kind, (r.details as { action: string }).action, r.decision?.effect, r.decision?.policyIds])).to.deep.equal([
      ['policy.decision', 'summarize', 'allow', ['summarize-for-delegated-tasks']],
      ['policy.decision', 'delete', 'deny', ['only-summarize']],
    ]);
    expect(records[0]!.actors).to.deep.include({ workload: ready.id, agent: AGENT_ID, task: taskId, requester: { id: 'alice@example.com', authenticatedBy: 'unverified' }, approver: { id: 'root', authenticatedBy: 'os-user' } });
    expect((await verifyAudit(decisionsPath)).ok).to.equal(true);
  });

  it('refuses the task process within 2 s of `task end`, with its SVID as the process has it and with a copy it kept', async function () {
    expect(taskId, 'the test before did not start a task (its failure says why)').to.be.a('string');
    run!.proc.stdin!.write('go\n');
    for (const c of ['live', 'kept'] as const) await run!.waitFor(`a 200 through the ${c} client`, (l) => l.event === 'tick' && l.client === c && l.status === 200);
    await cliOk(['task', 'end', taskId, '--reason', 'summary delivered']);
    const endedAt = Date.now();
    await run!.waitFor('both clients refused 5 times in a row', (l) => l.event === 'done', 30_000);
    expect(await run!.exited, run!.stderr).to.equal(0);

    // What bounds this: the server tells every agent to sync within 500 ms while tasks run and
    // for 5 s after one ends (TASK_SYNC_HINT_MS, whatever the agent's 5 s sync_interval); that
    // sync brings the entry's removal and the new CRL together; the agent pushes both on the
    // open FetchX509SVID streams, so the task process's X509Source drops its task SVID and the
    // service's X509Source gets the CRL; the next handshake is then judged on the new state:
    // the bare agent ID gets no permit (403), the kept task SVID fails the CRL check and its
    // connection is closed. So about one hint period plus a sync round trip, plus the ~50 ms
    // between requests.
    // The CLI returns some tens of ms after the server ended the task (its answer, then the CLI
    // process exiting), and an agent sync may fall in between; the server's own task.end log line
    // is the moment the task ended, so both are reported.
    const logged = await srv!.waitForLog((r) => r.event === 'task.end' && r.task_id === taskId, 5000);
    const serverEndedAt = Number(logged.time);
    const ticks = run!.lines.filter((l) => l.event === 'tick');
    const measured: Record<string, number> = {};
    const fromServer: Record<string, number> = {};
    const how = (l: Line) => (l.status === 403 ? '403' : (l.error ?? `HTTP ${l.status}`));
    const firstRefusal: Record<string, string> = {};
    for (const c of ['live', 'kept'] as const) {
      const mine = ticks.filter((l) => l.client === c);
      const first = mine.findIndex((l) => l.status !== 200);
      expect(first, `${c}: a refusal`).to.be.greaterThan(0);
      expect(mine.slice(first).every((l) => l.status !== 200), `${c}: once refused, always refused`).to.equal(true);
      measured[c] = mine[first]!.t! - endedAt;
      fromServer[c] = mine[first]!.t! - serverEndedAt;
      firstRefusal[c] = how(mine[first]!);
    }
    console.log(
      `      measured: service refusal after the server ended the task: ${fromServer.live} ms (the process's own source, first refusal ${firstRefusal.live}) / ${fromServer.kept} ms (its kept task SVID, ${firstRefusal.kept}); ` +
        `after \`task end\` returned: ${measured.live} / ${measured.kept} ms; agent sync_interval 5s`,
    );
    for (const c of ['live', 'kept']) {
      expect(measured[c], `${c}, from \`task end\` returning`).to.be.below(REFUSAL_TARGET_MS);
      expect(fromServer[c], `${c}, from the server's task.end`).to.be.within(0, REFUSAL_TARGET_MS);
    }

    // The two Workload API streams (the process's and the service's) get the same agent update
    // in either order: the process may still present its task SVID once after the service has the
    // CRL (connection closed) before its source drops it; from then on it calls as the bare agent.
    const live = ticks.filter((l) => l.client === 'live' && l.status !== 200);
    expect(live.every((l) => l.status === 403 || l.error === 'ERR_TLS_CONNECTION'), JSON.stringify(live)).to.equal(true);
    expect(live.at(-1)!.status).to.equal(403);
    expect(live.at(-1)!.body).to.deep.include({ decision: 'deny', policyIds: [], principal: AGENT_ID });
    const kept = ticks.filter((l) => l.client === 'kept' && l.status !== 200);
    expect(kept.every((l) => l.error === 'ERR_TLS_CONNECTION'), JSON.stringify(kept)).to.equal(true);
    expect(refusedConnections.length).to.be.greaterThan(0);
    expect(refusedConnections.map((e) => [e.code, (e.details as { reason?: string }).reason])).to.deep.include(['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_REVOKED']);

    // Every request that reached a handler is one record in the service's log, and the log verifies.
    const v = await verifyAudit(decisionsPath);
    expect(v.ok && v.records).to.equal(handled.length);
  });

  it('tells the story in the server audit log, which verifies; a one-byte edit in a copy is named by its seq', async function () {
    expect(taskId, 'the first test did not start a task (its failure says why)').to.be.a('string');
    const { records } = JSON.parse(await cliOk(['audit', 'show', '--task', taskId, '--output', 'json'])) as { records: AuditRecord[] };
    // A second end (the CLI of `task run` ends its task when the command exits) is a refused end, also on record.
    const later = records.filter((r) => r.kind === 'task.refused');
    for (const r of later) expect(r.details).to.deep.include({ action: 'task.end', code: 'ERR_TASK_ENDED' });
    records.splice(0, records.length, ...records.filter((r) => r.kind !== 'task.refused'));
    const kinds = records.map((r) => r.kind);
    expect(kinds[0]).to.equal('task.start');
    expect(kinds[kinds.length - 1]).to.equal('task.end');
    expect(kinds.slice(1, -1).length, 'at least one issuance between start and end').to.be.greaterThan(0);
    expect(new Set(kinds.slice(1, -1))).to.deep.equal(new Set(['svid.issue']));
    const start = records[0]!;
    const end = records[records.length - 1]!;
    const issuedSerials = records.filter((r) => r.kind === 'svid.issue').flatMap((r) => (r.details as { serials: string[] }).serials.map(hex));
    const decisionId = handled.find((h) => h.taskId === taskId)!.decisionId;
    expect(start.actors).to.deep.equal({ requester: { id: 'alice@example.com', authenticatedBy: 'unverified' }, approver: { id: 'root', authenticatedBy: 'os-user' }, agent: AGENT_ID, task: taskId });
    expect(start.decision).to.deep.include({ effect: 'allow', reason: 'no policy', id: decisionId });
    expect(start.details).to.deep.include({ purpose: 'summarize ticket T-4411', spiffe_id: `${AGENT_ID}/task/${taskId}` });
    expect(end.actors).to.deep.include({ agent: AGENT_ID, task: taskId });
    expect(end.decision?.id).to.equal(decisionId);
    const endDetails = end.details as { reason: string; ended_by: { id: string }; revoked_serials: string[] };
    expect(endDetails).to.deep.include({ reason: 'summary delivered', ended_by: { id: 'root', authenticatedBy: 'os-user' } });
    // Issuance: the serial the service saw is the one the server signed for the task and revoked at its end.
    const seen = [...new Set(handled.filter((h) => h.taskId === taskId).map((h) => hex(h.serial)))];
    expect(seen).to.have.length(1);
    expect(endDetails.revoked_serials.map(hex)).to.include(seen[0]);
    expect(issuedSerials, 'the svid.issue records name it').to.include(seen[0]);

    const ok = await srv!.cli(['audit', 'verify']);
    expect(ok.code, ok.stderr).to.equal(0);
    const copy = join(dir!, 'audit-copy.log');
    copyFileSync(join(srv!.dir, 'data', 'audit.log'), copy);
    const text = readFileSync(copy);
    // The record's own line: keys are in canonical order, so its details come before its hash.
    const hashAt = text.indexOf(`"hash":"${start.hash}"`);
    expect(hashAt, 'the task.start record in the copy').to.be.greaterThan(0);
    const at = text.indexOf('T-4411', text.lastIndexOf('\n', hashAt) + 1);
    expect(at, 'its purpose').to.be.within(0, hashAt);
    text[at + 2] = '5'.charCodeAt(0); // T-4411 -> T-4511: one byte
    writeFileSync(copy, text);
    const bad = await srv!.cli(['audit', 'verify', '--file', copy]);
    expect(bad.code).to.not.equal(0);
    expect(bad.stderr).to.match(new RegExp(`^ERR_AUDIT_HASH: .*\\(record ${start.seq}\\)`));
  });

  it('disabling the agent takes its identity away and leaves the operator\'s own uid its SVID', async function () {
    expect(taskId, 'the first test did not start a task (its failure says why)').to.be.a('string');
    await cliOk(['agent-identity', 'disable', 'summarizer']);
    await until('uid 65534 to get no identity', async () => {
      const f = await agent!.api(['fetch', 'x509'], { uid: NOBODY, gid: NOBODY });
      return /^ERR_WORKLOAD_NO_IDENTITY: /.test(f.stderr) ? true : undefined;
    }, 15_000, 250);
    const mine = await agent!.api(['fetch', 'x509', '--output', 'json']);
    expect(mine.code, mine.stderr).to.equal(0);
    expect(mine.stdout).to.contain(SERVICE_ID);
    expect(source!.getX509Svid().id.toString()).to.equal(SERVICE_ID);
  });
});
