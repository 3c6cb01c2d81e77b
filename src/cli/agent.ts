/**
 * `writ agent run --config FILE` (the agent process) and the server-side agent commands SREs use:
 * `writ agent list|show|evict|ban` (as `spire-server agent ...`). Evicting deletes the agent's
 * record, so it must attest again; banning keeps the record and refuses the agent from then on.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadAgentConfig, type AgentConfig } from '../agent/config.js';
import { WritAgent } from '../agent/agent.js';
import type { WritError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CliContext } from './context.js';

interface AgentJson {
  spiffe_id: string;
  attestation_type: string;
  serial: string;
  expires_at: number;
  selectors: Array<{ type: string; value: string }>;
  banned: boolean;
  can_reattest: boolean;
}

function printAgent(a: AgentJson): string {
  return [
    `SPIFFE ID         : ${a.spiffe_id}`,
    `Attestation type  : ${a.attestation_type}`,
    `Expiration time   : ${new Date(a.expires_at * 1000).toISOString()}`,
    `Serial number     : ${a.serial}`,
    `Can re-attest     : ${a.can_reattest}`,
    `Banned            : ${a.banned}`,
    ...a.selectors.map((s) => `Selector          : ${s.type}:${s.value}`),
    '',
  ].join('\n');
}

/** Runs an agent until SIGTERM/SIGINT or a fatal attestation error; resolves with the exit code. */
export async function runAgentUntilSignal(config: AgentConfig, logger: Logger): Promise<number> {
  let fatal: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (fatal = r));
  const agent = await WritAgent.start(config, { logger, onFatal: (_e: WritError) => fatal(1) });
  const stop = (signal: string) => {
    logger.info({ event: 'signal', signal }, `received ${signal}, shutting down`);
    void agent.stop().then(() => fatal(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return done;
}

export function registerAgentCommands(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const agent = program.command('agent').description('the writ agent, and the agents attested to this server');
  agent
    .command('run')
    .description('run the agent: attest, sync, serve the Workload API')
    .requiredOption('--config <file>', 'agent config (YAML or JSON)', 'config/agent.yaml')
    .action(async (f: { config: string }) => {
      const config = loadAgentConfig(f.config);
      const logger = pino({ level: config.logLevel, base: { service: 'writ-agent', pid: process.pid } }) as unknown as Logger;
      setExit(await runAgentUntilSignal(config, logger));
    });

  ctx.common(agent.command('list').description('list attested agents').option('--banned', 'only banned agents').option('--attestation-type <type>', 'only agents attested this way')).action(
    async (f: { banned?: boolean; attestationType?: string }) => {
      const res = await ctx.client().post<{ agents: AgentJson[] }>('/v1/agents/list', { ...(f.banned ? { banned: true } : {}), ...(f.attestationType ? { attestation_type: f.attestationType } : {}) });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else ctx.io.out(`Found ${res.agents.length} attested ${res.agents.length === 1 ? 'agent' : 'agents'}:\n\n${res.agents.map(printAgent).join('\n')}`);
    },
  );
  for (const [verb, what] of [
    ['show', 'show one attested agent'],
    ['evict', 'delete an agent\'s record: it must attest again'],
    ['ban', 'refuse an agent from now on (its record is kept)'],
  ] as const) {
    ctx.common(agent.command(verb).description(what).requiredOption('--spiffe-id <id>', 'the agent\'s SPIFFE ID')).action(async (f: { spiffeId: string }) => {
      const res = await ctx.client().post<Record<string, unknown>>(`/v1/agents/${verb}`, { spiffe_id: f.spiffeId });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else if (verb === 'show') ctx.io.out(printAgent(res.agent as AgentJson));
      else ctx.io.out(`Agent ${f.spiffeId} ${verb === 'evict' ? 'evicted' : 'banned'}.\n`);
    });
  }
}
