/**
 * The `writ` command line. Every error prints a stable code and one sentence on standard error
 * and exits non-zero; no stack traces for user errors.
 */
import { Command, CommanderError } from 'commander';
import { WritError, toWritError } from '../errors.js';
import { CliContext } from './context.js';
import { processIo, type Io } from './io.js';
import { registerEntryCommands } from './entry.js';
import { registerSvidCommands } from './svid.js';
import { registerMiscCommands } from './misc.js';
import { registerBundleCommands } from './bundle.js';
import { registerFederationCommands } from './federation.js';
import { registerAuthorityCommands } from './authority.js';
import { registerServerCommands } from './server.js';
import { registerAgentCommands } from './agent.js';
import { registerApiCommands } from './api.js';
import { registerDevCommand } from './dev.js';
import { registerAgentIdentityCommands } from './agent-identity.js';
import { registerTaskCommands } from './task.js';
import { registerAuditCommands } from './audit.js';

export async function main(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ctx = new CliContext(io, env);
  let exitCode = 0;
  const program = new Command('writ')
    .description('writ: SPIFFE workload identities for AI agents and their tasks')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: () => undefined })
    .showSuggestionAfterError(true);
  program.hook('preAction', (_this, action) => ctx.setOptions(action.opts()));
  registerServerCommands(program, ctx, (c) => (exitCode = c));
  registerDevCommand(program, ctx, (c) => (exitCode = c));
  registerAgentCommands(program, ctx, (c) => (exitCode = c));
  registerApiCommands(program, ctx, env);
  registerEntryCommands(program, ctx);
  registerSvidCommands(program, ctx);
  registerMiscCommands(program, ctx);
  registerBundleCommands(program, ctx);
  registerFederationCommands(program, ctx);
  registerAuthorityCommands(program, ctx);
  registerAgentIdentityCommands(program, ctx);
  registerTaskCommands(program, ctx, (c) => (exitCode = c));
  registerAuditCommands(program, ctx);
  for (const cmd of allCommands(program)) cmd.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: () => undefined });

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      const sentence = e.message.replace(/^error: /, '').replace(/\n[\s\S]*$/, '');
      io.err(`ERR_INPUT_INVALID: ${sentence.charAt(0).toUpperCase()}${sentence.slice(1)}${/[.!?]$/.test(sentence) ? '' : '.'}`);
      return 2;
    }
    const we: WritError = toWritError(e);
    io.err(`${we.code}: ${we.message}`);
    if (we.code === 'ERR_INTERNAL' && env.WRIT_DEBUG) io.err(String((e as Error).stack ?? e));
    return 1;
  }
}

function allCommands(c: Command): Command[] {
  return c.commands.flatMap((sub) => [sub, ...allCommands(sub)]);
}
