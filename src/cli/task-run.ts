/**
 * `writ task run ... -- cmd args`: the command runs as a task, pinned to its own process.
 *
 * The command is started behind a gate, `sh -c 'read <&3 && exec "$@"'`: the shell blocks on a
 * pipe, so its pid and start time (/proc/<pid>/stat, which `exec` keeps) can be read and the task
 * started before the command runs a single instruction. Once the server has signed the task's
 * first X509-SVID (or --wait passes) the gate opens and the shell execs the command in place. If
 * the task cannot start, the gate is closed and the command never runs (the shell exits 125).
 * The task ends when the command exits (its exit code is passed through; a signal gives 128+n),
 * and at once on SIGINT, SIGTERM or SIGHUP (the last two are forwarded to the command; Ctrl-C
 * reaches it through the terminal).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import { parseDurationSeconds } from '../duration.js';
import { WritError, isWritError } from '../errors.js';
import { readStartTime } from '../platform/index.js';
import type { TaskJson } from '../server/tasks/index.js';
import type { CliContext } from './context.js';

export interface TaskStartFlags {
  agent: string;
  requestedBy?: string;
  requesterToken?: string;
  ttl: string;
  purpose: string;
  pid?: string;
  selector?: string[];
}

/** The admin API body of a task start, without the pin. */
export function startBody(f: TaskStartFlags): Record<string, unknown> {
  return {
    agent: f.agent,
    ttl: f.ttl,
    purpose: f.purpose,
    ...(f.requestedBy !== undefined ? { requested_by: f.requestedBy } : {}),
    ...(f.requesterToken !== undefined ? { requester_token: f.requesterToken } : {}),
  };
}

const GATE = 'read -r _ <&3 || exit 125; exec 3<&-; exec "$@"';
const POLL_MS = 100;
/** After the SVID is signed, the agent still has to store it: a moment before the command starts. */
const SETTLE_MS = 250;

/** uid and primary gid of a user given by name or number (/etc/passwd). */
export function resolveUser(raw: string, passwd = '/etc/passwd'): { uid: number; gid: number } {
  let rows: string[][] = [];
  try {
    rows = readFileSync(passwd, 'utf8').split('\n').map((l) => l.split(':'));
  } catch {
    // no passwd file: numbers only
  }
  const row = rows.find((r) => r[0] === raw) ?? (/^\d+$/.test(raw) ? rows.find((r) => r[2] === raw) : undefined);
  if (row && row[2] !== undefined && row[3] !== undefined) return { uid: Number(row[2]), gid: Number(row[3]) };
  if (/^\d+$/.test(raw)) return { uid: Number(raw), gid: Number(raw) };
  throw new WritError('ERR_TASK_INVALID', `--user: no user is named "${raw.slice(0, 64)}" on this host.`);
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runTask(ctx: CliContext, command: string[], f: TaskStartFlags & { user?: string; wait: string }): Promise<number> {
  if (command.length === 0) throw new WritError('ERR_TASK_INVALID', 'task run needs a command after --.');
  const waitMs = parseDurationSeconds(f.wait, '--wait') * 1000;
  const who = f.user === undefined ? undefined : resolveUser(f.user);
  const me = process.getuid?.() ?? 0;
  if (who && who.uid !== me && me !== 0) throw new WritError('ERR_TASK_INVALID', '--user needs root (or your own user).');
  const client = ctx.client();
  const child: ChildProcess = spawn('/bin/sh', ['-c', GATE, 'writ-task', ...command], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], ...(who ? { uid: who.uid, gid: who.gid } : {}) });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal))));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new WritError('ERR_TASK_PROCESS', `The command could not be started (${(e as NodeJS.ErrnoException).code ?? e.message}).`)));
  });
  const gate = child.stdio[3] as Writable;
  gate.on('error', () => undefined); // the shell may be gone already
  const pid = child.pid!;
  const startTime = readStartTime(pid);
  let task: TaskJson;
  try {
    if (startTime === undefined) throw new WritError('ERR_TASK_PROCESS', 'The command exited before its task could start.');
    task = (await client.post<{ task: TaskJson }>('/v1/tasks/start', { ...startBody(f), pid, start_time: startTime })).task;
  } catch (e) {
    gate.end(); // EOF: the shell exits 125 and the command never runs
    await exited;
    throw e;
  }
  const say = (line: string, json: Record<string, unknown>) => ctx.io.err(ctx.json() ? JSON.stringify(json) : line);
  say(`writ: task ${task.id} started for ${task.agent} (${task.spiffe_id}), pid ${pid}, until ${new Date(task.deadline * 1000).toISOString()}`, { event: 'task.start', task });

  let ending: Promise<void> | undefined;
  const end = (reason: string) =>
    (ending ??= client
      .post('/v1/tasks/end', { id: task.id, reason })
      .then(() => say(`writ: task ${task.id} ended (${reason})`, { event: 'task.end', id: task.id, reason }))
      .catch((e: unknown) => {
        if (isWritError(e) && e.code === 'ERR_TASK_ENDED') return;
        const why = isWritError(e) ? `${e.code}: ${e.message}` : String(e);
        ctx.io.err(`writ: could not end task ${task.id} (${why}); it ends at its deadline.`);
      }));
  let running = true;
  void exited.then(() => (running = false));
  const onSignal = (sig: NodeJS.Signals) => {
    void end(`${sig} received`);
    if (sig !== 'SIGINT' && running) child.kill(sig);
    gate.end();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  try {
    // Hold the command until its identity is there.
    const until = Date.now() + waitMs;
    let signed = waitMs === 0;
    while (!signed && running && ending === undefined && Date.now() < until) {
      const shown = await client.post<{ x509_svids_issued: number }>('/v1/tasks/show', { id: task.id }).catch(() => ({ x509_svids_issued: 0 }));
      if (shown.x509_svids_issued > 0) signed = true;
      else await sleep(POLL_MS);
    }
    if (signed && waitMs > 0) await sleep(SETTLE_MS);
    if (!signed && ending === undefined) {
      ctx.io.err(`writ: no SVID was signed for task ${task.id} within ${f.wait}; starting the command anyway (is an agent serving ${task.parent_id}, and does the process match ${task.selectors.map((s) => `${s.type}:${s.value}`).join(' ')}?)`);
    }
    if (ending === undefined) gate.end('\n');
    const code = await exited;
    await end(code > 128 ? `process killed (exit ${code})` : `process exited with code ${code}`);
    return code;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}
