/**
 * The shared setup of the client tests: two CAs (example.org and partner.org) on real SQLite
 * datastores, a fresh in-test Workload API server per test serving an SVID, the default bundles
 * and a CRL, and WorkloadApiClients that are closed after each test.
 */
import { WorkloadApiClient } from '../../src/workloadapi/index.js';
import { type CaFixture, caFixture } from '../ca/helpers.js';
import { FAST_BACKOFF, TestWorkloadApi, serveDefaults, serveX509 } from './helpers.js';

export interface ClientFixture {
  fx: CaFixture;
  partner: CaFixture;
  api: TestWorkloadApi;
  crl: Buffer;
  /** Serial of the SVID served at the start of the test. */
  serial: string;
  client(opts?: { address?: string; timeoutMs?: number }): WorkloadApiClient;
  /** Serves new SVIDs for `ids` (default the one ID); returns their serials. */
  serveX509(ids?: Array<[string, string?]>): Promise<string[]>;
}

/** Registers the mocha hooks; `onChange` receives the state after each setup step. */
export function useClientFixture(onChange: (f: ClientFixture) => void): void {
  const clients: WorkloadApiClient[] = [];
  const f = {
    client: (opts: { address?: string; timeoutMs?: number } = {}) => {
      const c = new WorkloadApiClient({ address: f.api.address, timeoutMs: 5000, backoff: FAST_BACKOFF, ...opts });
      clients.push(c);
      return c;
    },
    serveX509: (ids?: Array<[string, string?]>) => serveX509(f.api, f.fx.authority, f.partner.authority, f.crl, ids),
  } as ClientFixture;

  before(async () => {
    f.fx = await caFixture({ start: Date.now() });
    f.partner = await caFixture({ start: Date.now(), config: { trustDomain: 'partner.org' } });
    f.crl = (await f.fx.authority.crls([]))[0]!.der;
    onChange(f);
  });
  after(async () => {
    await f.fx?.cleanup();
    await f.partner?.cleanup();
  });
  beforeEach(async () => {
    f.api = await new TestWorkloadApi().start();
    [f.serial] = (await f.serveX509()) as [string];
    serveDefaults(f.api, f.fx.authority, f.partner.authority, f.crl);
    onChange(f);
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    f.api.cleanup();
  });
}
