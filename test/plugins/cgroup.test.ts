/**
 * The cgroup workload attestor: the parser on the formats the kernel writes (cgroup v2, v1,
 * hybrid, named hierarchies, paths with ':'), this process against a reading of /proc/self/cgroup,
 * and, where the cgroup filesystems are writable (root), a child moved into fresh v1 and v2
 * cgroups made for the test. Also a vanished pid and property tests of the parser.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { type WorkloadAttestor, cgroupPlugin } from '../../src/plugins/index.js';
import { cgroupSelectorValues, parseCgroupFile } from '../../src/plugins/workloadattestor/cgroup.js';
import { failure } from './helpers.js';

const deps = { logger: silentLogger, clock: new ManualClock(), trustDomain: 'example.org' };

async function make(config: unknown = {}): Promise<WorkloadAttestor> {
  return cgroupPlugin.create(cgroupPlugin.configSchema.parse(config), deps);
}

/** Mount points of the cgroup v2 hierarchy and of the v1 "pids" controller, from /proc/self/mounts. */
function cgroupMounts(): { v2?: string; pids?: string } {
  const out: { v2?: string; pids?: string } = {};
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mnt, fstype, opts] = line.split(' ');
    if (fstype === 'cgroup2' && mnt) out.v2 ??= mnt;
    if (fstype === 'cgroup' && mnt && opts?.split(',').includes('pids')) out.pids ??= mnt;
  }
  return out;
}

function waitExit(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    c.once('exit', () => (clearTimeout(timer), resolve()));
  });
}

describe('plugins: cgroup workload attestor', () => {
  const table: Array<[string, string, string[]]> = [
    ['a cgroup v2 line', '0::/system.slice/writ-agent.service\n', ['path:/system.slice/writ-agent.service']],
    ['the v2 root', '0::/\n', ['path:/']],
    ['v1 lines with several controllers', '4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n', ['memory:/docker/abc', 'cpu:/docker/abc', 'cpuacct:/docker/abc']],
    ['a named v1 hierarchy', '1:name=systemd:/user.slice/user-1000.slice\n', ['name=systemd:/user.slice/user-1000.slice']],
    ['a hybrid host', '8:pids:/a\n0::/b\n', ['pids:/a', 'path:/b']],
    ['a path with colons', '0::/kubepods/pod:1/c:2\n', ['path:/kubepods/pod:1/c:2']],
    ['no trailing newline and blank lines', '\n0::/x', ['path:/x']],
  ];
  for (const [what, text, want] of table) {
    it(`parses ${what}`, () => {
      const lines = parseCgroupFile(text);
      expect(lines).to.not.equal(undefined);
      expect(cgroupSelectorValues(lines!)).to.deep.equal(want);
    });
  }

  for (const bad of ['garbage', '0:/x', 'x::/y', '0::relative', '1:cpu,,memory:/x']) {
    it(`refuses the malformed line ${JSON.stringify(bad)}`, () => expect(parseCgroupFile(bad)).to.equal(undefined));
  }

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.constantFrom('0', '12', ':', '/', 'cpu', ',', '\n', 'name=x', ' ')).map((a) => a.join(''))), (text) => {
        const lines = parseCgroupFile(text);
        if (lines) for (const v of cgroupSelectorValues(lines)) expect(v).to.be.a('string');
      }),
      { numRuns: 500 },
    );
  });

  it('attests this process like a plain reading of /proc/self/cgroup', async () => {
    const expected: string[] = [];
    for (const line of readFileSync(`/proc/${process.pid}/cgroup`, 'utf8').trim().split('\n')) {
      const [id, ctrls, ...rest] = line.split(':');
      const path = rest.join(':');
      if (id === '0' && ctrls === '') expected.push(`cgroup:path:${path}`);
      else for (const c of (ctrls ?? '').split(',')) expected.push(`cgroup:${c}:${path}`);
    }
    const got = (await (await make()).attest(process.pid)).map((s) => `${s.type}:${s.value}`);
    expect(got).to.deep.equal(expected);
    expect(got.length).to.be.greaterThan(0);
  });

  it('sees a child moved into fresh v1 and v2 cgroups', async function () {
    const mounts = cgroupMounts();
    const name = `writ-test-${randomBytes(4).toString('hex')}`;
    const made: string[] = [];
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      for (const mnt of [mounts.pids, mounts.v2]) {
        if (!mnt) continue;
        try {
          mkdirSync(`${mnt}/${name}`);
          made.push(`${mnt}/${name}`);
          writeFileSync(`${mnt}/${name}/cgroup.procs`, String(child.pid));
        } catch (e) {
          console.log(`      (pending: can not create a cgroup under ${mnt}: ${(e as Error).message}; needs root and a writable cgroup filesystem)`);
          this.skip();
        }
      }
      if (made.length === 0) {
        console.log('      (pending: no cgroup v2 or v1 pids hierarchy is mounted here)');
        this.skip();
      }
      const got = (await (await make()).attest(child.pid!)).map((s) => s.value);
      if (mounts.pids) expect(got.some((v) => v.startsWith('pids:/') && v.endsWith(`/${name}`))).to.equal(true, got.join(', '));
      if (mounts.v2) expect(got.some((v) => v.startsWith('path:/') && v.endsWith(`/${name}`))).to.equal(true, got.join(', '));
    } finally {
      child.kill('SIGKILL');
      await waitExit(child);
      for (const dir of made.reverse()) {
        for (let i = 0; i < 50; i++) {
          try {
            rmdirSync(dir);
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }
    }
  });

  it('refuses a vanished pid and a non-pid', async () => {
    const a = await make();
    const err = await failure(a.attest(2 ** 31 - 1));
    expect(err.code).to.equal('ERR_WORKLOAD_ATTESTATION');
    expect(err.message).to.include('does not exist');
    expect((await failure(a.attest(-5))).code).to.equal('ERR_WORKLOAD_ATTESTATION');
  });
});
