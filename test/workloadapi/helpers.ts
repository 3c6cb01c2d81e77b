/**
 * A real Workload API server for the client tests: grpc-js on a Unix socket in a temporary
 * directory, serving SVIDs minted by writ's CA. It checks the security header as the standard
 * requires, records what it was sent, and can push updates, end streams, refuse with any status,
 * restart on the same socket path and send malformed answers, on demand.
 */
import * as grpc from '@grpc/grpc-js';
import { type KeyObject, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Authority } from '../../src/ca/index.js';
import { BundleSet, JwtBundle, jwkFromPublicKey } from '../../src/bundle/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { parseAndValidateJwtSvid } from '../../src/svid/index.js';
import {
  type JWTBundlesResponseMessage,
  type JWTSVIDRequestMessage,
  type JWTSVIDResponseMessage,
  SECURITY_HEADER,
  type ValidateJWTSVIDRequestMessage,
  type ValidateJWTSVIDResponseMessage,
  type X509BundlesResponseMessage,
  type X509SVIDMessage,
  type X509SVIDResponseMessage,
  toStruct,
  workloadServiceDefinition,
} from '../../src/workloadapi/proto.js';

export const FAST_BACKOFF = { stepMs: 20, maxMs: 100, jitter: 0 };

export type StreamRpc = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles';
export type UnaryRpc = 'FetchJWTSVID' | 'ValidateJWTSVID';
export type Rpc = StreamRpc | UnaryRpc;

