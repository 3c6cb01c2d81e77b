/**
 * The unix workload attestor: selectors from the kernel's view of a process. Reads
 * /proc/<pid>/status for the uid, gid and supplementary groups, resolves names from /etc/passwd
 * and /etc/group, and (with discover_workload_path) the real path of /proc/<pid>/exe and, up to
 * workload_size_limit bytes, the SHA-256 of the executable (read through /proc/<pid>/exe, so it
 * works across mount namespaces and hashes what actually runs).
 *
 * Which ids: /proc/<pid>/status lists real, effective, saved and filesystem ids; like SPIRE (its
 * unix attestor takes index 1 of gopsutil's Uids()/Gids()), we use the EFFECTIVE uid and gid, the
 * ids the kernel checks for the process's permissions. A setuid program is attested as the user it
 * runs as, not as the user who started it.
 *
 * With pid_selectors (the default) it also gives `unix:pid:<pid>` and `unix:start_time:<ticks>`
 * (field 22 of /proc/<pid>/stat): together they name one process for the life of the system,
 * which is how a task entry is pinned to the process `writ task run` started.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { z } from 'zod';
import type { Selector } from '../../datastore/index.js';
import type { Logger } from '../../log.js';
import { lookupGroupName, lookupUserName, namesStamp } from '../../platform/users.js';
import { readProcFdLines } from '../../platform/procfd.js';
import { parseStartTime } from '../../platform/procstat.js';
import { type PluginDeps, WORKLOAD_ATTESTOR, declarePlugin, keepValidSelectors } from '../contract.js';
import { type ProcessFacts, type WorkloadAttestor, checkPid, isGone, procFileError, readProcFile, workloadError } from './types.js';

export const UNIX = 'unix';

export interface ProcStatus {
  /** Real, effective, saved, filesystem. */
  uids: number[];
  gids: number[];
  /** Supplementary groups (the Groups: line), possibly empty. */
  groups: number[];
}

function ids(line: string | undefined): number[] | undefined {
  if (line === undefined) return undefined;
  const fields = line.trim().split(/\s+/).filter((f) => f.length > 0);
  if (!fields.every((f) => /^\d{1,10}$/.test(f))) return undefined;
  return fields.map(Number);
}

/** The rest of the line that starts with `name:` (after the colon), or undefined. */
function field(text: string, name: string): string | undefined {
  const key = `${name}:`;
  let at = 0;
  if (!text.startsWith(key)) {
    const nl = text.indexOf(`\n${key}`);
    if (nl < 0) return undefined;
    at = nl + 1;
  }
  const end = text.indexOf('\n', at);
  return text.slice(at + key.length, end < 0 ? text.length : end);
}

/** Parses the Uid:, Gid: and Groups: lines of /proc/<pid>/status; undefined if Uid or Gid is missing or malformed. */
export function parseProcStatus(text: string): ProcStatus | undefined {
  // Three lines are needed out of about sixty: find them rather than split the whole file.
  const uids = ids(field(text, 'Uid'));
  const gids = ids(field(text, 'Gid'));
  const groups = ids(field(text, 'Groups') ?? '');
  if (!uids || !gids || uids.length === 0 || gids.length === 0) return undefined;
  return { uids, gids, groups: groups ?? [] };
}

/** The id SPIRE's unix attestor uses: the effective one when the line has more than one. */
export function effectiveId(list: readonly number[]): number {
  return (list.length > 1 ? list[1] : list[0]) ?? 0;
}

/** SHA-256 hex of `file`, or undefined when it is bigger than `limit` bytes (read at most limit + 1 bytes). */
export async function hashFile(file: string, limit: number): Promise<string | undefined> {
  if ((await stat(file)).size > limit) return undefined;
  const hash = createHash('sha256');
  let n = 0;
  const stream = createReadStream(file, { end: limit });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > limit) return undefined; // grew since stat
      hash.update(chunk);
    }
  } finally {
    stream.destroy();
  }
  return hash.digest('hex');
}

const config = z
  .object({
    discover_workload_path: z.boolean().default(false),
    /** Bytes; 0 (the default) or negative: never hash. Unlike SPIRE, where 0 means "no limit". */
    workload_size_limit: z.number().int().default(0),
    /** Where procfs is mounted (SPIRE's HOST_PROC), for agents in a container with the host's /proc. */
    proc_path: z.string().min(1).default('/proc'),
    /** unix:pid and unix:start_time selectors (what task entries are pinned to). */
    pid_selectors: z.boolean().default(true),
  })
  .strict();
export type UnixConfig = z.infer<typeof config>;

const ID_LINES = ['Uid', 'Gid', 'Groups'] as const;

/**
 * The Uid:, Gid: and Groups: lines of a status text, whole and joined by newlines (a missing one
 * left out): all the id selectors depend on, in the form readProcFdLines gives them.
 */
export function statusIdLines(text: string): string {
  const out: string[] = [];
  for (const name of ID_LINES) {
    const rest = field(text, name);
    if (rest !== undefined) out.push(`${name}:${rest}`);
  }
  return out.join('\n');
}

