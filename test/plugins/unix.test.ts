/**
 * The unix workload attestor on the real /proc: this process, a child spawned as uid/gid 65534,
 * a child that changed only its effective ids (the attestor uses effective ids), a child with
 * supplementary groups, the executable's path and SHA-256 with a size limit that allows it and
 * one that does not, vanished and invalid pids. Tests that need root are pending otherwise. Also
 * the /proc/<pid>/status parser (table and property tests) and a fake proc tree via proc_path.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import type { Selector } from '../../src/datastore/index.js';
import type { Logger } from '../../src/log.js';
import { silentLogger } from '../../src/log.js';
import { lookupGroupName, lookupUserName } from '../../src/platform/users.js';
import { readStartTime } from '../../src/platform/procstat.js';
import { ManualClock } from '../../src/clock.js';
import { type WorkloadAttestor, unixPlugin } from '../../src/plugins/index.js';
import { effectiveId, parseProcStatus } from '../../src/plugins/workloadattestor/unix.js';
import { failure } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const warnings: string[] = [];
const logger: Logger = { ...silentLogger, warn: (o, m) => void warnings.push(`${m ?? ''} ${JSON.stringify(o)}`), child: () => logger };
const deps = { logger, clock: new ManualClock(), trustDomain: 'example.org' };
const values = (sels: Selector[]): string[] => sels.map((s) => `${s.type}:${s.value}`);

async function make(config: unknown): Promise<WorkloadAttestor> {
  return unixPlugin.create(unixPlugin.configSchema.parse(config), deps);
}

const children: ChildProcess[] = [];

/** Starts `node -e script`; resolves once it printed "ready" (bounded by 10 s). */
function startChild(script: string, opts: { uid?: number; gid?: number } = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', `${script}; console.log('ready'); setInterval(() => {}, 1000);`], { ...opts, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not become ready within 10 s')), 10_000);
    child.once('error', (e) => (clearTimeout(timer), reject(e)));
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`child exited early with ${code}`))));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
  });
}

function rootOnly(ctx: Mocha.Context, what: string): void {
  if (!isRoot) {
    console.log(`      (pending: ${what} needs root to spawn processes under other ids; run the tests as root, as .ci/run does)`);
    ctx.skip();
  }
}

