/**
 * Opening the task engine for a server: the task policy from `task_policy_files` (validated now:
 * a bad file stops the start, naming the file, line and reason), the audit log at
 * `<data_dir>/audit.log` (one writer: a second server on the same data dir is refused), the
 * verifier of requester OIDC ID tokens (`task_requester_oidc`), and the sync-hint state.
 */
import { join } from 'node:path';
import { AuditLog } from '../../audit/index.js';
import type { Clock } from '../../clock.js';
import type { DataStore } from '../../datastore/index.js';
import type { Logger } from '../../log.js';
import type { ServerConfig } from '../config.js';
import { OidcRequesterVerifier } from '../oidc-requester.js';
import { loadTaskPolicy } from './hooks.js';
import { TaskService } from './service.js';

export const AUDIT_FILE = 'audit.log';

export async function openTaskService(config: ServerConfig, datastore: DataStore, clock: Clock, logger: Logger): Promise<TaskService> {
  const log = logger.child({ component: 'tasks' });
  const policy = await loadTaskPolicy(config.taskPolicyFiles, clock);
  // Read now (ca_file), so a bad file stops the start; keys are fetched at the first token.
  const requesterVerifier = config.taskRequesterOidc ? new OidcRequesterVerifier(config.taskRequesterOidc, clock) : undefined;
  const auditPath = join(config.dataDir, AUDIT_FILE);
  const audit = await AuditLog.open(auditPath, { clock, onWarning: (message, details) => log.warn({ event: 'audit.recovered', ...details }, message) });
  try {
    const service = await TaskService.open({
      datastore,
      clock,
      logger: log,
      trustDomain: config.trustDomain,
      defaultParent: config.agentIdentityParent,
      policy,
      audit,
      auditPath,
      ...(requesterVerifier ? { requesterVerifier } : {}),
      x509Delegation: config.taskDelegationX509,
      onClose: () => audit.close(),
    });
    log.info({ event: 'tasks.ready', task_policy_files: policy.files, audit_log: auditPath }, policy.files.length ? 'task policy loaded' : 'no task policy: tasks are allowed and recorded as "no policy"');
    return service;
  } catch (e) {
    await audit.close();
    throw e;
  }
}
