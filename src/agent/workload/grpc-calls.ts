/**
 * The SpiffeWorkloadAPI RPC implementations for grpc-js. Every call checks the security header,
 * readiness and the caller's attestation (caller.ts) before its own work. Streams send the full
 * state at once, then again after every handler change notification when the encoded message
 * differs from the last one sent on that stream; a slow reader gets only the latest state once
 * it drains. Errors leave as the WritError's gRPC status and one sentence, never internals.
 */
import * as grpc from '@grpc/grpc-js';
import type { LiveList } from '../live-list.js';
import { UpdatePump } from './pump.js';
import type { EncodedMessage, MessageMemo, Rendered } from './memo.js';
import { WritError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Selector } from '../../datastore/types.js';
import { ERROR_CODE_TRAILER, SECURITY_HEADER, toStruct, type JWTSVIDRequestMessage, type ValidateJWTSVIDRequestMessage, type X509SVIDResponseMessage, type X509BundlesResponseMessage, type JWTBundlesResponseMessage } from '../../workloadapi/proto.js';
import { attestCaller, checkAudience, checkOptionalSpiffeId, checkSecurityHeader, checkValidateRequest, noIdentity, safeError } from './caller.js';
import type { WorkloadHandler } from './handler.js';
import type { TrackedPeer } from './peer.js';
import { jwtBundlesMessage, jwtSvidMessage, x509BundlesMessage, x509SvidMessage } from './render.js';

/** An open server stream the endpoint can end (on close). */
export interface OpenStream {
  end(e: WritError): void;
}

export interface CallContext {
  handler: WorkloadHandler;
  logger: Logger;
  /** The tracked peer of the connection grpc-js names with `call.getPeer()`. */
  peerOf(label: string): TrackedPeer | undefined;
  streams: LiveList<OpenStream>;
  /** Set once close() has begun: a stream admitted after that ends at once with this error. */
  closing(): WritError | undefined;
  /** Stream messages already encoded for a selector set, shared by callers with the same selectors. */
  memo: MessageMemo;
}

type Call = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** The status, with writ's error code in the trailers (`writ-error-code`) for clients that read it. */
const statusOf = (e: WritError): Partial<grpc.StatusObject> => {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_TRAILER, e.code);
  return { code: e.grpcStatus, details: e.message, metadata };
};

/** Header, readiness, attestation; the caller's selectors. */
async function admit(ctx: CallContext, call: Call): Promise<Selector[]> {
  checkSecurityHeader(call.metadata.get(SECURITY_HEADER));
  return attestCaller(ctx.handler, ctx.peerOf(call.getPeer()), ctx.logger);
}

function unary<Req, Res>(ctx: CallContext, name: string, run: (req: Req, call: Call) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    run(call.request, call as Call).then(
      (res) => callback(null, res),
      (e: unknown) => {
        const err = safeError(e, ctx.logger, name);
        ctx.logger.debug({ call: name, code: err.code }, 'Workload API call refused');
        callback(statusOf(err));
      },
    );
  };
}

function serverStream<M>(ctx: CallContext, name: string, render: (selectors: readonly Selector[]) => EncodedMessage): grpc.handleServerStreamingCall<unknown, M> {
  return (call) => {
    const fail = (e: unknown) => {
      const err = safeError(e, ctx.logger, name);
      ctx.logger.debug({ call: name, code: err.code }, 'Workload API stream ended with an error');
      if (!call.cancelled) call.emit('error', statusOf(err));
    };
    admit(ctx, call as Call).then((selectors) => {
      if (call.cancelled) return;
      const shutdown = ctx.closing();
      if (shutdown) {
        fail(shutdown);
        return;
      }
      // A digest of the last message sent, not its bytes: the encoder's small Buffers are views of
      // 8 KiB pool slabs, so keeping one pinned a whole slab per open stream.
      let last: Buffer | undefined;
      let done = false;
      let unsubscribe: () => void = () => undefined;
      let unregister: () => void = () => undefined;
      const finish = (e?: WritError) => {
        if (done) return;
        done = true;
        unsubscribe();
        unregister();
        if (e) fail(e);
        else if (!call.cancelled) call.end();
      };
      const open: OpenStream = { end: finish };
      const pump = new UpdatePump(
        () => {
          let msg: EncodedMessage;
          try {
            msg = render(selectors);
          } catch (e) {
            finish(safeError(e, ctx.logger, name));
            return;
          }
          if (last && msg.digest.equals(last)) return;
          last = msg.digest;
          // Already encoded: the definition from serverDefinition() passes Buffers through as they are.
          if (!call.write(msg.bytes as unknown as M)) pump.blocked();
        },
        () => done,
      );
      call.on('drain', () => pump.drained());
      call.on('cancelled', () => finish());
      unsubscribe = ctx.handler.subscribe(() => pump.changed());
      unregister = ctx.streams.add(open);
      pump.flush();
    }, fail);
  };
}

