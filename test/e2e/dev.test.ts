/**
 * `writ dev` (what `npm start` runs) as a real process on temporary sockets and kernel-chosen
 * loopback ports: it starts a server and an agent, prints the commands to try, and those commands
 * work: an entry for this user, the SVID fetched from the agent, the bundle from the bundle
 * endpoint (served as the server's SPIFFE ID). Ctrl-C (SIGINT) stops it with exit code 0.
 */
import { expect } from 'chai';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { runWrit, spawnWrit, type WritProcess } from '../helpers/writ-process.js';

const ID = 'spiffe://example.org/agent/summarizer';

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function httpsGet(port: number, path: string, ca: string): Promise<{ status: number; body: string; san: string }> {
  return new Promise((resolve, reject) => {
    let san = '';
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        ca,
        timeout: 5000,
        // An SVID names no host: the server is checked by its SPIFFE ID instead.
        checkServerIdentity: (_host: string, cert: PeerCertificate) => {
          san = cert.subjectaltname ?? '';
          const uris = san.split(', ').filter((n) => n.startsWith('URI:'));
          return uris.length === 1 && uris[0] === 'URI:spiffe://example.org/writ/server' ? undefined : new Error(`unexpected server identity ${san}`);
        },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, san }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('e2e: writ dev (npm start)', function () {
  this.timeout(120_000);
  let dir: string;
  let dev: WritProcess | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-dev-e2e-'));
    chmodSync(dir, 0o755);
    dev = await spawnWrit(
      ['dev', '--data-dir', join(dir, 'data'), '--socket-path', join(dir, 'admin.sock'), '--health-port', '0', '--node-port', '0', '--bundle-port', '0', '--agent-socket', join(dir, 'api.sock')],
      'ready',
    );
    await until('writ dev to print its instructions', async () => (dev!.stderr().includes('writ is running') ? true : undefined));
  });
  after(async () => {
    await dev?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the commands to try, and they work: entry, SVID from the agent, bundle from the endpoint', async () => {
    const text = dev!.stderr();
    expect(text).to.contain('--parent-id spiffe://example.org/host/dev');
    const port = Number(/bundle endpoint: https:\/\/127\.0\.0\.1:(\d+)\//.exec(text)?.[1]);
    expect(port).to.be.greaterThan(0);

    const admin = ['--socket-path', join(dir, 'admin.sock')];
    const created = await runWrit(['entry', 'create', ...admin, '--parent-id', 'spiffe://example.org/host/dev', '--spiffe-id', ID, '--selector', `unix:uid:${process.getuid?.() ?? 0}`]);
    expect(created.code, created.stderr).to.equal(0);
    const fetched = await until('the agent to serve the new entry', async () => {
      const r = await runWrit(['api', 'fetch', 'x509', '--socket-path', join(dir, 'api.sock'), '--output', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as { svids: Array<{ spiffe_id: string }> }) : undefined;
    });
    expect(fetched.svids.map((s) => s.spiffe_id)).to.deep.equal([ID]);

    const pem = await runWrit(['bundle', 'show', ...admin]);
    expect(pem.code, pem.stderr).to.equal(0);
    const res = await httpsGet(port, '/', pem.stdout);
    expect(res.status).to.equal(200);
    const doc = JSON.parse(res.body) as { keys: Array<{ use: string }>; spiffe_sequence: number };
    expect(doc.keys.map((k) => k.use)).to.include.members(['x509-svid', 'jwt-svid']);
    expect(doc.spiffe_sequence).to.be.greaterThan(0);
  });

  it('stops on SIGINT with exit code 0', async () => {
    dev!.proc.kill('SIGINT');
    expect(await dev!.exited).to.equal(0);
  });
});