export interface Status {
  code: grpc.status;
  details: string;
}
export const NO_IDENTITY: Status = { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' };

interface StreamMessages {
  FetchX509SVID: X509SVIDResponseMessage;
  FetchX509Bundles: X509BundlesResponseMessage;
  FetchJWTBundles: JWTBundlesResponseMessage;
}

type Stream = grpc.ServerWritableStream<unknown, unknown>;

function isStatus(v: unknown): v is Status {
  return typeof v === 'object' && v !== null && 'code' in v && 'details' in v;
}

function fail(call: Stream, s: Status): void {
  call.emit('error', Object.assign(new Error(s.details), s));
}

export class TestWorkloadApi {
  readonly dir = mkdtempSync(join(tmpdir(), 'writ-wl-'));
  readonly socketPath = join(this.dir, 'agent.sock');
  readonly address = `unix://${this.socketPath}`;
  /** What each stream sends: a message (full state) or a status to refuse with. */
  state: { [K in StreamRpc]: StreamMessages[K] | Status } = { FetchX509SVID: NO_IDENTITY, FetchX509Bundles: NO_IDENTITY, FetchJWTBundles: NO_IDENTITY };
  /** How the unary RPCs answer: a message, a status, or raw bytes (not protobuf). */
  unary: {
    FetchJWTSVID: (req: JWTSVIDRequestMessage) => Promise<JWTSVIDResponseMessage | Status | Buffer>;
    ValidateJWTSVID: (req: ValidateJWTSVIDRequestMessage) => Promise<ValidateJWTSVIDResponseMessage | Status>;
  } = {
    FetchJWTSVID: async () => NO_IDENTITY,
    ValidateJWTSVID: async () => ({ code: grpc.status.INVALID_ARGUMENT, details: 'not configured' }),
  };
  /** Values of the security header per call, in call order. */
  readonly headers: Record<Rpc, string[][]> = { FetchX509SVID: [], FetchX509Bundles: [], FetchJWTBundles: [], FetchJWTSVID: [], ValidateJWTSVID: [] };
  readonly requests: { FetchJWTSVID: JWTSVIDRequestMessage[]; ValidateJWTSVID: ValidateJWTSVIDRequestMessage[] } = { FetchJWTSVID: [], ValidateJWTSVID: [] };
  readonly open: Record<StreamRpc, Set<Stream>> = { FetchX509SVID: new Set(), FetchX509Bundles: new Set(), FetchJWTBundles: new Set() };
  #server: grpc.Server | undefined;

  calls(rpc: Rpc): number {
    return this.headers[rpc].length;
  }

  async start(): Promise<this> {
    rmSync(this.socketPath, { force: true });
    const server = new grpc.Server();
    const def = workloadServiceDefinition();
    const jwt = def.FetchJWTSVID!;
    const raw = { ...jwt, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : jwt.responseSerialize(v)) };
    const stream = (rpc: StreamRpc) => (call: Stream) => this.#stream(rpc, call);
    server.addService({ ...def, FetchJWTSVID: raw }, {
      FetchX509SVID: stream('FetchX509SVID'),
      FetchX509Bundles: stream('FetchX509Bundles'),
      FetchJWTBundles: stream('FetchJWTBundles'),
      FetchJWTSVID: (call: grpc.ServerUnaryCall<JWTSVIDRequestMessage, unknown>, cb: grpc.sendUnaryData<unknown>) => this.#unary('FetchJWTSVID', call, cb),
      ValidateJWTSVID: (call: grpc.ServerUnaryCall<ValidateJWTSVIDRequestMessage, unknown>, cb: grpc.sendUnaryData<unknown>) => this.#unary('ValidateJWTSVID', call, cb),
      FetchWITSVID: (call: Stream) => fail(call, { code: grpc.status.UNIMPLEMENTED, details: 'WIT-SVIDs are not supported' }),
      FetchWITBundles: (call: Stream) => fail(call, { code: grpc.status.UNIMPLEMENTED, details: 'WIT-SVIDs are not supported' }),
    });
    await new Promise<void>((resolve, reject) => server.bindAsync(this.address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    this.#server = server;
    return this;
  }

  /** Kills every call and closes the socket (the server can be started again on the same path). */
  stop(): void {
    this.#server?.forceShutdown();
    this.#server = undefined;
    for (const set of Object.values(this.open)) set.clear();
  }

  async restart(): Promise<void> {
    this.stop();
    await this.start();
  }

  /** Stops the server and removes the directory. */
  cleanup(): void {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Sends the current state to every open stream of `rpc` (a Status ends them with it). */
  push(rpc: StreamRpc): void {
    const s = this.state[rpc];
    for (const call of [...this.open[rpc]]) {
      if (isStatus(s)) {
        this.open[rpc].delete(call);
        fail(call, s);
      } else call.write(s);
    }
  }

  /** Sends a message to the open streams of `rpc` without changing the state. */
  send<K extends StreamRpc>(rpc: K, msg: StreamMessages[K]): void {
    for (const call of this.open[rpc]) call.write(msg);
  }

  /** Ends every open stream with OK. */
  endStreams(rpc: StreamRpc): void {
    for (const call of [...this.open[rpc]]) call.end();
    this.open[rpc].clear();
  }

  #header(rpc: Rpc, md: grpc.Metadata): boolean {
    const values = md.get(SECURITY_HEADER).map(String);
    this.headers[rpc].push(values);
    return values.length === 1 && values[0] === 'true';
  }

  #stream(rpc: StreamRpc, call: Stream): void {
    if (!this.#header(rpc, call.metadata)) return fail(call, { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' });
    const s = this.state[rpc];
    if (isStatus(s)) return fail(call, s);
    this.open[rpc].add(call);
    call.on('cancelled', () => this.open[rpc].delete(call));
    call.write(s);
  }

  #unary<K extends UnaryRpc>(rpc: K, call: grpc.ServerUnaryCall<Parameters<TestWorkloadApi['unary'][K]>[0], unknown>, cb: grpc.sendUnaryData<unknown>): void {
    if (!this.#header(rpc, call.metadata)) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' });
    (this.requests[rpc] as unknown[]).push(call.request);
    const handler = this.unary[rpc] as (req: unknown) => Promise<unknown>;
    handler(call.request).then(
      (r) => (isStatus(r) ? cb(r) : cb(null, r)),
      (e: unknown) => cb({ code: grpc.status.INTERNAL, details: String(e) }),
    );
  }
}

/** A fresh P-256 workload key pair. */
export function workloadKeys(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

/** The authority's trust bundle as concatenated DER. */
export function bundleDer(authority: Authority): Buffer {
  return Buffer.concat(authority.x509Authorities());
}

/** The authority's JWT authorities as a JWKS (what the Workload API serves: kid, no use). */
export function jwksOf(authority: Authority): Buffer {
  return Buffer.from(JSON.stringify({ keys: authority.jwtAuthorities().map((a) => ({ ...jwkFromPublicKey(a.publicKey), kid: a.kid })) }));
}

export interface MintedSvid {
  message: X509SVIDMessage;
  serial: string;
  privateKey: KeyObject;
}

/** An X509-SVID as the Workload API sends it, minted by `authority`. */
export async function mintSvidMessage(authority: Authority, spiffeId: string, hint = '', ttl = 3600): Promise<MintedSvid> {
  const { privateKey, publicKey } = workloadKeys();
  const minted = await authority.mintX509Svid({ spiffeId, publicKey, ttl });
  return {
    serial: minted.serial,
    privateKey,
    message: {
      spiffe_id: minted.spiffeId,
      x509_svid: Buffer.concat(minted.chain),
      x509_svid_key: privateKey.export({ type: 'pkcs8', format: 'der' }),
      bundle: bundleDer(authority),
      hint,
    },
  };
}

export const ID = 'spiffe://example.org/agent/coder';
export const ID2 = 'spiffe://example.org/agent/reviewer';

/** Serves X509-SVIDs for `ids` ([id, hint]) minted now, with a CRL and partner's bundle as federated. */
export async function serveX509(api: TestWorkloadApi, ca: Authority, partner: Authority, crl: Buffer, ids: Array<[string, string?]> = [[ID]]): Promise<string[]> {
  const minted = await Promise.all(ids.map(([id, hint]) => mintSvidMessage(ca, id, hint)));
  api.state.FetchX509SVID = { svids: minted.map((m) => m.message), crl: [crl], federated_bundles: { 'spiffe://partner.org': bundleDer(partner) } };
  return minted.map((m) => m.serial);
}

/** Every RPC answering as a healthy agent would for a workload entitled to ID (and ID2 for JWTs). */
export function serveDefaults(api: TestWorkloadApi, ca: Authority, partner: Authority, crl: Buffer): void {
  api.state.FetchX509Bundles = { crl: [crl], bundles: { 'spiffe://example.org': bundleDer(ca), 'partner.org': bundleDer(partner) } };
  api.state.FetchJWTBundles = { bundles: { 'spiffe://example.org': jwksOf(ca), 'partner.org': jwksOf(partner) } };
  api.unary.FetchJWTSVID = async (req) => {
    const ids = req.spiffe_id ? [req.spiffe_id] : [ID, ID2];
    const svids = await Promise.all(ids.map(async (id) => ({ spiffe_id: id, svid: (await ca.mintJwtSvid({ spiffeId: id, audience: req.audience, ttl: 300 })).token, hint: '' })));
    return { svids };
  };
  const jwtBundles = new BundleSet([JwtBundle.parse(parseTrustDomain('example.org'), jwksOf(ca))]);
  api.unary.ValidateJWTSVID = async (req) => {
    try {
      const svid = parseAndValidateJwtSvid(req.svid, jwtBundles, [req.audience]);
      return { spiffe_id: svid.id.toString(), claims: toStruct(svid.claims) };
    } catch (e) {
      return { code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message };
    }
  };
}

/** Waits until `cond` holds, polling; fails naming `what` after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The WritError code a promise rejects with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    return { code: String(err.code), message: String(err.message) };
  }
  throw new Error('The promise resolved; a rejection was expected.');
}
