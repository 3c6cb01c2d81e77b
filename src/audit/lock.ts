/**
 * One writer per log file: an exclusive lock file `<log>.lock` created with O_CREAT|O_EXCL,
 * mode 0600, holding the owner's pid, its start time (from /proc/<pid>/stat, so a reused pid is
 * not mistaken for the owner) and host name. A lock whose owner is gone (no such pid, or a pid
 * with another start time, on this host) is stale: it is moved aside atomically and taken over.
 * A lock held by a live process, or by another host, is ERR_AUDIT_LOCKED.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WritError } from '../errors.js';

interface LockInfo {
  pid: number;
  start: string | null;
  host: string;
}

/** Field 22 (starttime, in clock ticks since boot) of /proc/<pid>/stat, or null off Linux. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function alive(info: LockInfo): boolean {
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (info.start === null) return true;
  const now = processStartTime(info.pid);
  return now === null || now === info.start;
}

function parseInfo(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && (typeof v.start === 'string' || v.start === null)) return v as LockInfo;
  } catch {
    // fall through: unreadable lock content
  }
  return undefined;
}

function isStale(info: LockInfo | undefined): boolean {
  // An unreadable lock is a crash between create and write: stale. Another host's lock is never.
  if (!info) return true;
  return info.host === hostname() && !alive(info);
}

function locked(lockPath: string, info: LockInfo | undefined): WritError {
  const who = info ? ` by process ${info.pid} on ${info.host}` : '';
  return new WritError('ERR_AUDIT_LOCKED', `The audit log is open for writing${who}; only one writer may hold it.`, { details: { lock: lockPath } });
}

export interface AuditLock {
  readonly path: string;
  release(): Promise<void>;
}

async function tryCreate(lockPath: string, content: string): Promise<boolean> {
  try {
    const fh = await fs.open(lockPath, 'wx', 0o600);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new WritError('ERR_AUDIT_IO', 'The audit lock file could not be created.', { cause: e, details: { lock: lockPath } });
  }
}

/** Takes the lock at `lockPath` or throws ERR_AUDIT_LOCKED. */
export async function acquireLock(lockPath: string): Promise<AuditLock> {
  const mine: LockInfo = { pid: process.pid, start: processStartTime(process.pid), host: hostname() };
  const content = JSON.stringify(mine) + '\n';
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await tryCreate(lockPath, content)) return { path: lockPath, release: () => releaseLock(lockPath, content) };
    const text = await fs.readFile(lockPath, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // removed meanwhile: try again
    const info = parseInfo(text);
    if (!isStale(info)) throw locked(lockPath, info);
    // Move the stale lock aside (atomic), then make sure it was the stale one we read.
    const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
    try {
      await fs.rename(lockPath, aside);
    } catch {
      continue;
    }
    const moved = await fs.readFile(aside, 'utf8').catch(() => '');
    if (moved !== text) {
      // Someone took the lock between our read and our rename: put theirs back and give up.
      await fs.link(aside, lockPath).catch(() => undefined);
      await fs.unlink(aside).catch(() => undefined);
      throw locked(lockPath, parseInfo(moved));
    }
    await fs.unlink(aside).catch(() => undefined);
  }
  throw locked(lockPath, undefined);
}

async function releaseLock(lockPath: string, content: string): Promise<void> {
  const text = await fs.readFile(lockPath, 'utf8').catch(() => undefined);
  if (text === content) await fs.unlink(lockPath).catch(() => undefined);
}
