/**
 * /proc files held open for one process. A descriptor of /proc/<pid>/<file> is bound to the
 * process it was opened for, not to the number: once that process has exited, reads fail with
 * ESRCH even if another process gets the same pid. Reading it again from offset 0 makes the
 * kernel render the file afresh, so a held descriptor gives the current state of that one process
 * for the price of one pread (no path walk, no open and close per read).
 *
 * These files are seq_files: a read returns as much of the text as fits, so a read that does not
 * fill the buffer has reached the end. Reading on until a read returns 0 would make the kernel
 * render the whole file a second time; measured in the agent's latency bench, /proc/<pid>/status
 * of a busy caller costs 25-30 µs per call that way.
 */
import { closeSync, openSync, readSync } from 'node:fs';

const CHUNK = 4096;
let scratch = Buffer.allocUnsafe(CHUNK);

/** Opens /proc/<pid>/<file> read-only; -1 when it cannot be opened (gone, no permission). */
export function openProcFile(pid: number, file: string, procRoot = '/proc'): number {
  if (!Number.isSafeInteger(pid) || pid <= 0) return -1;
  try {
    return openSync(`${procRoot}/${pid}/${file}`, 'r');
  } catch {
    return -1;
  }
}

/** The whole current text of a held /proc file; throws the read error (ESRCH once the process is gone). */
export function readProcFd(fd: number): string {
  let n = 0;
  for (;;) {
    if (n === scratch.length) {
      const bigger = Buffer.allocUnsafe(scratch.length * 2);
      scratch.copy(bigger, 0, 0, n);
      scratch = bigger;
    }
    const room = scratch.length - n;
    const got = readSync(fd, scratch, n, room, n);
    n += got;
    if (got < room) break;
  }
  return scratch.toString('utf8', 0, n);
}

/** Closes a descriptor from openProcFile (ignores -1 and errors). */
export function closeProcFile(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
