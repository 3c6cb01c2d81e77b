/**
 * Workload attestors: turn the pid of a process calling the Workload API (from the kernel's peer
 * credentials) into selectors. The agent runs every configured attestor on the pid, unions the
 * selectors, and matches registration entries by selector subset; a failing attestor is logged and
 * ignored unless all fail (as SPIRE does), so an attestor should fail only for real reasons.
 */
import { readFileSync } from 'node:fs';
import type { Selector } from '../../datastore/index.js';
import { WritError } from '../../errors.js';
import { readProcFd } from '../../platform/procfd.js';

/** What the agent already knows about the calling process; an attestor may use it instead of reading /proc. */
export interface ProcessFacts {
  /** The start time (field 22 of /proc/<pid>/stat), read when the process connected. */
  startTime?: string;
  /**
   * A descriptor of /proc/<pid>/status (under /proc) opened for this very process when it
   * connected: reading it from offset 0 gives the current text, and fails with ESRCH once the
   * process has exited, whatever now holds the pid. Owned by the caller; do not close it.
   */
  statusFd?: number;
}

export interface WorkloadAttestor {
  readonly name: string;
  /** The selectors of process `pid`; their type is the attestor's name. ERR_WORKLOAD_ATTESTATION on failure. */
  attest(pid: number, facts?: ProcessFacts): Promise<Selector[]>;
  close?(): Promise<void> | void;
}

/** ERR_WORKLOAD_ATTESTATION for attestor `name`, one sentence. */
export function workloadError(name: string, pid: number, sentence: string, cause?: unknown): WritError {
  return new WritError('ERR_WORKLOAD_ATTESTATION', sentence, { details: { attestor: name, pid }, ...(cause === undefined ? {} : { cause }) });
}

/** Throws unless `pid` is a positive safe integer (a kernel pid). */
export function checkPid(name: string, pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw workloadError(name, pid, `The ${name} attestor was given "${String(pid)}", which is not a process id.`);
}

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** True when a /proc read failed because the process is gone (or never was). */
export function isGone(e: unknown): boolean {
  const code = errnoOf(e);
  return code === 'ENOENT' || code === 'ESRCH';
}

/**
 * Reads /proc/<pid>/<file> under `procRoot`; a vanished process is ERR_WORKLOAD_ATTESTATION
 * "no longer exists", any other failure ERR_WORKLOAD_ATTESTATION naming the file and the errno.
 * Synchronously: procfs files are made in memory by the kernel and never wait on a disk, and
 * fs/promises' readFile takes five thread-pool round trips (open, fstat, read, read, close) for
 * them, about 210 µs against 8 µs, on every Workload API call.
 */
export async function readProcFile(name: string, procRoot: string, pid: number, file: string, heldFd?: number): Promise<string> {
  try {
    return heldFd !== undefined && heldFd >= 0 ? readProcFd(heldFd) : readFileSync(`${procRoot}/${pid}/${file}`, 'utf8');
  } catch (e) {
    throw procFileError(name, pid, file, e);
  }
}

/** The error for a failed read of /proc/<pid>/<file>: gone, or the errno named. */
export function procFileError(name: string, pid: number, file: string, e: unknown): WritError {
  if (isGone(e)) return workloadError(name, pid, `Process ${pid} does not exist (it may have exited).`, e);
  return workloadError(name, pid, `The ${name} attestor can not read /proc/${pid}/${file} (${errnoOf(e) ?? 'error'}).`, e);
}
