/**
 * Task figures: tasks started and ended per second against a real server (an in-process
 * WritServer on a temporary directory, SQLite datastore, its audit log fsynced on every record),
 * through the admin API over its Unix socket with AdminClient: the code path of `writ task start`
 * and `writ task end` (peer credentials, JSON, the TaskService, the datastore, the audit log).
 * Each start checks the agent, TTL and delegator, creates the task's entry and record and appends
 * a task.start record; each end deletes the entry, revokes its serials and appends task.end.
 * Measured one call at a time (as the CLI does) and with 16 calls in flight (group commit of the
 * audit log), and once through the TaskService directly, to show what the admin socket adds.
 * Audit appends per second on their own are in bench-audit.ts.
 */
import { join } from 'node:path';
import { AdminClient } from '../src/admin/index.js';
import { readStartTime } from '../src/platform/index.js';
import type { WritServer } from '../src/server/server.js';
import { startServer, tempDir } from './bench-agent-harness.js';

export interface TasksBench {
  /** One at a time over the admin socket. */
  startsPerSec: number;
  endsPerSec: number;
  /** Start + end pairs per second with 16 pairs in flight over the admin socket. */
  concurrentPairsPerSec: number;
  /** Start + end pairs per second one at a time through the TaskService (no socket, no HTTP). */
  directPairsPerSec: number;
  tasks: number;
}

const AGENT = 'bench-agent';
const IN_FLIGHT = 16;

export async function benchTasks(opts: { seconds: number }): Promise<TasksBench> {
  const tmp = tempDir('writ-bench-tasks-');
  let server: WritServer | undefined;
  try {
    server = await startServer(tmp.dir, false);
    const service = server.ctx.tasks;
    if (!service) throw new Error('the bench server runs without agent identities and tasks');
    const client = new AdminClient(join(tmp.dir, 'admin.sock'));
    const uid = process.getuid?.() ?? 0;
    await client.post('/v1/agent-identities/create', { name: AGENT, selectors: [{ type: 'unix', value: `uid:${uid}` }], owner: 'bench', max_task_ttl: '1h', delegators: ['any'] });
    // Every task is pinned to this process (a task id is new each time, so pins may repeat).
    const startTime = readStartTime(process.pid);
    if (startTime === undefined) throw new Error('cannot read /proc/self/stat');
    const startBody = { agent: AGENT, requested_by: 'alice@bench.example', ttl: '10m', purpose: 'benchmark', pid: process.pid, start_time: startTime };
    const start = async () => (await client.post<{ task: { id: string } }>('/v1/tasks/start', startBody)).task.id;
    const end = (id: string) => client.post('/v1/tasks/end', { id, reason: 'benchmark' });
    let tasks = 0;

    for (let i = 0; i < 20; i++) await end(await start()); // warm up
    tasks += 20;

    let startMs = 0;
    let endMs = 0;
    let n = 0;
    const stopAt = performance.now() + opts.seconds * 1000;
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      const id = await start();
      const t1 = performance.now();
      await end(id);
      startMs += t1 - t0;
      endMs += performance.now() - t1;
      n++;
    }
    tasks += n;

    let pairs = 0;
    const t0 = performance.now();
    const until = t0 + opts.seconds * 1000;
    const worker = async (): Promise<void> => {
      while (performance.now() < until) {
        await end(await start());
        pairs++;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const concurrentPairsPerSec = pairs / ((performance.now() - t0) / 1000);
    tasks += pairs;

    const approver = { id: 'bench', authenticatedBy: 'os-user' as const };
    let direct = 0;
    const d0 = performance.now();
    const dEnd = d0 + opts.seconds * 1000;
    while (performance.now() < dEnd) {
      const { task } = await service.tasks.start(startBody, approver);
      await service.tasks.end(task.id, 'benchmark', approver);
      direct++;
    }
    const directPairsPerSec = direct / ((performance.now() - d0) / 1000);
    tasks += direct;

    const left = await client.post<{ tasks: unknown[] }>('/v1/tasks/list', { agent: AGENT });
    if (left.tasks.length !== 0) throw new Error(`${left.tasks.length} bench tasks are still active`);
    return { startsPerSec: n / (startMs / 1000), endsPerSec: n / (endMs / 1000), concurrentPairsPerSec, directPairsPerSec, tasks };
  } finally {
    await server?.stop();
    tmp.remove();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchTasks({ seconds: Number(process.env.BENCH_SECONDS ?? '3') });
  console.log(`task starts/s, admin API, one at a time        ${r.startsPerSec.toFixed(0)}`);
  console.log(`task ends/s, admin API, one at a time          ${r.endsPerSec.toFixed(0)}`);
  console.log(`start+end pairs/s, admin API, ${IN_FLIGHT} in flight     ${r.concurrentPairsPerSec.toFixed(0)}`);
  console.log(`start+end pairs/s, TaskService directly        ${r.directPairsPerSec.toFixed(0)}`);
  console.log(`(${r.tasks} tasks started and ended)`);
}
