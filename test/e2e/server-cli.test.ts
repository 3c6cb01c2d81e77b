/**
 * The README flow with real processes: `writ server run` on a temporary socket, the `writ` CLI
 * against it, and openssl (through ../shared/tools/svid-check.sh) judging the minted SVID.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { get } from 'node:http';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { systemClock } from '../../src/clock.js';
import { openDataStore } from '../../src/datastore/index.js';
import { silentLogger } from '../../src/log.js';
import { ROOT, runWrit, startServer, type ServerHandle } from '../helpers/writ-process.js';

const SVID_CHECK = join(ROOT, '..', 'shared', 'tools', 'svid-check.sh');
const ID = 'spiffe://example.org/agent/summarizer';

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('e2e: writ server + CLI', function () {
  this.timeout(120_000);
  let srv: ServerHandle;

  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv?.cleanup();
  });

  const count = async (): Promise<number> => {
    const r = await srv.cli(['entry', 'count', '--output', 'json']);
    expect(r.code, r.stderr).to.equal(0);
    return (JSON.parse(r.stdout) as { count: number }).count;
  };

  it('runs the README commands as written', async () => {
    const create = await srv.cli(['entry', 'create', '--parent-id', 'spiffe://example.org/writ/agent/x', '--spiffe-id', ID, '--selector', 'unix:uid:1000']);
    expect(create.code, create.stderr).to.equal(0);
    expect(create.stdout).to.match(/Created 1 entry/);
    expect(create.stdout).to.contain(`SPIFFE ID        : ${ID}`);

    const show = await srv.cli(['entry', 'show', '--selector', 'unix:uid:1000', '--output', 'json']);
    expect(show.code, show.stderr).to.equal(0);
    const shown = JSON.parse(show.stdout) as { entries: Array<{ spiffe_id: string; selectors: unknown[]; revision: number }> };
    expect(shown.entries).to.have.length(1);
    expect(shown.entries[0]).to.deep.include({ spiffe_id: ID, selectors: [{ type: 'unix', value: 'uid:1000' }] });

    const out = join(srv.dir, 'out');
    const mint = await srv.cli(['x509', 'mint', '--spiffe-id', ID, '--ttl', '5m', '--write', out]);
    expect(mint.code, mint.stderr).to.equal(0);
    expect(statSync(join(out, 'key.pem')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(join(out, 'svid.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)).to.have.length(2);

    const spiffe = await srv.cli(['bundle', 'show', '--format', 'spiffe']);
    expect(spiffe.code, spiffe.stderr).to.equal(0);
    const doc = JSON.parse(spiffe.stdout) as { keys: Array<{ use: string; kid?: string; x5c?: string[] }>; spiffe_sequence: number; spiffe_refresh_hint: number };
    expect(doc.spiffe_sequence).to.be.a('number').greaterThan(0);
    expect(doc.spiffe_refresh_hint).to.equal(300);
    expect(doc.keys.filter((k) => k.use === 'x509-svid')).to.have.length.greaterThan(0);
    expect(doc.keys.filter((k) => k.use === 'jwt-svid').every((k) => typeof k.kid === 'string')).to.equal(true);
  });

  it('mints an SVID that openssl accepts: strict verification and TLS 1.2/1.3 mTLS (svid-check.sh)', async function () {
    if (!existsSync(SVID_CHECK)) {
      // The checker ships in ../shared beside the project; without it the in-suite openssl checks in test/ca/openssl.test.ts still run.
      process.stderr.write(`      (pending: ${SVID_CHECK} is not there)\n`);
      this.skip();
    }
    const out = join(srv.dir, 'check');
    const mint = await srv.cli(['x509', 'mint', '--spiffe-id', ID, '--ttl', '10m', '--write', out]);
    expect(mint.code, mint.stderr).to.equal(0);
    const r = spawnSync('bash', [SVID_CHECK, join(out, 'bundle.pem'), join(out, 'svid.pem'), join(out, 'key.pem'), ID], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout, r.stdout + r.stderr).to.contain('SUMMARY PASS');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/PASS mTLS TLS1\.3/);
    expect(r.stdout).to.match(/PASS mTLS TLS1\.2/);
  });

  it('refuses a duplicate entry and writes nothing', async () => {
    const before = await count();
    const r = await srv.cli(['entry', 'create', '--parent-id', 'spiffe://example.org/writ/agent/x', '--spiffe-id', ID, '--selector', 'unix:uid:1000']);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/^ERR_ENTRY_EXISTS: /);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(await count()).to.equal(before);
  });

  const refusals: Array<[string, string[], RegExp]> = [
    ['a reserved /writ ID', ['--spiffe-id', 'spiffe://example.org/writ/server', '--parent-id', 'spiffe://example.org/writ/agent/x', '--selector', 'unix:uid:1'], /^ERR_SPIFFEID_RESERVED: /],
    ['a malformed ID', ['--spiffe-id', 'spiffe://example.org/a/../b', '--parent-id', 'spiffe://example.org/writ/agent/x', '--selector', 'unix:uid:1'], /^ERR_SPIFFEID_PATH: /],
    ['a selector without a type', ['--spiffe-id', `${ID}2`, '--parent-id', 'spiffe://example.org/writ/agent/x', '--selector', 'uid1000'], /^ERR_SELECTOR_INVALID: /],
    ['a selector type with spaces', ['--spiffe-id', `${ID}2`, '--parent-id', 'spiffe://example.org/writ/agent/x', '--selector', 'u nix:uid:1'], /^ERR_SELECTOR_INVALID: /],
    ['a malformed TTL', ['--spiffe-id', `${ID}2`, '--parent-id', 'spiffe://example.org/writ/agent/x', '--selector', 'unix:uid:1', '--x509-svid-ttl', 'ten minutes'], /^ERR_TTL_INVALID: /],
    ['a bad DNS name', ['--spiffe-id', `${ID}2`, '--parent-id', 'spiffe://example.org/writ/agent/x', '--selector', 'unix:uid:1', '--dns', 'a..b'], /^ERR_DNS_NAME_INVALID: /],
  ];
  for (const [name, args, want] of refusals) {
    it(`refuses ${name} with its code and writes nothing`, async () => {
      const before = await count();
      const r = await srv.cli(['entry', 'create', ...args]);
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(want);
      expect(r.stdout).to.equal('');
      expect(await count()).to.equal(before);
    });
  }

  it('creates a --data batch all or nothing', async () => {
    const before = await count();
    const entry = (n: number, extra: Record<string, unknown> = {}) => ({
      spiffe_id: `spiffe://example.org/batch/${n}`,
      parent_id: 'spiffe://example.org/writ/agent/x',
      selectors: [{ type: 'unix', value: `uid:${2000 + n}` }],
      ...extra,
    });
    const badFile = join(srv.dir, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ entries: [entry(1), entry(2, { x509_svid_ttl: -3 }), entry(3)] }));
    const bad = await srv.cli(['entry', 'create', '--data', badFile]);
    expect(bad.code).to.not.equal(0);
    expect(bad.stderr).to.match(/^ERR_TTL_INVALID: entry 1: x509_svid_ttl/);
    expect(await count()).to.equal(before);

    const dupFile = join(srv.dir, 'dup.json');
    writeFileSync(dupFile, JSON.stringify({ entries: [entry(4), entry(4)] }));
    const dup = await srv.cli(['entry', 'create', '--data', dupFile]);
    expect(dup.stderr).to.match(/^ERR_ENTRY_EXISTS: /);
    expect(await count()).to.equal(before);

    const good = await srv.cli(['entry', 'create', '--data', '-', '--output', 'json'], { stdin: JSON.stringify({ entries: [entry(5), entry(6), entry(7)] }) });
    expect(good.code, good.stderr).to.equal(0);
    expect((JSON.parse(good.stdout) as { entries: unknown[] }).entries).to.have.length(3);
    expect(await count()).to.equal(before + 3);

    const notJson = join(srv.dir, 'not.json');
    writeFileSync(notJson, '{"entries": [');
    const nj = await srv.cli(['entry', 'create', '--data', notJson]);
    expect(nj.stderr).to.match(/^ERR_INPUT_INVALID: /);
  });

  it('updates, filters, counts and deletes entries', async () => {
    const created = await srv.cli(['entry', 'create', '--spiffe-id', 'spiffe://example.org/agent/updater', '--parent-id', 'spiffe://example.org/writ/agent/y', '--selector', 'unix:uid:3000', '--selector', 'unix:gid:3000', '--output', 'json']);
    expect(created.code, created.stderr).to.equal(0);
    const e = (JSON.parse(created.stdout) as { entries: Array<{ id: string; revision: number }> }).entries[0]!;

    const upd = await srv.cli(['entry', 'update', '--entry-id', e.id, '--x509-svid-ttl', '15m', '--hint', 'internal', '--output', 'json']);
    expect(upd.code, upd.stderr).to.equal(0);
    const u = (JSON.parse(upd.stdout) as { entries: Array<{ x509_svid_ttl: number; hint: string; revision: number }> }).entries[0]!;
    expect(u.x509_svid_ttl).to.equal(900);
    expect(u.hint).to.equal('internal');
    expect(u.revision).to.be.greaterThan(e.revision);

    const exact = await srv.cli(['entry', 'show', '--selector', 'unix:uid:3000', '--match-selectors-on', 'exact', '--output', 'json']);
    expect((JSON.parse(exact.stdout) as { entries: unknown[] }).entries).to.have.length(0);
    const superset = await srv.cli(['entry', 'show', '--selector', 'unix:uid:3000', '--output', 'json']);
    expect((JSON.parse(superset.stdout) as { entries: unknown[] }).entries).to.have.length(1);
    const byParent = await srv.cli(['entry', 'count', '--parent-id', 'spiffe://example.org/writ/agent/y']);
    expect(byParent.stdout.trim()).to.equal('1 registration entry');

    const del = await srv.cli(['entry', 'delete', '--entry-id', e.id]);
    expect(del.code, del.stderr).to.equal(0);
    const again = await srv.cli(['entry', 'delete', '--entry-id', e.id]);
    expect(again.stderr).to.match(/^ERR_ENTRY_NOT_FOUND: /);
  });

  it('mints JWT-SVIDs and join tokens', async () => {
    const jwt = await srv.cli(['jwt', 'mint', '--spiffe-id', ID, '--audience', 'billing']);
    expect(jwt.code, jwt.stderr).to.equal(0);
    const [h, p] = jwt.stdout.trim().split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).to.include({ alg: 'ES256', typ: 'JWT' });
    expect(JSON.parse(Buffer.from(p!, 'base64url').toString())).to.deep.include({ sub: ID, aud: ['billing'] });
    const noAud = await srv.cli(['jwt', 'mint', '--spiffe-id', ID]);
    expect(noAud.stderr).to.match(/^ERR_INPUT_INVALID: /);

    const tok = await srv.cli(['token', 'generate', '--ttl', '2m', '--output', 'json']);
    expect(tok.code, tok.stderr).to.equal(0);
    const t = JSON.parse(tok.stdout) as { token: string; expires_at: number };
    expect(t.token).to.match(/^[A-Za-z0-9_-]{32}$/);
    // The token is shown to the caller once and never written to the server's log.
    expect(JSON.stringify(srv.logs)).to.not.contain(t.token);
  });

  it('refuses a bad mint request and leaves the output directory untouched', async () => {
    const out = join(srv.dir, 'never');
    const r = await srv.cli(['x509', 'mint', '--spiffe-id', ID, '--ttl', 'forever', '--write', out]);
    expect(r.stderr).to.match(/^ERR_TTL_INVALID: /);
    expect(existsSync(out)).to.equal(false);
    const other = await srv.cli(['x509', 'mint', '--spiffe-id', 'spiffe://other.org/x', '--write', out]);
    expect(other.stderr).to.match(/^ERR_SPIFFEID_NOT_MEMBER: /);
    expect(existsSync(out)).to.equal(false);
  });

  it('serves /live, /ready and Prometheus /metrics on loopback, and answers healthcheck', async () => {
    expect((await httpGet(srv.healthPort, '/live')).status).to.equal(200);
    const ready = await httpGet(srv.healthPort, '/ready');
    expect(ready.status).to.equal(200);
    expect(JSON.parse(ready.body)).to.deep.include({ ready: true });
    const metrics = await httpGet(srv.healthPort, '/metrics');
    expect(metrics.status).to.equal(200);
    expect(metrics.body).to.match(/^writ_svids_minted_total\{type="x509"\} [1-9]/m);
    expect(metrics.body).to.match(/^writ_registration_entries [1-9]/m);
    expect(metrics.body).to.match(/^writ_admin_requests_total\{action="entry.create",code="ERR_ENTRY_EXISTS"\} [1-9]/m);
    const hc = await srv.cli(['healthcheck', '--verbose']);
    expect(hc.code, hc.stderr).to.equal(0);
    expect(hc.stdout).to.contain('Server is healthy.');
  });

  it('records who did what: each change is logged with the caller\'s kernel credentials', () => {
    const rec = srv.logs.find((l) => l.event === 'admin' && l.action === 'entry.create');
    expect(rec).to.not.equal(undefined);
    expect(rec!.caller).to.deep.include({ uid: process.getuid!(), user: 'root' });
    expect((rec!.caller as { pid: number }).pid).to.be.a('number').greaterThan(0);
  });

  const nobody = 65534;
  const needRoot = (ctx: Mocha.Context) => {
    // Switching to another uid needs root; CI runs as root.
    if (process.getuid?.() !== 0) {
      process.stderr.write('      (pending: running a CLI as uid 65534 needs root)\n');
      ctx.skip();
    }
  };

  it('admin socket is 0600: another user cannot open it', async function () {
    needRoot(this);
    expect(statSync(srv.socketPath).mode & 0o777).to.equal(0o600);
    const r = await srv.cli(['entry', 'count'], { uid: nobody, gid: nobody });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/^ERR_PERMISSION_DENIED: You may not open the admin socket/);
  });

  it('admin API checks peer credentials even when the file mode would let a caller in', async function () {
    needRoot(this);
    chmodSync(srv.socketPath, 0o666);
    try {
      const r = await srv.cli(['entry', 'count'], { uid: nobody, gid: nobody });
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(/^ERR_PERMISSION_DENIED: User \S+ \(uid 65534\) may not use the admin API/);
    } finally {
      chmodSync(srv.socketPath, 0o600);
    }
  });

  it('prints CRLs that list revoked serials, and openssl -crl_check then refuses that SVID', async () => {
    const out = join(srv.dir, 'revoke');
    const mint = await srv.cli(['x509', 'mint', '--spiffe-id', ID, '--ttl', '10m', '--write', out, '--output', 'json']);
    expect(mint.code, mint.stderr).to.equal(0);
    const minted = JSON.parse(mint.stdout) as { serial: string; expires_at: number };
    const leaf = new x509.X509Certificate(readFileSync(join(out, 'svid.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
    const issuerSki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId!;
    // Revocation is written by later features (task end, authority revoke); here the test writes the row itself.
    const store = await openDataStore({ type: 'sqlite', path: join(srv.dir, 'data', 'datastore.sqlite3') }, { clock: systemClock, logger: silentLogger });
    try {
      await store.addRevoked([{ serial: minted.serial, issuerSki, revokedAt: Math.floor(Date.now() / 1000), notAfter: minted.expires_at, reason: 'test' }]);
    } finally {
      await store.close();
    }
    const crl = await srv.cli(['bundle', 'show', '--format', 'crl']);
    expect(crl.code, crl.stderr).to.equal(0);
    expect(crl.stdout).to.match(/^-----BEGIN X509 CRL-----/);
    writeFileSync(join(out, 'crl.pem'), crl.stdout);
    const v = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', join(out, 'bundle.pem'), '-untrusted', join(out, 'svid.pem'), '-CRLfile', join(out, 'crl.pem'), join(out, 'svid.pem')], { encoding: 'utf8', timeout: 30_000 });
    expect(v.status).to.not.equal(0);
    expect(`${v.stdout}${v.stderr}`).to.match(/certificate revoked/);
  });

  it('refuses a second server on the same socket', async () => {
    const cfg = join(srv.dir, 'second.json');
    writeFileSync(cfg, JSON.stringify({ trust_domain: 'example.org', data_dir: join(srv.dir, 'data2'), admin: { socket_path: srv.socketPath }, health: { port: 0 } }));
    const r = await runWrit(['server', 'run', '--config', cfg]);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/^ERR_SOCKET_IN_USE: /m);
  });

  it('shuts down gracefully on SIGTERM and removes its socket', async () => {
    const code = await srv.stop();
    expect(code).to.equal(0);
    expect(existsSync(srv.socketPath)).to.equal(false);
    expect(srv.logs.some((l) => l.event === 'stopped')).to.equal(true);
    const r = await srv.cli(['entry', 'count']);
    expect(r.stderr).to.match(/^ERR_SERVER_UNREACHABLE: /);
  });
});

describe('e2e: server start with a bad config', function () {
  this.timeout(60_000);
  it('exits non-zero naming the field, and starts nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-badcfg-'));
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, `trust_domain: example.org\ndata_dir: ${dir}/data\nca:\n  ca_ttl: 30m\n`);
    const r = await runWrit(['server', 'run', '--config', cfg]);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/^ERR_CONFIG_INVALID: .*field "ca\.ca_ttl"/m);
    expect(existsSync(join(dir, 'data'))).to.equal(false);
    const missing = await runWrit(['server', 'run', '--config', join(dir, 'nope.yaml')]);
    expect(missing.stderr).to.match(/^ERR_CONFIG_READ: /m);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('e2e: admin socket shared with a configured group', function () {
  this.timeout(120_000);
  let srv: ServerHandle | undefined;
  const nogroup = 65534;
  before(async function () {
    if (process.getuid?.() !== 0) {
      process.stderr.write('      (pending: running a CLI under other uids and gids needs root)\n');
      this.skip();
    }
    srv = await startServer({ admin: { group: 'nogroup' } });
  });
  after(async () => srv?.cleanup());

  it('makes the socket 0660 with that group, lets a member in, and refuses a non-member by peer credentials', async () => {
    const st = statSync(srv!.socketPath);
    expect(st.mode & 0o777).to.equal(0o660);
    expect(st.gid).to.equal(nogroup);
    const member = await srv!.cli(['entry', 'count'], { uid: 65534, gid: nogroup });
    expect(member.code, member.stderr).to.equal(0);
    expect(member.stdout.trim()).to.equal('0 registration entries');
    const outsider = await srv!.cli(['entry', 'count'], { uid: 65534, gid: 1 });
    expect(outsider.stderr).to.match(/^ERR_PERMISSION_DENIED: You may not open the admin socket/);
    chmodSync(srv!.socketPath, 0o666);
    try {
      const past = await srv!.cli(['entry', 'count'], { uid: 65534, gid: 1 });
      expect(past.stderr).to.match(/^ERR_PERMISSION_DENIED: User \S+ \(uid 65534\) may not use the admin API/);
    } finally {
      chmodSync(srv!.socketPath, 0o660);
    }
  });
});
