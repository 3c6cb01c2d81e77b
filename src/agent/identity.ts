/**
 * The agent's own identity: node attestation through the configured attestor (payload, then as
 * many challenge–response rounds as the server asks for), and renewal of the agent SVID at half
 * its life over mTLS. The key is generated here and only its CSR leaves the process.
 */
import { buildCsrDer, newWorkloadKey } from '../ca/index.js';
import { encodePem } from '../bundle/index.js';
import { WritError } from '../errors.js';
import { readCertificateInfo } from '../svid/index.js';
import type { Logger } from '../log.js';
import type { AgentNodeAttestor } from '../plugins/nodeattestor/types.js';
import type { NodeClient } from './nodeclient.js';
import type { AgentIdentity } from './state.js';

/** Attestation failures that retrying cannot fix: the agent stops and says why. */
export const FATAL_ATTESTATION_CODES: ReadonlySet<string> = new Set([
  'ERR_TOKEN_INVALID',
  'ERR_TOKEN_USED',
  'ERR_TOKEN_EXPIRED',
  'ERR_NODE_ATTESTATION',
  'ERR_AGENT_BANNED',
  'ERR_CA_CSR',
  'ERR_SPIFFEID_NOT_MEMBER',
]);

export const MAX_CHALLENGE_ROUNDS = 8;

interface AttestAnswer {
  session?: string;
  challenge?: unknown;
  spiffe_id?: string;
  svid?: string[];
  bundle?: { document: string; sequence: number };
}

export interface AttestOutcome {
  identity: AgentIdentity;
  bundleDocument: string;
}

export function identityPem(id: AgentIdentity): { certPem: string; keyPem: string } {
  return { certPem: id.chain.map((d) => encodePem('CERTIFICATE', d)).join(''), keyPem: encodePem('PRIVATE KEY', id.key) };
}

/** The leaf's validity in milliseconds; ERR_SERVER_RESPONSE when the server sent no certificate. */
export function leafValidity(chain: Buffer[]): { notBefore: number; notAfter: number } {
  try {
    // writ's own DER reader: a tenth of the time of a full X509Certificate, for every SVID the agent gets.
    const info = readCertificateInfo(chain[0]!);
    return { notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime() };
  } catch (cause) {
    throw new WritError('ERR_SERVER_RESPONSE', 'The server sent an SVID that is not a DER certificate.', { cause });
  }
}

export async function attestAgent(client: NodeClient, attestor: AgentNodeAttestor, logger: Logger): Promise<AttestOutcome> {
  const key = newWorkloadKey();
  const csr = buildCsrDer(key.spki, key.privateKey).toString('base64');
  let answer = await client.post<AttestAnswer>('/v1/node/attest', { attestor: attestor.name, payload: await attestor.payload(), csr });
  for (let round = 0; answer.challenge !== undefined; round++) {
    if (round >= MAX_CHALLENGE_ROUNDS || typeof answer.session !== 'string') {
      throw new WritError('ERR_SERVER_RESPONSE', 'The server sent more attestation challenges than an attestor may ask for.');
    }
    const response = await attestor.respond(answer.challenge);
    answer = await client.post<AttestAnswer>('/v1/node/attest/respond', { session: answer.session, response });
  }
  if (typeof answer.spiffe_id !== 'string' || !Array.isArray(answer.svid) || answer.svid.length === 0 || typeof answer.bundle?.document !== 'string') {
    throw new WritError('ERR_SERVER_RESPONSE', 'The server\'s attestation answer lacks the agent SVID or the bundle.');
  }
  const chain = answer.svid.map((s) => Buffer.from(s, 'base64'));
  const v = leafValidity(chain);
  logger.info({ event: 'agent.attested', agent_id: answer.spiffe_id, attestor: attestor.name, not_after: new Date(v.notAfter).toISOString() }, 'node attestation succeeded');
  return { identity: { spiffeId: answer.spiffe_id, chain, key: key.pkcs8, ...v }, bundleDocument: answer.bundle.document };
}

export async function renewAgent(client: NodeClient, current: AgentIdentity, logger: Logger): Promise<AgentIdentity> {
  const key = newWorkloadKey();
  const csr = buildCsrDer(key.spki, key.privateKey).toString('base64');
  const answer = await client.post<{ svid?: string[] }>('/v1/node/renew', { csr });
  if (!Array.isArray(answer.svid) || answer.svid.length === 0) throw new WritError('ERR_SERVER_RESPONSE', 'The server\'s renewal answer lacks the agent SVID.');
  const chain = answer.svid.map((s) => Buffer.from(s, 'base64'));
  const v = leafValidity(chain);
  logger.info({ event: 'agent.renewed', agent_id: current.spiffeId, not_after: new Date(v.notAfter).toISOString() }, 'agent SVID renewed');
  return { spiffeId: current.spiffeId, chain, key: key.pkcs8, ...v };
}
