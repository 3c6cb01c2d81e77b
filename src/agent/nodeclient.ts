/**
 * The agent's client of the server's node API: JSON over HTTPS. The server is trusted through the
 * agent's current trust bundle (the configured bootstrap bundle until the first sync) and must
 * present an X509-SVID for the configured server SPIFFE ID; host names are not checked. Calls after
 * attestation present the agent SVID as the client certificate.
 */
import { Agent, request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { WritError, isErrorCode } from '../errors.js';

export const MAX_NODE_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface NodeClientTls {
  /** The trust domain's roots, PEM. */
  caPem: string;
  /** Agent SVID chain and key, PEM; absent before attestation. */
  certPem?: string;
  keyPem?: string;
}

/** The URI SANs of a peer certificate as node:tls reports them. */
export function uriSans(cert: PeerCertificate): string[] {
  return (cert.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}

export class NodeClient {
  #agent: Agent | undefined;
  #agentKey = '';

  constructor(
    private readonly opts: { host: string; port: number; serverId: string; timeoutMs?: number },
    private readonly tls: () => NodeClientTls,
  ) {}

  get address(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  #httpsAgent(t: NodeClientTls): Agent {
    const key = `${t.caPem}|${t.certPem ?? ''}`;
    if (!this.#agent || key !== this.#agentKey) {
      this.#agent?.destroy();
      const serverId = this.opts.serverId;
      this.#agent = new Agent({
        keepAlive: true,
        maxSockets: 8,
        ca: t.caPem,
        ...(t.certPem && t.keyPem ? { cert: t.certPem, key: t.keyPem } : {}),
        minVersion: 'TLSv1.2',
        checkServerIdentity: (_host, cert) => {
          const ids = uriSans(cert);
          return ids.length === 1 && ids[0] === serverId ? undefined : new Error(`the server presented ${ids.join(', ') || 'no SPIFFE ID'}, not ${serverId}`);
        },
      });
      this.#agentKey = key;
    }
    return this.#agent;
  }

  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  post<T>(path: string, body: unknown): Promise<T> {
    const payload = Buffer.from(JSON.stringify(body));
    const agent = this.#httpsAgent(this.tls());
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    return new Promise<T>((resolve, reject) => {
      const req = request(
        { host: this.opts.host, port: this.opts.port, path, method: 'POST', agent, timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': payload.length } },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_NODE_RESPONSE_BYTES) req.destroy(new WritError('ERR_SERVER_RESPONSE', 'The server\'s answer is larger than 64 MiB.'));
            else chunks.push(c);
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              return reject(new WritError('ERR_SERVER_RESPONSE', `The server answered ${path} with something that is not JSON (HTTP ${res.statusCode}).`));
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(parsed as T);
            const err = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
            if (err && isErrorCode(err.code) && typeof err.message === 'string') reject(new WritError(err.code, err.message));
            else reject(new WritError('ERR_SERVER_RESPONSE', `The server answered ${path} with HTTP ${status} and no error code.`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new WritError('ERR_SERVER_UNREACHABLE', `The server ${this.address} did not answer within ${timeoutMs / 1000} s.`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof WritError) return reject(e);
        const tlsFailure = /certificate|self.signed|SPIFFE ID|issuer|verify/i.test(e.message) || e.code?.startsWith('ERR_TLS') || e.code?.includes('CERT');
        reject(
          new WritError(
            'ERR_SERVER_UNREACHABLE',
            tlsFailure ? `The server ${this.address} could not be verified as ${this.opts.serverId} (${e.message}).` : `Cannot reach the writ server at ${this.address} (${e.code ?? e.message}).`,
          ),
        );
      });
      req.end(payload);
    });
  }
}
