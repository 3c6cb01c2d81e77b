import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AuditLog, GENESIS_PREV, processStartTime, readAudit, recordHash, verifyAudit } from '../../src/audit/index.js';
import { ManualClock } from '../../src/clock.js';
import { canonicalJson } from '../../src/policy/index.js';
import { until } from '../helpers/wait.js';
import { TempDir, child, codeOfAsync, sampleInput, writeSampleLog } from './helpers.js';

describe('audit/log: the append-only hash-chained log', () => {
  const tmp = new TempDir();
  let dir: string;
  let n = 0;
  const fresh = () => join(dir, `log-${++n}.jsonl`);
  const open: AuditLog[] = [];

  before(async () => {
    dir = await tmp.make();
  });
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close().catch(() => undefined);
  });
  after(() => tmp.remove());

  async function openLog(path: string, opts: Parameters<typeof AuditLog.open>[1] = {}): Promise<AuditLog> {
    const log = await AuditLog.open(path, opts);
    open.push(log);
    return log;
  }

  it('appends records with seq, clock time, prev and hash, as canonical JSON lines in a 0600 file', async () => {
    const path = fresh();
    const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));
    const log = await openLog(path, { clock });
    expect([log.seq, log.head]).to.deep.equal([0, GENESIS_PREV]);
    const a = await log.append(sampleInput(0));
    clock.advance(1500);
    const b = await log.append({ kind: 'task.end', actors: { task: 't-1' } });
    expect([a.seq, a.time, a.prev]).to.deep.equal([1, '2026-03-01T12:00:00.000Z', GENESIS_PREV]);
    expect([b.seq, b.time, b.prev]).to.deep.equal([2, '2026-03-01T12:00:01.500Z', a.hash]);
    expect(recordHash(a)).to.equal(a.hash);
    expect(log.head).to.equal(b.hash);
    const lines = (await readFile(path, 'utf8')).split('\n');
    expect(lines).to.deep.equal([canonicalJson(a), canonicalJson(b), '']);
    expect((await stat(path)).mode & 0o777).to.equal(0o600);
    expect((await stat(`${path}.lock`)).mode & 0o777).to.equal(0o600);
  });

  it('resumes seq and prev when reopened, and the chain verifies across reopenings', async () => {
    const path = fresh();
    await writeSampleLog(path, 5);
    const log = await openLog(path);
    expect(log.seq).to.equal(5);
    const r = await log.append(sampleInput(5));
    expect(r.seq).to.equal(6);
    await log.close();
    const v = await verifyAudit(path);
    expect(v).to.deep.equal({ ok: true, records: 6, head: r.hash });
  });

  it('group-commits 1,000 concurrent appends: seq 1..1000 exactly once, in fewer commits, and the chain verifies', async () => {
    const path = fresh();
    const log = await openLog(path);
    const records = await Promise.all(Array.from({ length: 1000 }, (_, i) => log.append({ kind: 'test.concurrent', details: { i } })));
    expect(records.map((r) => r.seq)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(records.map((r) => r.details?.i)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i));
    expect(log.commits).to.be.lessThan(1000);
    const more = await Promise.all([log.append({ kind: 'test.concurrent' }), log.append({ kind: 'test.concurrent' })]);
    expect(more.map((r) => r.seq)).to.deep.equal([1001, 1002]);
    await log.close();
    const v = await verifyAudit(path);
    expect(v.ok && v.records).to.equal(1002);
  });

  it('refuses a second writer in this process and in another one, until the first closes', async () => {
    const path = fresh();
    const log = await openLog(path);
    expect(await codeOfAsync(AuditLog.open(path))).to.equal('ERR_AUDIT_LOCKED');
    const other = child('try', path);
    await other.done;
    expect(JSON.parse(other.out())).to.deep.equal({ code: 'ERR_AUDIT_LOCKED' });
    await log.close();
    const again = child('try', path);
    await again.done;
    expect(JSON.parse(again.out())).to.deep.equal({ opened: true });
  });

  it('is refused to this process while another process holds it', async () => {
    const path = fresh();
    const holder = child('hold', path);
    try {
      await until('the holder to open the log', async () => (holder.out().includes('ready') ? true : undefined), 15_000, 50);
      expect(await codeOfAsync(AuditLog.open(path))).to.equal('ERR_AUDIT_LOCKED');
      holder.proc.stdin.end();
      expect(await holder.done).to.equal(0);
      await openLog(path);
    } finally {
      holder.proc.kill('SIGKILL');
    }
  });

  it('takes over a stale lock (dead pid, or a reused pid with another start time) but not another host\'s', async () => {
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const stale = [
      { pid: dead.pid, start: '1', host: hostname() },
      { pid: process.pid, start: String(Number(processStartTime(process.pid) ?? 0) + 1), host: hostname() },
    ];
    for (const info of stale) {
      const path = fresh();
      await writeFile(`${path}.lock`, JSON.stringify(info));
      const log = await openLog(path);
      await log.append({ kind: 'test.lock' });
      await log.close();
      expect((await readdir(dir)).filter((f) => f.includes('.stale-'))).to.deep.equal([]);
    }
    const path = fresh();
    await writeFile(`${path}.lock`, JSON.stringify({ pid: 1, start: null, host: 'elsewhere.example' }));
    expect(await codeOfAsync(AuditLog.open(path))).to.equal('ERR_AUDIT_LOCKED');
  });

  it('refuses to open over a torn last line when asked, and verify names it', async () => {
    const path = fresh();
    await writeSampleLog(path, 3);
    await appendFile(path, '{"actors":{"agent":"spiffe://exa');
    expect(await codeOfAsync(AuditLog.open(path, { torn: 'refuse' }))).to.equal('ERR_AUDIT_TORN');
    const v = await verifyAudit(path);
    expect(v).to.include({ ok: false, code: 'ERR_AUDIT_TORN', line: 4, seq: 4, records: 3 });
  });

  it('by default saves a torn last line aside, cuts it off, says so, and records the recovery in the chain', async () => {
    const path = fresh();
    await writeSampleLog(path, 3);
    const torn = '{"actors":{"agent":"spiffe://exa';
    await appendFile(path, torn);
    const warnings: Record<string, unknown>[] = [];
    const log = await openLog(path, { onWarning: (_m, d) => warnings.push(d) });
    expect(log.recovered?.bytes).to.equal(torn.length);
    expect(warnings).to.have.length(1);
    expect(await readFile(log.recovered!.savedTo, 'utf8')).to.equal(torn);
    expect((await stat(log.recovered!.savedTo)).mode & 0o777).to.equal(0o600);
    expect(log.seq).to.equal(4);
    await log.close();
    const recs = [];
    for await (const r of readAudit(path, { kind: 'audit.recovered' })) recs.push(r);
    expect(recs.map((r) => [r.seq, r.details?.tornBytes])).to.deep.equal([[4, torn.length]]);
    expect((await verifyAudit(path)).ok).to.equal(true);
  });

  it('keeps every acknowledged record when its writer is killed mid-append, and reopens to a verified chain', async function () {
    const path = fresh();
    const writer = child('spam', path);
    try {
      await until('200 acknowledged appends', async () => ((writer.out().match(/^ack /gm)?.length ?? 0) >= 200 ? true : undefined), 15_000, 20);
      writer.proc.kill('SIGKILL');
      await writer.done;
    } finally {
      writer.proc.kill('SIGKILL');
    }
    const acked = Math.max(...[...writer.out().matchAll(/^ack (\d+)$/gm)].map((m) => Number(m[1])));
    const log = await openLog(path);
    expect(log.seq).to.be.at.least(acked);
    await log.close();
    const v = await verifyAudit(path);
    expect(v.ok, JSON.stringify(v)).to.equal(true);
  });

  const invalid: [string, unknown, string][] = [
    ['no kind', { details: {} }, 'ERR_AUDIT_RECORD_INVALID'],
    ['an upper-case kind', { kind: 'Task.Start' }, 'ERR_AUDIT_RECORD_INVALID'],
    ['an unknown member', { kind: 'task.start', seq: 5 }, 'ERR_AUDIT_RECORD_INVALID'],
    ['an agent that is not a SPIFFE ID', { kind: 'task.start', actors: { agent: 'summarizer' } }, 'ERR_AUDIT_RECORD_INVALID'],
    ['a requester with a newline', { kind: 'task.start', actors: { requester: { id: 'a\nb' } } }, 'ERR_AUDIT_RECORD_INVALID'],
    ['a decision that is not allow or deny', { kind: 'policy.decision', decision: { effect: 'maybe' } }, 'ERR_AUDIT_RECORD_INVALID'],
    ['details that are not an object', { kind: 'task.start', details: [1] }, 'ERR_AUDIT_RECORD_INVALID'],
    ['details with NaN', { kind: 'task.start', details: { x: NaN } }, 'ERR_CANONICAL_JSON'],
    ['details with a Date', { kind: 'task.start', details: { at: new Date() } }, 'ERR_CANONICAL_JSON'],
    ['a record over 64 KiB', { kind: 'task.start', details: { pad: 'x'.repeat(70_000) } }, 'ERR_AUDIT_RECORD_INVALID'],
  ];
  it('refuses invalid records without using up a seq', async () => {
    const log = await openLog(fresh());
    for (const [what, input, code] of invalid) expect(await codeOfAsync(log.append(input as never)), what).to.equal(code);
    expect((await log.append({ kind: 'task.start' })).seq).to.equal(1);
  });

  it('refuses appends after close; close is idempotent', async () => {
    const log = await openLog(fresh());
    await log.close();
    await log.close();
    expect(await codeOfAsync(log.append({ kind: 'task.start' }))).to.equal('ERR_AUDIT_CLOSED');
  });

  it('refuses to open a log whose last record does not match its hash', async () => {
    const path = fresh();
    await writeSampleLog(path, 2);
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace(/"i":1,/, '"i":7,'));
    expect(await codeOfAsync(AuditLog.open(path))).to.equal('ERR_AUDIT_HASH');
  });
});
