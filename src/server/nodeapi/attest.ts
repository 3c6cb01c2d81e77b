/**
 * Node attestation sessions. An agent posts its attestor's payload and a CSR for its own key; the
 * server attestor may answer with challenges (x509pop), each carried back to the agent in an HTTP
 * response and answered in the next request of the same session. A session lives 30 s at most and
 * its challenges are answered once. Success: an agent record, node alias entries the attestation
 * grants, and the agent's SVID.
 */
import { randomBytes } from 'node:crypto';
import { WritError } from '../../errors.js';
import type { NodeAttestationResult, ServerNodeAttestor } from '../../plugins/nodeattestor/types.js';
import type { ServerContext } from '../context.js';
import { serverId } from './agents.js';
import { issueAgentSvid } from './issue.js';

export type AttestStep =
  | { kind: 'challenge'; session: string; challenge: unknown }
  | { kind: 'done'; spiffeId: string; chain: Buffer[]; notAfter: Date };

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface Session {
  id: string;
  next: Deferred<AttestStep>;
  answer: Deferred<unknown> | undefined;
  timer: NodeJS.Timeout;
}

export const MAX_SESSIONS = 1000;

export class AttestationSessions {
  readonly #sessions = new Map<string, Session>();

  constructor(
    private readonly ctx: ServerContext,
    private readonly attestors: ReadonlyMap<string, ServerNodeAttestor>,
    private readonly timeoutMs = 30_000,
  ) {}

  get open(): number {
    return this.#sessions.size;
  }

  async start(attestorName: unknown, payload: unknown, csrB64: unknown): Promise<AttestStep> {
    const attestor = typeof attestorName === 'string' ? this.attestors.get(attestorName) : undefined;
    if (!attestor) {
      throw new WritError('ERR_NODE_ATTESTATION', `This server does not accept the node attestor "${String(attestorName).slice(0, 64)}"; it accepts ${[...this.attestors.keys()].join(', ') || 'none'}.`);
    }
    if (typeof csrB64 !== 'string') throw new WritError('ERR_CA_CSR', 'csr must be a base64 DER PKCS#10 request.');
    const csr = Buffer.from(csrB64, 'base64');
    // Check the CSR before the attestor runs, so a bad request never spends a join token.
    await this.ctx.authority.verifyCsr(csr);
    if (this.#sessions.size >= MAX_SESSIONS) throw new WritError('ERR_NODE_ATTESTATION', 'Too many node attestations are in progress; try again shortly.');
    const session: Session = {
      id: randomBytes(16).toString('hex'),
      next: deferred(),
      answer: undefined,
      timer: setTimeout(() => this.#expire(session), this.timeoutMs),
    };
    session.timer.unref();
    this.#sessions.set(session.id, session);
    const challenge = (data: unknown): Promise<unknown> => {
      const answer = deferred<unknown>();
      session.answer = answer;
      session.next.resolve({ kind: 'challenge', session: session.id, challenge: data });
      return answer.promise;
    };
    void attestor
      .attest(payload, challenge)
      .then((result) => this.#finish(attestor.name, result, csr))
      .then(
        (done) => {
          this.#end(session);
          session.next.resolve(done);
        },
        (e: unknown) => {
          this.#end(session);
          session.next.reject(e);
        },
      );
    return session.next.promise;
  }

  async respond(sessionId: unknown, response: unknown): Promise<AttestStep> {
    const session = typeof sessionId === 'string' ? this.#sessions.get(sessionId) : undefined;
    const answer = session?.answer;
    if (!session || !answer) throw new WritError('ERR_NODE_ATTESTATION', 'There is no attestation waiting for this response (unknown, finished or expired session).');
    session.answer = undefined;
    session.next = deferred();
    answer.resolve(response);
    return session.next.promise;
  }

  close(): void {
    for (const s of [...this.#sessions.values()]) this.#expire(s);
  }

  #end(s: Session): void {
    clearTimeout(s.timer);
    this.#sessions.delete(s.id);
  }

  #expire(s: Session): void {
    this.#end(s);
    const e = new WritError('ERR_NODE_ATTESTATION', 'The attestation session expired before the agent answered.');
    s.answer?.reject(e);
    s.next.reject(e);
  }

  async #finish(attestorName: string, result: NodeAttestationResult, csr: Buffer): Promise<AttestStep> {
    const { ctx } = this;
    const agentId = `spiffe://${ctx.config.trustDomain}/writ/agent/${result.agentPath}`;
    const existing = await ctx.datastore.getAgent(agentId);
    if (existing?.banned) throw new WritError('ERR_AGENT_BANNED', `${agentId} is banned; an operator must delete it before it can attest again.`);
    for (const alias of result.aliases ?? []) {
      try {
        await ctx.datastore.createEntries([
          { spiffeId: alias, parentId: serverId(ctx), selectors: result.selectors, x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null },
        ]);
      } catch (e) {
        if (!(e instanceof WritError && e.code === 'ERR_ENTRY_EXISTS')) throw e;
      }
    }
    const svid = await issueAgentSvid(ctx, agentId, csr);
    const now = Math.floor(ctx.clock.nowMs() / 1000);
    await ctx.datastore.upsertAgent({
      spiffeId: agentId,
      attestationType: attestorName,
      serial: svid.serial,
      expiresAt: Math.floor(svid.notAfter.getTime() / 1000),
      selectors: result.selectors,
      banned: false,
      canReattest: result.canReattest,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    });
    ctx.logger.info({ event: 'agent.attested', agent_id: agentId, attestor: attestorName, selectors: result.selectors.map((s) => `${s.type}:${s.value}`), serial: svid.serial }, 'agent attested');
    return { kind: 'done', spiffeId: agentId, chain: svid.chain, notAfter: svid.notAfter };
  }
}
