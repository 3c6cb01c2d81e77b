/**
 * `writ server run --config FILE` and `writ server validate`: the server process. Logs are pino
 * JSON on standard output; SIGTERM and SIGINT shut down gracefully.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadServerConfig, validateServerConfig, type ServerConfig } from '../server/config.js';
import { WritServer } from '../server/server.js';
import type { Logger } from '../log.js';
import type { CliContext } from './context.js';

export function makeLogger(level: string, service: string): Logger {
  return pino({ level, base: { service, pid: process.pid } }) as unknown as Logger;
}

/** Runs until SIGTERM/SIGINT; resolves with the exit code. */
export async function runUntilSignal(config: ServerConfig, logger: Logger, onReady?: (s: WritServer) => void): Promise<number> {
  const server = await WritServer.start(config, { logger });
  onReady?.(server);
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ event: 'signal', signal }, `received ${signal}, shutting down`);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      server.stop().then(
        () => resolve(0),
        (e) => {
          logger.error({ err: e }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}

export function registerServerCommands(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const server = program.command('server').description('the writ server (CA, registry, admin API)');
  server
    .command('run')
    .description('run the server')
    .requiredOption('--config <file>', 'server config (YAML or JSON)', 'config/server.yaml')
    .option('--log-level <level>', 'override log_level')
    .action(async (f: { config: string; logLevel?: string }) => {
      const config = loadServerConfig(f.config);
      if (f.logLevel) config.logLevel = validateServerConfig({ trust_domain: config.trustDomain, log_level: f.logLevel }).logLevel;
      setExit(await runUntilSignal(config, makeLogger(config.logLevel, 'writ-server')));
    });
  server
    .command('validate')
    .description('validate a server config file and exit')
    .requiredOption('--config <file>', 'server config (YAML or JSON)')
    .action((f: { config: string }) => {
      const config = loadServerConfig(f.config);
      for (const w of config.warnings) ctx.io.err(`warning: ${w}`);
      ctx.io.out(`${f.config} is valid (trust domain ${config.trustDomain}).\n`);
    });

}
