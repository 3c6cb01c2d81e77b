/**
 * WorkloadApiClient watchers against a real gRPC Workload API server on a temporary Unix socket:
 * rotations arrive, the watch reconnects after the stream ends and after a server restart on the
 * same path, retries PermissionDenied, stops on InvalidArgument, survives malformed messages; and
 * the linear backoff itself.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { type WritError } from '../../src/errors.js';
import { LinearBackoff, WorkloadApiClient, type X509Context } from '../../src/workloadapi/index.js';
import type { CaFixture } from '../ca/helpers.js';
import { type ClientFixture, useClientFixture } from './fixture.js';
import { NO_IDENTITY, TestWorkloadApi, jwksOf, waitFor } from './helpers.js';

describe('workloadapi: WorkloadApiClient watchers', () => {
  let fx: CaFixture;
  let api: TestWorkloadApi;
  let serial: string;
  let client: ClientFixture['client'];
  let serveX509: ClientFixture['serveX509'];
  useClientFixture((f) => ({ fx, api, serial, client, serveX509 } = f));

  describe('watch', () => {
    function watchX509(c: WorkloadApiClient): { updates: X509Context[]; errors: WritError[]; watcher: ReturnType<WorkloadApiClient['watchX509Context']> } {
      const updates: X509Context[] = [];
      const errors: WritError[] = [];
      const watcher = c.watchX509Context(
        (u) => updates.push(u),
        (e) => errors.push(e),
      );
      return { updates, errors, watcher };
    }
    const serialOf = (u: X509Context | undefined): string => u?.svids[0]?.leaf.serialNumber.toLowerCase().replace(/^0+/, '') ?? '';
    const bare = (s: string): string => s.replace(/^0+/, '');

    it('receives the first update and a rotation (new serial)', async () => {
      const w = watchX509(client());
      await waitFor(() => w.updates.length === 1, 'the first update');
      expect(serialOf(w.updates[0])).to.equal(bare(serial));
      const [next] = (await serveX509()) as [string];
      api.push('FetchX509SVID');
      await waitFor(() => w.updates.length === 2, 'the rotation');
      expect(serialOf(w.updates[1])).to.equal(bare(next));
      expect(api.calls('FetchX509SVID')).to.equal(1);
      w.watcher.stop();
      expect(await w.watcher.done).to.equal(undefined);
      await waitFor(() => api.open.FetchX509SVID.size === 0, 'the server to see the stream cancelled');
    });

    it('reconnects after the server ends the stream', async () => {
      const w = watchX509(client());
      await waitFor(() => w.updates.length === 1, 'the first update');
      api.endStreams('FetchX509SVID');
      await waitFor(() => w.updates.length === 2, 'the update after reconnecting');
      expect(api.calls('FetchX509SVID')).to.equal(2);
      expect(w.errors).to.deep.equal([]);
    });

    it('reconnects after the server restarts on the same socket path', async () => {
      const w = watchX509(client());
      await waitFor(() => w.updates.length === 1, 'the first update');
      api.stop();
      await waitFor(() => w.errors.length > 0, 'the watch to report the lost server');
      expect(w.errors[0]!.code).to.equal('ERR_WORKLOADAPI_UNAVAILABLE');
      const [next] = (await serveX509()) as [string];
      await api.start();
      await waitFor(() => w.updates.length === 2, 'the update from the restarted server');
      expect(serialOf(w.updates[1])).to.equal(bare(next));
    });

    it('reports PermissionDenied and retries until an identity appears', async () => {
      api.state.FetchX509SVID = NO_IDENTITY;
      const w = watchX509(client());
      await waitFor(() => w.errors.length >= 2, 'two PermissionDenied reports');
      expect(w.errors.every((e) => e.code === 'ERR_WORKLOAD_NO_IDENTITY')).to.equal(true);
      await serveX509();
      await waitFor(() => w.updates.length === 1, 'the identity to arrive');
    });

    it('stops on InvalidArgument and reports it once', async () => {
      const w = watchX509(client());
      await waitFor(() => w.updates.length === 1, 'the first update');
      api.state.FetchX509SVID = { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' };
      api.push('FetchX509SVID');
      const err = await w.watcher.done;
      expect(err?.code).to.equal('ERR_WORKLOAD_HEADER');
      expect(w.errors.map((e) => e.code)).to.deep.equal(['ERR_WORKLOAD_HEADER']);
      await new Promise((r) => setTimeout(r, 150));
      expect(api.calls('FetchX509SVID')).to.equal(1);
    });

    it('reports a malformed message and keeps watching', async () => {
      const w = watchX509(client());
      await waitFor(() => w.updates.length === 1, 'the first update');
      api.send('FetchX509SVID', { svids: [], crl: [], federated_bundles: {} });
      await waitFor(() => w.errors.length === 1, 'the malformed message to be reported');
      expect(w.errors[0]!.code).to.equal('ERR_WORKLOADAPI_RESPONSE');
      await serveX509();
      api.push('FetchX509SVID');
      await waitFor(() => w.updates.length === 2, 'the next good message');
      expect(api.calls('FetchX509SVID')).to.equal(1);
    });

    it('watches X.509 and JWT bundles', async () => {
      const c = client();
      const x509: string[][] = [];
      const jwt: string[][] = [];
      c.watchX509Bundles((u) => x509.push(u.bundles.trustDomainNames()));
      c.watchJwtBundles((b) => jwt.push(b.trustDomainNames()));
      await waitFor(() => x509.length === 1 && jwt.length === 1, 'the first bundle updates');
      api.state.FetchJWTBundles = { bundles: { 'spiffe://example.org': jwksOf(fx.authority) } };
      api.push('FetchJWTBundles');
      await waitFor(() => jwt.length === 2, 'the JWT bundle update');
      expect(jwt).to.deep.equal([['example.org', 'partner.org'], ['example.org']]);
      expect(x509).to.deep.equal([['example.org', 'partner.org']]);
      c.close();
      await waitFor(() => api.open.FetchJWTBundles.size === 0 && api.open.FetchX509Bundles.size === 0, 'close() to cancel the streams');
    });
  });

  describe('backoff', () => {
    it('is linear from 1 s, capped at 30 s, with jitter, and resets', () => {
      const b = new LinearBackoff({ jitter: 0 });
      const delays = Array.from({ length: 32 }, () => b.next());
      expect(delays.slice(0, 3)).to.deep.equal([1000, 2000, 3000]);
      expect(delays.slice(-3)).to.deep.equal([30_000, 30_000, 30_000]);
      b.reset();
      expect(b.next()).to.equal(1000);
      const j = new LinearBackoff({ jitter: 0.1, random: () => 0.5 });
      expect(j.next()).to.equal(1050);
      expect(() => new LinearBackoff({ stepMs: 0 })).to.throw(RangeError);
    });
  });
});
