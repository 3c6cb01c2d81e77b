/**
 * Node attestors: how an agent proves to the server which node it runs on. Each attestor is a
 * pair of plugins with the same name, one on the agent (produces a payload, answers challenges)
 * and one on the server (checks the payload, may challenge, returns the agent's path and node
 * selectors). Payloads, challenges and responses are JSON values; the node API carries them.
 */
import type { Selector } from '../../datastore/index.js';
import { WritError } from '../../errors.js';
import { validatePath } from '../../spiffeid/index.js';

export interface NodeAttestationResult {
  /**
   * The agent's path below /writ/agent/, for example "join_token/<id>" or "x509pop/<sha1 hex>";
   * segments follow the SPIFFE ID path rules. Never contains a secret.
   */
  agentPath: string;
  /** Node selectors; their type is the attestor's name (for example "x509pop"). */
  selectors: Selector[];
  /** Whether the same node may attest again (x509pop) or not (single-use join tokens). */
  canReattest: boolean;
  /** Node alias SPIFFE IDs the attestation itself grants (a join token created with a SPIFFE ID). */
  aliases?: string[];
}

/**
 * Server side. `challenge(data)` sends data to the agent and resolves with what the agent's
 * respond() returned; it rejects on timeout or disconnect. Failures are WritErrors:
 * ERR_NODE_ATTESTATION, or the store's token codes for join tokens.
 */
export interface ServerNodeAttestor {
  readonly name: string;
  attest(payload: unknown, challenge: (data: unknown) => Promise<unknown>): Promise<NodeAttestationResult>;
  close?(): Promise<void> | void;
}

/** Agent side: the attestation payload and the answers to the server's challenges. */
export interface AgentNodeAttestor {
  readonly name: string;
  payload(): Promise<unknown>;
  respond(challenge: unknown): Promise<unknown>;
  close?(): Promise<void> | void;
}

/** ERR_NODE_ATTESTATION for attestor `name`, one sentence. */
export function attestationError(name: string, sentence: string, cause?: unknown): WritError {
  return new WritError('ERR_NODE_ATTESTATION', sentence, { details: { attestor: name }, ...(cause === undefined ? {} : { cause }) });
}

/** True for a plain JSON object (not an array, not null). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Throws ERR_NODE_ATTESTATION unless `v` is a plain object with exactly the keys `keys`. */
export function expectObject(name: string, what: string, v: unknown, keys: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(v)) throw attestationError(name, `The ${name} ${what} is malformed: it must be a JSON object.`);
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) throw attestationError(name, `The ${name} ${what} is malformed: it has an unexpected member.`);
  }
  for (const k of keys) {
    if (!Object.hasOwn(v, k)) throw attestationError(name, `The ${name} ${what} is malformed: it lacks "${k}".`);
  }
  return v;
}

/** Throws ERR_NODE_ATTESTATION unless "/" + path is a valid SPIFFE ID path. */
export function checkAgentPath(name: string, path: string): string {
  try {
    validatePath(`/${path}`);
  } catch (e) {
    throw attestationError(name, `The ${name} attestor produced an agent path that is not a valid SPIFFE ID path.`, e);
  }
  return path;
}
