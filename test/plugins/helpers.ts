/**
 * Shared helpers of the plugin tests: awaiting a WritError, and the x509pop test PKI (a root with
 * an intermediate and a leaf, a second unrelated CA) with agents built from files in a temp dir.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePem } from '../../src/bundle/index.js';
import { ManualClock } from '../../src/clock.js';
import { type WritError, isWritError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { type AgentNodeAttestor, type PluginDeps, type ServerNodeAttestor, x509PopAgentPlugin, x509PopServerPlugin } from '../../src/plugins/index.js';
import { KU, type TestCert, makeCert, makeRoot, newKey } from '../svid/pki.js';

/** The WritError `p` rejects with; fails the test if it resolves or rejects with something else. */
export async function failure(p: Promise<unknown>): Promise<WritError> {
  try {
    await p;
  } catch (e) {
    if (isWritError(e)) return e;
    throw new Error(`expected a WritError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a rejection');
}

export const HOUR = 3600_000;

export const sha1 = (c: TestCert): string => createHash('sha1').update(c.der).digest('hex');

export interface X509PopFixture {
  dir: string;
  clock: ManualClock;
  /** The clock's start (the real time when the fixture was built). */
  now0: number;
  deps: PluginDeps;
  /** CA valid 48 h; intermediate under it valid 48 h; leaf under that valid 24 h with CN, DNS SANs and serial 00a1b2c3d4e5f6. */
  rootA: TestCert;
  interA: TestCert;
  leafA: TestCert;
  /** An unrelated CA and a leaf under it. */
  rootB: TestCert;
  leafB: TestCert;
  /** A server trusting rootA only (ca.pem in dir). */
  server: ServerNodeAttestor;
  write(name: string, text: string): string;
  /** An agent for `chain` (leaf first) holding the leaf's key, configured from files. */
  agentFor(chain: TestCert[]): Promise<AgentNodeAttestor>;
  /** A challenge function that lets the agent answer. */
  honest(agent: AgentNodeAttestor): (c: unknown) => Promise<unknown>;
  cleanup(): void;
}

export async function x509PopFixture(): Promise<X509PopFixture> {
  const clock = new ManualClock(Date.now());
  const now0 = clock.nowMs();
  const deps: PluginDeps = { logger: silentLogger, clock, trustDomain: 'example.org' };
  const dir = mkdtempSync(join(tmpdir(), 'writ-x509pop-'));
  let n = 0;
  const write = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  try {
    const rootA = await makeRoot('nodes.example', 'P-256', { notAfter: new Date(now0 + 48 * HOUR) });
    const interA = await makeCert({ subject: 'CN=node intermediate', ca: true, notAfter: new Date(now0 + 48 * HOUR) }, await newKey('P-256'), rootA);
    const leafA = await makeCert(
      { subject: 'CN=node-1.example, O=writ tests', dns: ['node-1.example', 'n1.internal'], serial: '00a1b2c3d4e5f6', keyUsage: KU.digitalSignature },
      await newKey('P-256'),
      interA,
    );
    const rootB = await makeRoot('other.example');
    const leafB = await makeCert({ subject: 'CN=node-b' }, await newKey('P-256'), rootB);
    const server = await x509PopServerPlugin.create(x509PopServerPlugin.configSchema.parse({ ca_bundle_path: write('ca.pem', rootA.pem) }), deps);
    return {
      dir,
      clock,
      now0,
      deps,
      rootA,
      interA,
      leafA,
      rootB,
      leafB,
      server,
      write,
      async agentFor(chain) {
        n += 1;
        const certificate_path = write(`chain${n}.pem`, chain.map((c) => c.pem).join('\n'));
        const private_key_path = write(`key${n}.pem`, encodePem('PRIVATE KEY', chain[0]!.key.pkcs8));
        return x509PopAgentPlugin.create({ certificate_path, private_key_path }, deps);
      },
      honest: (agent) => (c) => agent.respond(c),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
