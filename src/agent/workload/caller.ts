/**
 * What every Workload API call does before its own work, on both transports: check the security
 * header, check the agent is ready, attest the caller through the WorkloadHandler and confirm the
 * attested process is the one that connected. Also the one place errors are made safe to send:
 * a WritError keeps its code and sentence, anything else becomes a generic sentence and is logged.
 */
import { WritError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Selector } from '../../datastore/types.js';
import { parseSpiffeId } from '../../spiffeid/index.js';
import type { WorkloadHandler } from './handler.js';
import { ATTESTATION_FAILED, type TrackedPeer } from './peer.js';

/** The sentences SPIRE answers with, so tools that show them read the same. */
export const HEADER_MISSING = 'security header missing from request';
export const NO_IDENTITY = 'no identity issued';

/** The security header must be present exactly once with the value "true" (case-sensitive). */
export function checkSecurityHeader(values: readonly unknown[]): void {
  if (values.length !== 1 || values[0] !== 'true') throw new WritError('ERR_WORKLOAD_HEADER', HEADER_MISSING);
}

export function noIdentity(): WritError {
  return new WritError('ERR_WORKLOAD_NO_IDENTITY', NO_IDENTITY);
}

/** Readiness, attestation and the same-process check; returns the caller's selectors. */
export async function attestCaller(handler: WorkloadHandler, peer: TrackedPeer | undefined, logger: Logger): Promise<Selector[]> {
  if (!handler.ready()) throw new WritError('ERR_AGENT_NOT_READY', 'The agent is not ready yet; try again shortly.');
  if (!peer) throw new WritError('ERR_WORKLOAD_ATTESTATION', ATTESTATION_FAILED, { details: { reason: 'no peer is tracked for this connection' } });
  return peer.hold(async (process) => {
    let selectors: Selector[];
    try {
      selectors = await handler.attest(process);
    } catch (e) {
      if (e instanceof WritError) throw e;
      logger.error({ err: e, pid: process.pid }, 'workload attestor failed unexpectedly');
      throw new WritError('ERR_WORKLOAD_ATTESTATION', ATTESTATION_FAILED, { cause: e });
    }
    try {
      peer.verifySamePeer();
    } catch (e) {
      logger.warn({ pid: peer.pid, uid: peer.uid, reason: e instanceof WritError ? e.details?.reason : undefined }, 'caller process changed during attestation');
      throw e;
    }
    return selectors;
  });
}

/** A FetchJWTSVID audience: at least one, none empty. */
export function checkAudience(audience: unknown): string[] {
  if (!Array.isArray(audience) || audience.length === 0) throw new WritError('ERR_INPUT_INVALID', 'audience must be specified');
  const out: string[] = [];
  for (const a of audience) {
    if (typeof a !== 'string' || a.length === 0) throw new WritError('ERR_INPUT_INVALID', 'An audience must be a non-empty string.');
    out.push(a);
  }
  return out;
}

/** The optional spiffe_id of FetchJWTSVID: "" for none, else a valid SPIFFE ID (ERR_SPIFFEID_* otherwise). */
export function checkOptionalSpiffeId(id: unknown): string | undefined {
  if (id === undefined || id === null || id === '') return undefined;
  if (typeof id !== 'string') throw new WritError('ERR_INPUT_INVALID', 'spiffe_id must be a string.');
  return parseSpiffeId(id).toString();
}

/** ValidateJWTSVID inputs: both required. */
export function checkValidateRequest(audience: unknown, svid: unknown): { audience: string; svid: string } {
  if (typeof audience !== 'string' || audience === '') throw new WritError('ERR_INPUT_INVALID', 'audience must be specified');
  if (typeof svid !== 'string' || svid === '') throw new WritError('ERR_INPUT_INVALID', 'svid must be specified');
  return { audience, svid };
}

/** The error to send: WritErrors as they are (one sentence, stable code); anything else generic, logged. */
export function safeError(e: unknown, logger: Logger, what: string): WritError {
  if (e instanceof WritError) return e;
  logger.error({ err: e, call: what }, 'Workload API call failed unexpectedly');
  return new WritError('ERR_WORKLOADAPI_UNAVAILABLE', 'The Workload API could not complete the request; try again.', { cause: e });
}

/** "partner.org" → "spiffe://partner.org" (the Workload API keys bundle maps by trust domain SPIFFE ID). */
export function trustDomainKey(td: string): string {
  return td.startsWith('spiffe://') ? td : `spiffe://${td}`;
}

/** Map entries sorted by key, so identical states render identical bytes. */
export function sortedEntries<V>(m: ReadonlyMap<string, V>): Array<[string, V]> {
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
