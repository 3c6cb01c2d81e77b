/**
 * openssl as a TLS peer in tests: one `s_server -Verify` accepting one connection and one
 * `s_client -cert` against it on loopback, both bounded in time and killed afterwards.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface MtlsFiles {
  bundle: string;
  serverChain: string;
  serverKey: string;
  clientChain: string;
  clientKey: string;
  foreignChain: string;
  foreignKey: string;
}

/** One s_server accepting one connection, and one s_client; both bounded to 20 s. */
export async function opensslHandshake(dir: string, f: Pick<MtlsFiles, 'bundle' | 'serverChain' | 'serverKey'>, version: '-tls1_2' | '-tls1_3', client: { chain: string; key: string }): Promise<{ server: string; client: string; code: number | null }> {
  const port = await freePort();
  const server = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-naccept', '1', version, '-cert', f.serverChain, '-cert_chain', f.serverChain, '-key', f.serverKey, '-CAfile', f.bundle, '-Verify', '2', '-verify_return_error', '-quiet'], { cwd: dir });
  let serverOut = '';
  server.stdout.on('data', (d: Buffer) => (serverOut += d.toString()));
  server.stderr.on('data', (d: Buffer) => (serverOut += d.toString()));
  const killer = setTimeout(() => server.kill('SIGKILL'), 20_000);
  try {
    for (let i = 0; i < 100; i++) {
      const probe = await new Promise<boolean>((r) => {
        const c = createServer();
        c.once('error', () => r(true));
        c.listen(port, '127.0.0.1', () => c.close(() => r(false)));
      });
      if (probe) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, '-cert', client.chain, '-cert_chain', client.chain, '-key', client.key, '-CAfile', f.bundle, '-verify_return_error', '-brief'], { cwd: dir });
    let clientOut = '';
    c.stdout.on('data', (d: Buffer) => (clientOut += d.toString()));
    c.stderr.on('data', (d: Buffer) => (clientOut += d.toString()));
    c.stdin.end('ping\n');
    const ckill = setTimeout(() => c.kill('SIGKILL'), 20_000);
    const [code] = (await once(c, 'close')) as [number | null];
    clearTimeout(ckill);
    return { server: serverOut, client: clientOut, code };
  } finally {
    clearTimeout(killer);
    server.kill('SIGKILL');
  }
}

