/**
 * Peer tracking: start time parsing from /proc/<pid>/stat (comm with spaces and parentheses),
 * credentials and pidfd taken at accept, and verifySamePeer() refusing a changed start time, an
 * exited process, or a closed connection; pidfds are closed with the connection.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { WritError } from '../../../src/errors.js';
import { pidfdAlive, pidfdOpen, closePidfd } from '../../../src/platform/index.js';
import { TrackedPeer, parseStartTime, readStartTime, trackPeer } from '../../../src/agent/workload/index.js';
import { countPidfds, socketDir, waitFor, within } from './helpers.js';

function attestationError(f: () => void): WritError {
  try {
    f();
  } catch (e) {
    if (e instanceof WritError) return e;
    throw e;
  }
  throw new Error('verifySamePeer() passed; a failure was expected');
}

describe('agent/workload peer tracking', function () {
  this.timeout(20_000);
  let dir: ReturnType<typeof socketDir>;
  let server: Server;
  let path: string;
  const accepted: Socket[] = [];
  let onConn: (s: Socket) => void = () => undefined;
  const nextConnection = () => new Promise<Socket>((r) => (onConn = r));

  before(async () => {
    dir = socketDir('writ-wl-peer-');
    path = dir.path('p.sock');
    server = createServer((s) => {
      accepted.push(s);
      onConn(s);
    });
    await new Promise<void>((r) => server.listen(path, r));
  });
  after(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    dir.cleanup();
  });

  describe('parseStartTime', () => {
    const tail = 'S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654321 20 21 22';
    it('takes field 22, counting after the last ")" of the comm field', () => {
      expect(parseStartTime(`42 (node) ${tail}`)).to.equal('987654321');
      expect(parseStartTime(`42 (a b) c) (d) ${tail}`)).to.equal('987654321');
      expect(parseStartTime(`42 ()) ) S) ${tail}\n`)).to.equal('987654321');
      expect(parseStartTime(`42 (x 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21) ${tail}`)).to.equal('987654321');
    });
    it('refuses text without that shape', () => {
      for (const bad of ['', '42 node S 1', '42 (node) S 1 2', `42 (node) ${tail.replace('987654321', '-1')}`, ') 42 (x']) {
        expect(() => parseStartTime(bad), JSON.stringify(bad)).to.throw();
      }
    });
    it('reads our own start time and nothing for a pid that does not exist', () => {
      const own = readFileSync('/proc/self/stat', 'utf8');
      expect(readStartTime(process.pid)).to.equal(own.slice(own.lastIndexOf(')') + 2).split(' ')[19]);
      expect(readStartTime(0)).to.equal(undefined);
      expect(readStartTime(2 ** 30)).to.equal(undefined);
    });
  });

  it('records pid, uid, gid, a pidfd and the start time at accept, and verifies the same process', async () => {
    const got = nextConnection();
    const c = connect(path);
    const s = await within(got, 5000, 'the connection');
    const peer = trackPeer(s);
    expect(peer.process).to.include({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(peer.hasPidfd).to.equal(true);
    expect(peer.startTime).to.equal(readStartTime(process.pid));
    peer.verifySamePeer();
    c.destroy();
    await waitFor(() => peer.closed, 5000, 'the peer to see the close');
    expect(peer.process.pidfd).to.equal(-1);
    expect(attestationError(() => peer.verifySamePeer()).code).to.equal('ERR_WORKLOAD_ATTESTATION');
  });

  it('refuses a process whose start time changed (a pid reused by another process) with Unavailable', () => {
    const cred = { pid: process.pid, uid: 0, gid: 0 };
    const e = attestationError(() => new TrackedPeer(cred, -1, '1').verifySamePeer());
    expect([e.code, e.grpcStatus, e.message]).to.deep.equal(['ERR_WORKLOAD_ATTESTATION', 14, 'workload attestation failed']);
    expect(e.details).to.include({ reason: 'the pid now belongs to another process' });
    const t = readStartTime(process.pid)!;
    const reused = new TrackedPeer(cred, -1, t, { startTimeOf: () => String(BigInt(t) + 5n) });
    expect(attestationError(() => reused.verifySamePeer()).grpcStatus).to.equal(14);
    const gone = new TrackedPeer(cred, -1, undefined);
    expect(attestationError(() => gone.verifySamePeer()).details).to.include({ reason: 'the process was gone when it connected' });
    new TrackedPeer(cred, -1, t).verifySamePeer();
  });

  it('refuses a peer whose process exited, by its pidfd even when the start time would still match', async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pid = child.pid!;
      const t = readStartTime(pid)!;
      const peer = new TrackedPeer({ pid, uid: 0, gid: 0 }, pidfdOpen(pid), t, { startTimeOf: () => t });
      expect(peer.hasPidfd).to.equal(true);
      peer.verifySamePeer();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await within(exited, 5000, 'the child to exit');
      const e = attestationError(() => peer.verifySamePeer());
      expect(e.details).to.include({ reason: 'the process has exited' });
      peer.close();
      expect(peer.hasPidfd).to.equal(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a connection whose process exited (its socket closed with it)', async () => {
    const child = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(path)}).on('connect', () => setTimeout(() => {}, 60000))`], { stdio: 'ignore' });
    try {
      const peer = trackPeer(await within(nextConnection(), 5000, 'the child connection'));
      expect(peer.pid).to.equal(child.pid);
      peer.verifySamePeer();
      child.kill('SIGKILL');
      await waitFor(() => peer.closed, 5000, 'the connection to close');
      expect(attestationError(() => peer.verifySamePeer()).code).to.equal('ERR_WORKLOAD_ATTESTATION');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps the pidfd open through hold() when the connection closes meanwhile, then closes it', async () => {
    const got = nextConnection();
    const c = connect(path);
    const s = await within(got, 5000, 'the connection');
    const before = countPidfds();
    const peer = trackPeer(s);
    expect(countPidfds()).to.equal(before + 1);
    let release: () => void = () => undefined;
    const held = peer.hold(async (p) => {
      await new Promise<void>((r) => (release = r));
      expect(pidfdAlive(p.pidfd)).to.equal(true);
      return p.pidfd;
    });
    c.destroy();
    await waitFor(() => peer.closed, 5000, 'the close');
    expect(countPidfds()).to.equal(before + 1);
    release();
    expect(await held).to.be.at.least(0);
    expect(countPidfds()).to.equal(before);
    expect(attestationError(() => peer.verifySamePeer()).code).to.equal('ERR_WORKLOAD_ATTESTATION');
    let threw = false;
    await peer.hold(async () => undefined).catch(() => (threw = true));
    expect(threw).to.equal(true);
  });

  it('pidfd_open and pidfd_send_signal through the addon', () => {
    const fd = pidfdOpen(process.pid);
    expect(fd).to.be.at.least(0);
    expect(pidfdAlive(fd)).to.equal(true);
    closePidfd(fd);
    expect(pidfdOpen(2 ** 30)).to.equal(-1);
    expect(pidfdOpen(0)).to.equal(-1);
    expect(pidfdAlive(-1)).to.equal(false);
  });
});
