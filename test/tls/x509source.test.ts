/**
 * The mTLS helpers on a real X509Source: a gRPC Workload API on a temporary Unix socket streams the
 * SVID, bundle and CRL; a service built with createMtlsServer and MtlsClient on that source follows
 * the updates it pushes (rotation, then revocation) on the next connection.
 */
import { expect } from 'chai';
import type { TLSSocket } from 'node:tls';
import { MtlsClient, type TlsSource, authorizeId, createMtlsServer, verifiedPeerOf } from '../../src/tls/index.js';
import { X509Source } from '../../src/workloadapi/index.js';
import { FAST_BACKOFF, ID, TestWorkloadApi, mintSvidMessage, waitFor } from '../workloadapi/helpers.js';
import { Cleanup, TestCa, bareSerial, listen } from './helpers.js';

describe('tls: createMtlsServer and MtlsClient on a real X509Source', () => {
  let ca: TestCa;
  let api: TestWorkloadApi;
  const cleanup = new Cleanup();

  before(async () => {
    ca = await TestCa.create('example.org');
  });
  afterEach(async () => {
    await cleanup.run();
    api?.cleanup();
  });

  it('serves the streamed SVID, follows a rotation and refuses a serial revoked by a pushed CRL', async () => {
    api = await new TestWorkloadApi().start();
    const first = await mintSvidMessage(ca.authority, ID);
    api.state.FetchX509SVID = { svids: [first.message], crl: [], federated_bundles: {} };
    const source = await X509Source.open({ address: api.address, backoff: FAST_BACKOFF });
    cleanup.add(() => source.close());
    const typed: TlsSource = source; // X509Source is a TlsSource as it is
    let updates = 0;
    source.on('update', () => updates++);

    const server = cleanup.server(createMtlsServer(typed, authorizeId(ID), (req, res) => res.end(verifiedPeerOf(req.socket as TLSSocket).serial)));
    const port = await listen(server);
    // keepAlive off: every request is a new connection, so each one sees the latest state.
    const client = new MtlsClient(source, authorizeId(ID), { keepAlive: false });
    cleanup.add(() => client.close());

    const r1 = await client.request(`https://127.0.0.1:${port}/`);
    expect(bareSerial(r1.text())).to.equal(bareSerial(first.serial));
    expect(bareSerial(r1.peer.serial)).to.equal(bareSerial(first.serial));

    const second = await mintSvidMessage(ca.authority, ID);
    api.state.FetchX509SVID = { svids: [second.message], crl: [], federated_bundles: {} };
    api.push('FetchX509SVID');
    await waitFor(() => updates >= 1, 'the rotated SVID');
    const r2 = await client.request(`https://127.0.0.1:${port}/`);
    expect(bareSerial(r2.text())).to.equal(bareSerial(second.serial)); // the client presents the new SVID
    expect(bareSerial(r2.peer.serial)).to.equal(bareSerial(second.serial)); // and the server does too

    const [crl] = await ca.authority.crls([{ serial: second.serial, issuerSki: ca.authority.signingCa().ski, revokedAt: Math.floor(Date.now() / 1000), notAfter: Math.floor(Date.now() / 1000) + 3600, reason: 'test' }]);
    api.state.FetchX509SVID = { svids: [second.message], crl: [crl!.der], federated_bundles: {} };
    api.push('FetchX509SVID');
    await waitFor(() => updates >= 2, 'the CRL');
    const err = await client.request(`https://127.0.0.1:${port}/`).then(
      () => undefined,
      (e: { code: string; details?: Record<string, unknown> }) => e,
    );
    // The client refuses the (revoked) server before the server could refuse the (revoked) client.
    expect([err?.code, err?.details?.reason]).to.deep.equal(['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_REVOKED']);
  });
});