/** Identity-bearing X.509 state; no SVID means PermissionDenied (at start and mid-stream). Stale once its first SVID expires. */
function x509Svids(handler: WorkloadHandler, selectors: readonly Selector[], encode: grpc.serialize<X509SVIDResponseMessage>): Rendered {
  const state = handler.x509State(selectors);
  if (state.svids.length === 0) throw noIdentity();
  let validUntil = Infinity;
  for (const s of state.svids) validUntil = Math.min(validUntil, s.notAfter ?? -Infinity);
  return { bytes: encode(x509SvidMessage(state)), validUntil };
}

const forever = (bytes: Buffer): Rendered => ({ bytes, validUntil: Infinity });

function unimplemented(what: string): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    try {
      checkSecurityHeader(call.metadata.get(SECURITY_HEADER));
      call.emit('error', statusOf(new WritError('ERR_UNIMPLEMENTED', `${what} belongs to the optional WIT-SVID profile, which writ does not serve.`)));
    } catch (e) {
      call.emit('error', statusOf(e as WritError));
    }
  };
}

/**
 * The Workload API definition for the server: like the loaded one, but a response that is already
 * a Buffer is written as it is, so streams encode each message once (to compare it with the last
 * one sent) rather than twice.
 */
export function serverDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(def).map(([name, m]) => {
      const encode = m.responseSerialize as grpc.serialize<unknown>;
      return [name, { ...m, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : encode(v)) }];
    }),
  ) as grpc.ServiceDefinition;
}

/** The implementation object for server.addService(serverDefinition(workloadServiceDefinition()), …). */
export function workloadServiceImplementation(ctx: CallContext, def: grpc.ServiceDefinition): grpc.UntypedServiceImplementation {
  const ser = <M>(method: string): grpc.serialize<M> => {
    const m = def[method];
    if (!m) throw new Error(`The Workload API definition has no ${method}`);
    return m.responseSerialize as grpc.serialize<M>;
  };
  const h = ctx.handler;
  const x509Ser = ser<X509SVIDResponseMessage>('FetchX509SVID');
  const bundlesSer = ser<X509BundlesResponseMessage>('FetchX509Bundles');
  const jwtBundlesSer = ser<JWTBundlesResponseMessage>('FetchJWTBundles');
  return {
    FetchX509SVID: serverStream(ctx, 'FetchX509SVID', (sel) => ctx.memo.get('x509', sel, () => x509Svids(h, sel, x509Ser))),
    FetchX509Bundles: serverStream(ctx, 'FetchX509Bundles', (sel) => ctx.memo.get('x509-bundles', sel, () => forever(bundlesSer(x509BundlesMessage(h.x509Bundles(sel)))))),
    FetchJWTBundles: serverStream(ctx, 'FetchJWTBundles', (sel) => ctx.memo.get('jwt-bundles', sel, () => forever(jwtBundlesSer(jwtBundlesMessage(h.jwtBundles(sel)))))),
    FetchJWTSVID: unary(ctx, 'FetchJWTSVID', async (req: JWTSVIDRequestMessage, call) => {
      checkSecurityHeader(call.metadata.get(SECURITY_HEADER));
      const audience = checkAudience(req.audience);
      const spiffeId = checkOptionalSpiffeId(req.spiffe_id);
      const selectors = await admit(ctx, call);
      const svids = await h.fetchJwtSvids(selectors, audience, spiffeId);
      if (svids.length === 0) throw noIdentity();
      return jwtSvidMessage(svids);
    }),
    ValidateJWTSVID: unary(ctx, 'ValidateJWTSVID', async (req: ValidateJWTSVIDRequestMessage, call) => {
      checkSecurityHeader(call.metadata.get(SECURITY_HEADER));
      const { audience, svid } = checkValidateRequest(req.audience, req.svid);
      const selectors = await admit(ctx, call);
      const { spiffeId, claims } = await h.validateJwtSvid(selectors, svid, audience);
      return { spiffe_id: spiffeId, claims: toStruct(claims) };
    }),
    FetchWITSVID: unimplemented('The WIT-SVID profile'),
    FetchWITBundles: unimplemented('The WIT-SVID profile'),
  };
}
