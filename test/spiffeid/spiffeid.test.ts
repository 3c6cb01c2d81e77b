import { expect } from 'chai';
import fc from 'fast-check';
import { isWritError } from '../../src/errors.js';
import {
  matchAny,
  matchId,
  matchMemberOf,
  matchOneOf,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdFromPath,
  spiffeIdFromSegments,
} from '../../src/spiffeid/index.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isWritError(e) ? e.code : 'NOT_A_WRIT_ERROR';
  }
  return undefined;
}

const tdChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split(''));
const pathChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'.split(''));
const tdName = fc.string({ unit: tdChar, minLength: 1, maxLength: 40 });
const segment = fc.string({ unit: pathChar, minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..');

describe('spiffeid', () => {
  it('names what is wrong with a stable code', () => {
    const table: Array<[string, string]> = [
      ['', 'ERR_SPIFFEID_EMPTY'],
      ['http://example.org/a', 'ERR_SPIFFEID_SCHEME'],
      ['SPIFFE://example.org/a', 'ERR_SPIFFEID_SCHEME'],
      ['spiffe:///a', 'ERR_SPIFFEID_TRUST_DOMAIN_MISSING'],
      ['spiffe://Example.org/a', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
      ['spiffe://example.org:443/a', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
      ['spiffe://user@example.org/a', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
      [`spiffe://${'a'.repeat(256)}/a`, 'ERR_SPIFFEID_TRUST_DOMAIN_TOO_LONG'],
      ['spiffe://example.org/', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a//b', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a/../b', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a/./b', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a%20b', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a?x=1', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a#f', 'ERR_SPIFFEID_PATH'],
      ['spiffe://example.org/a\n', 'ERR_SPIFFEID_PATH'],
    ];
    for (const [input, code] of table) expect(codeOf(() => parseSpiffeId(input)), input).to.equal(code);
  });

  it('does not echo control characters into messages', () => {
    try {
      parseSpiffeId('spiffe://example.org/a\u0000b');
      expect.fail('accepted');
    } catch (e) {
      expect((e as Error).message).to.include('U+0000').and.not.include('\u0000');
    }
  });

  it('parses trust domains from names and IDs', () => {
    expect(parseTrustDomain('example.org').name).to.equal('example.org');
    expect(parseTrustDomain('spiffe://example.org/x/y').name).to.equal('example.org');
    expect(parseTrustDomain('example.org').idString()).to.equal('spiffe://example.org');
    expect(parseTrustDomain('example.org').id().toString()).to.equal('spiffe://example.org');
    expect(codeOf(() => parseTrustDomain('Example.org'))).to.equal('ERR_SPIFFEID_TRUST_DOMAIN_CHARS');
    expect(codeOf(() => parseTrustDomain(''))).to.equal('ERR_SPIFFEID_TRUST_DOMAIN_MISSING');
  });

  it('builds IDs from segments and paths, validating each', () => {
    const td = parseTrustDomain('example.org');
    expect(spiffeIdFromSegments(td, 'agent', 'summarizer').toString()).to.equal('spiffe://example.org/agent/summarizer');
    expect(spiffeIdFromSegments(td).toString()).to.equal('spiffe://example.org');
    expect(spiffeIdFromPath(td, '/a/B').segments()).to.deep.equal(['a', 'B']);
    expect(codeOf(() => spiffeIdFromSegments(td, 'a/b'))).to.equal('ERR_SPIFFEID_PATH');
    expect(codeOf(() => spiffeIdFromSegments(td, ''))).to.equal('ERR_SPIFFEID_PATH');
    expect(codeOf(() => spiffeIdFromPath(td, 'a'))).to.equal('ERR_SPIFFEID_PATH');
  });

  it('compares, checks membership and path prefixes', () => {
    const a = parseSpiffeId('spiffe://example.org/agent/x');
    expect(a.equals(parseSpiffeId('spiffe://example.org/agent/x'))).to.equal(true);
    expect(a.equals(parseSpiffeId('spiffe://example.org/agent/X'))).to.equal(false);
    expect(a.memberOf(parseTrustDomain('example.org'))).to.equal(true);
    expect(a.memberOf(parseTrustDomain('example.com'))).to.equal(false);
    expect(a.hasPathPrefix('/agent')).to.equal(true);
    expect(parseSpiffeId('spiffe://example.org/agentx').hasPathPrefix('/agent')).to.equal(false);
    expect(JSON.stringify({ id: a })).to.equal('{"id":"spiffe://example.org/agent/x"}');
  });

  it('matchers accept and refuse', () => {
    const td = parseTrustDomain('example.org');
    const a = parseSpiffeId('spiffe://example.org/a');
    const b = parseSpiffeId('spiffe://example.org/b');
    const other = parseSpiffeId('spiffe://other.org/a');
    expect(codeOf(() => matchAny()(other))).to.equal(undefined);
    expect(codeOf(() => matchId(a)(a))).to.equal(undefined);
    expect(codeOf(() => matchId(a)(b))).to.equal('ERR_SPIFFEID_NOT_MATCHED');
    expect(codeOf(() => matchOneOf(a, b)(b))).to.equal(undefined);
    expect(codeOf(() => matchOneOf(a, b)(other))).to.equal('ERR_SPIFFEID_NOT_MATCHED');
    expect(codeOf(() => matchOneOf()(a))).to.equal('ERR_SPIFFEID_NOT_MATCHED');
    expect(codeOf(() => matchMemberOf(td)(b))).to.equal(undefined);
    expect(codeOf(() => matchMemberOf(td)(other))).to.equal('ERR_SPIFFEID_NOT_MATCHED');
  });

  it('property: every built ID round-trips through its string form', () => {
    fc.assert(
      fc.property(tdName, fc.array(segment, { maxLength: 6 }), (name, segs) => {
        const id = spiffeIdFromSegments(parseTrustDomain(name), ...segs);
        const again = parseSpiffeId(id.toString());
        expect(again.equals(id)).to.equal(true);
        expect(again.segments()).to.deep.equal(segs);
      }),
    );
  });

  it('property: any string either parses to itself or fails with an ERR_SPIFFEID_ code', () => {
    const near = fc.oneof(
      fc.string(),
      fc.string({ unit: 'grapheme' }),
      fc.tuple(fc.constantFrom('spiffe://', 'spiffe:/', 'SPIFFE://', ''), fc.string({ unit: fc.constantFrom(...'aZ09./-_:%@?#\u0000 é'.split('')) })).map(([p, s]) => p + s),
    );
    fc.assert(
      fc.property(near, (s) => {
        let id;
        try {
          id = parseSpiffeId(s);
        } catch (e) {
          expect(isWritError(e)).to.equal(true);
          expect((e as { code: string }).code).to.match(/^ERR_SPIFFEID_/);
          return;
        }
        expect(id.toString()).to.equal(s);
      }),
      { numRuns: 2000 },
    );
  });
});
