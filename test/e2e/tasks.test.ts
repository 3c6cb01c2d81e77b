/**
 * Agents and tasks with real processes: `writ server run` and `writ agent run` on temporary
 * sockets and loopback ports, an agent identity for uid 65534, and task processes under uid 65534
 * that watch the Workload API themselves (a small script on writ's client library). Checked: the
 * task process gets its task SVID (first, with the delegation extension, ending at the deadline);
 * `task end` drops it from the stream and puts its serial on the CRL; the command's exit ends the
 * task and its exit code passes through; the deadline ends a task; a disabled agent gets nothing;
 * bad inputs are refused with their codes; the audit log verifies and a tampered copy does not.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeDelegationFromCertificate } from '../../src/policy/index.js';
import { type AgentHandle, ROOT, type ServerHandle, WRIT_BIN, runWrit, startAgent, startServer } from '../helpers/writ-process.js';
import { JsonLines } from '../helpers/task-worker.js';

const ALIAS = 'spiffe://example.org/host/tasks-e2e';
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

interface Update {
  svids?: Array<{ id: string; serial: string; notAfter: number; pem: string }>;
  crls?: string[];
  error?: string;
}

/** The task's workload: watches the Workload API and prints every update as a JSON line; SIGTERM exits 7. */
const WORKLOAD = `
import { WorkloadApiClient } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'workloadapi', 'index.js'))};
const client = new WorkloadApiClient({ address: 'unix://' + process.argv[2] });
const w = client.watchX509Context(
  (c) => console.log(JSON.stringify({ svids: c.svids.map((s) => ({ id: s.id.toString(), serial: s.leaf.serialNumber.toLowerCase(), notAfter: s.expiresAt.getTime(), pem: s.chainPem() })), crls: c.crls.map((d) => d.toString('base64')) })),
  (e) => console.log(JSON.stringify({ error: e.code })),
);
process.on('SIGTERM', () => { w.stop(); client.close(); process.exit(7); });
`;

/** A process whose stdout JSON lines (Updates) are collected as they come. */
class Lines extends JsonLines<Update> {}

const taskSvid = (u: Update) => u.svids?.find((s) => s.id.includes('/agent/summarizer/task/'));
/** Serials as lower-case hex without leading zero bytes (the CRL and the certificate may pad differently). */
const hex = (s: string) => s.toLowerCase().replace(/^(00)+/, '');
const crlSerials = (u: Update) => (u.crls ?? []).flatMap((b64) => new x509.X509Crl(Buffer.from(b64, 'base64')).entries.map((e) => hex(e.serialNumber)));

