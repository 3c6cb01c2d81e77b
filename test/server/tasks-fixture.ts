/**
 * Shared setup for the task engine tests: a real SQLite store and an Authority on a ManualClock
 * (test/ca/helpers.ts), a real audit log in the same temporary directory, the TaskService, and a
 * ServerContext good enough for the node API's signing functions.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { AuditLog, readAudit, type AuditRecord } from '../../src/audit/index.js';
import { buildCsrDer, newWorkloadKey } from '../../src/ca/index.js';
import { silentLogger } from '../../src/log.js';
import { validateServerConfig } from '../../src/server/config.js';
import type { ServerContext } from '../../src/server/context.js';
import { createServerMetrics } from '../../src/server/metrics.js';
import type { AgentScope } from '../../src/server/nodeapi/index.js';
import { type Operator, type RequesterVerifier, TaskService, loadTaskPolicy } from '../../src/server/tasks/index.js';
import { caFixture, type CaFixture, TD } from '../ca/helpers.js';

export { TD };
export const PARENT = `spiffe://${TD}/host/dev`;
export const ROOT_OP: Operator = { id: 'root', authenticatedBy: 'os-user', gids: [0] };

export interface TaskFixture extends CaFixture {
  service: TaskService;
  audit: AuditLog;
  auditPath: string;
  ctx: ServerContext;
  scope: AgentScope;
  /** Every audit record so far (read back from the file). */
  records(): Promise<AuditRecord[]>;
  csr(): Buffer;
  done(): Promise<void>;
}

/** `policy`: Cedar text for task_policy_files (written to a file first). */
export async function taskFixture(opts: { policy?: string; requesterVerifier?: RequesterVerifier; clockStart?: number; x509Delegation?: boolean } = {}): Promise<TaskFixture> {
  const ca = await caFixture(opts.clockStart !== undefined ? { start: opts.clockStart } : {});
  const auditPath = join(ca.dir, 'audit.log');
  const audit = await AuditLog.open(auditPath, { clock: ca.clock });
  let files: string[] = [];
  if (opts.policy !== undefined) {
    const f = join(ca.dir, 'tasks.cedar');
    writeFileSync(f, opts.policy);
    files = [f];
  }
  const service = await TaskService.open({
    datastore: ca.store,
    clock: ca.clock,
    logger: silentLogger,
    trustDomain: TD,
    defaultParent: PARENT,
    policy: await loadTaskPolicy(files, ca.clock),
    audit,
    auditPath,
    ...(opts.requesterVerifier ? { requesterVerifier: opts.requesterVerifier } : {}),
    ...(opts.x509Delegation !== undefined ? { x509Delegation: opts.x509Delegation } : {}),
  });
  const config = validateServerConfig({ trust_domain: TD, data_dir: join(ca.dir, 'data'), health: { enabled: false }, ca: { key_manager: 'memory' } });
  const ctx: ServerContext = {
    config,
    datastore: ca.store,
    authority: ca.authority,
    clock: ca.clock,
    logger: silentLogger,
    metrics: createServerMetrics(() => ca.store.countEntries()),
    ownBundle: async () => {
      throw new Error('not used');
    },
    bundlePem: () => '',
    crls: async () => (await ca.authority.crls(await ca.store.listRevoked())).map((c) => c.der),
    health: async () => ({ live: true, ready: true, checks: {} }),
    tasks: service,
  };
  const records = async () => {
    const out: AuditRecord[] = [];
    for await (const r of readAudit(auditPath)) out.push(r);
    return out;
  };
  return {
    ...ca,
    service,
    audit,
    auditPath,
    ctx,
    scope: { agentId: `spiffe://${TD}/writ/agent/join_token/test`, parents: new Set([PARENT]), aliasKey: '' },
    records,
    csr: () => {
      const k = newWorkloadKey();
      return buildCsrDer(k.spki, k.privateKey);
    },
    done: async () => {
      await audit.close();
      await ca.cleanup();
    },
  };
}
