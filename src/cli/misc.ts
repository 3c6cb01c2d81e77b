/** `writ token generate`, `writ healthcheck` (`writ bundle ...` is in bundle.ts). */
import type { Command } from 'commander';
import { WritError } from '../errors.js';
import type { CliContext } from './context.js';

export function registerMiscCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('join tokens for node attestation');
  ctx
    .common(
      token
        .command('generate')
        .description('generate a single-use join token')
        .option('--ttl <duration>', 'lifetime of the token (default: the server\'s join_token_ttl, 10m)')
        .option('--spiffe-id <id>', 'also give the attested agent this node alias ID'),
    )
    .action(async (f: { ttl?: string; spiffeId?: string }) => {
      const res = await ctx.client().post<{ token: string; expires_at: number; spiffe_id?: string }>('/v1/join-tokens', {
        ...(f.ttl !== undefined ? { ttl: f.ttl } : {}),
        ...(f.spiffeId !== undefined ? { spiffe_id: f.spiffeId } : {}),
      });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else ctx.io.out(`Token: ${res.token}\nExpires: ${new Date(res.expires_at * 1000).toISOString()}\n`);
    });

  ctx
    .common(
      program
        .command('healthcheck')
        .description('check that the server answers and is ready')
        .option('--shallow', 'only check that the server answers')
        .option('--verbose', 'print each check'),
    )
    .action(async (f: { shallow?: boolean; verbose?: boolean }) => {
      const h = await ctx.client().get<{ live: boolean; ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> }>('/v1/health');
      if (f.verbose) {
        for (const [name, c] of Object.entries(h.checks)) ctx.io.out(`${name}: ${c.ok ? 'ok' : `FAILED${c.detail ? ` (${c.detail})` : ''}`}\n`);
      }
      if (!f.shallow && !h.ready) {
        const failed = Object.entries(h.checks).filter(([, c]) => !c.ok).map(([n]) => n);
        throw new WritError('ERR_SERVER_NOT_READY', `The server answers but is not ready (failing: ${failed.join(', ') || 'starting'}).`);
      }
      ctx.io.out('Server is healthy.\n');
    });
}
