/**
 * nginx (Debian) as a real validator of writ's output: a server with `ssl_verify_client on`, the
 * trust bundle as `ssl_client_certificate` and writ's CRLs as `ssl_crl` accepts a current
 * X509-SVID minted by `writ x509 mint` and refuses one revoked with `writ svid revoke`;
 * `openssl verify -crl_check` and `-crl_check_all` agree, and so does writ's own verifier.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { X509Bundle } from '../../src/bundle/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { verifyX509Svid } from '../../src/svid/index.js';
import { skipBecause } from '../ca/helpers.js';
import { freePort } from '../helpers/openssl.js';
import { until } from '../helpers/wait.js';
import { startServer, type ServerHandle } from '../helpers/writ-process.js';

const NGINX = '/usr/sbin/nginx';
const INSTALL = 'apt-get install -y nginx';

interface Minted {
  dir: string;
  serial: string;
  chain: string;
  key: string;
}

/** One HTTPS GET with a client certificate; the server is checked against the bundle by its SPIFFE ID. */
function get(port: number, ca: string, client: Minted): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        ca: readFileSync(ca),
        cert: readFileSync(client.chain),
        key: readFileSync(client.key),
        timeout: 5000,
        agent: false,
        checkServerIdentity: (_host, cert) => (cert.subjectaltname === 'URI:spiffe://example.org/web, DNS:localhost' ? undefined : new Error(`unexpected server identity ${cert.subjectaltname}`)),
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('e2e: nginx and openssl accept a current SVID and refuse a revoked one', function () {
  this.timeout(120_000);
  let srv: ServerHandle;
  let nginx: ChildProcess | undefined;

  before(function () {
    if (!existsSync(NGINX)) skipBecause(this, `nginx is not installed (${INSTALL})`);
  });
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (nginx && nginx.exitCode === null) {
      nginx.kill('SIGKILL');
      await new Promise((r) => nginx!.once('exit', r));
    }
    await srv?.cleanup();
  });

  const mint = async (name: string, extra: string[] = []): Promise<Minted> => {
    const dir = join(srv.dir, name);
    const r = await srv.cli(['x509', 'mint', '--spiffe-id', `spiffe://example.org/${name}`, '--write', dir, '--output', 'json', ...extra]);
    expect(r.code, r.stderr).to.equal(0);
    return { dir, serial: (JSON.parse(r.stdout) as { serial: string }).serial, chain: join(dir, 'svid.pem'), key: join(dir, 'key.pem') };
  };

  it('serves the current SVID, answers 400 to the revoked one, and openssl and writ agree', async () => {
    const web = await mint('web', ['--dns', 'localhost']);
    const good = await mint('client-good');
    const bad = await mint('client-bad');
    const revoke = await srv.cli(['svid', 'revoke', '--serial', bad.serial, '--reason', 'test']);
    expect(revoke.code, revoke.stderr).to.equal(0);
    expect(revoke.stdout).to.contain(`revoked ${bad.serial}`);
    const again = await srv.cli(['svid', 'revoke', '--serial', 'ab:cd']);
    expect(again.code).to.not.equal(0);
    expect(again.stderr).to.contain('ERR_SVID_NOT_FOUND');

    const bundlePath = join(web.dir, 'bundle.pem');
    const crl = await srv.cli(['bundle', 'show', '--format', 'crl']);
    expect(crl.code, crl.stderr).to.equal(0);
    const crlPath = join(srv.dir, 'crl.pem');
    writeFileSync(crlPath, crl.stdout);
    expect(crl.stdout.match(/BEGIN X509 CRL/g), 'a CRL of the signing CA and one of the root').to.have.length(2);

    const port = await freePort();
    const conf = join(srv.dir, 'nginx.conf');
    writeFileSync(
      conf,
      [
        'daemon off;',
        'master_process off;',
        `pid ${join(srv.dir, 'nginx.pid')};`,
        `error_log ${join(srv.dir, 'nginx-error.log')} info;`,
        'events { worker_connections 64; }',
        'http {',
        '  access_log off;',
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(srv.dir, `nginx-${t}`)};`),
        '  server {',
        `    listen 127.0.0.1:${port} ssl;`,
        `    ssl_certificate ${web.chain};`,
        `    ssl_certificate_key ${web.key};`,
        `    ssl_client_certificate ${bundlePath};`,
        '    ssl_verify_client on;',
        '    ssl_verify_depth 2;',
        `    ssl_crl ${crlPath};`,
        '    location / { default_type text/plain; return 200 "verify=$ssl_client_verify serial=$ssl_client_serial"; }',
        '  }',
        '}',
      ].join('\n'),
    );
    const test = spawnSync(NGINX, ['-t', '-p', srv.dir, '-c', conf, '-e', join(srv.dir, 'nginx-error.log')], { encoding: 'utf8' });
    expect(test.status, test.stderr).to.equal(0);
    nginx = spawn(NGINX, ['-p', srv.dir, '-c', conf, '-e', join(srv.dir, 'nginx-error.log')], { stdio: 'ignore' });
    await until('nginx to listen', async () => get(port, bundlePath, good).then(() => true, () => undefined), 10_000, 100);

    const ok = await get(port, bundlePath, good);
    expect(ok.status, ok.body).to.equal(200);
    const m = /^verify=SUCCESS serial=([0-9A-Fa-f]+)$/.exec(ok.body);
    expect(m, ok.body).to.not.equal(null);
    expect(m![1]!.toLowerCase().replace(/^0+/, '')).to.equal(good.serial.toLowerCase().replace(/^0+/, ''));
    const refused = await get(port, bundlePath, bad);
    expect(refused.status).to.equal(400);
    expect(refused.body).to.match(/SSL certificate error/);
    expect(readFileSync(join(srv.dir, 'nginx-error.log'), 'utf8')).to.match(/certificate revoked/);

    // openssl: the leaf CRL check and the whole-chain check, with the same files nginx read.
    const leaf = (m: Minted) => {
      const p = join(m.dir, 'leaf.pem');
      writeFileSync(p, readFileSync(m.chain, 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
      return p;
    };
    for (const flag of ['-crl_check', '-crl_check_all']) {
      const verify = (m: Minted) => spawnSync('openssl', ['verify', '-x509_strict', flag, '-CAfile', bundlePath, '-untrusted', m.chain, '-CRLfile', crlPath, leaf(m)], { encoding: 'utf8' });
      const g = verify(good);
      expect(g.status, `${flag}: ${g.stdout}${g.stderr}`).to.equal(0);
      const b = verify(bad);
      expect(b.status).to.not.equal(0);
      expect(b.stdout + b.stderr).to.match(/certificate revoked/);
    }

    // writ's own verifier, with the CRLs as DER.
    const crlDers = crl.stdout.split(/(?<=-----END X509 CRL-----\n)/).filter((p) => p.includes('BEGIN')).map((p) => Buffer.from(p.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
    const bundle = X509Bundle.parsePem(parseTrustDomain('example.org'), readFileSync(bundlePath, 'utf8'));
    expect(verifyX509Svid(readFileSync(good.chain, 'utf8'), bundle, { crls: crlDers }).id.toString()).to.equal('spiffe://example.org/client-good');
    expect(() => verifyX509Svid(readFileSync(bad.chain, 'utf8'), bundle, { crls: crlDers })).to.throw().with.property('code', 'ERR_SVID_X509_REVOKED');
  });
});
