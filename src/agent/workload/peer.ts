/**
 * Per-connection peer tracking for the Workload API sockets. When a Unix-socket connection is
 * accepted, the kernel's record of the caller is read once: SO_PEERCRED (pid, uid, gid), a pidfd
 * (SO_PEERPIDFD, else pidfd_open) and the process start time (field 22 of /proc/<pid>/stat).
 * After attestation, verifySamePeer() proves the attested process is still the one that connected:
 * the pidfd says it runs and its start time is unchanged, so a pid reused by another process
 * gets nothing. /proc/<pid>/status is also opened at accept and held, so the unix attestor reads
 * that process's current ids with one pread per call (the descriptor fails once it exits). Both
 * descriptors are closed when the connection closes (and no attestation holds them).
 */
import type { Socket } from 'node:net';
import { WritError } from '../../errors.js';
import { closePidfd, closeProcFile, openProcFile, peerCredOf, peerPidfdOf, pidfdAlive, pidfdOpen, readStartTime, type PeerCred } from '../../platform/index.js';
import type { PeerProcess } from './handler.js';

/** The one sentence a caller sees when its process cannot be confirmed (as SPIRE words it). */
export const ATTESTATION_FAILED = 'workload attestation failed';

export { parseStartTime, readStartTime } from '../../platform/index.js';

export interface TrackedPeerOptions {
  /** Where start times are read from; tests inject one. Default: readStartTime (/proc). */
  startTimeOf?: (pid: number) => string | undefined;
}

/** The kernel facts about one connection's caller, taken at accept. */
export class TrackedPeer {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Start time recorded at accept; undefined when the process was already gone then. */
  readonly startTime: string | undefined;
  readonly #startTimeOf: (pid: number) => string | undefined;
  #pidfd: number;
  #statusFd: number;
  #closed = false;
  #holds = 0;

  /** `statusFd`: /proc/<pid>/status held open for this process, or -1. The peer owns and closes both descriptors. */
  constructor(cred: PeerCred, pidfd: number, startTime: string | undefined, opts: TrackedPeerOptions = {}, statusFd = -1) {
    this.pid = cred.pid;
    this.uid = cred.uid;
    this.gid = cred.gid;
    this.#pidfd = pidfd;
    this.#statusFd = statusFd;
    this.startTime = startTime;
    this.#startTimeOf = opts.startTimeOf ?? ((pid) => readStartTime(pid));
  }

  /** The process as the WorkloadHandler sees it (descriptors -1 once the connection is closed). */
  get process(): PeerProcess {
    return { pid: this.pid, uid: this.uid, gid: this.gid, pidfd: this.#pidfd, statusFd: this.#statusFd, ...(this.startTime !== undefined ? { startTime: this.startTime } : {}) };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a pidfd is held (false where the kernel has none, or after close). */
  get hasPidfd(): boolean {
    return this.#pidfd >= 0;
  }

  /**
   * Runs `fn` (an attestation) with the pidfd kept open even if the connection closes meanwhile,
   * so the handler never sees a descriptor number that was closed and reused for another file.
   */
  async hold<T>(fn: (process: PeerProcess) => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#failure('the connection is closed');
    this.#holds++;
    try {
      return await fn(this.process);
    } finally {
      this.#holds--;
      if (this.#closed && this.#holds === 0) this.#release();
    }
  }

  /**
   * Throws ERR_WORKLOAD_ATTESTATION (Unavailable) unless the process that connected still runs
   * under the same pid. With a pidfd, that it is alive proves it (a pidfd names one process, and
   * its pid cannot be reused while it lives); without one, /proc/<pid>/stat must show the start
   * time seen at accept.
   */
  verifySamePeer(): void {
    if (this.#closed) throw this.#failure('the connection is closed');
    if (this.startTime === undefined) throw this.#failure('the process was gone when it connected');
    if (this.#pidfd >= 0) {
      if (!pidfdAlive(this.#pidfd)) throw this.#failure('the process has exited');
      return;
    }
    const now = this.#startTimeOf(this.pid);
    if (now !== this.startTime) throw this.#failure(now === undefined ? 'the process has exited' : 'the pid now belongs to another process');
  }

  /** Marks the connection closed; the pidfd is closed now, or when the last hold() ends. */
  close(): void {
    this.#closed = true;
    if (this.#holds === 0) this.#release();
  }

  #release(): void {
    const fd = this.#pidfd;
    const status = this.#statusFd;
    this.#pidfd = -1;
    this.#statusFd = -1;
    if (fd >= 0) closePidfd(fd);
    closeProcFile(status);
  }

  #failure(reason: string): WritError {
    return new WritError('ERR_WORKLOAD_ATTESTATION', ATTESTATION_FAILED, { details: { pid: this.pid, reason } });
  }
}

/**
 * Reads the caller of a freshly accepted Unix-socket connection (throws ERR_PEERCRED when the
 * kernel gives nothing) and closes the pidfd when the socket closes. Call it synchronously in the
 * accept callback, before any byte is read. Without SO_PEERPIDFD, pidfd_open(pid) is the fallback;
 * it cannot tell a pid reused before accept, which only SO_PEERPIDFD (Linux >= 6.5) rules out.
 */
export function trackPeer(socket: Socket, opts: TrackedPeerOptions = {}): TrackedPeer {
  const cred = peerCredOf(socket);
  let pidfd = peerPidfdOf(socket);
  if (pidfd < 0) pidfd = pidfdOpen(cred.pid);
  const startTimeOf = opts.startTimeOf ?? ((pid: number) => readStartTime(pid));
  let startTime = pidfd < 0 || pidfdAlive(pidfd) ? startTimeOf(cred.pid) : undefined;
  // Held only with a pidfd: alive after the open proves the descriptor is this process's.
  let statusFd = pidfd >= 0 && startTime !== undefined ? openProcFile(cred.pid, 'status') : -1;
  // Alive after the reads: the pid was still this process's while /proc was read.
  if (pidfd >= 0 && !pidfdAlive(pidfd)) {
    startTime = undefined;
    closeProcFile(statusFd);
    statusFd = -1;
  }
  const peer = new TrackedPeer(cred, pidfd, startTime, opts, statusFd);
  if (socket.destroyed) peer.close();
  else socket.once('close', () => peer.close());
  return peer;
}
