/**
 * Who an agent is on the node API and what it may serve. An agent authenticates with its agent
 * SVID over mTLS: the chain must verify against this trust domain's bundle, the ID must be under
 * /writ/agent/, and the agent must have a record that is not banned (evicted agents have none).
 * It may serve the entries parented to its own ID and to every node alias whose selectors are a
 * subset of its node selectors.
 */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { AttestedAgent, EntryFilter, RegistrationEntry } from '../../datastore/index.js';
import { WritError } from '../../errors.js';
import { X509Bundle } from '../../bundle/index.js';
import { parseTrustDomain } from '../../spiffeid/index.js';
import { readCertificateInfo, verifyX509Svid, type VerifiedX509Svid } from '../../svid/index.js';
import type { ServerContext } from '../context.js';
import { SERVER_ID_PATH } from '../serversvid.js';

export const AGENT_ID_PREFIX = '/writ/agent/';

/** The peer's certificate chain (leaf first) as DER, from a TLS socket. */
export function peerChain(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}

/** An agent SVID already verified on a connection: until the trust inputs change or its chain expires. */
interface VerifiedPeer {
  id: string;
  /** The earliest notAfter of the verified chain, ms. */
  untilMs: number;
  /** authority.slotsKey() of the roots and signing CAs it was verified against. */
  trust: string;
}

/**
 * The node API refuses TLS renegotiation (listen.ts), so a connection's client certificate cannot
 * change once the handshake is done: its chain is verified on the first request and the result
 * reused on the connection's later requests (an agent syncs on one kept-alive connection), until a
 * root or signing CA is added, changed or removed, or the chain's earliest notAfter passes. The
 * agent record (banned, evicted) is still read on every request.
 */
const verifiedPeers = new WeakMap<TLSSocket, VerifiedPeer>();
const TRUST_KINDS = ['x509-root', 'x509-signing'] as const;

function verifyPeer(ctx: ServerContext, socket: TLSSocket): string {
  const trust = ctx.authority.slotsKey(...TRUST_KINDS);
  const nowMs = ctx.clock.nowMs();
  const known = verifiedPeers.get(socket);
  if (known && known.trust === trust && nowMs < known.untilMs) return known.id;
  const chain = peerChain(socket);
  if (chain.length === 0) throw new WritError('ERR_UNAUTHENTICATED', 'This node API call needs the agent SVID as the TLS client certificate.');
  const bundle = new X509Bundle(parseTrustDomain(ctx.config.trustDomain), ctx.authority.x509Authorities());
  let verified: VerifiedX509Svid;
  try {
    // A resumed TLS session carries the leaf but not always its intermediate: the server knows its
    // own signing CAs, so it offers them as candidates (the path search ignores the ones not needed).
    const candidates = [...chain, ...ctx.authority.signingCas().map((c) => c.certificate)];
    verified = verifyX509Svid(candidates, bundle, { now: ctx.clock.now() });
  } catch (cause) {
    verifiedPeers.delete(socket);
    throw new WritError('ERR_UNAUTHENTICATED', 'The client certificate is not a valid SVID of this trust domain.', { cause });
  }
  const id = verified.id.toString();
  const untilMs = Math.min(...(verified.verifiedChains[0] ?? []).map((der) => readCertificateInfo(der).notAfter.getTime()));
  verifiedPeers.set(socket, { id, untilMs, trust });
  return id;
}

/** Verifies the caller's agent SVID (once per connection, see verifyPeer) and returns its record. */
export async function authenticateAgent(ctx: ServerContext, socket: TLSSocket): Promise<AttestedAgent> {
  const id = verifyPeer(ctx, socket);
  const path = id.slice(`spiffe://${ctx.config.trustDomain}`.length);
  if (!path.startsWith(AGENT_ID_PREFIX)) throw new WritError('ERR_PERMISSION_DENIED', `${id} is not an agent ID.`);
  const agent = await ctx.datastore.getAgent(id);
  if (!agent) throw new WritError('ERR_AGENT_NOT_FOUND', `${id} is not an attested agent (it was evicted or never attested); attest again.`);
  if (agent.banned) throw new WritError('ERR_AGENT_BANNED', `${id} is banned.`);
  return agent;
}

async function listAll(ctx: ServerContext, filter: EntryFilter): Promise<RegistrationEntry[]> {
  const out: RegistrationEntry[] = [];
  let pageToken: string | undefined;
  do {
    const page = await ctx.datastore.listEntries(filter, { pageSize: 10_000, ...(pageToken ? { pageToken } : {}) });
    out.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

export interface AgentScope {
  agentId: string;
  /** The agent ID and its node alias IDs. */
  parents: Set<string>;
  /** Changes when the alias set changes; the agent then asks for a full sync. */
  aliasKey: string;
}

export function serverId(ctx: ServerContext): string {
  return `spiffe://${ctx.config.trustDomain}${SERVER_ID_PATH}`;
}

export async function scopeOf(ctx: ServerContext, agent: AttestedAgent): Promise<AgentScope> {
  const aliases = agent.selectors.length === 0 ? [] : await listAll(ctx, { parentId: serverId(ctx), selectors: { set: agent.selectors, match: 'subset' } });
  const ids = [...new Set(aliases.map((a) => a.spiffeId))].sort();
  return {
    agentId: agent.spiffeId,
    parents: new Set([agent.spiffeId, ...ids]),
    aliasKey: createHash('sha256').update(ids.join('\n')).digest('hex').slice(0, 32),
  };
}

/** Every entry the agent may serve. */
export async function authorizedEntries(ctx: ServerContext, scope: AgentScope): Promise<RegistrationEntry[]> {
  const out: RegistrationEntry[] = [];
  for (const p of scope.parents) out.push(...(await listAll(ctx, { parentId: p })));
  return out;
}
