/**
 * The task process of test/e2e/task-service.test.ts and what it prints: a Node script (run as
 * the task's user on the compiled library in dist/) that calls a service over mTLS with its task
 * SVID, and a collector of a child's JSON lines.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { until } from './wait.js';
import { ROOT } from './writ-process.js';

/**
 * The task's process (runs as uid 65534 on the compiled library). It waits for its task SVID,
 * calls `summarize` and `delete` once, then, after a line on stdin, calls `summarize` every ~50 ms
 * with two clients, each request on a new connection (a full handshake): `live` on its X509Source
 * (which drops the task SVID when the task ends) and `kept` presenting the task SVID it had at the
 * start (a process that holds on to its credential). It stops once both were refused 5 times in a
 * row (or after 20 s). Every result is a JSON line on stdout.
 */
export const TASK_SERVICE_WORKER = `
import { createInterface } from 'node:readline';
import { MtlsClient, X509Source, authorizeId } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'index.js'))};
const [address, url, serviceId] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Never outlive the test, whatever happens to the CLI that started it.
setTimeout(() => { out({ event: 'error', error: 'worker ran 60 s' }); process.exit(3); }, 60000).unref();
const isTask = (s) => s.id.toString().includes('/task/');
const source = await X509Source.open({ address: 'unix://' + address, timeoutMs: 15000, picker: (l) => l.find(isTask) ?? l[0] });
for (const end = Date.now() + 10000; !source.getX509Svids().some(isTask); await sleep(50)) {
  if (Date.now() > end) { out({ event: 'error', error: 'no task SVID within 10 s' }); process.exit(2); }
}
const task = source.getX509Svid();
const kept = { getX509Svid: () => task, bundles: () => source.bundles(), getCrls: () => source.getCrls(), on: (e, f) => source.on(e, f), off: (e, f) => source.off(e, f) };
const clients = { live: new MtlsClient(source, authorizeId(serviceId), { keepAlive: false }), kept: new MtlsClient(kept, authorizeId(serviceId), { keepAlive: false }) };
async function call(name, action) {
  const t0 = Date.now();
  try {
    const r = await clients[name].request(url + '/tickets/T-4411/' + action, { method: 'POST', timeoutMs: 5000 });
    let body; try { body = r.json(); } catch { body = r.text(); }
    return { client: name, action, t0, t: Date.now(), status: r.status, body };
  } catch (e) {
    return { client: name, action, t0, t: Date.now(), error: e.code ?? String(e) };
  }
}
out({ event: 'ready', id: task.id.toString(), pid: process.pid });
out({ event: 'call', ...(await call('live', 'summarize')) });
out({ event: 'call', ...(await call('live', 'delete')) });
const rl = createInterface({ input: process.stdin });
const go = await new Promise((r) => { rl.once('line', () => r(true)); rl.once('close', () => r(false)); });
if (!go) process.exit(4);
rl.close();
const inRow = { live: 0, kept: 0 };
for (const stop = Date.now() + 20000; Date.now() < stop && (inRow.live < 5 || inRow.kept < 5); ) {
  const next = Date.now() + 50;
  for (const r of await Promise.all([call('live', 'summarize'), call('kept', 'summarize')])) {
    inRow[r.client] = r.status === 200 ? 0 : inRow[r.client] + 1;
    out({ event: 'tick', ...r });
  }
  await sleep(Math.max(0, next - Date.now()));
}
out({ event: 'done' });
for (const c of Object.values(clients)) c.close();
source.close();
process.exit(0);
`;

/** What the service answers (and the test service records). */
export interface Answer {
  decision: 'allow' | 'deny';
  policyIds: string[];
  principal: string;
  taskId?: string;
  decisionId?: string;
  serial: string;
}

/** One line the worker prints. */
export interface Line {
  event: string;
  id?: string;
  pid?: number;
  client?: 'live' | 'kept';
  action?: string;
  t0?: number;
  t?: number;
  status?: number;
  body?: Answer;
  error?: string;
}

/** A child whose stdout JSON lines are collected as they come. */
export class JsonLines<T = Line> {
  readonly lines: T[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  constructor(readonly proc: ChildProcess) {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as T);
        } catch {
          // not a JSON line
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => proc.once('exit', (c, s) => r(c ?? (s ? -1 : null))));
  }
  waitFor(what: string, pred: (l: T) => boolean, timeoutMs = 20_000): Promise<T> {
    return until(`${what} (stderr so far: ${this.stderr.slice(-500)})`, async () => this.lines.find(pred), timeoutMs, 25);
  }
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}
