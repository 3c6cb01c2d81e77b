/**
 * The join_token node attestor. An operator generates a one-time token on the server (only its
 * SHA-256 is stored); the agent presents it once. The server hashes it and consumes it in the
 * datastore (single use even under concurrency). The agent's path and selector are derived from
 * the hash, never from the token, and the token never appears in logs or error messages.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { WritError } from '../../errors.js';
import { NODE_ATTESTOR, type PluginDeps, declarePlugin } from '../contract.js';
import { type AgentNodeAttestor, type NodeAttestationResult, type ServerNodeAttestor, attestationError, expectObject } from './types.js';

export const JOIN_TOKEN = 'join_token';

/** 16 to 256 base64url characters (the server generates 32: 24 random bytes). */
const TOKEN_RE = /^[A-Za-z0-9_-]{16,256}$/;
const TOKEN_RULE = 'a join token is 16 to 256 base64url characters';

export interface JoinTokenPayload {
  token: string;
}

/** Checks the shape of a join_token payload; ERR_NODE_ATTESTATION without echoing anything. */
export function parseJoinTokenPayload(payload: unknown): JoinTokenPayload {
  const o = expectObject(JOIN_TOKEN, 'payload', payload, ['token']);
  const token = o.token;
  if (typeof token !== 'string') throw attestationError(JOIN_TOKEN, 'The join_token payload is malformed: "token" must be a string.');
  if (!TOKEN_RE.test(token)) throw attestationError(JOIN_TOKEN, `The join_token payload is malformed: ${TOKEN_RULE}.`);
  return { token };
}

/** The hex SHA-256 of a token, as the datastore keys it. */
export function hashJoinToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The public id of a token: the first 32 hex characters of its hash. */
export function joinTokenId(tokenHash: string): string {
  return tokenHash.slice(0, 32);
}

const serverConfig = z.object({}).strict();

class JoinTokenServer implements ServerNodeAttestor {
  readonly name = JOIN_TOKEN;

  constructor(private readonly deps: PluginDeps & { store: NonNullable<PluginDeps['store']> }) {}

  async attest(payload: unknown): Promise<NodeAttestationResult> {
    const { token } = parseJoinTokenPayload(payload);
    const hash = hashJoinToken(token);
    const id = joinTokenId(hash);
    // ERR_TOKEN_INVALID / USED / EXPIRED from the store are rethrown as they are.
    const record = await this.deps.store.consumeJoinToken(hash, Math.floor(this.deps.clock.nowMs() / 1000));
    this.deps.logger.info({ join_token_id: id }, 'join token consumed');
    return {
      agentPath: `${JOIN_TOKEN}/${id}`,
      selectors: [{ type: JOIN_TOKEN, value: id }],
      canReattest: false,
      ...(record.spiffeId ? { aliases: [record.spiffeId] } : {}),
    };
  }
}

export const joinTokenServerPlugin = declarePlugin({
  type: NODE_ATTESTOR,
  name: JOIN_TOKEN,
  description: 'Attests an agent by a one-time join token generated on the server.',
  configSchema: serverConfig,
  async create(_config: z.infer<typeof serverConfig>, deps: PluginDeps): Promise<ServerNodeAttestor> {
    const store = deps.store;
    if (!store) throw new WritError('ERR_PLUGIN_CONFIG', 'The node_attestor plugin "join_token" needs the datastore, which was not given.');
    return new JoinTokenServer({ ...deps, store });
  },
});

const agentConfig = z
  .object({
    token: z.string().regex(TOKEN_RE, TOKEN_RULE).optional(),
    token_path: z.string().min(1).optional(),
  })
  .strict()
  .refine((c) => (c.token === undefined) !== (c.token_path === undefined), { message: 'give exactly one of "token" and "token_path"' });

class JoinTokenAgent implements AgentNodeAttestor {
  readonly name = JOIN_TOKEN;

  constructor(private readonly token: string) {}

  async payload(): Promise<JoinTokenPayload> {
    return { token: this.token };
  }

  async respond(): Promise<never> {
    throw attestationError(JOIN_TOKEN, 'The join_token attestor expects no challenge, but the server sent one.');
  }
}

export const joinTokenAgentPlugin = declarePlugin({
  type: NODE_ATTESTOR,
  name: JOIN_TOKEN,
  description: 'Presents a one-time join token, given inline or in a file.',
  configSchema: agentConfig,
  async create(config: z.infer<typeof agentConfig>): Promise<AgentNodeAttestor> {
    let token = config.token;
    if (token === undefined && config.token_path !== undefined) {
      try {
        token = (await readFile(config.token_path, 'utf8')).trim();
      } catch (e) {
        throw new WritError('ERR_PLUGIN_CONFIG', `The join token file "${config.token_path}" can not be read.`, { cause: e });
      }
      if (!TOKEN_RE.test(token)) {
        throw new WritError('ERR_PLUGIN_CONFIG', `The join token file "${config.token_path}" does not hold a valid token: ${TOKEN_RULE}.`);
      }
    }
    if (token === undefined) throw new WritError('ERR_PLUGIN_CONFIG', 'The join_token plugin needs "token" or "token_path".');
    return new JoinTokenAgent(token);
  },
});
