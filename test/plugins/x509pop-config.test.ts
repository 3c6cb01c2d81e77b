/**
 * x509pop configuration: agent_path_template rendering and refusal (at start and per
 * certificate), the server's CA bundle (missing, empty, not a CA, garbage), and the agent's
 * files (a key that must belong to its leaf, an unreadable key, a chain file without a
 * certificate), each refused with ERR_PLUGIN_CONFIG through the real catalog where it matters.
 */
import { join } from 'node:path';
import { expect } from 'chai';
import { encodePem } from '../../src/bundle/index.js';
import { SERVER_PLUGINS, loadPlugins, x509PopAgentPlugin, x509PopServerPlugin } from '../../src/plugins/index.js';
import { makeCert, newKey } from '../svid/pki.js';
import { type X509PopFixture, failure, x509PopFixture } from './helpers.js';

describe('plugins: x509pop configuration', () => {
  let f: X509PopFixture;
  before(async () => {
    f = await x509PopFixture();
  });
  after(() => f?.cleanup());

  it('renders agent_path_template from certificate fields and refuses paths that are not SPIFFE paths', async () => {
    const parse = (t: string) => x509PopServerPlugin.configSchema.parse({ ca_bundle_path: join(f.dir, 'ca.pem'), agent_path_template: t });
    const s = await x509PopServerPlugin.create(parse('/{{ .PluginName }}/cn/{{ .Subject.CommonName }}/{{.SerialNumberHex}}'), f.deps);
    const agent = await f.agentFor([f.leafA, f.interA]);
    expect((await s.attest(await agent.payload(), f.honest(agent))).agentPath).to.equal('x509pop/cn/node-1.example/a1b2c3d4e5f6');
    const td = await x509PopServerPlugin.create(parse('x509pop/{{ .TrustDomain }}/{{ .Fingerprint }}'), f.deps);
    expect((await td.attest(await agent.payload(), f.honest(agent))).agentPath).to.match(/^x509pop\/example\.org\/[0-9a-f]{40}$/);
    const spaced = await makeCert({ subject: 'CN=has space' }, await newKey(), f.rootA);
    const a2 = await f.agentFor([spaced]);
    const bad = await failure(s.attest(await a2.payload(), f.honest(a2)));
    expect(bad.code).to.equal('ERR_NODE_ATTESTATION');
    expect(bad.message).to.include('not a valid SPIFFE ID path');
    const noCn = await makeCert({ subject: 'O=no common name' }, await newKey(), f.rootA);
    const a3 = await f.agentFor([noCn]);
    expect((await failure(s.attest(await a3.payload(), f.honest(a3)))).message).to.include('.Subject.CommonName');
  });

  it('refuses templates with unknown fields, stray braces or invalid paths at start', async () => {
    for (const t of ['{{ .Nope }}', 'a//b', '{{ .Fingerprint', 'x/{{ .Fingerprint }}/..', 'x/y z']) {
      const err = await failure(loadPlugins(SERVER_PLUGINS, [{ type: 'node_attestor', name: 'x509pop', config: { ca_bundle_path: 'x', agent_path_template: t } }], f.deps));
      expect(err.code, t).to.equal('ERR_PLUGIN_CONFIG');
      expect(err.message, t).to.include('field "agent_path_template"');
    }
  });

  it('refuses a CA bundle that is missing, empty, garbage, or holds a certificate that is not a CA', async () => {
    const create = (p: string) => failure(x509PopServerPlugin.create(x509PopServerPlugin.configSchema.parse({ ca_bundle_path: p }), f.deps));
    expect((await create(join(f.dir, 'absent.pem'))).code).to.equal('ERR_PLUGIN_CONFIG');
    expect((await create(f.write('empty.pem', '\n'))).code).to.equal('ERR_PLUGIN_CONFIG');
    expect((await create(f.write('garbage.pem', '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n'))).code).to.equal('ERR_PLUGIN_CONFIG');
    const leafErr = await create(f.write('leaf-as-ca.pem', f.leafA.pem));
    expect(leafErr.code).to.equal('ERR_PLUGIN_CONFIG');
    expect(leafErr.message).to.include('not a CA certificate');
    const missing = await failure(loadPlugins(SERVER_PLUGINS, [{ type: 'node_attestor', name: 'x509pop', config: {} }], f.deps));
    expect(missing.message).to.equal('The node_attestor plugin "x509pop" has an invalid field "ca_bundle_path": it is required.');
  });

  it('refuses an agent whose private key does not belong to its leaf, or is unreadable, or whose chain file is empty', async () => {
    const certificate_path = f.write('mismatch-chain.pem', f.leafA.pem);
    const private_key_path = f.write('mismatch-key.pem', encodePem('PRIVATE KEY', f.leafB.key.pkcs8));
    const err = await failure(x509PopAgentPlugin.create({ certificate_path, private_key_path }, f.deps));
    expect(err.code).to.equal('ERR_PLUGIN_CONFIG');
    expect(err.message).to.include('does not belong');
    const garbageKey = f.write('garbage-key.pem', 'not a key');
    expect((await failure(x509PopAgentPlugin.create({ certificate_path, private_key_path: garbageKey }, f.deps))).code).to.equal('ERR_PLUGIN_CONFIG');
    const emptyChain = f.write('empty-chain.pem', '');
    const goodKey = f.write('good-key.pem', encodePem('PRIVATE KEY', f.leafA.key.pkcs8));
    expect((await failure(x509PopAgentPlugin.create({ certificate_path: emptyChain, private_key_path: goodKey }, f.deps))).code).to.equal('ERR_PLUGIN_CONFIG');
    expect((await failure(x509PopAgentPlugin.create({ certificate_path: join(f.dir, 'absent'), private_key_path: goodKey }, f.deps))).code).to.equal('ERR_PLUGIN_CONFIG');
  });
});
