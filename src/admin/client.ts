/**
 * Client of the server's admin API: JSON over HTTP on the admin Unix socket. Used by the CLI.
 * Server errors come back as WritError with the server's code and sentence.
 */
import { request } from 'node:http';
import { WritError, isErrorCode } from '../errors.js';

export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class AdminClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 30_000,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new WritError('ERR_SERVER_RESPONSE', 'The server\'s answer is larger than 64 MiB.'));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(new WritError('ERR_SERVER_RESPONSE', `The server answered ${method} ${path} with something that is not JSON (HTTP ${res.statusCode}).`));
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve(parsed as T);
              return;
            }
            const err = (parsed as { error?: { code?: unknown; message?: unknown; details?: Record<string, unknown> } }).error;
            if (err && isErrorCode(err.code) && typeof err.message === 'string') {
              reject(new WritError(err.code, err.message, err.details ? { details: err.details } : {}));
            } else {
              reject(new WritError('ERR_SERVER_RESPONSE', `The server answered ${method} ${path} with HTTP ${status} and no error code.`));
            }
          });
          res.on('error', (e) => reject(e));
        },
      );
      req.on('timeout', () => req.destroy(new WritError('ERR_SERVER_UNREACHABLE', `The server did not answer within ${this.timeoutMs / 1000} s.`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof WritError) return reject(e);
        switch (e.code) {
          case 'ENOENT':
          case 'ECONNREFUSED':
            return reject(new WritError('ERR_SERVER_UNREACHABLE', `No writ server is listening on ${this.socketPath}; start one with \`npm start\` or \`writ server run\`, or pass --socket-path.`));
          case 'EACCES':
          case 'EPERM':
            return reject(new WritError('ERR_PERMISSION_DENIED', `You may not open the admin socket ${this.socketPath}; run as the server's user or a member of its admin group.`));
          default:
            return reject(new WritError('ERR_SERVER_UNREACHABLE', `Cannot reach the writ server on ${this.socketPath} (${e.code ?? e.message}).`));
        }
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}
