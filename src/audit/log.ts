/**
 * The append-only, hash-chained audit log: one file of JSON Lines (record.ts), one writer.
 *
 * Durability: the file is opened O_APPEND (mode 0600) and `append()` resolves only after the
 * record is on disk (write, then fdatasync). Appends that arrive while a flush is in progress
 * are committed together (group commit): one write(2) of all their lines, so no record is ever
 * split across writes, then one fdatasync for the lot. seq and prev are assigned at append(),
 * so the file order is the call order.
 *
 * Open: takes the lock (lock.ts), reads the tail to resume seq and prev, and checks the last
 * record's own hash (a full check is verifyAudit's job). A torn last line — bytes after the
 * last newline, left by a crash mid-write — belongs to an append that never resolved. By default
 * (`torn: 'truncate'`) it is copied to `<log>.torn-<time>` (0600), cut off, reported through
 * `onWarning`, and recorded in the chain as an `audit.recovered` record; with `torn: 'refuse'`
 * open fails with ERR_AUDIT_TORN. It is never chained over.
 *
 * A failed write or sync leaves the in-memory chain ahead of the file: every later append then
 * fails with ERR_AUDIT_IO; close and reopen (which resumes from what is on disk).
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import { WritError } from '../errors.js';
import { type AuditLock, acquireLock } from './lock.js';
import { readTail } from './lines.js';
import { type AuditInput, type AuditRecord, GENESIS_PREV, parseAuditLine, recordHash, sealRecord, validateAuditInput } from './record.js';

export interface AuditLogOptions {
  clock?: Clock;
  /** What to do with a torn last line: cut it off (default, after saving a copy) or refuse to open. */
  torn?: 'truncate' | 'refuse';
  /** Told about recoveries (a torn line cut off); never given record contents. */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
}

export interface TornRecovery {
  bytes: number;
  savedTo: string;
}

interface Pending {
  line: Buffer;
  record: AuditRecord;
  resolve: (r: AuditRecord) => void;
  reject: (e: unknown) => void;
}

function ioError(sentence: string, e: unknown, path: string): WritError {
  return new WritError('ERR_AUDIT_IO', sentence, { cause: e, details: { path } });
}

export class AuditLog {
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private failed: WritError | undefined;
  private closed = false;
  private commitCount = 0;

  private constructor(
    readonly path: string,
    private readonly fh: fs.FileHandle,
    private readonly lock: AuditLock,
    private readonly clock: Clock,
    private lastSeq: number,
    private lastHash: string,
    /** Set when open cut off a torn last line. */
    readonly recovered: TornRecovery | undefined,
  ) {}

  /** Opens (creating if needed) the log at `path` for appending; ERR_AUDIT_LOCKED if another writer holds it. */
  static async open(path: string, opts: AuditLogOptions = {}): Promise<AuditLog> {
    const clock = opts.clock ?? systemClock;
    const lock = await acquireLock(`${path}.lock`);
    let fh: fs.FileHandle | undefined;
    try {
      const existed = await fs.stat(path).then(() => true, () => false);
      try {
        fh = await fs.open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
        await fh.chmod(0o600);
        if (!existed) await syncDir(dirname(path));
      } catch (e) {
        throw ioError('The audit log could not be opened.', e, path);
      }
      const { size } = await fh.stat();
      const tail = await readTail(fh, size);
      let recovered: TornRecovery | undefined;
      if (tail.torn.length > 0) {
        if (opts.torn === 'refuse') {
          throw new WritError('ERR_AUDIT_TORN', 'The audit log ends in an incomplete line (a write cut short); it was not opened.', { details: { path, bytes: tail.torn.length } });
        }
        recovered = await cutTorn(fh, path, tail.torn, tail.completeLength, clock);
        opts.onWarning?.('The audit log ended in an incomplete line; it was saved aside and cut off.', { path, ...recovered });
      }
      let seq = 0;
      let head = GENESIS_PREV;
      if (tail.last !== undefined) {
        const last = parseAuditLine(tail.last);
        if (recordHash(last) !== last.hash) {
          throw new WritError('ERR_AUDIT_HASH', `The last audit record (${last.seq}) does not match its hash; run verify.`, { details: { path, seq: last.seq } });
        }
        seq = last.seq;
        head = last.hash;
      }
      const log = new AuditLog(path, fh, lock, clock, seq, head, recovered);
      if (recovered) await log.append({ kind: 'audit.recovered', details: { tornBytes: recovered.bytes, savedTo: basename(recovered.savedTo) } });
      return log;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await lock.release();
      throw e;
    }
  }

  /** The seq of the last record appended (0 for an empty log). */
  get seq(): number {
    return this.lastSeq;
  }

  /** The hash of the last record appended (GENESIS_PREV for an empty log): the anchor for verify's expectHead. */
  get head(): string {
    return this.lastHash;
  }

  /** How many write+fdatasync commits this handle made (fewer than appends when they were grouped). */
  get commits(): number {
    return this.commitCount;
  }

  /** Appends one record; resolves with it once it is on disk. */
  append(input: AuditInput): Promise<AuditRecord> {
    if (this.closed) return Promise.reject(new WritError('ERR_AUDIT_CLOSED', 'The audit log is closed.'));
    if (this.failed) return Promise.reject(this.failed);
    let sealed: { record: AuditRecord; line: Buffer };
    try {
      sealed = sealRecord(validateAuditInput(input), this.lastSeq + 1, this.lastHash, this.clock.now().toISOString());
    } catch (e) {
      return Promise.reject(e);
    }
    this.lastSeq = sealed.record.seq;
    this.lastHash = sealed.record.hash;
    return new Promise<AuditRecord>((resolve, reject) => {
      this.pending.push({ ...sealed, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing) return;
    // Start on a microtask, so appends made in the same turn share the first commit too. An
    // append can land after the loop saw an empty queue but before it ended: kick again.
    this.flushing = Promise.resolve()
      .then(() => this.flushLoop())
      .finally(() => {
        this.flushing = undefined;
        if (this.pending.length > 0) this.kick();
      });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        const buf = batch.length === 1 ? batch[0]!.line : Buffer.concat(batch.map((p) => p.line));
        for (let off = 0; off < buf.length; ) {
          const { bytesWritten } = await this.fh.write(buf, off, buf.length - off);
          off += bytesWritten;
        }
        await this.fh.datasync();
        this.commitCount++;
      } catch (e) {
        this.failed = ioError('The audit log could not be written; close and reopen it.', e, this.path);
        for (const p of [...batch, ...this.pending]) p.reject(this.failed);
        this.pending = [];
        return;
      }
      for (const p of batch) p.resolve(p.record);
    }
  }

  /** Waits for pending appends, then closes the file and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    try {
      await this.fh.close();
    } finally {
      await this.lock.release();
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await fs.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

async function cutTorn(fh: fs.FileHandle, path: string, torn: Buffer, keep: number, clock: Clock): Promise<TornRecovery> {
  const stamp = clock.now().toISOString().replace(/[:.]/g, '-');
  const savedTo = `${path}.torn-${stamp}-${randomBytes(3).toString('hex')}`;
  try {
    await fs.writeFile(savedTo, torn, { mode: 0o600, flag: 'wx' });
    await fh.truncate(keep);
    await fh.datasync();
  } catch (e) {
    throw ioError('The torn end of the audit log could not be saved and cut off.', e, path);
  }
  return { bytes: torn.length, savedTo };
}