describe('plugins: unix workload attestor', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-unix-'));
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      }
    }
    warnings.length = 0;
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('attests this process with its effective uid, gid and groups', async () => {
    const a = await make({});
    const got = values(await a.attest(process.pid));
    const uid = process.geteuid!();
    const gid = process.getegid!();
    expect(got[0]).to.equal(`unix:uid:${uid}`);
    const user = lookupUserName(uid);
    if (user) expect(got).to.include(`unix:user:${user}`);
    expect(got).to.include(`unix:gid:${gid}`);
    const group = lookupGroupName(gid);
    if (group) expect(got).to.include(`unix:group:${group}`);
    const supp = got.filter((v) => v.startsWith('unix:supplementary_gid:')).map((v) => Number(v.split(':')[2]));
    const nodeGroups = process.getgroups!();
    // Node adds the effective gid to getgroups(); the kernel's Groups: line may not have it.
    expect(new Set(nodeGroups.filter((g) => g !== gid))).to.deep.equal(new Set(supp.filter((g) => g !== gid)));
    expect(got.some((v) => v.startsWith('unix:path:'))).to.equal(false, 'no path without discover_workload_path');
  });

  it('attests a child spawned as uid 65534 / gid 65534', async function () {
    rootOnly(this, 'spawning a child as uid 65534');
    const child = await startChild('void 0', { uid: 65534, gid: 65534 });
    const got = values(await (await make({})).attest(child.pid!));
    const expected = ['unix:uid:65534'];
    const user = lookupUserName(65534);
    if (user) expected.push(`unix:user:${user}`);
    expected.push('unix:gid:65534');
    const group = lookupGroupName(65534);
    if (group) expected.push(`unix:group:${group}`);
    expected.push(`unix:pid:${child.pid}`, `unix:start_time:${readStartTime(child.pid!)}`);
    expect(got).to.deep.equal(expected);
    // Without pid_selectors: the same minus the process pin.
    expect(values(await (await make({ pid_selectors: false })).attest(child.pid!))).to.deep.equal(expected.slice(0, -2));
  });

  it('uses the effective ids of a process whose real ids differ', async function () {
    rootOnly(this, 'changing effective ids');
    const child = await startChild('process.setegid(65534); process.seteuid(65534)');
    const status = parseProcStatus(readFileSync(`/proc/${child.pid}/status`, 'utf8'))!;
    expect(status.uids.slice(0, 2)).to.deep.equal([0, 65534], 'real 0, effective 65534');
    const got = values(await (await make({})).attest(child.pid!));
    expect(got).to.include('unix:uid:65534').and.include('unix:gid:65534');
    expect(got).to.not.include('unix:uid:0');
  });

  it('lists supplementary groups with their names', async function () {
    rootOnly(this, 'setting supplementary groups');
    const child = await startChild('process.setgroups([4, 27, 4242])');
    const got = values(await (await make({})).attest(child.pid!));
    expect(got.filter((v) => v.startsWith('unix:supplementary_gid:'))).to.deep.equal(['unix:supplementary_gid:4', 'unix:supplementary_gid:27', 'unix:supplementary_gid:4242']);
    const names = [4, 27, 4242].map((g) => lookupGroupName(g)).filter((n) => n !== undefined);
    expect(got.filter((v) => v.startsWith('unix:supplementary_group:'))).to.deep.equal(names.map((n) => `unix:supplementary_group:${n}`));
  });

  it('adds the executable path and its SHA-256 when the size limit allows it', async () => {
    const size = statSync(process.execPath).size;
    const digest = createHash('sha256').update(readFileSync(process.execPath)).digest('hex');
    const got = values(await (await make({ discover_workload_path: true, workload_size_limit: size })).attest(process.pid));
    expect(got).to.include(`unix:path:${realpathSync(process.execPath)}`);
    expect(got).to.include(`unix:sha256:${digest}`);
  });

  it('skips the SHA-256 (and logs) when the executable is bigger than the limit, or hashing is off', async () => {
    const size = statSync(process.execPath).size;
    const small = values(await (await make({ discover_workload_path: true, workload_size_limit: size - 1 })).attest(process.pid));
    expect(small).to.include(`unix:path:${realpathSync(process.execPath)}`);
    expect(small.some((v) => v.startsWith('unix:sha256:'))).to.equal(false);
    expect(warnings.join('\n')).to.include('workload_size_limit');
    const off = values(await (await make({ discover_workload_path: true })).attest(process.pid));
    expect(off.some((v) => v.startsWith('unix:sha256:'))).to.equal(false);
  });

  it('refuses a pid that does not exist, and values that are not pids', async () => {
    const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child did not exit within 10 s')), 10_000);
      child.once('exit', () => (clearTimeout(timer), resolve(undefined)));
    });
    const a = await make({ discover_workload_path: true });
    for (const pid of [child.pid!, 2 ** 31 - 1]) {
      const err = await failure(a.attest(pid));
      expect(err.code).to.equal('ERR_WORKLOAD_ATTESTATION');
      expect(err.message).to.equal(`Process ${pid} does not exist (it may have exited).`);
    }
    for (const pid of [0, -1, 1.5, Number.NaN]) expect((await failure(a.attest(pid))).code).to.equal('ERR_WORKLOAD_ATTESTATION');
  });

  it('reads a fake proc tree through proc_path, and refuses a status it can not parse', async () => {
    const proc = join(dir, 'proc');
    mkdirSync(join(proc, '42'), { recursive: true });
    writeFileSync(join(proc, '42', 'status'), 'Name:\tfake\nUid:\t1000\t0\t0\t0\nGid:\t1001\t65534\t65534\t65534\nGroups:\t4 4 27 \n');
    writeFileSync(join(proc, '42', 'stat'), `42 (fa ke) S ${Array.from({ length: 18 }, (_, i) => i + 1).join(' ')} 777001 0 0\n`);
    const exe = join(dir, 'fake-exe');
    writeFileSync(exe, 'hello');
    symlinkSync(exe, join(proc, '42', 'exe'));
    const a = await make({ proc_path: proc, discover_workload_path: true, workload_size_limit: 5 });
    const got = values(await a.attest(42));
    expect(got.slice(0, 3)).to.deep.equal(['unix:uid:0', 'unix:user:root', 'unix:gid:65534']);
    expect(got.filter((v) => v.startsWith('unix:supplementary_gid:'))).to.deep.equal(['unix:supplementary_gid:4', 'unix:supplementary_gid:27']);
    expect(got).to.include('unix:pid:42');
    expect(got).to.include('unix:start_time:777001');
    expect(got).to.include(`unix:path:${realpathSync(exe)}`);
    expect(got).to.include(`unix:sha256:${createHash('sha256').update('hello').digest('hex')}`);
    // The start time the agent read at accept spares the /proc/<pid>/stat read (44 has no stat file).
    mkdirSync(join(proc, '44'));
    writeFileSync(join(proc, '44', 'status'), 'Uid:\t7\t7\t7\t7\nGid:\t7\t7\t7\t7\n');
    symlinkSync(exe, join(proc, '44', 'exe'));
    expect((await failure(a.attest(44))).code).to.equal('ERR_WORKLOAD_ATTESTATION');
    expect(values(await a.attest(44, { startTime: '31337' }))).to.include.members(['unix:pid:44', 'unix:start_time:31337']);
    mkdirSync(join(proc, '43'));
    writeFileSync(join(proc, '43', 'status'), 'Name:\tbroken\nUid:\tx\n');
    expect((await failure(a.attest(43))).message).to.include('can not parse');
  });

  describe('status parser', () => {
    const table: Array<[string, string, { uids: number[]; gids: number[]; groups: number[] } | undefined]> = [
      ['all four ids', 'Uid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nGroups:\t9 10\n', { uids: [1, 2, 3, 4], gids: [5, 6, 7, 8], groups: [9, 10] }],
      ['empty groups', 'Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n', { uids: [0, 0, 0, 0], gids: [0, 0, 0, 0], groups: [] }],
      ['no Groups line', 'Uid:\t7\nGid:\t8\n', { uids: [7], gids: [8], groups: [] }],
      ['no Uid line', 'Gid:\t0\t0\t0\t0\n', undefined],
      ['a non-numeric id', 'Uid:\t0\tx\t0\t0\nGid:\t0\t0\t0\t0\n', undefined],
      ['an empty Uid', 'Uid:\t\nGid:\t0\n', undefined],
    ];
    for (const [what, text, want] of table) {
      it(`parses ${what}`, () => expect(parseProcStatus(text)).to.deep.equal(want));
    }

    it('picks the effective id (the second) when there are several', () => {
      expect(effectiveId([1000, 0, 0, 0])).to.equal(0);
      expect(effectiveId([1000])).to.equal(1000);
    });

    it('never throws on arbitrary text', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.array(fc.constantFrom('Uid:', 'Gid:', 'Groups:', '\t', ' ', '\n', '0', '12', 'x', ':')).map((a) => a.join(''))), (text) => {
          const r = parseProcStatus(text);
          if (r) expect(r.uids.length).to.be.greaterThan(0);
        }),
        { numRuns: 500 },
      );
    });

    it('refuses config it does not know', () => {
      expect(unixPlugin.configSchema.safeParse({ discover_workload_path: 'yes' }).success).to.equal(false);
      expect(unixPlugin.configSchema.safeParse({ workload_size_limit: 1.5 }).success).to.equal(false);
      expect(unixPlugin.configSchema.safeParse({ unknown: 1 }).success).to.equal(false);
    });
  });
});
