/**
 * The gRPC Workload API endpoint against real clients on a real Unix socket: grpc-js in this
 * process, grpc-js in child processes (other pids, and uid 65534 when run as root), and raw
 * HTTP/2 over a socket whose connecting process has exited.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { statSync } from 'node:fs';
import { silentLogger } from '../../../src/log.js';
import { fromStruct, type JWTBundlesResponseMessage, type JWTSVIDResponseMessage, type ValidateJWTSVIDResponseMessage, type X509BundlesResponseMessage, type X509SVIDResponseMessage } from '../../../src/workloadapi/proto.js';
import { startGrpcWorkloadEndpoint, type GrpcWorkloadEndpoint } from '../../../src/agent/workload/index.js';
import { TestWorkloadHandler, countPidfds, countStatusFds, socketDir, splitDer, waitFor } from './helpers.js';
import { TestClient, header, isServiceError, statusOf, type StreamReader } from './grpc-helpers.js';

const S = grpc.status;

describe('agent/workload gRPC endpoint', function () {
  this.timeout(30_000);
  const uid = process.getuid!();
  const ME = `spiffe://example.org/uid/${uid}`;
  let handler: TestWorkloadHandler;
  let dir: ReturnType<typeof socketDir>;
  let ep: GrpcWorkloadEndpoint;
  let client: TestClient;
  let idleSubscribers = 0;
  const streams: Array<StreamReader<unknown>> = [];
  const open = <T>(name: string, md?: grpc.Metadata): StreamReader<T> => {
    const s = client.stream<T>(name, md);
    streams.push(s as StreamReader<unknown>);
    return s;
  };
  const serialOf = (m: X509SVIDResponseMessage): string => new X509Certificate(splitDer(m.svids[0]!.x509_svid)[0]!).serialNumber;

  before(async () => {
    handler = await TestWorkloadHandler.create();
    dir = socketDir('writ-wl-grpc-');
    ep = await startGrpcWorkloadEndpoint({ socketPath: dir.path('api.sock'), handler, logger: silentLogger });
    // The endpoint's message memo holds one subscription of its own; streams add theirs.
    idleSubscribers = handler.subscribers;
  });
  after(async () => {
    await ep?.close();
    await handler?.cleanup();
    dir?.cleanup();
  });
  beforeEach(async () => {
    handler.reset();
    await handler.grant(`unix:uid:${uid}`, ME, 'internal');
    client = new TestClient(ep.socketPath);
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.cancel();
    client.close();
  });

  it('serves the socket with mode 0777', () => {
    expect(statSync(ep.socketPath).mode & 0o777).to.equal(0o777);
  });

  it('FetchX509SVID sends the full state at once: DER chain, PKCS#8 key, bundle, hint, CRL, federated bundles', async () => {
    const t0 = Date.now();
    const m = await open<X509SVIDResponseMessage>('FetchX509SVID').next(3000);
    expect(Date.now() - t0).to.be.below(3000);
    expect(m.svids).to.have.length(1);
    const svid = m.svids[0]!;
    expect(svid.spiffe_id).to.equal(ME);
    expect(svid.hint).to.equal('internal');
    const [leaf, signing] = splitDer(svid.x509_svid).map((d) => new X509Certificate(d));
    expect(leaf!.subjectAltName).to.equal(`URI:${ME}`);
    expect(leaf!.verify(signing!.publicKey)).to.equal(true);
    expect(createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' }).asymmetricKeyType).to.equal('ec');
    const roots = splitDer(svid.bundle).map((d) => new X509Certificate(d));
    expect(signing!.verify(roots[0]!.publicKey)).to.equal(true);
    expect(m.crl).to.have.length.at.least(1);
    expect(Object.keys(m.federated_bundles)).to.deep.equal(['spiffe://partner.org']);
    expect(splitDer(m.federated_bundles['spiffe://partner.org']!)).to.have.length.at.least(1);
    expect(handler.attested[0]).to.include({ pid: process.pid, uid, gid: process.getgid!() });
  });

  it('pushes a change to an open stream (new serial) and never re-sends an identical state', async () => {
    const s = open<X509SVIDResponseMessage>('FetchX509SVID');
    const first = serialOf(await s.next());
    await waitFor(() => handler.subscribers > idleSubscribers, 2000, 'the stream to subscribe');
    handler.notify();
    handler.notify();
    await s.none(400);
    await handler.rotate(ME);
    handler.notify();
    const second = serialOf(await s.next());
    expect(second).to.not.equal(first);
    await s.none(200);
  });

  it('adds a newly granted identity to an open stream', async () => {
    const s = open<X509SVIDResponseMessage>('FetchX509SVID');
    expect((await s.next()).svids.map((v) => v.spiffe_id)).to.deep.equal([ME]);
    await waitFor(() => handler.subscribers > idleSubscribers, 2000, 'the stream to subscribe');
    await handler.grant(`unix:gid:${process.getgid!()}`, 'spiffe://example.org/group');
    handler.notify();
    expect((await s.next()).svids.map((v) => v.spiffe_id)).to.deep.equal([ME, 'spiffe://example.org/group']);
  });

  it('answers PermissionDenied "no identity issued" to a caller without identity, also mid-stream', async () => {
    handler.revoke(`unix:uid:${uid}`);
    const e = await open('FetchX509SVID').status();
    expect([e.code, e.details]).to.deep.equal([S.PERMISSION_DENIED, 'no identity issued']);
    expect((await statusOf(client.unary('FetchJWTSVID', { audience: ['a'] }))).code).to.equal(S.PERMISSION_DENIED);
    expect((await open('FetchX509Bundles').status()).code).to.equal(S.PERMISSION_DENIED);
    expect((await open('FetchJWTBundles').status()).code).to.equal(S.PERMISSION_DENIED);

    await handler.grant(`unix:uid:${uid}`, ME);
    const s = open<X509SVIDResponseMessage>('FetchX509SVID');
    await s.next();
    await waitFor(() => handler.subscribers > idleSubscribers, 2000, 'the stream to subscribe');
    handler.revoke(`unix:uid:${uid}`);
    handler.notify();
    const end = await s.status();
    expect([end.code, end.details]).to.deep.equal([S.PERMISSION_DENIED, 'no identity issued']);
    await waitFor(() => handler.subscribers === idleSubscribers && ep.stats().streams === 0, 2000, 'the stream to unsubscribe');
  });

  it('FetchX509Bundles: own and federated bundles keyed by trust domain SPIFFE ID, identical states suppressed', async () => {
    const s = open<X509BundlesResponseMessage>('FetchX509Bundles');
    const m = await s.next();
    expect(Object.keys(m.bundles).sort()).to.deep.equal(['spiffe://example.org', 'spiffe://partner.org']);
    const root = new X509Certificate(splitDer(m.bundles['spiffe://example.org']!)[0]!);
    expect(root.ca).to.equal(true);
    expect(m.crl).to.have.length.at.least(1);
    await waitFor(() => handler.subscribers > idleSubscribers, 2000, 'the stream to subscribe');
    handler.notify();
    await s.none(300);
  });

  it('FetchJWTBundles: JWKS JSON bytes keyed by trust domain SPIFFE ID', async () => {
    const m = await open<JWTBundlesResponseMessage>('FetchJWTBundles').next();
    const jwks = JSON.parse(m.bundles['spiffe://example.org']!.toString('utf8')) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).to.have.length.at.least(1);
    expect(jwks.keys[0]).to.include.keys('kid', 'kty', 'crv', 'x', 'y');
    expect(jwks.keys[0]).to.not.have.property('use');
  });

  it('FetchJWTSVID and ValidateJWTSVID round-trip, with claims as a Struct', async () => {
    const res = await client.unary<JWTSVIDResponseMessage>('FetchJWTSVID', { audience: ['svc-a'], spiffe_id: '' });
    expect(res.svids.map((s) => [s.spiffe_id, s.hint])).to.deep.equal([[ME, 'internal']]);
    const token = res.svids[0]!.svid;
    const v = await client.unary<ValidateJWTSVIDResponseMessage>('ValidateJWTSVID', { audience: 'svc-a', svid: token });
    expect(v.spiffe_id).to.equal(ME);
    const claims = fromStruct(v.claims);
    expect(claims).to.include({ sub: ME, 'writ.test': 'yes' });
    expect(claims.aud).to.deep.equal(['svc-a']);
    const only = await client.unary<JWTSVIDResponseMessage>('FetchJWTSVID', { audience: ['svc-a'], spiffe_id: ME });
    expect(only.svids).to.have.length(1);
  });

  it('refuses JWT calls with missing or invalid fields with InvalidArgument', async () => {
    const cases: Array<[string, object]> = [
      ['FetchJWTSVID', { audience: [] }],
      ['FetchJWTSVID', { audience: [''] }],
      ['FetchJWTSVID', { audience: ['a'], spiffe_id: 'not a spiffe id' }],
      ['FetchJWTSVID', { audience: ['a'], spiffe_id: 'spiffe://EXAMPLE.org/x' }],
      ['ValidateJWTSVID', { audience: '', svid: 'a.b.c' }],
      ['ValidateJWTSVID', { audience: 'a', svid: '' }],
    ];
    for (const [m, req] of cases) expect((await statusOf(client.unary(m, req))).code, JSON.stringify(req)).to.equal(S.INVALID_ARGUMENT);
    const forged = await statusOf(client.unary('ValidateJWTSVID', { audience: 'a', svid: 'eyJhbGciOiJub25lIn0.e30.' }));
    expect(forged.code).to.equal(S.INVALID_ARGUMENT);
    expect(forged.details).to.match(/alg/);
    const { svids } = await client.unary<JWTSVIDResponseMessage>('FetchJWTSVID', { audience: ['svc-a'] });
    const wrongAud = await statusOf(client.unary('ValidateJWTSVID', { audience: 'svc-b', svid: svids[0]!.svid }));
    expect([wrongAud.code, wrongAud.details]).to.deep.equal([S.INVALID_ARGUMENT, 'The token\'s audience does not include "svc-b".']);
  });

  it('requires exactly one security header "true" on every RPC (InvalidArgument)', async () => {
    const bad = [new grpc.Metadata(), header('false'), header('TRUE'), header('true', 'true'), header('true,true')];
    for (const md of bad) {
      const e = await statusOf(client.unary('FetchJWTSVID', { audience: ['a'] }, md));
      expect([e.code, e.details]).to.deep.equal([S.INVALID_ARGUMENT, 'security header missing from request']);
      for (const name of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles', 'FetchWITSVID']) {
        expect((await open(name, md).status()).code, name).to.equal(S.INVALID_ARGUMENT);
      }
      expect((await statusOf(client.unary('ValidateJWTSVID', { audience: 'a', svid: 'b' }, md))).code).to.equal(S.INVALID_ARGUMENT);
    }
    expect(handler.attested).to.have.length(0);
  });

  it('answers Unimplemented to the WIT-SVID profile and to unknown methods', async () => {
    expect((await open('FetchWITSVID').status()).code).to.equal(S.UNIMPLEMENTED);
    expect((await open('FetchWITBundles').status()).code).to.equal(S.UNIMPLEMENTED);
    for (const path of ['/SpiffeWorkloadAPI/NoSuchMethod', '/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/FetchX509SVIDs']) {
      const r = await client.raw(path, Buffer.alloc(0));
      expect(isServiceError(r) ? r.code : 'ok', path).to.equal(S.UNIMPLEMENTED);
    }
  });

  it('answers Unavailable while the agent is not ready', async () => {
    handler.isReady = false;
    expect((await open('FetchX509SVID').status()).code).to.equal(S.UNAVAILABLE);
    expect((await statusOf(client.unary('FetchJWTSVID', { audience: ['a'] }))).code).to.equal(S.UNAVAILABLE);
  });

  it('refuses an oversized request with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const e = await statusOf(client.unary('FetchJWTSVID', { audience: ['x'.repeat(70 * 1024)] }));
    expect(e.code).to.equal(S.RESOURCE_EXHAUSTED);
    const ok = await client.unary<JWTSVIDResponseMessage>('FetchJWTSVID', { audience: ['a'] });
    expect(ok.svids[0]!.spiffe_id).to.equal(ME);
  });

  it('fails a malformed protobuf request (INTERNAL from grpc-js) and keeps serving', async () => {
    // (protobufjs is lenient with some damage, e.g. wrong wire types of known fields; truncation it refuses.)
    for (const path of ['/SpiffeWorkloadAPI/FetchJWTSVID', '/SpiffeWorkloadAPI/ValidateJWTSVID', '/SpiffeWorkloadAPI/FetchX509SVID']) {
      for (const bytes of [Buffer.from([0xff, 0xff]), Buffer.from([0x0a, 0x80])]) {
        const r = await client.raw(path, bytes);
        expect(isServiceError(r) ? [r.code, r.details] : 'ok', path).to.deep.equal([S.INTERNAL, 'Error deserializing request']);
      }
    }
    expect(handler.attested).to.have.length(0);
    expect((await open<X509SVIDResponseMessage>('FetchX509SVID').next()).svids[0]!.spiffe_id).to.equal(ME);
  });

  it('sends one generic sentence when the handler fails with a non-WritError', async () => {
    handler.attestHook = async () => {
      throw new Error('secret internal detail /etc/shadow');
    };
    const a = await statusOf(client.unary('FetchJWTSVID', { audience: ['a'] }));
    expect([a.code, a.details]).to.deep.equal([S.UNAVAILABLE, 'workload attestation failed']);
    handler.attestHook = undefined;
    handler.x509Failure = new Error('secret cache detail');
    const b = await open('FetchX509SVID').status();
    expect(b.code).to.equal(S.UNAVAILABLE);
    expect(b.details).to.not.match(/secret/);
  });

  it('closes the pidfd and the held /proc/<pid>/status of each connection when it closes', async () => {
    await waitFor(() => ep.stats().connections === 0, 5000, 'earlier connections to close');
    const before = countPidfds();
    const statusBefore = countStatusFds();
    const c = new TestClient(ep.socketPath);
    await c.unary('FetchJWTSVID', { audience: ['a'] });
    expect(ep.stats().connections).to.be.at.least(1);
    expect(countPidfds()).to.be.above(before);
    expect(countStatusFds()).to.be.above(statusBefore);
    c.close();
    await waitFor(() => countPidfds() === before && countStatusFds() === statusBefore, 5000, 'the descriptors to be closed');
  });
});
