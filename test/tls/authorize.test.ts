/**
 * Authorizers: the `*` segment rules of authorizeMatch as a table, pattern errors, the ID,
 * one-of and member-of authorizers, composition, and the fail-closed handling of custom ones.
 */
import { expect } from 'chai';
import { WritError } from '../../src/errors.js';
import { matchId, parseSpiffeId } from '../../src/spiffeid/index.js';
import {
  type Authorizer,
  authorizeAll,
  authorizeAny,
  authorizeAnyOf,
  authorizeId,
  authorizeMatch,
  authorizeMatcher,
  authorizeMemberOf,
  authorizeOneOf,
  verifyPeer,
} from '../../src/tls/index.js';
import { runAuthorizer } from '../../src/tls/authorize.js';

const verdict = (a: Authorizer, id: string): string => runAuthorizer(a, parseSpiffeId(id), [])?.code ?? 'allow';

describe('tls: authorizers', () => {
  // [pattern, id, allowed]
  const MATCH_TABLE: Array<[string, string, boolean]> = [
    ['spiffe://example.org/agent/*/task/*', 'spiffe://example.org/agent/summarizer/task/t1', true],
    ['spiffe://example.org/agent/*/task/*', 'spiffe://example.org/agent/summarizer', false], // fewer segments
    ['spiffe://example.org/agent/*/task/*', 'spiffe://example.org/agent/summarizer/task/t1/sub', false], // more segments
    ['spiffe://example.org/agent/*/task/*', 'spiffe://example.org/agent/summarizer/job/t1', false], // literal differs
    ['spiffe://example.org/agent/*/task/*', 'spiffe://example.com/agent/summarizer/task/t1', false], // other trust domain
    ['spiffe://example.org/agent/*/task/*', 'spiffe://example.org/Agent/summarizer/task/t1', false], // case matters in paths
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/summarizer', true],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/summarizer/task/t1', false], // `*` is one segment, not a prefix
    ['spiffe://example.org/*', 'spiffe://example.org/agent', true],
    ['spiffe://example.org/*/*', 'spiffe://example.org/agent', false],
    ['spiffe://example.org/agent/summarizer', 'spiffe://example.org/agent/summarizer', true], // no wildcard: exact
    ['spiffe://example.org/agent/summarizer', 'spiffe://example.org/agent/summarizer2', false],
    ['spiffe://example.org/*/task/*', 'spiffe://example.org/agent/task/t1', true],
    ['spiffe://example.org/*/task/*', 'spiffe://example.org/agent/x/task/t1', false],
  ];
  for (const [pattern, id, allowed] of MATCH_TABLE) {
    it(`authorizeMatch(${pattern}) ${allowed ? 'allows' : 'refuses'} ${id}`, () => {
      expect(verdict(authorizeMatch(pattern), id)).to.equal(allowed ? 'allow' : 'ERR_TLS_PEER_NOT_AUTHORIZED');
    });
  }

  const BAD_PATTERNS: Array<[string, RegExp]> = [
    ['spiffe://example.org/agent/task-*', /mixes "\*"/],
    ['spiffe://example.org/agent/**', /mixes "\*"/],
    ['spiffe://example.org/agent/*x/task', /mixes "\*"/],
    ['spiffe://*.example.org/agent/*', /trust domain/],
    ['spiffe://*/agent', /trust domain/],
    ['spiffe://Example.org/agent/*', /trust domain/],
    ['spiffe://example.org', /no path/],
    ['spiffe://example.org/', /no path/],
    ['spiffe://example.org/agent//x', /segment 2/],
    ['spiffe://example.org/agent/../x', /segment 2/],
    ['spiffe://example.org/agent/*/', /segment 3/],
    ['https://example.org/agent/*', /must start with/],
    ['', /must start with/],
  ];
  for (const [pattern, why] of BAD_PATTERNS) {
    it(`authorizeMatch refuses the pattern ${JSON.stringify(pattern)} with ERR_TLS_PATTERN`, () => {
      let err: WritError | undefined;
      try {
        authorizeMatch(pattern);
      } catch (e) {
        err = e as WritError;
      }
      expect(err?.code).to.equal('ERR_TLS_PATTERN');
      expect(err?.message).to.match(why);
    });
  }

  it('authorizeAny, authorizeId, authorizeOneOf and authorizeMemberOf', () => {
    const id = 'spiffe://example.org/agent/a';
    expect(verdict(authorizeAny(), id)).to.equal('allow');
    expect(verdict(authorizeId(id), id)).to.equal('allow');
    expect(verdict(authorizeId(parseSpiffeId(id)), `${id}b`)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(verdict(authorizeOneOf('spiffe://example.org/x', id), id)).to.equal('allow');
    expect(verdict(authorizeOneOf('spiffe://example.org/x'), id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(verdict(authorizeOneOf(), id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(verdict(authorizeMemberOf('example.org'), id)).to.equal('allow');
    expect(verdict(authorizeMemberOf('partner.org'), id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(() => authorizeId('spiffe://EXAMPLE.org/a')).to.throw().with.property('code', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS');
    const refusal = runAuthorizer(authorizeId('spiffe://example.org/x'), parseSpiffeId(id), []);
    expect(refusal?.httpStatus).to.equal(403);
    expect(refusal?.details).to.deep.equal({ spiffe_id: id, expected: 'spiffe://example.org/x' });
  });

  it('composes: authorizeAll needs every one, authorizeAnyOf needs one', () => {
    const tasks = authorizeMatch('spiffe://example.org/agent/*/task/*');
    const notT9 = (id: { path: string }) => !id.path.endsWith('/t9');
    expect(verdict(authorizeAll(tasks, notT9), 'spiffe://example.org/agent/a/task/t1')).to.equal('allow');
    expect(verdict(authorizeAll(tasks, notT9), 'spiffe://example.org/agent/a/task/t9')).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(verdict(authorizeAll(), 'spiffe://example.org/a')).to.equal('allow');
    const either = authorizeAnyOf(tasks, authorizeId('spiffe://example.org/ops/admin'));
    expect(verdict(either, 'spiffe://example.org/ops/admin')).to.equal('allow');
    expect(verdict(either, 'spiffe://example.org/agent/a/task/t1')).to.equal('allow');
    const refused = runAuthorizer(either, parseSpiffeId('spiffe://example.org/agent/a'), []);
    expect(refused?.code).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(refused?.details?.refusals).to.have.length(2);
    expect(verdict(authorizeAnyOf(), 'spiffe://example.org/a')).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
  });

  it('fails closed on custom authorizers: false, throws and odd values refuse; other codes are rewrapped', () => {
    const id = 'spiffe://example.org/a';
    expect(verdict(() => true, id)).to.equal('allow');
    expect(verdict(() => undefined, id)).to.equal('allow');
    expect(verdict(() => false, id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(verdict(() => 'yes' as never, id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(verdict(() => {
      throw new Error('bug');
    }, id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    const wrapped = runAuthorizer(authorizeMatcher(matchId(parseSpiffeId('spiffe://example.org/b'))), parseSpiffeId(id), []);
    expect([wrapped?.code, wrapped?.details?.reason]).to.deep.equal(['ERR_TLS_PEER_NOT_AUTHORIZED', 'ERR_SPIFFEID_NOT_MATCHED']);
    expect(verdict(() => new WritError('ERR_INTERNAL', 'x.'), id)).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
  });

  it('verifyPeer refuses an empty chain with ERR_TLS_PEER_MISSING before looking at anything else', () => {
    expect(() => verifyPeer([], { getX509BundleForTrustDomain: () => { throw new Error('not reached'); } }, authorizeAny())).to.throw().with.property('code', 'ERR_TLS_PEER_MISSING');
  });
});
