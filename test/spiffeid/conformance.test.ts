/**
 * Every case in test/fixtures/conformance (collected from go-spiffe, java-spiffe, rust-spiffe,
 * py-spiffe and SPIRE tests; provenance in that folder's README) under the strict policy.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { isWritError } from '../../src/errors.js';
import { parseSpiffeId, parseTrustDomain } from '../../src/spiffeid/index.js';

interface IdCase {
  input: string;
  valid: boolean;
  trustDomain?: string;
  path?: string;
  normalized?: string;
  source: string;
}
interface TdCase {
  input: string;
  valid: boolean;
  trustDomain?: string;
  inputKind: 'name' | 'id';
  source: string;
}

const fixtures = new URL('../fixtures/conformance/', import.meta.url);
const idCases = JSON.parse(readFileSync(new URL('spiffeid.json', fixtures), 'utf8')) as IdCase[];
const tdCases = JSON.parse(readFileSync(new URL('trustdomain.json', fixtures), 'utf8')) as TdCase[];

function show(s: string): string {
  const j = JSON.stringify(s);
  return j.length > 80 ? `${j.slice(0, 70)}…(${s.length} chars)` : j;
}

describe('spiffeid conformance', () => {
  it('has all 1,273 cases', () => {
    expect(idCases.length + tdCases.length).to.equal(1273);
  });

  describe(`SPIFFE IDs (${idCases.length} cases)`, () => {
    idCases.forEach((c, i) => {
      it(`#${i} ${c.valid ? 'accepts' : 'rejects'} ${show(c.input)} [${c.source.split(':')[0]}]`, () => {
        if (c.valid) {
          const id = parseSpiffeId(c.input);
          expect(id.trustDomain.name).to.equal(c.trustDomain);
          expect(id.path).to.equal(c.path);
          expect(id.toString()).to.equal(c.normalized);
        } else {
          let err: unknown;
          try {
            parseSpiffeId(c.input);
          } catch (e) {
            err = e;
          }
          expect(isWritError(err), 'a WritError').to.equal(true);
          expect((err as { code: string }).code).to.match(/^ERR_SPIFFEID_/);
        }
      });
    });
  });

  describe(`trust domains (${tdCases.length} cases)`, () => {
    tdCases.forEach((c, i) => {
      it(`#${i} ${c.valid ? 'accepts' : 'rejects'} ${c.inputKind} ${show(c.input)}`, () => {
        if (c.valid) {
          expect(parseTrustDomain(c.input).name).to.equal(c.trustDomain);
        } else {
          expect(() => parseTrustDomain(c.input)).to.throw().with.property('code').that.matches(/^ERR_SPIFFEID_/);
        }
      });
    });
  });
});
