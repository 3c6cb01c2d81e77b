/**
 * The start time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot). A pid and
 * its start time name one process for the life of the system: a reused pid has a later start
 * time. The agent checks it after attestation; tasks are pinned to it.
 */
import { readFileSync } from 'node:fs';

/**
 * The start time from the text of /proc/<pid>/stat. The comm field (2) is in parentheses and may
 * itself hold spaces and ')', so fields are counted after the LAST ')'. Throws when the text does
 * not have that shape.
 */
export function parseStartTime(stat: string): string {
  const close = stat.lastIndexOf(')');
  if (close < 0 || stat.indexOf('(') < 0 || stat.indexOf('(') > close) throw new Error('no (comm) field in /proc/<pid>/stat');
  // After ") " come fields 3 (state), 4 (ppid), ...; field 22 is at index 22 - 3.
  const rest = stat.slice(close + 1).trim().split(/\s+/);
  const start = rest[22 - 3];
  if (start === undefined || !/^\d+$/.test(start)) throw new Error('no numeric start time in /proc/<pid>/stat');
  return start;
}

/** The start time of a running process, or undefined when it is gone (or /proc is unreadable). */
export function readStartTime(pid: number, procRoot = '/proc'): string | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    return parseStartTime(readFileSync(`${procRoot}/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}
