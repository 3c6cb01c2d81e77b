/**
 * The x509pop node attestor, agent and server halves run against each other through a real
 * challenge function: success with the expected selectors and path for several key types; and
 * each failure is ERR_NODE_ATTESTATION: forged signature, another key's signature, a response
 * replayed from an earlier session or answering another session's nonce, another CA, an expired
 * or not-yet-valid leaf by the injected clock, a CA presented as the leaf, a leaf that may not
 * sign, path length violations, unknown critical extensions, garbage payloads (property tests).
 * Configuration (CA bundle, agent files, agent_path_template) is in x509pop-config.test.ts.
 */
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import type { ManualClock, RandomSource } from '../../src/clock.js';
import { type WritError, isWritError } from '../../src/errors.js';
import { type AgentNodeAttestor, type PluginDeps, type ServerNodeAttestor, x509PopServerPlugin } from '../../src/plugins/index.js';
import { parseX509PopPayload } from '../../src/plugins/nodeattestor/x509pop.js';
import { parseX509PopChallenge, parseX509PopResponse, signChallenge } from '../../src/plugins/nodeattestor/x509pop-pop.js';
import { KU, type TestCert, makeCert, makeRoot, newKey, unknownCriticalExtension } from '../svid/pki.js';
import { HOUR, type X509PopFixture, failure, sha1, x509PopFixture } from './helpers.js';

