/**
 * The Unix socket files of the Workload API endpoints: refuse a path a live process serves
 * (ERR_SOCKET_IN_USE), remove a stale socket file left by a crash, listen, set the mode (0777 by
 * default, as SPIRE's public socket), and on close remove the file only if it is still ours.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { dirname } from 'node:path';
import { WritError } from '../../errors.js';

/** SPIRE's public Workload API socket is world-connectable; attestation decides who gets what. */
export const DEFAULT_SOCKET_MODE = 0o777;

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** Resolves true when something accepts a connection on `path` within `timeoutMs`. */
function isServed(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    const done = (served: boolean) => {
      clearTimeout(timer);
      c.destroy();
      resolve(served);
    };
    // A live server with a full backlog does not answer in time: treat it as in use.
    const timer = setTimeout(() => done(true), timeoutMs);
    c.once('connect', () => done(true));
    c.once('error', (e) => done(!['ECONNREFUSED', 'ENOENT'].includes(errnoOf(e) ?? '')));
  });
}

/** Makes `path` ready to listen on: creates its directory, removes a stale socket, refuses a live one. */
export async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let kind: 'none' | 'socket' | 'other' = 'none';
  try {
    kind = lstatSync(path).isSocket() ? 'socket' : 'other';
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw new WritError('ERR_SOCKET_IN_USE', `The socket path ${path} cannot be inspected.`, { cause: e });
  }
  if (kind === 'other') throw new WritError('ERR_SOCKET_IN_USE', `${path} exists and is not a socket; refusing to replace it.`);
  if (kind === 'socket') {
    if (await isServed(path, 1000)) throw new WritError('ERR_SOCKET_IN_USE', `Another process is serving the socket ${path}.`);
    try {
      unlinkSync(path);
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw new WritError('ERR_SOCKET_IN_USE', `The stale socket ${path} cannot be removed.`, { cause: e });
    }
  }
}

/** A listening socket file, identified by inode so close() never removes someone else's. */
export interface SocketFile {
  path: string;
  remove(): void;
}

/** Prepares `path`, listens on it and sets its mode. */
export async function listenUnix(server: Server, path: string, mode = DEFAULT_SOCKET_MODE): Promise<SocketFile> {
  await prepareSocketPath(path);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(new WritError('ERR_SOCKET_IN_USE', `Cannot listen on ${path}.`, { cause: e }));
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
  chmodSync(path, mode);
  const { ino, dev } = lstatSync(path);
  return {
    path,
    remove() {
      try {
        const st = lstatSync(path);
        if (st.isSocket() && st.ino === ino && st.dev === dev) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}

/** Closes a net/http server, resolving when it has stopped (errors ignored: it may not be listening). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
