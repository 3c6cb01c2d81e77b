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
  const n = readIntoScratch(fd); // first: it may replace `scratch` with a bigger buffer
  return scratch.toString('utf8', 0, n);
}

/** Per line name: `\n<name>:` as bytes (the name itself starts at offset 1). */
const lineKeys = new Map<string, Buffer>();

/**
 * Only the lines of a held /proc file that start with `names` (each followed by a colon), in
 * that order, joined by newlines; a missing line is left out. Made from the bytes read, without
 * decoding the whole text: the unix attestor needs three lines of /proc/<pid>/status's sixty on
 * every Workload API call. Throws the read error as readProcFd does.
 */
export function readProcFdLines(fd: number, names: readonly string[]): string {
  const n = readIntoScratch(fd);
  let out = '';
  for (const name of names) {
    let key = lineKeys.get(name);
    if (!key) lineKeys.set(name, (key = Buffer.from(`\n${name}:`, 'latin1')));
    let at: number;
    // The first line has no newline before it; compare() with offsets makes no views.
    if (n >= key.length - 1 && scratch.compare(key, 1, key.length, 0, key.length - 1) === 0) at = 0;
    else {
      const nl = scratch.indexOf(key);
      if (nl < 0 || nl + key.length > n) continue;
      at = nl + 1;
    }
    let end = scratch.indexOf(10, at);
    if (end < 0 || end > n) end = n;
    out += (out === '' ? '' : '\n') + scratch.toString('latin1', at, end);
  }
  return out;
}

/** Reads a held /proc file from offset 0 into `scratch` (grown as needed); returns its length. */
function readIntoScratch(fd: number): number {
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
  return n;
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
