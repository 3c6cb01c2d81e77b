/**
 * The Logger type the engines accept. The composition roots (server, agent, cli) create a pino
 * logger, which satisfies it; the library and engine layers never import pino.
 */
export type LogFn = (obj: Record<string, unknown> | string, msg?: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

const noop: LogFn = () => undefined;

export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};
