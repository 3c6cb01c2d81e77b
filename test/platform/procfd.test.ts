/**
 * Held /proc descriptors against real processes: the text is current at every read (a child
 * that drops to another uid shows the new uid through the descriptor opened before), a process
 * that exited fails with ESRCH, and the unix attestor uses the held descriptor when given one.
 */
import { expect } from 'chai';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { closeProcFile, openProcFile, readProcFd, readProcFdLines } from '../../src/platform/index.js';
import { parseProcStatus, statusIdLines } from '../../src/plugins/workloadattestor/unix.js';
import { unixPlugin } from '../../src/plugins/index.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';

const isRoot = process.getuid?.() === 0;

/** A node child that prints "ready", drops to uid/gid 65534 on the line "drop" and prints "dropped". */
function dropper(): { child: ChildProcess; next: () => Promise<string> } {
  const child = spawn(process.execPath, ['-e', "process.stdout.write('ready\\n');process.stdin.on('data',()=>{process.setgid(65534);process.setuid(65534);process.stdout.write('dropped\\n')});setTimeout(()=>{},20000)"], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  child.stdout!.on('data', (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter((l) => l));
    wake?.();
  });
  const next = async (): Promise<string> => {
    while (lines.length === 0) await new Promise<void>((r) => (wake = r));
    return lines.shift()!;
  };
  return { child, next };
}

describe('platform/procfd', function () {
  this.timeout(20_000);
  const children: ChildProcess[] = [];
  const fds: number[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    for (const fd of fds.splice(0)) closeProcFile(fd);
  });

  it('reads the current text of /proc/<pid>/status through a descriptor opened earlier', async function () {
    if (!isRoot) {
      process.stderr.write('      (pending: the child drops to uid 65534, which needs root; CI runs as root)\n');
      this.skip();
    }
    const { child, next } = dropper();
    children.push(child);
    expect(await next()).to.equal('ready');
    const fd = openProcFile(child.pid!, 'status');
    fds.push(fd);
    expect(fd).to.be.greaterThan(-1);
    expect(parseProcStatus(readProcFd(fd))!.uids[1]).to.equal(0);
    // The attestor caches selectors by the id lines it reads: the same instance must follow the change.
    const attestor = await unixPlugin.create(unixPlugin.configSchema.parse({}), { logger: silentLogger, clock: systemClock, trustDomain: 'example.org' });
    const values = async () => (await attestor.attest(child.pid!, { statusFd: fd, startTime: '1' })).map((s) => s.value);
    expect(await values()).to.include.members(['uid:0', 'gid:0', `pid:${child.pid}`, 'start_time:1']);
    expect(await values()).to.include('uid:0');
    child.stdin!.write('drop\n');
    expect(await next()).to.equal('dropped');
    const after = parseProcStatus(readProcFd(fd))!;
    expect(after.uids).to.deep.equal([65534, 65534, 65534, 65534]);
    expect(after.gids[1]).to.equal(65534);
    const dropped = await values();
    expect(dropped).to.include.members(['uid:65534', 'gid:65534']);
    expect(dropped).to.not.include('uid:0');
  });

  it('reads a status text longer than one read buffer whole (2,000 supplementary groups)', async function () {
    if (!isRoot) {
      process.stderr.write('      (pending: setgroups() in the child needs root; CI runs as root)\n');
      this.skip();
    }
    const groups = Array.from({ length: 2000 }, (_, i) => 10_000 + i);
    const child = spawn('python3', ['-c', `import os,sys,time; os.setgroups(list(range(10000, 12000))); sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(20)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await once(child.stdout!, 'data');
    const fd = openProcFile(child.pid!, 'status');
    fds.push(fd);
    const text = readProcFd(fd);
    expect(text.length).to.be.greaterThan(8192); // more than the first buffer and its first doubling
    expect(parseProcStatus(text)!.groups).to.deep.equal(groups);
    // Every line of the file, up to its last, as a fresh open and read sees it.
    const lastLine = (s: string) => s.trimEnd().split('\n').at(-1)!.split(':')[0];
    expect(lastLine(text)).to.equal(lastLine(readFileSync(`/proc/${child.pid}/status`, 'utf8')));
    expect(text.endsWith('\n')).to.equal(true);
    // The id lines alone, as the attestor reads them: the Groups line (about 12 KB) whole.
    const lines = readProcFdLines(fd, ['Uid', 'Gid', 'Groups']);
    expect(lines).to.equal(statusIdLines(text));
    expect(parseProcStatus(lines)!.groups).to.deep.equal(groups);
    const attestor = await unixPlugin.create(unixPlugin.configSchema.parse({ pid_selectors: false }), { logger: silentLogger, clock: systemClock, trustDomain: 'example.org' });
    const values = (await attestor.attest(child.pid!, { statusFd: fd })).map((s) => s.value);
    expect(values.filter((v) => v.startsWith('supplementary_gid:'))).to.have.length(2000);
    expect(values).to.include('supplementary_gid:11999');
  });

  it('gives only the lines asked for, in that order, as the whole text has them', () => {
    const fd = openProcFile(process.pid, 'status');
    fds.push(fd);
    const text = readFileSync(`/proc/${process.pid}/status`, 'utf8');
    const line = (name: string) => text.split('\n').find((l) => l.startsWith(`${name}:`))!;
    expect(readProcFdLines(fd, ['Uid', 'Gid', 'Groups'])).to.equal(statusIdLines(text));
    expect(readProcFdLines(fd, ['Uid', 'Gid', 'Groups'])).to.equal([line('Uid'), line('Gid'), line('Groups')].join('\n'));
    // The first line of the file, a name that is not there, and the order of the names given.
    expect(readProcFdLines(fd, ['Gid', 'Name', 'NoSuchLine', 'Uid'])).to.equal([line('Gid'), line('Name'), line('Uid')].join('\n'));
    expect(readProcFdLines(fd, ['NoSuchLine'])).to.equal('');
    // A prefix of a real name is not that name.
    expect(readProcFdLines(fd, ['Ui'])).to.equal('');
    expect(statusIdLines('Name:\tx\nUid:\t1\t1\t1\t1\n')).to.equal('Uid:\t1\t1\t1\t1');
  });

  it('fails with ESRCH once the process has exited, and the unix attestor says so', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(()=>{},20000)']);
    children.push(child);
    await once(child, 'spawn');
    const fd = openProcFile(child.pid!, 'status');
    fds.push(fd);
    const attestor = await unixPlugin.create(unixPlugin.configSchema.parse({ pid_selectors: false }), { logger: silentLogger, clock: systemClock, trustDomain: 'example.org' });
    const before = await attestor.attest(child.pid!, { statusFd: fd });
    expect(before.map((s) => s.value)).to.include(`uid:${process.getuid?.() ?? 0}`);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(() => readProcFd(fd)).to.throw().with.property('code', 'ESRCH');
    const err = await attestor.attest(child.pid!, { statusFd: fd }).then(
      () => undefined,
      (e: unknown) => e as { code?: string; message?: string },
    );
    expect(err?.code).to.equal('ERR_WORKLOAD_ATTESTATION');
    expect(err?.message).to.match(/does not exist/);
  });

  it('gives -1 for a pid that does not exist or is not a pid', () => {
    expect(openProcFile(0, 'status')).to.equal(-1);
    expect(openProcFile(2 ** 31, 'status')).to.equal(-1);
  });
});
