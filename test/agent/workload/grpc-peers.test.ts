/**
 * Calls mapped to the right caller: several client processes at once (each over its own injected
 * connection, many concurrent calls) get only their own identities, a client under uid 65534 gets
 * only its own, and a connection whose connecting process exited before the call gets Unavailable.
 */
import { expect } from 'chai';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { connect, type ClientHttp2Session } from 'node:http2';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../../src/log.js';
import { workloadProtoPath, workloadServiceDefinition } from '../../../src/workloadapi/proto.js';
import { startGrpcWorkloadEndpoint, type GrpcWorkloadEndpoint } from '../../../src/agent/workload/index.js';
import { TestWorkloadHandler, isRoot, pendingBecause, socketDir, socketOfExitedProcess, waitFor, within } from './helpers.js';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'grpc_client.mjs');

interface ClientResult {
  pid: number;
  uid: number;
  jwt: string[];
  x509: string[];
  errors: unknown[];
}

function startClient(socketPath: string, calls: number, as?: { uid: number; gid: number }): { child: ChildProcessWithoutNullStreams; ready: Promise<void>; result: Promise<ClientResult> } {
  const child = spawn(process.execPath, [CLIENT, socketPath, workloadProtoPath(), String(calls)], { ...(as ?? {}), stdio: 'pipe' });
  let out = '';
  let err = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const result = new Promise<ClientResult>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) onReady();
      const lines = out.split('\n');
      if (lines.length > 2) resolve(JSON.parse(lines[1]!) as ClientResult);
    });
    child.once('close', (code) => reject(new Error(`client exited (${code}) before answering: ${err}`)));
  });
  return { child, ready: within(ready, 15_000, 'the client to start'), result: within(result, 20_000, 'the client result') };
}

/** One raw gRPC call over an existing socket; the grpc-status and grpc-message it ends with. */
async function rawCall(socket: Socket, method: string, body: Buffer): Promise<{ code: number; details: string }> {
  const session: ClientHttp2Session = connect('http://localhost', { createConnection: () => socket });
  try {
    return await within(
      new Promise((resolve, reject) => {
        session.on('error', reject);
        const req = session.request({ ':method': 'POST', ':path': `/SpiffeWorkloadAPI/${method}`, 'content-type': 'application/grpc', te: 'trailers', 'workload.spiffe.io': 'true' });
        let status: { code: number; details: string } | undefined;
        const take = (h: Record<string, unknown>) => {
          if (h['grpc-status'] !== undefined) status = { code: Number(h['grpc-status']), details: decodeURIComponent(String(h['grpc-message'] ?? '')) };
        };
        req.on('response', take);
        req.on('trailers', take);
        req.on('data', () => undefined);
        req.on('end', () => (status ? resolve(status) : reject(new Error('no grpc-status'))));
        req.on('error', reject);
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(body.length, 1);
        req.end(Buffer.concat([prefix, body]));
      }),
      10_000,
      'the raw gRPC call',
    );
  } finally {
    session.destroy();
  }
}

describe('agent/workload gRPC endpoint: calls map to their own caller', function () {
  this.timeout(60_000);
  let handler: TestWorkloadHandler;
  let dir: ReturnType<typeof socketDir>;
  let ep: GrpcWorkloadEndpoint;
  const children: ChildProcessWithoutNullStreams[] = [];

  before(async () => {
    handler = await TestWorkloadHandler.create();
    dir = socketDir('writ-wl-peers-');
    ep = await startGrpcWorkloadEndpoint({ socketPath: dir.path('api.sock'), handler, logger: silentLogger });
  });
  beforeEach(() => handler.reset());
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });
  after(async () => {
    await ep?.close();
    await handler?.cleanup();
    dir?.cleanup();
  });

  async function runClients(specs: Array<{ as?: { uid: number; gid: number } }>, calls: number): Promise<ClientResult[]> {
    const started = specs.map((s) => startClient(ep.socketPath, calls, s.as));
    children.push(...started.map((s) => s.child));
    await Promise.all(started.map((s) => s.ready));
    for (const s of started) await handler.grant(`test:pid:${s.child.pid}`, `spiffe://example.org/pid/${s.child.pid}`);
    for (const s of started) s.child.stdin.write('go\n');
    return Promise.all(started.map((s) => s.result));
  }

  it('four client processes calling at once each get only their own pid identity', async () => {
    await handler.grant(`unix:uid:${process.getuid!()}`, 'spiffe://example.org/same-uid');
    const results = await runClients([{}, {}, {}, {}], 25);
    for (const r of results) {
      const own = ['spiffe://example.org/pid/' + r.pid, 'spiffe://example.org/same-uid'].sort();
      expect(r.errors).to.deep.equal([]);
      expect(r.jwt, `jwt of ${r.pid}`).to.deep.equal(own);
      expect(r.x509, `x509 of ${r.pid}`).to.deep.equal(own);
    }
    const byNumber = (a: number, b: number) => a - b;
    expect([...new Set(handler.attested.map((p) => p.pid))].sort(byNumber)).to.deep.equal(results.map((r) => r.pid).sort(byNumber));
  });

  it('a client under uid 65534 and clients under our uid get only their own SVIDs', async function () {
    if (!isRoot()) pendingBecause(this, 'running a client as uid 65534 needs root (CI runs the tests as root)');
    await handler.grant('unix:uid:65534', 'spiffe://example.org/nobody');
    await handler.grant('unix:uid:0', 'spiffe://example.org/root');
    const results = await runClients([{ as: { uid: 65534, gid: 65534 } }, {}, { as: { uid: 65534, gid: 65534 } }, {}], 10);
    for (const r of results) {
      const byUid = r.uid === 65534 ? 'spiffe://example.org/nobody' : 'spiffe://example.org/root';
      const own = [`spiffe://example.org/pid/${r.pid}`, byUid].sort();
      expect(r.errors).to.deep.equal([]);
      expect(r.jwt).to.deep.equal(own);
      expect(r.x509).to.deep.equal(own);
    }
    expect(results.map((r) => r.uid)).to.deep.equal([65534, 0, 65534, 0]);
  });

  it('answers Unavailable when the process that connected exited before the call (pid no longer its own)', async () => {
    await waitFor(() => ep.stats().connections === 0, 10_000, 'earlier clients to disconnect');
    const { socket, pid } = await socketOfExitedProcess(ep.socketPath, () => ep.stats().connections === 1);
    await handler.grant('unix:uid:' + process.getuid!(), 'spiffe://example.org/anyone-of-this-uid');
    const body = Buffer.from(workloadServiceDefinition().FetchJWTSVID!.requestSerialize({ audience: ['a'] }));
    // Control: the same raw call over a live connection of ours succeeds.
    const live = createConnection(ep.socketPath);
    expect(await rawCall(live, 'FetchJWTSVID', body)).to.deep.equal({ code: grpc.status.OK, details: 'OK' });
    const status = await rawCall(socket, 'FetchJWTSVID', body);
    expect(status).to.deep.equal({ code: grpc.status.UNAVAILABLE, details: 'workload attestation failed' });
    // The handler did attest that pid; the same-process check afterwards refused it.
    expect(handler.attested.map((p) => p.pid)).to.include(pid);
  });
});
