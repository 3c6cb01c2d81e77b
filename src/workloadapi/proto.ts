/**
 * The Workload API service definition, loaded from proto/workload.proto with @grpc/proto-loader,
 * the message shapes as TypeScript types, and google.protobuf.Struct conversion. Used by the client
 * in this folder and by the agent's Workload API endpoint.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Method paths have no package prefix: /SpiffeWorkloadAPI/FetchX509SVID. */
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';
/** The security header every Workload API request carries (Workload Endpoint §3). */
export const SECURITY_HEADER = 'workload.spiffe.io';
/** Trailer in which writ's agent names its error code, so writ clients keep it (others ignore it). */
export const ERROR_CODE_TRAILER = 'writ-error-code';

export interface X509SVIDMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
export interface X509SVIDResponseMessage {
  svids: X509SVIDMessage[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}
export interface X509BundlesResponseMessage {
  crl: Buffer[];
  bundles: Record<string, Buffer>;
}
export interface JWTSVIDRequestMessage {
  audience: string[];
  spiffe_id: string;
}
export interface JWTSVIDMessage {
  spiffe_id: string;
  svid: string;
  hint: string;
}
export interface JWTSVIDResponseMessage {
  svids: JWTSVIDMessage[];
}
export interface JWTBundlesResponseMessage {
  bundles: Record<string, Buffer>;
}
export interface ValidateJWTSVIDRequestMessage {
  audience: string;
  svid: string;
}
export interface ValidateJWTSVIDResponseMessage {
  spiffe_id: string;
  claims: StructMessage | null;
}

/** google.protobuf.Struct as proto-loader represents it (oneofs: true). */
export interface StructMessage {
  fields: Record<string, ValueMessage>;
}
export interface ValueMessage {
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMessage;
  listValue?: { values: ValueMessage[] };
}

/** Finds proto/workload.proto from src/workloadapi (tsx) or dist/src/workloadapi (compiled). */
export function workloadProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'proto', 'workload.proto');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('proto/workload.proto is missing from the writ package');
}

let cached: grpc.ServiceDefinition | undefined;

/** The SpiffeWorkloadAPI service definition (bytes as Buffer, field names as in the .proto). */
export function workloadServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.loadSync(workloadProtoPath(), { keepCase: true, longs: String, enums: String, defaults: true, arrays: true, objects: true, oneofs: true });
    cached = pkg[WORKLOAD_API_SERVICE] as grpc.ServiceDefinition;
  }
  return cached;
}

/** A client constructor for the service. */
export function workloadClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(workloadServiceDefinition(), WORKLOAD_API_SERVICE);
}

/** JSON value → google.protobuf.Value. */
export function toValue(v: unknown): ValueMessage {
  if (v === null || v === undefined) return { kind: 'nullValue', nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { kind: 'numberValue', numberValue: v };
  if (typeof v === 'string') return { kind: 'stringValue', stringValue: v };
  if (typeof v === 'boolean') return { kind: 'boolValue', boolValue: v };
  if (Array.isArray(v)) return { kind: 'listValue', listValue: { values: v.map(toValue) } };
  if (typeof v === 'object') return { kind: 'structValue', structValue: toStruct(v as Record<string, unknown>) };
  return { kind: 'stringValue', stringValue: String(v) };
}

export function toStruct(o: Record<string, unknown>): StructMessage {
  const fields: Record<string, ValueMessage> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = toValue(v);
  return { fields };
}

/** google.protobuf.Value → JSON value. */
export function fromValue(v: ValueMessage | undefined): unknown {
  if (!v) return null;
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

export function fromStruct(s: StructMessage | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}
