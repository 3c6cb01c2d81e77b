/**
 * Reading a log file as raw lines, streaming (memory bounded by the longest line), and its tail
 * without reading the whole file.
 */
import { createReadStream, type promises as fsp } from 'node:fs';
import { WritError } from '../errors.js';
import { MAX_RECORD_BYTES } from './record.js';

export interface RawLine {
  /** The line's bytes without the newline. */
  bytes: Buffer;
  /** 1-based line number. */
  lineNo: number;
  /** False for a last line that has no newline (a torn write). */
  complete: boolean;
}

/** Yields every line of the file; a missing file is ERR_AUDIT_IO. */
export async function* readRawLines(path: string): AsyncGenerator<RawLine> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  let carry: Buffer = Buffer.alloc(0);
  let lineNo = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
        yield { bytes: buf.subarray(start, nl), lineNo: ++lineNo, complete: true };
        start = nl + 1;
      }
      buf = buf.subarray(start);
      // Copy so the stream's chunk can be released; a line never exceeds a record's limit by much.
      carry = Buffer.from(buf);
      if (carry.length > 4 * MAX_RECORD_BYTES) {
        // Far longer than any record: yield it as a (bad) line and stop reading.
        yield { bytes: carry, lineNo: ++lineNo, complete: true };
        return;
      }
    }
  } catch (e) {
    throw new WritError('ERR_AUDIT_IO', 'The audit log could not be read.', { cause: e, details: { path } });
  } finally {
    stream.destroy();
  }
  if (carry.length > 0) yield { bytes: carry, lineNo: ++lineNo, complete: false };
}

export interface Tail {
  /** The last complete line (no newline), if any. */
  last?: Buffer;
  /** Offset just past the last newline: the length of the complete part of the file. */
  completeLength: number;
  /** Bytes after the last newline (a torn last write); empty when the file ends cleanly. */
  torn: Buffer;
}

/** Reads backwards from the end of an open file until it has the last complete line. */
export async function readTail(fh: fsp.FileHandle, size: number): Promise<Tail> {
  const step = 64 * 1024;
  let buf: Buffer = Buffer.alloc(0);
  let from = size;
  for (;;) {
    const start = Math.max(0, from - step);
    const chunk = Buffer.alloc(from - start);
    for (let got = 0; got < chunk.length; ) {
      const { bytesRead } = await fh.read(chunk, got, chunk.length - got, start + got);
      if (bytesRead === 0) throw new WritError('ERR_AUDIT_IO', 'The audit log shrank while it was being opened.');
      got += bytesRead;
    }
    buf = Buffer.concat([chunk, buf]);
    from = start;
    const lastNl = buf.lastIndexOf(10);
    if (lastNl === -1) {
      if (from === 0) return { completeLength: 0, torn: buf };
      continue;
    }
    const prevNl = lastNl === 0 ? -1 : buf.lastIndexOf(10, lastNl - 1);
    // A complete line longer than a record may be is returned cut; parsing it then fails.
    if (prevNl !== -1 || from === 0 || lastNl > MAX_RECORD_BYTES) {
      return { last: buf.subarray(prevNl + 1, lastNl), completeLength: from + lastNl + 1, torn: buf.subarray(lastNl + 1) };
    }
  }
}
