/**
 * `writ audit show|verify`: the server's hash-chained audit log (<data_dir>/audit.log). By default
 * over the admin API (the server reads its own log; the admin socket decides who may ask). With
 * `--file PATH` the CLI reads a log file itself, e.g. a copy taken off the server, so the check
 * does not depend on the server it is checking. `verify` exits 0 when the chain is intact and
 * otherwise prints the code and the first bad record (line and seq) and exits 1.
 */
import type { Command } from 'commander';
import { type AuditFilter, type AuditRecord, readAudit, verifyAudit, type VerifyResult } from '../audit/index.js';
import { WritError } from '../errors.js';
import type { CliContext } from './context.js';

interface ShowFlags {
  task?: string;
  agent?: string;
  kind?: string;
  limit?: string;
  file?: string;
}

function party(p: { id: string; authenticatedBy?: string } | undefined): string {
  return p ? `${p.id}${p.authenticatedBy ? `(${p.authenticatedBy})` : ''}` : '-';
}

/** One line per record: seq, time, kind, who, the decision, and the rest as JSON. */
export function printRecord(r: AuditRecord): string {
  const a = r.actors ?? {};
  const parts = [`#${r.seq}`, r.time, r.kind];
  if (a.task) parts.push(`task=${a.task}`);
  if (a.agent) parts.push(`agent=${a.agent}`);
  if (a.requester) parts.push(`requester=${party(a.requester)}`);
  if (a.approver) parts.push(`approver=${party(a.approver)}`);
  if (r.decision) parts.push(`decision=${r.decision.effect}${r.decision.id ? `:${r.decision.id}` : ''}${r.decision.reason ? ` (${r.decision.reason})` : ''}`);
  if (r.details && Object.keys(r.details).length) parts.push(JSON.stringify(r.details));
  return parts.join(' ');
}

function limitOf(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) === 0) throw new WritError('ERR_INPUT_INVALID', `--limit must be a number above zero; got "${raw.slice(0, 16)}".`);
  return Number(raw);
}

export function registerAuditCommands(program: Command, ctx: CliContext): void {
  const audit = program.command('audit').description('the tamper-evident audit log of agent identities and tasks');

  ctx
    .common(
      audit
        .command('show')
        .description('print audit records (oldest first)')
        .option('--task <id>', 'only records of this task')
        .option('--agent <name|spiffe-id>', 'only records of this agent')
        .option('--kind <kind>', 'only this kind (task.start, task.end, task.refused, agent-identity.create, ...)')
        .option('--limit <n>', 'the newest n records that match')
        .option('--file <path>', 'read this log file directly instead of asking the server'),
    )
    .action(async (f: ShowFlags) => {
      const limit = limitOf(f.limit);
      let records: AuditRecord[];
      if (f.file !== undefined) {
        const filter: AuditFilter = {};
        if (f.task) filter.task = f.task;
        if (f.agent) filter.agent = f.agent;
        if (f.kind) filter.kind = f.kind;
        records = [];
        for await (const r of readAudit(f.file, filter)) records.push(r);
        if (limit !== undefined) records = records.slice(-limit);
      } else {
        const body = { ...(f.task ? { task: f.task } : {}), ...(f.agent ? { agent: f.agent } : {}), ...(f.kind ? { kind: f.kind } : {}), ...(limit ? { limit } : {}) };
        records = (await ctx.client().post<{ records: AuditRecord[] }>('/v1/audit/show', body)).records;
      }
      if (ctx.json()) ctx.io.out(JSON.stringify({ records }, null, 2));
      else ctx.io.out(records.length ? records.map(printRecord).join('\n') : 'No audit records match.');
    });

  ctx
    .common(
      audit
        .command('verify')
        .description('check the whole hash chain: exit 0 if intact, else name the first bad record')
        .option('--file <path>', 'verify this log file directly instead of asking the server')
        .option('--expect-head <hash>', 'a record hash printed by an earlier verify: it must still be in the chain (catches a cut or rewritten tail)'),
    )
    .action(async (f: { file?: string; expectHead?: string }) => {
      const opts = f.expectHead ? { expectHead: f.expectHead } : {};
      const { path, result } =
        f.file !== undefined
          ? { path: f.file, result: await verifyAudit(f.file, opts) }
          : await ctx.client().post<{ path: string; result: VerifyResult }>('/v1/audit/verify', f.expectHead ? { expect_head: f.expectHead } : {});
      if (ctx.json()) ctx.io.out(JSON.stringify({ path, ...result }, null, 2));
      if (!result.ok) {
        throw new WritError(result.code, `${path}: ${result.sentence} ${result.records} record(s) before it verified.`, { details: { line: result.line, seq: result.seq } });
      }
      if (!ctx.json()) ctx.io.out(`${path}: ${result.records} record(s), chain intact. Head: ${result.head}`);
    });
}
