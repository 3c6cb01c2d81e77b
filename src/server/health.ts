/**
 * The health listener on a loopback port: /live, /ready and /metrics (Prometheus text format).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServerContext } from './context.js';

export async function startHealthServer(ctx: ServerContext, bindAddress: string, port: number): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/live' || path === '/ready') {
      ctx.health().then(
        (h) => {
          const ok = path === '/live' ? h.live : h.ready;
          send(ok ? 200 : 503, 'application/json', `${JSON.stringify(path === '/live' ? { live: h.live } : h)}\n`);
        },
        () => send(503, 'application/json', '{"ready":false}\n'),
      );
      return;
    }
    if (path === '/metrics') {
      ctx.metrics.registry.metrics().then(
        (text) => send(200, ctx.metrics.registry.contentType, text),
        () => send(500, 'text/plain', 'metrics unavailable\n'),
      );
      return;
    }
    send(404, 'text/plain', 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bindAddress, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, address: server.address() as AddressInfo };
}
