/**
 * The gRPC Workload API endpoint's lifecycle: the socket file (refusing one a live endpoint
 * serves, replacing a stale one, removing it on close), close() ending open streams with
 * Unavailable and releasing connections and pidfds, and the connection cap.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { silentLogger } from '../../../src/log.js';
import type { X509SVIDResponseMessage } from '../../../src/workloadapi/proto.js';
import { startGrpcWorkloadEndpoint } from '../../../src/agent/workload/index.js';
import { TestWorkloadHandler, countPidfds, socketDir } from './helpers.js';
import { TestClient, statusOf } from './grpc-helpers.js';

const S = grpc.status;

describe('agent/workload gRPC endpoint lifecycle', function () {
  this.timeout(30_000);
  let handler: TestWorkloadHandler;
  let dir: ReturnType<typeof socketDir>;

  before(async () => {
    handler = await TestWorkloadHandler.create();
    dir = socketDir('writ-wl-life-');
  });
  after(async () => {
    await handler?.cleanup();
    dir?.cleanup();
  });

  it('refuses a socket a live endpoint serves, replaces a stale one, and close() ends streams and removes the file', async () => {
    const path = dir.path('life.sock');
    const ep = await startGrpcWorkloadEndpoint({ socketPath: path, handler, logger: silentLogger });
    const pidfds = countPidfds();
    const client = new TestClient(path);
    try {
      const err = await startGrpcWorkloadEndpoint({ socketPath: path, handler, logger: silentLogger }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.have.property('code', 'ERR_SOCKET_IN_USE');
      await handler.grant(`unix:uid:${process.getuid!()}`, 'spiffe://example.org/life');
      const s = client.stream<X509SVIDResponseMessage>('FetchX509SVID');
      await s.next();
      expect(ep.stats()).to.deep.equal({ connections: 1, streams: 1 });
      await ep.close();
      expect((await s.status()).code).to.equal(S.UNAVAILABLE);
      expect(existsSync(path)).to.equal(false);
      expect(ep.stats()).to.deep.equal({ connections: 0, streams: 0 });
      expect(countPidfds()).to.be.at.most(pidfds);
    } finally {
      client.close();
      await ep.close();
    }
    const stale = await leaveStaleSocket(path);
    expect(stale).to.equal(true);
    const again = await startGrpcWorkloadEndpoint({ socketPath: path, handler, logger: silentLogger });
    await again.close();
  });

  it('closes connections beyond maxConnections', async () => {
    const path = dir.path('max.sock');
    const ep = await startGrpcWorkloadEndpoint({ socketPath: path, handler, logger: silentLogger, maxConnections: 1 });
    const a = new TestClient(path);
    const b = new TestClient(path);
    try {
      await handler.grant(`unix:uid:${process.getuid!()}`, 'spiffe://example.org/max');
      await a.unary('FetchJWTSVID', { audience: ['x'] });
      expect((await statusOf(b.unary('FetchJWTSVID', { audience: ['x'] }))).code).to.equal(S.UNAVAILABLE);
      await a.unary('FetchJWTSVID', { audience: ['x'] });
    } finally {
      a.close();
      b.close();
      await ep.close();
    }
  });
});

/** Leaves a socket file nobody serves (a listener killed with SIGKILL); true when it exists after. */
async function leaveStaleSocket(path: string): Promise<boolean> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', () => reject(new Error('the listener exited')));
      setTimeout(() => reject(new Error('the listener did not start')), 10_000).unref();
    });
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  return existsSync(path);
}