describe('plugins: x509pop node attestor', () => {
  let f: X509PopFixture;
  let rootA: TestCert, interA: TestCert, leafA: TestCert, leafB: TestCert;
  let server: ServerNodeAttestor;
  let clock: ManualClock;
  let now0 = 0;
  let deps: PluginDeps;
  const agentFor = (chain: TestCert[]): Promise<AgentNodeAttestor> => f.agentFor(chain);
  const honest = (agent: AgentNodeAttestor) => f.honest(agent);
  const write = (name: string, text: string): string => f.write(name, text);

  before(async () => {
    f = await x509PopFixture();
    ({ rootA, interA, leafA, leafB, server, clock, now0, deps } = f);
  });
  after(() => f?.cleanup());
  afterEach(() => clock.set(now0));

  it('attests a leaf through an intermediate, with selectors and the fingerprint path', async () => {
    const agent = await agentFor([leafA, interA]);
    const result = await server.attest(await agent.payload(), honest(agent));
    expect(result.agentPath).to.equal(`x509pop/${sha1(leafA)}`);
    expect(result.canReattest).to.equal(true);
    expect(result.selectors.map((s) => `${s.type}:${s.value}`)).to.deep.equal([
      'x509pop:subject:cn:node-1.example',
      `x509pop:ca:fingerprint:${sha1(interA)}`,
      `x509pop:ca:fingerprint:${sha1(rootA)}`,
      'x509pop:serialnumber:a1b2c3d4e5f6',
      'x509pop:san:dns:node-1.example',
      'x509pop:san:dns:n1.internal',
    ]);
  });

  it('accepts a chain that includes the root and leaves signed by P-384, RSA and Ed25519 keys', async () => {
    const withRoot = await agentFor([leafA, interA, rootA]);
    expect((await server.attest(await withRoot.payload(), honest(withRoot))).agentPath).to.equal(`x509pop/${sha1(leafA)}`);
    for (const kind of ['P-384', 'RSA-2048', 'Ed25519'] as const) {
      const leaf = await makeCert({ subject: `CN=${kind.toLowerCase()}-node` }, await newKey(kind), rootA);
      const agent = await agentFor([leaf]);
      const result = await server.attest(await agent.payload(), honest(agent));
      expect(result.selectors).to.deep.include({ type: 'x509pop', value: `subject:cn:${kind.toLowerCase()}-node` });
      expect(result.selectors).to.deep.include({ type: 'x509pop', value: `ca:fingerprint:${sha1(rootA)}` });
    }
  });

  it('uses the nonce from deps.random, once per attestation', async () => {
    const seen: string[] = [];
    let calls = 0;
    const random: RandomSource = { bytes: (k) => Buffer.alloc(k, ++calls) };
    const s = await x509PopServerPlugin.create(x509PopServerPlugin.configSchema.parse({ ca_bundle_path: join(f.dir, 'ca.pem') }), { ...deps, random });
    const agent = await agentFor([leafA, interA]);
    for (let i = 0; i < 2; i++) {
      await s.attest(await agent.payload(), (c) => {
        seen.push((c as { nonce: string }).nonce);
        return agent.respond(c);
      });
    }
    expect(seen).to.deep.equal([Buffer.alloc(32, 1).toString('base64'), Buffer.alloc(32, 2).toString('base64')]);
  });

  it('refuses a forged signature', async () => {
    const agent = await agentFor([leafA, interA]);
    const err = await failure(server.attest(await agent.payload(), async (c) => {
      const r = (await agent.respond(c)) as { signature: string };
      const sig = Buffer.from(r.signature, 'base64');
      sig.writeUInt8(sig.readUInt8(sig.length - 1) ^ 0x01, sig.length - 1);
      return { signature: sig.toString('base64') };
    }));
    expect(err.code).to.equal('ERR_NODE_ATTESTATION');
    expect(err.message).to.include('signature does not verify');
  });

  it("refuses a signature made by another key than the leaf's", async () => {
    const agent = await agentFor([leafA, interA]);
    const other = await newKey('P-256');
    const err = await failure(server.attest(await agent.payload(), async (c) => signChallenge(other.privateKey, parseX509PopChallenge(c).nonce)));
    expect(err.code).to.equal('ERR_NODE_ATTESTATION');
    expect(err.message).to.include('signature does not verify');
  });

  it('refuses a response replayed from an earlier session, and a response to another session nonce', async () => {
    const agent = await agentFor([leafA, interA]);
    let recorded: unknown;
    let firstChallenge: unknown;
    await server.attest(await agent.payload(), async (c) => {
      firstChallenge = c;
      recorded = await agent.respond(c);
      return recorded;
    });
    const replay = await failure(server.attest(await agent.payload(), async () => recorded));
    expect(replay.code).to.equal('ERR_NODE_ATTESTATION');
    expect(replay.message).to.include('signature does not verify');
    const crossed = await failure(server.attest(await agent.payload(), async () => agent.respond(firstChallenge)));
    expect(crossed.code).to.equal('ERR_NODE_ATTESTATION');
  });

  it('refuses a leaf from another CA before sending any challenge', async () => {
    const agent = await agentFor([leafB]);
    let challenged = false;
    const err = await failure(server.attest(await agent.payload(), (c) => ((challenged = true), agent.respond(c))));
    expect(err.code).to.equal('ERR_NODE_ATTESTATION');
    expect(err.message).to.include('does not lead to a trusted CA');
    expect(challenged).to.equal(false);
  });

  it('refuses a chain missing its intermediate, or given out of order', async () => {
    for (const chain of [[leafA], [leafA, rootA, interA]]) {
      const agent = await agentFor(chain);
      const err = await failure(server.attest(await agent.payload(), honest(agent)));
      expect(err.code).to.equal('ERR_NODE_ATTESTATION');
      expect(err.message).to.include('does not lead to a trusted CA');
    }
  });

  it('refuses an expired or not-yet-valid leaf by the injected clock, and an expired CA', async () => {
    const agent = await agentFor([leafA, interA]);
    clock.set(now0 + 30 * HOUR); // the leaf (24 h) has expired, the CAs (48 h) have not
    const expired = await failure(server.attest(await agent.payload(), honest(agent)));
    expect(expired.message).to.equal('The x509pop attestation failed: the leaf certificate has expired.');
    clock.set(now0 - 2 * HOUR);
    const early = await failure(server.attest(await agent.payload(), honest(agent)));
    expect(early.message).to.include('the leaf certificate is not valid yet');
    const shortCa = await makeCert({ subject: 'CN=short intermediate', ca: true, notAfter: new Date(now0 + 2 * HOUR) }, await newKey(), rootA);
    const leaf = await makeCert({ subject: 'CN=under short', notAfter: new Date(now0 + 3 * HOUR) }, await newKey(), shortCa);
    const a2 = await agentFor([leaf, shortCa]);
    clock.set(now0 + 150 * 60_000);
    const caExpired = await failure(server.attest(await a2.payload(), honest(a2)));
    expect(caExpired.message).to.equal('The x509pop attestation failed: intermediate certificate 1 has expired.');
    clock.set(now0 + 30 * 60_000);
    expect((await server.attest(await a2.payload(), honest(a2))).canReattest).to.equal(true);
  });

  it('refuses a CA certificate presented as the leaf, and a leaf whose keyUsage forbids signing', async () => {
    const asLeaf = await agentFor([interA]);
    const err = await failure(server.attest(await asLeaf.payload(), honest(asLeaf)));
    expect(err.code).to.equal('ERR_NODE_ATTESTATION');
    expect(err.message).to.include('the leaf certificate is a CA certificate');
    const noSign = await makeCert({ subject: 'CN=no-sign', keyUsage: KU.keyEncipherment }, await newKey(), rootA);
    const a2 = await agentFor([noSign]);
    expect((await failure(server.attest(await a2.payload(), honest(a2)))).message).to.include('keyUsage lacks digitalSignature');
  });

  it('refuses an intermediate that is not a CA, a path longer than pathLen allows, and unknown critical extensions', async () => {
    const notCa = await makeCert({ subject: 'CN=not a ca', ca: false, keyUsage: KU.keyCertSign | KU.digitalSignature }, await newKey(), rootA);
    const under = await makeCert({ subject: 'CN=under not-ca' }, await newKey(), notCa);
    const a1 = await agentFor([under, notCa]);
    const notCaErr = await failure(server.attest(await a1.payload(), honest(a1)));
    expect(notCaErr.code).to.equal('ERR_NODE_ATTESTATION');
    expect(notCaErr.message).to.equal('The x509pop attestation failed: intermediate certificate 1 is not a CA certificate.');

    const rootP = await makeRoot('pathlen.example', 'P-256', { pathLen: 0 });
    const inter = await makeCert({ subject: 'CN=inter under pathlen 0', ca: true }, await newKey(), rootP);
    const leaf = await makeCert({ subject: 'CN=too deep' }, await newKey(), inter);
    const s = await x509PopServerPlugin.create(x509PopServerPlugin.configSchema.parse({ ca_bundle_path: write('pathlen.pem', rootP.pem) }), deps);
    const a2 = await agentFor([leaf, inter]);
    expect((await failure(s.attest(await a2.payload(), honest(a2)))).message).to.include('allows 0 intermediates');

    const crit = await makeCert({ subject: 'CN=critical', extensions: [unknownCriticalExtension()] }, await newKey(), rootA);
    const a3 = await agentFor([crit]);
    expect((await failure(server.attest(await a3.payload(), honest(a3)))).message).to.include('critical extension');
  });

  it('refuses when the challenge function rejects (timeout, disconnect)', async () => {
    const agent = await agentFor([leafA, interA]);
    const err = await failure(server.attest(await agent.payload(), () => Promise.reject(new Error('timeout'))));
    expect(err.code).to.equal('ERR_NODE_ATTESTATION');
    expect(err.message).to.include('did not answer');
  });

  const garbage: Array<[string, unknown]> = [
    ['null', null],
    ['an array', []],
    ['no certificates member', { certs: [] }],
    ['an empty list', { certificates: [] }],
    ['a non-list', { certificates: 'MIIB' }],
    ['a number in the list', { certificates: [42] }],
    ['non-base64 text', { certificates: ['not base64!'] }],
    ['base64 of junk', { certificates: [Buffer.from('hello world, not DER').toString('base64')] }],
    ['too many certificates', { certificates: Array.from({ length: 9 }, () => 'AAAA') }],
    ['an extra member', { certificates: ['AAAA'], extra: true }],
  ];
  for (const [what, payload] of garbage) {
    it(`refuses a payload with ${what}`, async () => {
      const err = await failure(server.attest(payload, () => Promise.reject(new Error('no challenge expected'))));
      expect(err.code).to.equal('ERR_NODE_ATTESTATION');
      expect(err.message).to.match(/^The x509pop payload is malformed/);
    });
  }

  it('refuses garbage challenge responses', async () => {
    const agent = await agentFor([leafA, interA]);
    for (const r of [null, 'sig', {}, { signature: 5 }, { signature: '***' }, { signature: 'A'.repeat(2000) }, { signature: 'AAAA', x: 1 }]) {
      const err = await failure(server.attest(await agent.payload(), async () => r));
      expect(err.code).to.equal('ERR_NODE_ATTESTATION');
    }
  });

  it('parses arbitrary JSON payloads, challenges and responses without throwing anything but WritError', async () => {
    const json = fc.oneof(fc.jsonValue(), fc.record({ certificates: fc.array(fc.oneof(fc.base64String(), fc.jsonValue()), { maxLength: 10 }) }), fc.record({ nonce: fc.oneof(fc.base64String(), fc.jsonValue()) }), fc.record({ signature: fc.oneof(fc.base64String(), fc.jsonValue()) }));
    const onlyWrit = (fn: () => unknown): void => {
      try {
        fn();
      } catch (e) {
        expect(isWritError(e), String(e)).to.equal(true);
        expect((e as WritError).code).to.equal('ERR_NODE_ATTESTATION');
      }
    };
    const agent = await agentFor([leafA, interA]);
    const payload = await agent.payload();
    await fc.assert(
      fc.asyncProperty(json, async (v) => {
        onlyWrit(() => parseX509PopPayload(v));
        onlyWrit(() => parseX509PopChallenge(v));
        onlyWrit(() => parseX509PopResponse(v));
        const errs = await Promise.allSettled([server.attest(v, async () => v), server.attest(payload, async () => v), agent.respond(v)]);
        for (const r of errs) if (r.status === 'rejected') expect(isWritError(r.reason), String(r.reason)).to.equal(true);
        expect(errs[1]!.status).to.equal('rejected');
      }),
      { numRuns: 200 },
    );
  });
});
