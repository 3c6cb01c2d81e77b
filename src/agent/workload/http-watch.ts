/**
 * GET /v1/x509/watch for the HTTP Workload API: streaming NDJSON. One JSON line with the full X.509
 * state at once, then one after every handler change notification when the state differs from the
 * last line sent; `{"heartbeat":true}` lines keep idle proxies and clients awake; the stream ends
 * with one `{"error":{code,message}}` line when the identity goes away or the endpoint closes.
 */
import type { Response } from 'express';
import { UpdatePump } from './pump.js';
import type { LiveList } from '../live-list.js';
import type { WritError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Selector } from '../../datastore/types.js';
import { noIdentity, safeError } from './caller.js';
import type { WorkloadHandler } from './handler.js';
import { x509Json } from './render.js';

export interface OpenWatch {
  end(e: WritError): void;
}

function render(handler: WorkloadHandler, selectors: readonly Selector[]): string {
  const state = handler.x509State(selectors);
  if (state.svids.length === 0) throw noIdentity();
  return JSON.stringify(x509Json(state));
}

const errorLine = (e: WritError): string => `${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`;

/**
 * Starts a watch on `res` for a caller with `selectors`. The first state is rendered before any
 * byte is written, so a caller without identity gets a plain 403 error document (thrown).
 */
export function startWatch(opts: {
  res: Response;
  handler: WorkloadHandler;
  selectors: readonly Selector[];
  logger: Logger;
  heartbeatMs: number;
  watches: LiveList<OpenWatch>;
}): void {
  const { res, handler, selectors, logger, watches } = opts;
  let last = render(handler, selectors);
  let done = false;
  let unsubscribe: () => void = () => undefined;
  let unregister: () => void = () => undefined;
  // Runs first after heartbeatMs, by when everything below is set up.
  const heartbeat = setInterval(() => {
    if (!pump.isBlocked) write('{"heartbeat":true}\n');
  }, opts.heartbeatMs);
  heartbeat.unref();

  const finish = (e?: WritError) => {
    if (done) return;
    done = true;
    clearInterval(heartbeat);
    unsubscribe();
    unregister();
    if (!res.writableEnded && !res.destroyed) {
      if (e) res.write(errorLine(e));
      res.end();
    }
  };
  const open: OpenWatch = { end: finish };
  const write = (line: string) => {
    if (!res.write(line)) pump.blocked();
  };
  const pump = new UpdatePump(
    () => {
      let line: string;
      try {
        line = render(handler, selectors);
      } catch (e) {
        finish(safeError(e, logger, 'x509/watch'));
        return;
      }
      if (line === last) return;
      last = line;
      write(`${line}\n`);
    },
    () => done,
  );

  res.status(200);
  res.setHeader('content-type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('x-content-type-options', 'nosniff');
  res.flushHeaders();
  res.on('drain', () => pump.drained());
  res.on('close', () => finish());
  unsubscribe = handler.subscribe(() => pump.changed());
  unregister = watches.add(open);
  write(`${last}\n`);
  // A change between the first render and subscribe() would otherwise be missed.
  pump.changed();
}
