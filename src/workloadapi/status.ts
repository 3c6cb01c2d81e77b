/**
 * gRPC statuses from the Workload API, mapped back to writ's error codes (SPIFFE Workload Endpoint
 * §6): InvalidArgument → ERR_WORKLOAD_HEADER (security header) or ERR_INPUT_INVALID,
 * PermissionDenied → ERR_WORKLOAD_NO_IDENTITY, Unimplemented → ERR_UNIMPLEMENTED, Unavailable and
 * deadlines → ERR_WORKLOADAPI_UNAVAILABLE, undecodable or unexpected answers → ERR_WORKLOADAPI_RESPONSE.
 * A sentence the server sent is kept as the message; the address and RPC go into the details.
 */
import { status as Status } from '@grpc/grpc-js';
import { type ErrorCode, WritError, grpcStatusOf, isErrorCode } from '../errors.js';
import { ERROR_CODE_TRAILER } from './proto.js';

/** What grpc-js hands a failed call: an Error with a status code and the server's details. */
export interface StatusLike {
  code: number;
  details: string;
  metadata?: { get(key: string): Array<string | Buffer> };
}

export function isStatusLike(e: unknown): e is StatusLike {
  return typeof e === 'object' && e !== null && typeof (e as StatusLike).code === 'number' && typeof (e as StatusLike).details === 'string';
}

export interface CallContext {
  /** The address as the user wrote it (or SPIFFE_ENDPOINT_SOCKET held it). */
  address: string;
  /** The RPC name, for example FetchX509SVID. */
  rpc: string;
  timeoutMs?: number;
}

/** gRPC status names by number, for details and sentences. */
const STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Status)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([name, n]) => [n, name]),
);

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `status ${code}`;
}

/** The server's sentence, trimmed and cut when very long. */
function sentence(details: string): string {
  const d = details.trim();
  return d.length > 500 ? `${d.slice(0, 500)}…` : d;
}

function make(code: ErrorCode, message: string, s: StatusLike, ctx: CallContext): WritError {
  return new WritError(code, message, {
    cause: s,
    details: { address: ctx.address, rpc: ctx.rpc, grpc_status: statusName(s.code), grpc_message: sentence(s.details) },
  });
}

/** Maps a failed call's status to a WritError. */
export function errorFromStatus(s: StatusLike, ctx: CallContext): WritError {
  const said = sentence(s.details);
  // writ's agent names its code in a trailer; keep it when it agrees with the status.
  const named = String(s.metadata?.get(ERROR_CODE_TRAILER)[0] ?? '');
  if (isErrorCode(named) && grpcStatusOf(named) === s.code && said) return make(named, said, s, ctx);
  const at = `the Workload API at ${ctx.address}`;
  switch (s.code) {
    case Status.INVALID_ARGUMENT:
      if (/security header/i.test(said)) return make('ERR_WORKLOAD_HEADER', said, s, ctx);
      return make('ERR_INPUT_INVALID', said || `${cap(at)} refused the ${ctx.rpc} request as invalid.`, s, ctx);
    case Status.PERMISSION_DENIED:
      return make('ERR_WORKLOAD_NO_IDENTITY', said || `${cap(at)} has no identity for this process.`, s, ctx);
    case Status.UNIMPLEMENTED:
      return make('ERR_UNIMPLEMENTED', said || `${cap(at)} does not implement ${ctx.rpc}.`, s, ctx);
    case Status.DEADLINE_EXCEEDED: {
      const within = ctx.timeoutMs === undefined ? 'in time' : `within ${ctx.timeoutMs} ms`;
      return make('ERR_WORKLOADAPI_UNAVAILABLE', `${cap(at)} did not answer ${ctx.rpc} ${within}.`, s, ctx);
    }
    case Status.CANCELLED:
      // Our own cancellations never get here; this is the server (or its shutdown) ending the call.
      return make('ERR_WORKLOADAPI_UNAVAILABLE', `${cap(at)} cancelled the ${ctx.rpc} call${said ? ` (${said})` : ''}.`, s, ctx);
    case Status.UNAVAILABLE:
    case Status.RESOURCE_EXHAUSTED:
    case Status.ABORTED:
      if (/No connection established|ECONNREFUSED|ENOENT|connect /.test(said)) {
        return make('ERR_WORKLOADAPI_UNAVAILABLE', `Cannot reach ${at} (${connectReason(said)}).`, s, ctx);
      }
      return make('ERR_WORKLOADAPI_UNAVAILABLE', said ? `${cap(at)} is unavailable: ${stop(said)}` : `${cap(at)} is unavailable.`, s, ctx);
    case Status.UNAUTHENTICATED:
      return make('ERR_WORKLOAD_NO_IDENTITY', said || `${cap(at)} could not identify this process.`, s, ctx);
    default:
      return make('ERR_WORKLOADAPI_RESPONSE', `${cap(at)} answered ${ctx.rpc} with ${statusName(s.code)}${said ? `: ${stop(said)}` : '.'}`, s, ctx);
  }
}

/** A short reason from grpc-js's connection error text. */
function connectReason(details: string): string {
  if (/ENOENT/.test(details)) return 'no socket at that path';
  if (/ECONNREFUSED/.test(details)) return 'nothing is listening there';
  if (/EACCES|EPERM/.test(details)) return 'permission denied on the socket';
  return details.replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/, '');
}

/** Ends a quoted server text with a full stop when it has none. */
function stop(s: string): string {
  return /[.!?…]$/.test(s) ? s : `${s}.`;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Wraps a local failure to understand a response. */
export function malformed(ctx: CallContext, what: string, cause?: unknown): WritError {
  const end = /[.…]$/.test(what) ? '' : '.';
  return new WritError('ERR_WORKLOADAPI_RESPONSE', `The Workload API at ${ctx.address} sent a malformed ${ctx.rpc} response: ${what}${end}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { address: ctx.address, rpc: ctx.rpc },
  });
}