const MAX_CACHED_IDS = 1024;

class UnixAttestor implements WorkloadAttestor {
  readonly name = UNIX;
  /**
   * The uid/gid/group selectors by (id lines of the status text, passwd/group stamp): every call
   * still reads the process's current status, but the same ids with the same name tables give
   * the same selectors, so they are built and validated once.
   */
  readonly #idSelectors = new Map<string, readonly Selector[]>();

  constructor(
    private readonly cfg: UnixConfig,
    private readonly logger: Logger,
  ) {}

  async attest(pid: number, facts: ProcessFacts = {}): Promise<Selector[]> {
    checkPid(UNIX, pid);
    // The descriptor held since the process connected is of /proc, so only when proc_path is /proc;
    // through it only the three id lines are decoded (the file is about 1.4 KB, read on every call).
    const held = this.cfg.proc_path === '/proc' ? facts.statusFd : undefined;
    let lines: string;
    if (held !== undefined && held >= 0) {
      try {
        lines = readProcFdLines(held, ID_LINES);
      } catch (e) {
        throw procFileError(UNIX, pid, 'status', e);
      }
    } else lines = statusIdLines(await readProcFile(UNIX, this.cfg.proc_path, pid, 'status'));
    const key = `${lines}\n${namesStamp()}`;
    let ids = this.#idSelectors.get(key);
    if (!ids) {
      ids = this.#buildIdSelectors(lines, pid);
      if (this.#idSelectors.size >= MAX_CACHED_IDS) this.#idSelectors.clear();
      this.#idSelectors.set(key, ids);
    }
    const out = [...ids];
    // Digits only: always valid selector values.
    if (this.cfg.pid_selectors) out.push({ type: UNIX, value: `pid:${pid}` }, { type: UNIX, value: `start_time:${facts.startTime ?? (await this.startTime(pid))}` });
    if (this.cfg.discover_workload_path) {
      out.push(
        ...keepValidSelectors(
          (await this.pathSelectors(pid)).map((value) => ({ type: UNIX, value })),
          this.logger,
        ),
      );
    }
    return out;
  }

  #buildIdSelectors(text: string, pid: number): readonly Selector[] {
    const status = parseProcStatus(text);
    if (!status) throw workloadError(UNIX, pid, `The unix attestor can not parse /proc/${pid}/status.`);
    const uid = effectiveId(status.uids);
    const gid = effectiveId(status.gids);
    const values: string[] = [`uid:${uid}`];
    const user = lookupUserName(uid);
    if (user !== undefined) values.push(`user:${user}`);
    values.push(`gid:${gid}`);
    const group = lookupGroupName(gid);
    if (group !== undefined) values.push(`group:${group}`);
    const groups = [...new Set(status.groups)];
    for (const g of groups) values.push(`supplementary_gid:${g}`);
    for (const g of groups) {
      const n = lookupGroupName(g);
      if (n !== undefined) values.push(`supplementary_group:${n}`);
    }
    return Object.freeze(
      keepValidSelectors(
        values.map((value) => Object.freeze({ type: UNIX, value })),
        this.logger,
      ),
    );
  }

  private async startTime(pid: number): Promise<string> {
    const stat = await readProcFile(UNIX, this.cfg.proc_path, pid, 'stat');
    try {
      return parseStartTime(stat);
    } catch (e) {
      throw workloadError(UNIX, pid, `The unix attestor can not parse /proc/${pid}/stat.`, e);
    }
  }

  private async pathSelectors(pid: number): Promise<string[]> {
    const exe = `${this.cfg.proc_path}/${pid}/exe`;
    let path: string;
    try {
      path = await realpath(exe);
    } catch (e) {
      if (isGone(e)) throw workloadError(UNIX, pid, `Process ${pid} has no executable to inspect (it may have exited).`, e);
      throw workloadError(UNIX, pid, `The unix attestor can not resolve /proc/${pid}/exe (the agent may lack permission).`, e);
    }
    const out = [`path:${path}`];
    const limit = this.cfg.workload_size_limit;
    if (limit <= 0) return out;
    let digest: string | undefined;
    try {
      digest = await hashFile(exe, limit);
    } catch (e) {
      throw workloadError(UNIX, pid, `The unix attestor can not read the executable of process ${pid}.`, e);
    }
    if (digest === undefined) this.logger.warn({ pid, path, workload_size_limit: limit }, 'executable is larger than workload_size_limit; no sha256 selector');
    else out.push(`sha256:${digest}`);
    return out;
  }
}

export const unixPlugin = declarePlugin({
  type: WORKLOAD_ATTESTOR,
  name: UNIX,
  description: 'Selectors from the uid, gid, groups and (optionally) executable path and hash of the calling process.',
  configSchema: config,
  async create(cfg: UnixConfig, deps: PluginDeps): Promise<WorkloadAttestor> {
    return new UnixAttestor(cfg, deps.logger);
  },
});
