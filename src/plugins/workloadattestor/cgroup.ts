/**
 * The cgroup workload attestor: selectors from /proc/<pid>/cgroup, which names the control group
 * of a process in each hierarchy (systemd units, container runtimes and Kubernetes all place
 * workloads in cgroups named after them). Each line is "hierarchy-id:controllers:path":
 * a cgroup v2 line ("0::/system.slice/app.service") gives `cgroup:path:<path>`; a cgroup v1 line
 * ("4:cpu,cpuacct:/docker/<id>") gives one `cgroup:<controller>:<path>` per controller
 * (`cpu:/docker/<id>`, `cpuacct:/docker/<id>`; named hierarchies keep their "name=" prefix).
 */
import { z } from 'zod';
import type { Selector } from '../../datastore/index.js';
import type { Logger } from '../../log.js';
import { type PluginDeps, WORKLOAD_ATTESTOR, declarePlugin, keepValidSelectors } from '../contract.js';
import { type WorkloadAttestor, checkPid, readProcFile, workloadError } from './types.js';

export const CGROUP = 'cgroup';

export interface CgroupLine {
  hierarchy: number;
  /** Empty for the cgroup v2 unified hierarchy. */
  controllers: string[];
  path: string;
}

/** Parses /proc/<pid>/cgroup; undefined if any non-empty line is malformed. */
export function parseCgroupFile(text: string): CgroupLine[] | undefined {
  const out: CgroupLine[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (a < 0 || b < 0) return undefined;
    const id = line.slice(0, a);
    const path = line.slice(b + 1);
    if (!/^\d{1,10}$/.test(id) || !path.startsWith('/')) return undefined;
    const controllers = line.slice(a + 1, b) === '' ? [] : line.slice(a + 1, b).split(',');
    if (controllers.some((c) => c.length === 0)) return undefined;
    out.push({ hierarchy: Number(id), controllers, path });
  }
  return out;
}

/** Selector values of parsed cgroup lines: `path:<p>` for v2, `<controller>:<p>` for v1. */
export function cgroupSelectorValues(lines: readonly CgroupLine[]): string[] {
  const values: string[] = [];
  for (const l of lines) {
    if (l.hierarchy === 0 && l.controllers.length === 0) values.push(`path:${l.path}`);
    else for (const c of l.controllers) values.push(`${c}:${l.path}`);
  }
  return values;
}

const config = z
  .object({
    /** Where procfs is mounted (SPIRE's HOST_PROC). */
    proc_path: z.string().min(1).default('/proc'),
  })
  .strict();
export type CgroupConfig = z.infer<typeof config>;

class CgroupAttestor implements WorkloadAttestor {
  readonly name = CGROUP;

  constructor(
    private readonly cfg: CgroupConfig,
    private readonly logger: Logger,
  ) {}

  async attest(pid: number): Promise<Selector[]> {
    checkPid(CGROUP, pid);
    const lines = parseCgroupFile(await readProcFile(CGROUP, this.cfg.proc_path, pid, 'cgroup'));
    if (!lines) throw workloadError(CGROUP, pid, `The cgroup attestor can not parse /proc/${pid}/cgroup.`);
    return keepValidSelectors(
      cgroupSelectorValues(lines).map((value) => ({ type: CGROUP, value })),
      this.logger,
    );
  }
}

export const cgroupPlugin = declarePlugin({
  type: WORKLOAD_ATTESTOR,
  name: CGROUP,
  description: 'Selectors from the control groups of the calling process (cgroup v2 path, cgroup v1 controller paths).',
  configSchema: config,
  async create(cfg: CgroupConfig, deps: PluginDeps): Promise<WorkloadAttestor> {
    return new CgroupAttestor(cfg, deps.logger);
  },
});