describe('e2e: agent identities and tasks', function () {
  this.timeout(180_000);
  let srv: ServerHandle;
  let agent: AgentHandle;
  let dir: string;
  let script: string;
  const procs: Lines[] = [];

  /** `args` with --socket-path before a `--` (after it, everything belongs to the command). */
  const withSocket = (args: string[]) => {
    const i = args.indexOf('--');
    return i < 0 ? [...args, '--socket-path', srv.socketPath] : [...args.slice(0, i), '--socket-path', srv.socketPath, ...args.slice(i)];
  };
  const writ = (args: string[]) => new Lines(spawn(process.execPath, [WRIT_BIN, ...withSocket(args)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  const cliOk = async (args: string[]) => {
    const r = await srv.cli(args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
    return r.stdout;
  };
  const startArgs = (over: Record<string, string> = {}) =>
    Object.entries({ '--agent': 'summarizer', '--requested-by': 'alice@example.com', '--ttl': '10m', '--purpose': 'summarize the Q3 docs', ...over }).flat();

  before(async function () {
    if (!isRoot) {
      process.stderr.write('      (pending: task processes run as uid 65534, which needs root; CI runs as root)\n');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'writ-tasks-e2e-'));
    chmodSync(dir, 0o755);
    script = join(dir, 'workload.mjs');
    writeFileSync(script, WORKLOAD);
    chmodSync(script, 0o644);
    srv = await startServer();
    // The agent's own interval stays at 5 s: the server's sync hint is what makes task changes quick.
    agent = await startAgent(srv, { alias: ALIAS, syncInterval: '5s' });
    await cliOk(['agent-identity', 'create', 'summarizer', '--selector', `unix:uid:${NOBODY}`, '--owner', 'team-docs', '--max-task-ttl', '30m', '--delegators', 'user:alice@example.com', '--parent', ALIAS]);
  });
  after(async () => {
    for (const p of procs) p.kill();
    await agent?.cleanup();
    await srv?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a command as a task: it gets its task SVID first, with the delegation record; `task end` drops it and revokes its serial', async () => {
    const run = writ(['task', 'run', ...startArgs(), '--user', String(NOBODY), '--', process.execPath, script, agent.socketPath]);
    procs.push(run);
    const got = await run.waitFor('the task SVID in the stream', (u) => taskSvid(u) !== undefined);
    const id = /task ([a-z2-7]{26}) started/.exec(run.stderr)![1]!;
    const svid = taskSvid(got)!;
    expect(got.svids![0]!.id, 'the task SVID is the default one').to.equal(`spiffe://example.org/agent/summarizer/task/${id}`);
    expect(got.svids!.map((s) => s.id)).to.include('spiffe://example.org/agent/summarizer');
    const record = decodeDelegationFromCertificate(svid.pem);
    expect(record).to.deep.include({ taskId: id, agent: 'spiffe://example.org/agent/summarizer', purpose: 'summarize the Q3 docs' });
    expect(record!.requester).to.deep.equal({ id: 'alice@example.com', authenticatedBy: 'unverified' });
    expect(record!.approver).to.deep.equal({ id: 'root', authenticatedBy: 'os-user' });
    expect(svid.notAfter).to.be.at.most(record!.deadline * 1000, 'the SVID does not outlive the task');
    const shown = JSON.parse(await cliOk(['task', 'show', id, '--output', 'json'])) as { task: { status: string; pid: number } };
    expect(shown.task.status).to.equal('active');

    await cliOk(['task', 'end', id, '--reason', 'work done']);
    const t0 = Date.now();
    const after = await run.waitFor('an update without the task SVID', (u) => run.lines.indexOf(u) > run.lines.indexOf(got) && u.svids !== undefined && taskSvid(u) === undefined);
    const dropMs = Date.now() - t0;
    process.stderr.write(`      (measured: the task SVID left the Workload API stream ${dropMs} ms after \`task end\` returned; agent sync_interval 5s)\n`);
    expect(after.svids!.map((s) => s.id)).to.deep.equal(['spiffe://example.org/agent/summarizer']);
    const onCrl = await run.waitFor('the serial on the CRL of the stream', (u) => crlSerials(u).includes(hex(svid.serial)));
    expect(onCrl).to.not.equal(undefined);
    const crlPem = await cliOk(['bundle', 'show', '--format', 'crl']);
    const blocks = crlPem.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? [];
    expect(blocks.flatMap((b) => new x509.X509Crl(b).entries.map((e) => hex(e.serialNumber)))).to.include(hex(svid.serial));
    // The command goes on without its task identity; SIGTERM to the CLI reaches it, and its exit code comes back.
    run.proc.kill('SIGTERM');
    expect(await run.exited).to.equal(7);
    const ended = JSON.parse(await cliOk(['task', 'show', id, '--output', 'json'])) as { task: { status: string; end_reason: string } };
    expect(ended.task).to.deep.include({ status: 'ended', end_reason: 'work done' });
  });

  it('ends the task when its command exits, passing the exit code through', async () => {
    const run = writ(['task', 'run', ...startArgs(), '--user', String(NOBODY), '--', process.execPath, '-e', 'process.exit(3)']);
    procs.push(run);
    expect(await run.exited).to.equal(3);
    const id = /task ([a-z2-7]{26}) started/.exec(run.stderr)![1]!;
    const t = JSON.parse(await cliOk(['task', 'show', id, '--output', 'json'])) as { task: { status: string; end_reason: string; pid: number } };
    expect(t.task).to.deep.include({ status: 'ended', end_reason: 'process exited with code 3' });
    expect(JSON.parse(await cliOk(['task', 'list', '--output', 'json'])).tasks).to.deep.equal([], 'no active task is left');
  });

  it('ends the task at once on Ctrl-C (SIGINT to the CLI), while the command finishes on its own', async () => {
    const run = writ(['task', 'run', ...startArgs(), '--user', String(NOBODY), '--', process.execPath, script, agent.socketPath]);
    procs.push(run);
    const got = await run.waitFor('the task SVID in the stream', (u) => taskSvid(u) !== undefined);
    const id = /task ([a-z2-7]{26}) started/.exec(run.stderr)![1]!;
    run.proc.kill('SIGINT');
    await run.waitFor('the task SVID to leave the stream', (u) => run.lines.indexOf(u) > run.lines.indexOf(got) && u.svids !== undefined && taskSvid(u) === undefined);
    const t = JSON.parse(await cliOk(['task', 'show', id, '--output', 'json'])) as { task: { status: string; end_reason: string; pid: number } };
    expect(t.task).to.deep.include({ status: 'ended', end_reason: 'SIGINT received' });
    expect(run.proc.exitCode, 'the CLI waits for its command').to.equal(null);
    process.kill(t.task.pid, 'SIGTERM');
    expect(await run.exited).to.equal(7);
  });

  it('pins `task start --pid` to a running process, and ends the task at its deadline', async () => {
    const wl = new Lines(spawn(process.execPath, [script, agent.socketPath], { stdio: ['ignore', 'pipe', 'pipe'], uid: NOBODY, gid: NOBODY }));
    procs.push(wl);
    await wl.waitFor('the agent SVID', (u) => (u.svids?.length ?? 0) > 0);
    const out = JSON.parse(await cliOk(['task', 'start', ...startArgs({ '--ttl': '4s' }), '--pid', String(wl.proc.pid), '--output', 'json'])) as { task: { id: string; deadline: number } };
    const got = await wl.waitFor('the task SVID', (u) => taskSvid(u) !== undefined);
    expect(taskSvid(got)!.notAfter).to.equal(out.task.deadline * 1000, 'capped at the deadline');
    await wl.waitFor('the task SVID to go at the deadline', (u) => wl.lines.indexOf(u) > wl.lines.indexOf(got) && u.svids !== undefined && taskSvid(u) === undefined, 30_000);
    const t = JSON.parse(await cliOk(['task', 'show', out.task.id, '--output', 'json'])) as { task: { status: string; end_reason: string } };
    expect(t.task).to.deep.include({ status: 'ended', end_reason: 'deadline' });
    wl.kill();
  });

  it('refuses bad inputs with their codes', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['task', 'start', ...startArgs({ '--agent': 'nobody-here' }), '--pid', String(process.pid)], /^ERR_TASK_AGENT_UNKNOWN: /],
      [['task', 'start', ...startArgs({ '--ttl': '2h' }), '--pid', String(process.pid)], /^ERR_TASK_TTL_TOO_LONG: /],
      [['task', 'start', ...startArgs({ '--requested-by': 'mallory@example.com' }), '--pid', String(process.pid)], /^ERR_TASK_DELEGATOR_NOT_ALLOWED: /],
      [['task', 'start', ...startArgs(), '--pid', '4194303'], /^ERR_TASK_PROCESS: /],
      [['task', 'start', ...startArgs()], /^ERR_TASK_INVALID: /],
      [['task', 'end', 'zzzzzzzzzzzzzzzzzzzzzzzzzz'], /^ERR_TASK_NOT_FOUND: /],
      [['task', 'show', 'not-a-task'], /^ERR_TASK_NOT_FOUND: /],
      [['agent-identity', 'create', 'Bad Name', '--selector', 'unix:uid:1', '--owner', 'x'], /^ERR_AGENT_IDENTITY_INVALID: /],
      [['agent-identity', 'show', 'nobody-here'], /^ERR_AGENT_IDENTITY_NOT_FOUND: /],
    ];
    for (const [args, want] of cases) {
      const r = await srv.cli(args);
      expect(r.code, args.join(' ')).to.not.equal(0);
      expect(r.stderr, args.join(' ')).to.match(want);
    }
    // A refused `task run` never runs its command.
    const marker = join(dir, 'ran');
    const r = await runWrit(withSocket(['task', 'run', ...startArgs({ '--ttl': '2h' }), '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`]));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/^ERR_TASK_TTL_TOO_LONG: /m);
    expect(() => readFileSync(marker)).to.throw();
  });

  it('keeps an audit log that names every start, end and refusal, verifies, and catches an edit', async () => {
    const shown = JSON.parse(await cliOk(['audit', 'show', '--agent', 'summarizer', '--output', 'json'])) as { records: Array<{ kind: string; actors?: { task?: string } }> };
    const kinds = shown.records.map((r) => r.kind);
    expect(kinds).to.include.members(['agent-identity.create', 'task.start', 'task.end', 'task.refused']);
    const ok = await srv.cli(['audit', 'verify']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/chain intact/);
    const copy = join(dir, 'audit-copy.log');
    copyFileSync(join(srv.dir, 'data', 'audit.log'), copy);
    const lines = readFileSync(copy, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('alice@example.com', 'bob@example.com');
    writeFileSync(copy, lines.join('\n'));
    const bad = await srv.cli(['audit', 'verify', '--file', copy]);
    expect(bad.code).to.not.equal(0);
    expect(bad.stderr).to.match(/^ERR_AUDIT_(HASH|PARSE): .*Line 3 \(record 3\)/);
  });

  it('gives a disabled agent nothing: its SVID leaves the stream, and no task starts', async () => {
    const wl = new Lines(spawn(process.execPath, [script, agent.socketPath], { stdio: ['ignore', 'pipe', 'pipe'], uid: NOBODY, gid: NOBODY }));
    procs.push(wl);
    await wl.waitFor('the agent SVID', (u) => (u.svids?.length ?? 0) > 0);
    await cliOk(['agent-identity', 'disable', 'summarizer']);
    await wl.waitFor('PermissionDenied for the disabled agent', (u) => u.error === 'ERR_WORKLOAD_NO_IDENTITY');
    const r = await srv.cli(['task', 'start', ...startArgs(), '--pid', String(wl.proc.pid)]);
    expect(r.stderr).to.match(/^ERR_TASK_AGENT_DISABLED: /);
    const f = await agent.api(['fetch', 'x509'], { uid: NOBODY, gid: NOBODY });
    expect(f.stderr).to.match(/^ERR_WORKLOAD_NO_IDENTITY: /);
    wl.kill();
  });
});
