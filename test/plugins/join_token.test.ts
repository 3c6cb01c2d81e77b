/**
 * The join_token node attestor against a real SQLite datastore in a temporary directory: a token
 * attests once, then is ERR_TOKEN_USED; expired and unknown tokens get the store's codes; two
 * racing attestations with one token let exactly one through; malformed payloads are
 * ERR_NODE_ATTESTATION; the token text never shows up in errors or logs. Plus the agent half
 * (inline token, token file) and a property test of the payload parser.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { ManualClock } from '../../src/clock.js';
import { type DataStore, openDataStore } from '../../src/datastore/index.js';
import { WritError, isWritError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { hashJoinToken, joinTokenAgentPlugin, joinTokenServerPlugin, type ServerNodeAttestor } from '../../src/plugins/index.js';
import { parseJoinTokenPayload } from '../../src/plugins/nodeattestor/join_token.js';
import { failure } from './helpers.js';

const TD = 'example.org';
const lines: string[] = [];
const logger: Logger = {
  debug: (o, m) => void lines.push(JSON.stringify([o, m])),
  info: (o, m) => void lines.push(JSON.stringify([o, m])),
  warn: (o, m) => void lines.push(JSON.stringify([o, m])),
  error: (o, m) => void lines.push(JSON.stringify([o, m])),
  child: () => logger,
};
const noChallenge = (): Promise<unknown> => Promise.reject(new Error('join_token must not challenge'));

function expectNoSecret(err: WritError, token: string): void {
  expect(err.message).to.not.include(token);
  expect(JSON.stringify(err.toJSON())).to.not.include(token);
  expect(String(err.stack)).to.not.include(token);
}

describe('plugins: join_token node attestor', () => {
  let dir = '';
  let store: DataStore;
  let attestor: ServerNodeAttestor;
  const clock = new ManualClock(Date.UTC(2026, 2, 1));
  let seq = 0;

  /** A fresh random-looking token, stored by hash with the given lifetime. */
  async function newToken(ttl = 600, spiffeId: string | null = null): Promise<string> {
    seq += 1;
    const token = `tok${seq}_${Buffer.from(`writ join token ${seq} ${Math.random()}`).toString('base64url')}`.slice(0, 40);
    const now = Math.floor(clock.nowMs() / 1000);
    await store.createJoinToken({ tokenHash: hashJoinToken(token), expiresAt: now + ttl, spiffeId, createdAt: now, usedAt: null });
    return token;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-join-token-'));
    store = await openDataStore({ type: 'sqlite', path: join(dir, 'datastore.sqlite3') }, { clock, logger });
    attestor = await joinTokenServerPlugin.create({}, { logger, clock, trustDomain: TD, store });
  });
  after(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    lines.length = 0;
  });

  it('attests once with the hash-derived path and selector, then refuses the same token as ERR_TOKEN_USED', async () => {
    const token = await newToken();
    const id = hashJoinToken(token).slice(0, 32);
    const result = await attestor.attest({ token }, noChallenge);
    expect(result).to.deep.equal({ agentPath: `join_token/${id}`, selectors: [{ type: 'join_token', value: id }], canReattest: false });
    expect(result.agentPath).to.match(/^join_token\/[0-9a-f]{32}$/);
    const again = await failure(attestor.attest({ token }, noChallenge));
    expect(again.code).to.equal('ERR_TOKEN_USED');
    expectNoSecret(again, token);
    expect(lines.join('\n')).to.not.include(token);
  });

  it('carries the node alias SPIFFE ID stored with the token', async () => {
    const token = await newToken(600, `spiffe://${TD}/nodes/rack-7`);
    const result = await attestor.attest({ token }, noChallenge);
    expect(result.aliases).to.deep.equal([`spiffe://${TD}/nodes/rack-7`]);
  });

  it('refuses an expired token with ERR_TOKEN_EXPIRED (by the injected clock)', async () => {
    const token = await newToken(60);
    clock.advance(61_000);
    const err = await failure(attestor.attest({ token }, noChallenge));
    expect(err.code).to.equal('ERR_TOKEN_EXPIRED');
    expectNoSecret(err, token);
  });

  it('refuses an unknown token with ERR_TOKEN_INVALID', async () => {
    const token = 'NeverIssuedToken_0123456789abcdef';
    const err = await failure(attestor.attest({ token }, noChallenge));
    expect(err.code).to.equal('ERR_TOKEN_INVALID');
    expectNoSecret(err, token);
  });

  it('lets exactly one of several racing attestations with one token through', async () => {
    const token = await newToken();
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => attestor.attest({ token }, noChallenge)));
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as WritError).code).to.equal('ERR_TOKEN_USED');
  });

  const secret = 'SecretTokenText_abcdefghijklmnop';
  const malformed: Array<[string, unknown]> = [
    ['null', null],
    ['a string', secret],
    ['an array', [secret]],
    ['an empty object', {}],
    ['a numeric token', { token: 1234567890123456 }],
    ['a short token', { token: 'short' }],
    ['a 257-character token', { token: 'a'.repeat(257) }],
    ['a token with a character outside base64url', { token: `${secret}+/` }],
    ['a token with a newline', { token: `${secret}\n` }],
    ['an extra member', { token: secret, agent: 'x' }],
  ];
  for (const [what, payload] of malformed) {
    it(`refuses ${what} as ERR_NODE_ATTESTATION without echoing it`, async () => {
      const err = await failure(attestor.attest(payload, noChallenge));
      expect(err.code).to.equal('ERR_NODE_ATTESTATION');
      expect(err.message).to.match(/^The join_token payload is malformed/);
      expectNoSecret(err, secret);
      expect(lines.join('\n')).to.not.include(secret);
    });
  }

  it('parses arbitrary JSON payloads without throwing anything but WritError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.record({ token: fc.jsonValue() }), fc.record({ token: fc.string({ minLength: 10, maxLength: 300 }) })), async (payload) => {
        try {
          parseJoinTokenPayload(payload);
        } catch (e) {
          expect(isWritError(e), String(e)).to.equal(true);
          expect((e as WritError).code).to.equal('ERR_NODE_ATTESTATION');
        }
        try {
          await attestor.attest(payload, noChallenge);
        } catch (e) {
          expect(isWritError(e), String(e)).to.equal(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  describe('agent side', () => {
    it('sends the inline token and attests against the server side', async () => {
      const token = await newToken();
      const agent = await joinTokenAgentPlugin.create({ token }, { logger, clock, trustDomain: TD });
      const result = await attestor.attest(await agent.payload(), (c) => agent.respond(c));
      expect(result.agentPath).to.equal(`join_token/${hashJoinToken(token).slice(0, 32)}`);
    });

    it('reads the token from token_path (trimming the newline)', async () => {
      const token = await newToken();
      const file = join(dir, 'token');
      writeFileSync(file, `${token}\n`, { mode: 0o600 });
      const agent = await joinTokenAgentPlugin.create({ token_path: file }, { logger, clock, trustDomain: TD });
      expect(await agent.payload()).to.deep.equal({ token });
    });

    it('refuses a config with both, neither, or an invalid token, without echoing the token', async () => {
      const parse = (c: unknown) => joinTokenAgentPlugin.configSchema.safeParse(c);
      expect(parse({ token: secret, token_path: '/x' }).success).to.equal(false);
      expect(parse({}).success).to.equal(false);
      const bad = parse({ token: `${secret}!` });
      expect(bad.success).to.equal(false);
      expect(JSON.stringify(bad.error?.issues)).to.not.include(secret);
      const file = join(dir, 'bad-token');
      writeFileSync(file, `${secret} and more\n`);
      const err = await failure(joinTokenAgentPlugin.create({ token_path: file }, { logger, clock, trustDomain: TD }));
      expect(err.code).to.equal('ERR_PLUGIN_CONFIG');
      expectNoSecret(err, secret);
      const missing = await failure(joinTokenAgentPlugin.create({ token_path: join(dir, 'absent') }, { logger, clock, trustDomain: TD }));
      expect(missing.code).to.equal('ERR_PLUGIN_CONFIG');
    });

    it('refuses a challenge, since join_token has none', async () => {
      const agent = await joinTokenAgentPlugin.create({ token: secret }, { logger, clock, trustDomain: TD });
      const err = await failure(agent.respond({ nonce: 'x' }));
      expect(err.code).to.equal('ERR_NODE_ATTESTATION');
      expectNoSecret(err, secret);
    });
  });
});
