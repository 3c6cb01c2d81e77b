/**
 * `writ task start|run|list|show|end`: tasks delegated to a registered agent. The caller (the OS
 * user on the admin socket) approves; `--requested-by` names the human who asked (recorded as
 * unverified; `--requester-token` is the seam for a verified OIDC ID token). A task is pinned to
 * one process by kernel facts: `--pid N` (its start time is read here, from /proc/N/stat) or
 * `run -- cmd`, which starts the command and ends the task when it exits (task-run.ts).
 */
import type { Command } from 'commander';
import { WritError } from '../errors.js';
import { readStartTime } from '../platform/index.js';
import { parseSelector, formatSelector } from '../registry/index.js';
import type { TaskJson } from '../server/tasks/index.js';
import { collect, type CliContext } from './context.js';
import { type TaskStartFlags, runTask, startBody } from './task-run.js';

/** pid and start time of a process on this host, for pinning a task to it. */
export function pinOfPid(raw: string): { pid: number; start_time: string } {
  if (!/^\d{1,7}$/.test(raw) || Number(raw) <= 0) throw new WritError('ERR_TASK_INVALID', `--pid must be a process id; got "${raw.slice(0, 32)}".`);
  const pid = Number(raw);
  const start = readStartTime(pid);
  if (start === undefined) throw new WritError('ERR_TASK_PROCESS', `Process ${pid} does not exist on this host; a task is pinned to a running process.`);
  return { pid, start_time: start };
}

const when = (s: number | null) => (s === null ? '-' : new Date(s * 1000).toISOString());

export function printTask(t: TaskJson): string {
  const d = t.delegation;
  const lines = [
    `Task ID          : ${t.id}`,
    `SPIFFE ID        : ${t.spiffe_id}`,
    `Agent            : ${t.agent}`,
    `Status           : ${t.status}${t.end_reason ? ` (${t.end_reason})` : ''}`,
    `Deadline         : ${when(t.deadline)}`,
    `Requester        : ${d.requester.id} (${d.requester.authenticatedBy})`,
    `Approver         : ${d.approver.id} (${d.approver.authenticatedBy})`,
    `Purpose          : ${d.purpose}`,
    `Decision ID      : ${t.decision_id}`,
    `Started          : ${when(t.created_at)}`,
  ];
  if (t.ended_at !== null) lines.push(`Ended            : ${when(t.ended_at)}`);
  if (t.pid !== null) lines.push(`Process          : pid ${t.pid}, start time ${t.start_time}`);
  for (const s of t.selectors) lines.push(`Selector         : ${formatSelector(s)}`);
  return `${lines.join('\n')}\n`;
}

function startFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--agent <name>', 'the agent identity that runs the task')
    .option('--requested-by <who>', 'the human who asked for it (free text: recorded as unverified; default: you)')
    .option('--requester-token <jwt>', "the requester's OIDC ID token (verified by the server, when it is configured to)")
    .requiredOption('--ttl <duration>', "how long the task may run (at most the agent's max task TTL)")
    .requiredOption('--purpose <text>', 'what the task is for (shown to services and in the audit log)');
}

export function registerTaskCommands(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const task = program.command('task').description('tasks delegated to an agent: spiffe://<td>/agent/<name>/task/<id>');
  const out = (res: unknown, pretty: () => string) => ctx.io.out(ctx.json() ? JSON.stringify(res, null, 2) : pretty());

  ctx
    .common(
      startFlags(task.command('start').description('start a task pinned to a running process (--pid) or to selectors only its process has'))
        .option('--pid <pid>', 'the process (on this host) the task is pinned to: its pid and start time')
        .option('--selector <type:value>', 'pin to these selectors instead (repeat); added to the agent\'s own', collect, []),
    )
    .action(async (f: TaskStartFlags) => {
      if (f.pid !== undefined && f.selector?.length) throw new WritError('ERR_TASK_INVALID', 'Give either --pid or --selector, not both.');
      const pin = f.pid !== undefined ? pinOfPid(f.pid) : { selectors: (f.selector ?? []).map((s, i) => parseSelector(s, `--selector ${i + 1}`)) };
      const res = await ctx.client().post<{ task: TaskJson }>('/v1/tasks/start', { ...startBody(f), ...pin });
      out(res, () => `Started task ${res.task.id}\n${printTask(res.task)}`);
    });

  ctx
    .common(
      startFlags(task.command('run').description('start a command as a task: pinned to its process, ended when it exits (its exit code is passed through)'))
        .option('--user <name|uid>', 'run the command as this user (needs root)')
        .option('--wait <duration>', 'how long to hold the command until its task SVID is signed (0: do not wait)', '15s')
        .argument('<command...>', 'the command and its arguments, after --'),
    )
    .action(async (command: string[], f: TaskStartFlags & { user?: string; wait: string }) => {
      setExit(await runTask(ctx, command, f));
    });

  ctx.common(task.command('list').description('list active tasks (--all: ended ones too)').option('--agent <name>', 'only this agent\'s').option('--all', 'include ended tasks')).action(
    async (f: { agent?: string; all?: boolean }) => {
      const res = await ctx.client().post<{ tasks: TaskJson[] }>('/v1/tasks/list', { ...(f.agent ? { agent: f.agent } : {}), ...(f.all ? { all: true } : {}) });
      const n = res.tasks.length;
      out(res, () => `Found ${n} ${f.all ? '' : 'active '}${n === 1 ? 'task' : 'tasks'}\n${res.tasks.map(printTask).join('\n')}`);
    },
  );

  ctx.common(task.command('show').description('show a task and its delegation record').argument('<id>')).action(async (id: string) => {
    const res = await ctx.client().post<{ task: TaskJson; x509_svids_issued: number }>('/v1/tasks/show', { id });
    out(res, () => `${printTask(res.task)}X509-SVIDs signed: ${res.x509_svids_issued}\n`);
  });

  ctx.common(task.command('end').description('end a task: its entry is deleted and its SVIDs revoked').argument('<id>').option('--reason <text>', 'why (recorded)')).action(
    async (id: string, f: { reason?: string }) => {
      const res = await ctx.client().post<{ task: TaskJson; revoked_serials: string[] }>('/v1/tasks/end', { id, ...(f.reason ? { reason: f.reason } : {}) });
      out(res, () => `Ended task ${id}: ${res.revoked_serials.length} SVID serial(s) revoked.\n`);
    },
  );
}
