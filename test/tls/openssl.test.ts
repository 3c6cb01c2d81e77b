/**
 * openssl as the other side: `s_client -cert` against a library server (TLS 1.2 and 1.3; allowed,
 * unauthorized and certificate-less clients), and the library client against `s_server -Verify`.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { MtlsClient, authorizeId, authorizeMatch, createMtlsServer, verifiedPeerOf } from '../../src/tls/index.js';
import { freePort } from '../helpers/openssl.js';
import { Cleanup, FakeSource, type Minted, TestCa, bundleSetOf, listen } from './helpers.js';

const HAS_OPENSSL = spawnSync('openssl', ['version'], { timeout: 10_000 }).status === 0;

/** Runs openssl with `input` on stdin; killed after 15 s. */
function run(args: string[], input: string, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', args, { cwd });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    p.stdin.end(input);
  });
}

describe('tls: openssl against the library', function () {
  let dir: string;
  let ca: TestCa;
  let server: Minted;
  let task: Minted;
  let agent: Minted;
  const cleanup = new Cleanup();

  before(async function () {
    if (!HAS_OPENSSL) {
      process.stderr.write('      (pending: openssl is not installed (apt-get install openssl))\n');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'writ-tls-'));
    ca = await TestCa.create('example.org');
    server = await ca.mint('spiffe://example.org/service/billing');
    task = await ca.mint('spiffe://example.org/agent/summarizer/task/t1');
    agent = await ca.mint('spiffe://example.org/agent/summarizer');
    const files: Record<string, string> = {
      'bundle.pem': ca.rootsPem(),
      'server.pem': server.certPem,
      'server.key': server.keyPem,
      'task.pem': task.certPem,
      'task.key': task.keyPem,
      'agent.pem': agent.certPem,
      'agent.key': agent.keyPem,
    };
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data, { mode: 0o600 });
  });
  afterEach(() => cleanup.run());
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function libraryServer(): Promise<number> {
    const source = new FakeSource({ svid: server.svid, bundles: bundleSetOf(ca) });
    const s = createMtlsServer(source, authorizeMatch('spiffe://example.org/agent/*/task/*'), (req, res) => res.end(`hello ${verifiedPeerOf(req.socket as TLSSocket).spiffeId.toString()}\n`));
    return listen(cleanup.server(s));
  }

  const GET = 'GET / HTTP/1.1\r\nHost: billing\r\nConnection: close\r\n\r\n';
  const sClient = (port: number, version: string, who?: string) =>
    run(['s_client', '-connect', `127.0.0.1:${port}`, version, '-CAfile', 'bundle.pem', '-verify_return_error', '-quiet', ...(who ? ['-cert', `${who}.pem`, '-cert_chain', `${who}.pem`, '-key', `${who}.key`] : [])], GET, dir);

  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`s_client ${version} with an allowed SVID gets an answer naming it; openssl verified the server SVID`, async () => {
      const port = await libraryServer();
      const r = await sClient(port, version, 'task');
      expect(r.out).to.contain('HTTP/1.1 200');
      expect(r.out).to.contain('hello spiffe://example.org/agent/summarizer/task/t1');
    });

    it(`s_client ${version} with an unauthorized SVID, or none, gets no answer`, async () => {
      const port = await libraryServer();
      for (const who of ['agent', undefined]) {
        const r = await sClient(port, version, who);
        expect(r.out).to.not.contain('HTTP/1.1');
        expect(r.out).to.not.contain('hello');
      }
    });
  }

  it('the library client against s_server -Verify: both sides accept the other SVID', async () => {
    const port = await freePort();
    const srv = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-naccept', '1', '-www', '-cert', 'server.pem', '-cert_chain', 'server.pem', '-key', 'server.key', '-CAfile', 'bundle.pem', '-Verify', '2', '-verify_return_error'], { cwd: dir });
    const killer = setTimeout(() => srv.kill('SIGKILL'), 15_000);
    cleanup.add(() => {
      clearTimeout(killer);
      srv.kill('SIGKILL');
    });
    let serverOut = '';
    srv.stdout.on('data', (d: Buffer) => (serverOut += d.toString()));
    srv.stderr.on('data', (d: Buffer) => (serverOut += d.toString()));
    for (let i = 0; i < 100 && !serverOut.includes('ACCEPT'); i++) await new Promise((r) => setTimeout(r, 50));
    const c = new MtlsClient(new FakeSource({ svid: task.svid, bundles: bundleSetOf(ca) }), authorizeId('spiffe://example.org/service/billing'));
    cleanup.add(() => c.close());
    const r = await c.request(`https://127.0.0.1:${port}/`, { timeoutMs: 10_000 });
    expect(r.status).to.equal(200);
    expect(r.peer.spiffeId.toString()).to.equal('spiffe://example.org/service/billing');
    expect(r.text()).to.match(/TLSv1\.[23]/);
    expect(serverOut).to.not.match(/verify error/i);
  });
});
