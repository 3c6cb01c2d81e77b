/**
 * `writ agent-identity create|list|show|disable|enable|delete`: AI agents registered as
 * identities (spiffe://<td>/agent/<name>). Not `writ agent`, which is the host agent process.
 * Disabling ends all the agent's tasks and revokes its SVIDs; it touches no human account.
 */
import type { Command } from 'commander';
import { formatDuration } from '../duration.js';
import { parseSelector, formatSelector } from '../registry/index.js';
import type { AgentIdentityJson } from '../server/tasks/index.js';
import { collect, type CliContext } from './context.js';

interface CreateFlags {
  selector: string[];
  owner: string;
  maxTaskTtl?: string;
  delegators: string[];
  parent?: string;
}

export function printAgentIdentity(a: AgentIdentityJson, activeTasks?: string[]): string {
  const lines = [
    `Name             : ${a.name}`,
    `SPIFFE ID        : ${a.spiffe_id}`,
    `Parent ID        : ${a.parent_id}`,
    `Owner            : ${a.owner}`,
    `Max task TTL     : ${a.max_task_ttl} (${formatDuration(a.max_task_ttl)})`,
    `Delegators       : ${a.delegators.join(', ')}`,
    `Status           : ${a.disabled ? 'disabled' : 'enabled'}`,
  ];
  if (a.entry_id) lines.push(`Entry ID         : ${a.entry_id}`);
  for (const s of a.selectors) lines.push(`Selector         : ${formatSelector(s)}`);
  if (activeTasks) lines.push(`Active tasks     : ${activeTasks.length ? activeTasks.join(', ') : 'none'}`);
  return `${lines.join('\n')}\n`;
}

export function registerAgentIdentityCommands(program: Command, ctx: CliContext): void {
  const group = program.command('agent-identity').description('AI agents registered as identities: spiffe://<td>/agent/<name>');
  const out = (res: unknown, pretty: () => string) => ctx.io.out(ctx.json() ? JSON.stringify(res, null, 2) : pretty());

  ctx
    .common(
      group
        .command('create')
        .description('register an agent: which processes may act as it, its owner, and the limits of its tasks')
        .argument('<name>', 'lower-case letters, digits, "-" and "_"; at most 64')
        .option('--selector <type:value>', 'selector of the processes that may act as the agent (repeat; all must match)', collect, [])
        .requiredOption('--owner <owner>', 'the team or person answerable for the agent')
        .option('--max-task-ttl <duration>', 'the longest task it may take (default 1h, at most 7d)')
        .option('--delegators <list>', 'who may delegate tasks to it: any, user:<id>, group:<os group> (comma-separated or repeated; default any)', collect, [])
        .option('--parent <spiffe-id>', "the agent or node alias that serves it and its tasks (default: the server's agent_identity_parent)"),
    )
    .action(async (name: string, f: CreateFlags) => {
      const body = {
        name,
        selectors: f.selector.map((s, i) => parseSelector(s, `--selector ${i + 1}`)),
        owner: f.owner,
        ...(f.maxTaskTtl !== undefined ? { max_task_ttl: f.maxTaskTtl } : {}),
        ...(f.delegators.length ? { delegators: f.delegators.flatMap((d) => d.split(',')).map((d) => d.trim()).filter((d) => d.length > 0) } : {}),
        ...(f.parent !== undefined ? { parent_id: f.parent } : {}),
      };
      const res = await ctx.client().post<{ agent_identity: AgentIdentityJson }>('/v1/agent-identities/create', body);
      out(res, () => `Created agent identity ${res.agent_identity.name}\n${printAgentIdentity(res.agent_identity)}`);
    });

  ctx.common(group.command('list').description('list agent identities')).action(async () => {
    const res = await ctx.client().post<{ agent_identities: AgentIdentityJson[] }>('/v1/agent-identities/list', {});
    const n = res.agent_identities.length;
    out(res, () => `Found ${n} agent ${n === 1 ? 'identity' : 'identities'}\n${res.agent_identities.map((a) => printAgentIdentity(a)).join('\n')}`);
  });

  ctx.common(group.command('show').description('show one agent identity and its active tasks').argument('<name>')).action(async (name: string) => {
    const res = await ctx.client().post<{ agent_identity: AgentIdentityJson; active_tasks: string[] }>('/v1/agent-identities/show', { name });
    out(res, () => printAgentIdentity(res.agent_identity, res.active_tasks));
  });

  ctx.common(group.command('disable').description('end all its tasks, remove its entry and revoke its SVIDs (no human account is touched)').argument('<name>')).action(async (name: string) => {
    const res = await ctx.client().post<{ agent_identity: AgentIdentityJson; ended_tasks: string[]; revoked_serials: string[] }>('/v1/agent-identities/disable', { name });
    out(res, () => `Disabled agent identity ${name}: ${res.ended_tasks.length} task(s) ended, ${res.revoked_serials.length} SVID serial(s) revoked.\n`);
  });

  ctx.common(group.command('enable').description('register a disabled agent again').argument('<name>')).action(async (name: string) => {
    const res = await ctx.client().post<{ agent_identity: AgentIdentityJson }>('/v1/agent-identities/enable', { name });
    out(res, () => `Enabled agent identity ${name}\n${printAgentIdentity(res.agent_identity)}`);
  });

  ctx.common(group.command('delete').description('disable and remove an agent identity (its tasks stay as records)').argument('<name>')).action(async (name: string) => {
    const res = await ctx.client().post<{ deleted: string; ended_tasks: string[] }>('/v1/agent-identities/delete', { name });
    out(res, () => `Deleted agent identity ${name} (${res.ended_tasks.length} task(s) ended).\n`);
  });
}
