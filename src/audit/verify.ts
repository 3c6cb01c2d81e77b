/**
 * `verifyAudit`: checks a whole log file, streaming. Each line must be a canonical record
 * (ERR_AUDIT_PARSE) whose hash matches its content (ERR_AUDIT_HASH: an edited record), whose
 * seq is its line number (ERR_AUDIT_SEQ: a record deleted, inserted or moved) and whose prev is
 * the previous record's hash (ERR_AUDIT_CHAIN). A last line without a newline is ERR_AUDIT_TORN.
 * The first bad record is named by line and seq; nothing after it is trusted.
 *
 * A chain that was cut short at the end, or rewritten from some record on, is still a valid
 * chain: compare its head with one recorded earlier (`expectHead`, a record hash printed by
 * `writ audit verify` or AuditLog.head). That record must still be in the chain, else
 * ERR_AUDIT_HEAD.
 */
import { WritError } from '../errors.js';
import { readRawLines } from './lines.js';
import { GENESIS_PREV, parseAuditLine, recordHash } from './record.js';

export type AuditFailureCode = 'ERR_AUDIT_PARSE' | 'ERR_AUDIT_HASH' | 'ERR_AUDIT_SEQ' | 'ERR_AUDIT_CHAIN' | 'ERR_AUDIT_TORN' | 'ERR_AUDIT_HEAD';

export type VerifyResult =
  | { ok: true; records: number; head: string }
  | {
      ok: false;
      /** The seq the first bad record should have (its position in the chain). */
      seq: number;
      /** Its 1-based line number. */
      line: number;
      code: AuditFailureCode;
      sentence: string;
      /** How many records before it verified. */
      records: number;
    };

export interface VerifyOptions {
  /** A record hash that must be in the chain (an anchor taken earlier). */
  expectHead?: string;
}

export async function verifyAudit(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  let head = GENESIS_PREV;
  let n = 0;
  const expect = opts.expectHead?.toLowerCase();
  let anchorSeen = expect === undefined || expect === GENESIS_PREV;
  const fail = (code: AuditFailureCode, line: number, sentence: string): VerifyResult => ({ ok: false, seq: n + 1, line, code, sentence, records: n });
  for await (const raw of readRawLines(path)) {
    const at = `Line ${raw.lineNo} (record ${n + 1})`;
    if (!raw.complete) return fail('ERR_AUDIT_TORN', raw.lineNo, `${at} is incomplete: the last write was cut short.`);
    let record;
    try {
      record = parseAuditLine(raw.bytes);
    } catch (e) {
      const why = e instanceof WritError ? e.message : 'It cannot be read.';
      return fail('ERR_AUDIT_PARSE', raw.lineNo, `${at} is not a valid audit record: ${why}`);
    }
    if (recordHash(record) !== record.hash) return fail('ERR_AUDIT_HASH', raw.lineNo, `${at} does not match its hash: it was changed.`);
    if (record.seq !== n + 1) {
      return fail('ERR_AUDIT_SEQ', raw.lineNo, `${at} holds record ${record.seq}: records were deleted, inserted or reordered.`);
    }
    if (record.prev !== head) return fail('ERR_AUDIT_CHAIN', raw.lineNo, `${at} does not chain to the record before it.`);
    head = record.hash;
    n++;
    if (!anchorSeen && head === expect) anchorSeen = true;
  }
  if (!anchorSeen) {
    return fail('ERR_AUDIT_HEAD', n + 1, `The chain of ${n} records does not contain the expected head: the log was cut short or rewritten.`);
  }
  return { ok: true, records: n, head };
}
