/**
 * A workload in its own process, for e2e tests that need one whose Workload API answer differs
 * from the test process's (entries can select it by `unix:pid:<pid>`). Run as
 *   node --import tsx test/helpers/mtls-call.ts WORKLOAD_API_ADDRESS URL SERVER_SPIFFE_ID
 * It waits for one line on standard input (so the test can first register an entry for its pid),
 * opens an X509Source, makes one mTLS request with MtlsClient (the server must be
 * SERVER_SPIFFE_ID), and prints one JSON line: what it holds, and how the request ended.
 */
import { once } from 'node:events';
import { isWritError } from '../../src/errors.js';
import { MtlsClient, authorizeId } from '../../src/tls/index.js';
import { X509Source } from '../../src/workloadapi/index.js';

export interface MtlsCallResult {
  spiffeIds: string[];
  trustDomains: string[];
  ok: boolean;
  status?: number;
  body?: string;
  serverId?: string;
  code?: string;
  /** The TLS error code under ERR_TLS_CONNECTION (details.error), when there is one. */
  tlsError?: string;
  message?: string;
}

async function main(address: string, url: string, serverId: string): Promise<MtlsCallResult> {
  process.stdin.resume();
  await once(process.stdin, 'data');
  process.stdin.pause();
  const source = await X509Source.open({ address, timeoutMs: 30_000 });
  const client = new MtlsClient(source, authorizeId(serverId), { keepAlive: false });
  const held = { spiffeIds: source.getX509Svids().map((s) => s.id.toString()), trustDomains: source.bundles().trustDomainNames() };
  try {
    const res = await client.request(url, { timeoutMs: 15_000 });
    return { ...held, ok: true, status: res.status, body: res.text(), serverId: res.peer.spiffeId.toString() };
  } catch (e) {
    if (!isWritError(e)) return { ...held, ok: false, message: String(e) };
    const tlsError = e.details?.error;
    return { ...held, ok: false, code: e.code, message: e.message, ...(typeof tlsError === 'string' ? { tlsError } : {}) };
  } finally {
    client.close();
    source.close();
  }
}

const [address, url, serverId] = process.argv.slice(2);
if (!address || !url || !serverId) {
  process.stderr.write('usage: mtls-call.ts WORKLOAD_API_ADDRESS URL SERVER_SPIFFE_ID\n');
  process.exit(2);
}
main(address, url, serverId).then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`${isWritError(e) ? `${e.code}: ${e.message}` : String(e)}\n`);
    process.exit(1);
  },
);
