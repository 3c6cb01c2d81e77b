/** Agents and tasks on the server: registered AI-agent identities, delegated tasks, ending them. */
export { AgentIdentities, type AgentIdentityInput } from './agents.js';
export { type Operator, type TaskDeps, agentSpiffeId, looksLikeTaskId, pinSelectors, taskSpiffeIdOf } from './deps.js';
export {
  AGENT_IDENTITY_TYPE,
  NO_AUDIT,
  NO_POLICY,
  NO_REQUESTER_VERIFIER,
  TASK_START_ACTION,
  loadTaskPolicy,
  type RequesterVerifier,
  type TaskAuditRecord,
  type TaskAuditSink,
  type TaskPolicy,
  type TaskPolicyDecision,
  type TaskPolicyRequest,
} from './hooks.js';
export { HINT_AFTER_END_MS, TASK_SYNC_HINT_MS, TaskIssuance, type TaskSigning } from './issuance.js';
export { type AgentIdentityJson, type TaskJson, agentIdentityJson, taskJson } from './json.js';
export { AGENT_NAME, TASK_ID, checkDelegators, delegatorAllowed, newTaskId } from './names.js';
export { revokeEntry, revokeIssued, type Revocation } from './revoke.js';
export { TaskService, type TaskServiceDeps } from './service.js';
export { Tasks, type EndedTask, type TaskChange, type TaskStartInput } from './tasks.js';
export { AUDIT_FILE, openTaskService } from './open.js';
