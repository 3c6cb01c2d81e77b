/**
 * Peer credentials of Unix-socket callers, read from the kernel through the small N-API addon in
 * native/peercred.cc (built by node-gyp at install). Node has no API for SO_PEERCRED.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { WritError } from '../errors.js';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

interface Addon {
  getPeerCred(fd: number): PeerCred;
  getPeerPidfd(fd: number): number;
  getPeerGroups(fd: number): number[];
  closeFd(fd: number): void;
  pidfdOpen(pid: number): number;
  pidfdAlive(fd: number): boolean;
}

let addon: Addon | undefined;

/** Finds build/Release/peercred.node from src/platform (tsx) or dist/src/platform (compiled). */
function loadAddon(): Addon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'peercred.node');
    if (existsSync(candidate)) {
      addon = require(candidate) as Addon;
      return addon;
    }
    dir = dirname(dir);
  }
  throw new WritError('ERR_PEERCRED', 'The peer-credentials addon is not built; run `npm install` (it runs node-gyp).');
}

/** The file descriptor of a connected net.Socket; libuv keeps it on the handle. */
export function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new WritError('ERR_PEERCRED', 'The connection has no file descriptor to read peer credentials from.');
  }
  return fd;
}

/** SO_PEERCRED of the process at the other end of a Unix socket, as the kernel recorded it at connect(). */
export function peerCredOf(socket: Socket): PeerCred {
  const fd = socketFd(socket);
  try {
    return loadAddon().getPeerCred(fd);
  } catch (e) {
    if (e instanceof WritError) throw e;
    throw new WritError('ERR_PEERCRED', 'The kernel did not return the caller\'s credentials.', { cause: e });
  }
}

/** Supplementary group ids of the peer (SO_PEERGROUPS); empty where the kernel lacks it. */
export function peerGroupsOf(socket: Socket): number[] {
  return loadAddon().getPeerGroups(socketFd(socket));
}

/** A pidfd for the peer (SO_PEERPIDFD, Linux >= 6.5), or -1. The caller must closePidfd() it. */
export function peerPidfdOf(socket: Socket): number {
  return loadAddon().getPeerPidfd(socketFd(socket));
}

export function closePidfd(fd: number): void {
  if (fd >= 0) loadAddon().closeFd(fd);
}

/** pidfd_open(pid): a pidfd for a running process, or -1 when it is gone or the kernel lacks pidfds. The caller must closePidfd() it. */
export function pidfdOpen(pid: number): number {
  if (!Number.isSafeInteger(pid) || pid <= 0) return -1;
  return loadAddon().pidfdOpen(pid);
}

/** Whether the process behind a pidfd is still running (pidfd_send_signal with signal 0); false for -1. */
export function pidfdAlive(fd: number): boolean {
  if (fd < 0) return false;
  return loadAddon().pidfdAlive(fd);
}
