import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WritError } from '../../src/errors.js';
import { loadServerConfig, validateServerConfig } from '../../src/server/config.js';

describe('server/config', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const failure = (fn: () => unknown): WritError => {
    try {
      fn();
    } catch (e) {
      expect(e).to.be.instanceOf(WritError);
      return e as WritError;
    }
    throw new Error('accepted');
  };

  it('ships a docker-compose.yml whose server service runs a config that validates', () => {
    const compose = parseYaml(readFileSync('docker-compose.yml', 'utf8')) as {
      services: Record<string, { command: string[]; volumes: string[]; healthcheck: { test: string[] } }>;
    };
    const svc = compose.services['writ-server']!;
    expect(svc.command.slice(0, 2)).to.deep.equal(['server', 'run']);
    const target = svc.command[svc.command.indexOf('--config') + 1];
    const mount = svc.volumes.find((v) => v.split(':')[1] === target)!;
    expect(mount, 'the config file is mounted').to.be.a('string');
    const c = loadServerConfig(mount.split(':')[0]!);
    expect(c.trustDomain).to.equal('example.org');
    expect(svc.healthcheck.test).to.include('healthcheck');
    expect(svc.healthcheck.test).to.include(c.admin.socketPath);
  });

  it('loads the example config shipped in config/server.yaml', () => {
    const c = loadServerConfig('config/server.yaml');
    expect(c.trustDomain).to.equal('example.org');
    expect(c.defaultX509SvidTtl).to.equal(3600);
    expect(c.defaultJwtSvidTtl).to.equal(300);
    expect(c.ca.caTtl).to.equal(86400);
    expect(c.ca.rootTtl).to.equal(720 * 3600);
    expect(c.bundleEndpoint).to.deep.equal({ enabled: true, bindAddress: '127.0.0.1', port: 8443, profile: 'https_spiffe', refreshHint: 300 });
    expect(c.warnings).to.deep.equal([]);
  });

  it('fills defaults from a one-line config, in YAML or JSON', () => {
    const y = loadServerConfig(write('a.yaml', 'trust_domain: td.test\n'));
    const j = loadServerConfig(write('a.json', '{"trust_domain": "td.test"}'));
    expect(y).to.deep.equal(j);
    expect(y.datastore.path).to.equal(join(process.cwd(), 'data', 'datastore.sqlite3'));
    expect(y.ca.keyManager).to.equal('disk');
    expect(y.health).to.deep.equal({ enabled: true, bindAddress: '127.0.0.1', port: 8089 });
  });

  const bad: Array<[string, string, string, string]> = [
    ['missing trust domain', 'log_level: info\n', 'ERR_CONFIG_INVALID', 'trust_domain'],
    ['upper-case trust domain', 'trust_domain: Example.org\n', 'ERR_CONFIG_INVALID', 'trust_domain'],
    ['trust domain given as an ID', 'trust_domain: spiffe://example.org\n', 'ERR_CONFIG_INVALID', 'trust_domain'],
    ['unknown top-level field', 'trust_domain: a.test\ncolour: blue\n', 'ERR_CONFIG_INVALID', '(top level)'],
    ['unknown nested field', 'trust_domain: a.test\nca:\n  ttl: 1h\n', 'ERR_CONFIG_INVALID', 'ca'],
    ['bad duration', 'trust_domain: a.test\ndefault_x509_svid_ttl: soon\n', 'ERR_CONFIG_INVALID', 'default_x509_svid_ttl'],
    ['bad log level', 'trust_domain: a.test\nlog_level: loud\n', 'ERR_CONFIG_INVALID', 'log_level'],
    ['port out of range', 'trust_domain: a.test\nhealth:\n  port: 70000\n', 'ERR_CONFIG_INVALID', 'health.port'],
    ['ca_ttl not longer than the SVID TTL', 'trust_domain: a.test\nca:\n  ca_ttl: 1h\n', 'ERR_CONFIG_INVALID', 'ca.ca_ttl'],
    ['root shorter than signing CA', 'trust_domain: a.test\nca:\n  root_ttl: 1h\n', 'ERR_CONFIG_INVALID', 'ca.root_ttl'],
    ['unknown key manager', 'trust_domain: a.test\nca:\n  key_manager: vault\n', 'ERR_CONFIG_INVALID', 'ca.key_manager'],
    ['agent TTL as long as the CA TTL', 'trust_domain: a.test\nagent_ttl: 24h\n', 'ERR_CONFIG_INVALID', 'agent_ttl'],
    ['node API port out of range', 'trust_domain: a.test\nnode_api:\n  port: -1\n', 'ERR_CONFIG_INVALID', 'node_api.port'],
    ['an unknown bundle endpoint profile', 'trust_domain: a.test\nbundle_endpoint:\n  profile: https_acme\n', 'ERR_CONFIG_INVALID', 'bundle_endpoint.profile'],
    ['https_web without a certificate file', 'trust_domain: a.test\nbundle_endpoint:\n  profile: https_web\n  key_file: k.pem\n', 'ERR_CONFIG_INVALID', 'bundle_endpoint.certificate_file'],
    ['a certificate file with https_spiffe', 'trust_domain: a.test\nbundle_endpoint:\n  certificate_file: c.pem\n', 'ERR_CONFIG_INVALID', 'bundle_endpoint.certificate_file'],
    ['bundle endpoint port out of range', 'trust_domain: a.test\nbundle_endpoint:\n  port: 65536\n', 'ERR_CONFIG_INVALID', 'bundle_endpoint.port'],
    ['a bad bundle endpoint refresh hint', 'trust_domain: a.test\nbundle_endpoint:\n  refresh_hint: often\n', 'ERR_CONFIG_INVALID', 'bundle_endpoint.refresh_hint'],
    ['a node attestor without a name', 'trust_domain: a.test\nnode_attestors:\n  - config: {}\n', 'ERR_CONFIG_INVALID', 'node_attestors.0.name'],
    ['not YAML', 'trust_domain: [a\n', 'ERR_CONFIG_PARSE', ''],
    ['duplicate key', 'trust_domain: a.test\ntrust_domain: b.test\n', 'ERR_CONFIG_PARSE', ''],
    ['a list at top level', '- a\n- b\n', 'ERR_CONFIG_PARSE', ''],
  ];
  for (const [name, text, code, field] of bad) {
    it(`refuses ${name} with ${code}${field ? ` naming ${field}` : ''}`, () => {
      const e = failure(() => loadServerConfig(write('c.yaml', text)));
      expect(e.code).to.equal(code);
      if (field) {
        expect(e.details?.field).to.equal(field);
        expect(e.message).to.contain(`"${field}"`);
      }
    });
  }

  it('refuses an unreadable file with ERR_CONFIG_READ', () => {
    expect(failure(() => loadServerConfig(join(dir, 'missing.yaml'))).code).to.equal('ERR_CONFIG_READ');
  });

  it('warns, but starts, when ca_ttl is under 6 x the SVID TTL', () => {
    const c = validateServerConfig({ trust_domain: 'a.test', ca: { ca_ttl: '3h' } });
    expect(c.warnings).to.have.length(1);
    expect(c.warnings[0]).to.match(/6 times/);
  });
});
