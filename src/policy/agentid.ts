/**
 * The agent and task SPIFFE ID shapes (DESIGN "Identities for agents and tasks"):
 *   agent  spiffe://<td>/agent/<agent-name>
 *   task   spiffe://<td>/agent/<agent-name>/task/<task-id>
 * Any other path is a plain workload. Human identity never appears in the path.
 */
import { type SpiffeId, parseSpiffeId, spiffeIdFromSegments } from '../spiffeid/index.js';

export interface AgentIdParts {
  /** 'agent' for /agent/<name>, 'task' for /agent/<name>/task/<id>, else 'workload'. */
  kind: 'agent' | 'task' | 'workload';
  trustDomain: string;
  path: string;
  agentName?: string;
  /** The agent's own ID (spiffe://<td>/agent/<name>) for agent and task IDs. */
  agentId?: string;
  taskId?: string;
}

/** Splits a SPIFFE ID (string or parsed) into its agent/task parts; throws ERR_SPIFFEID_* if invalid. */
export function agentIdParts(id: SpiffeId | string): AgentIdParts {
  const sid = typeof id === 'string' ? parseSpiffeId(id) : id;
  const seg = sid.segments();
  const base = { trustDomain: sid.trustDomain.name, path: sid.path };
  if (seg[0] === 'agent' && (seg.length === 2 || (seg.length === 4 && seg[2] === 'task'))) {
    const agentName = seg[1]!;
    const agentId = spiffeIdFromSegments(sid.trustDomain, 'agent', agentName).toString();
    if (seg.length === 2) return { ...base, kind: 'agent', agentName, agentId };
    return { ...base, kind: 'task', agentName, agentId, taskId: seg[3]! };
  }
  return { ...base, kind: 'workload' };
}

/** The task's SPIFFE ID: spiffe://<td of agentId>/agent/<name>/task/<taskId>. */
export function taskSpiffeId(agentId: SpiffeId | string, taskId: string): SpiffeId {
  const sid = typeof agentId === 'string' ? parseSpiffeId(agentId) : agentId;
  return spiffeIdFromSegments(sid.trustDomain, ...sid.segments(), 'task', taskId);
}
