/** What every CLI command shares: output, the admin client, and the common flags. */
import { Option, type Command } from 'commander';
import { AdminClient } from '../admin/index.js';
import { DEFAULT_ADMIN_SOCKET } from '../server/config.js';
import type { Io } from './io.js';

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export class CliContext {
  private opts: Record<string, unknown> = {};

  constructor(
    readonly io: Io,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Called before each action with the running command's options. */
  setOptions(opts: Record<string, unknown>): void {
    this.opts = opts;
  }

  socketPath(): string {
    return (this.opts.socketPath as string | undefined) ?? this.env.WRIT_ADMIN_SOCKET ?? DEFAULT_ADMIN_SOCKET;
  }

  client(): AdminClient {
    return new AdminClient(this.socketPath());
  }

  json(): boolean {
    return this.opts.output === 'json';
  }

  /** Adds --socket-path and --output to a command that talks to the server. */
  common(cmd: Command): Command {
    return cmd
      .option('--socket-path <path>', `admin socket of the server (default $WRIT_ADMIN_SOCKET or ${DEFAULT_ADMIN_SOCKET})`)
      .addOption(new Option('--output <format>', 'output format').choices(['pretty', 'json']).default('pretty'));
  }
}
