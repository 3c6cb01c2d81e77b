/**
 * `readAudit`: the records of a log file that match a filter, streaming (a big file is never
 * read whole). It does not check the chain (verifyAudit does); a line that is not a record is
 * ERR_AUDIT_PARSE naming it. An incomplete last line, a write still in progress or torn, is
 * skipped.
 */
import { WritError } from '../errors.js';
import { readRawLines } from './lines.js';
import { type AuditRecord, parseAuditLine } from './record.js';

export interface AuditFilter {
  kind?: string | readonly string[];
  /** Task id (actors.task). */
  task?: string;
  /** Agent SPIFFE ID (actors.agent). */
  agent?: string;
  /** Requester id (actors.requester.id). */
  requester?: string;
  /** Workload SPIFFE ID (actors.workload). */
  workload?: string;
  /** Records at or after this time. */
  since?: Date | string;
  /** Records before this time. */
  until?: Date | string;
}

function ms(t: Date | string | undefined, field: string): number | undefined {
  if (t === undefined) return undefined;
  const v = typeof t === 'string' ? Date.parse(t) : t.getTime();
  if (Number.isNaN(v)) throw new WritError('ERR_INPUT_INVALID', `The ${field} time is not a valid date.`, { details: { field } });
  return v;
}

export function auditFilter(filter: AuditFilter): (r: AuditRecord) => boolean {
  const kinds = filter.kind === undefined ? undefined : new Set(typeof filter.kind === 'string' ? [filter.kind] : filter.kind);
  const since = ms(filter.since, 'since');
  const until = ms(filter.until, 'until');
  return (r) => {
    if (kinds && !kinds.has(r.kind)) return false;
    if (filter.task !== undefined && r.actors?.task !== filter.task) return false;
    if (filter.agent !== undefined && r.actors?.agent !== filter.agent) return false;
    if (filter.requester !== undefined && r.actors?.requester?.id !== filter.requester) return false;
    if (filter.workload !== undefined && r.actors?.workload !== filter.workload) return false;
    if (since !== undefined || until !== undefined) {
      const t = Date.parse(r.time);
      if (since !== undefined && t < since) return false;
      if (until !== undefined && t >= until) return false;
    }
    return true;
  };
}

export async function* readAudit(path: string, filter: AuditFilter = {}): AsyncGenerator<AuditRecord> {
  const match = auditFilter(filter);
  for await (const raw of readRawLines(path)) {
    if (!raw.complete) return;
    let r: AuditRecord;
    try {
      r = parseAuditLine(raw.bytes);
    } catch (e) {
      throw new WritError('ERR_AUDIT_PARSE', `Line ${raw.lineNo} of the audit log is not a valid record.`, { cause: e, details: { line: raw.lineNo } });
    }
    if (match(r)) yield r;
  }
}
