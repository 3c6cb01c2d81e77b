import { expect } from 'chai';
import { WritError } from '../../src/errors.js';
import { validateEntryFilter, validateEntryUpdate, validateNewEntry } from '../../src/registry/index.js';

const TD = 'example.org';
const base = {
  spiffe_id: 'spiffe://example.org/agent/summarizer',
  parent_id: 'spiffe://example.org/writ/agent/x',
  selectors: [{ type: 'unix', value: 'uid:1000' }],
};

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(WritError);
    return (e as WritError).code;
  }
  return 'accepted';
}

describe('registry/entry validation', () => {
  it('accepts a minimal entry and fills defaults', () => {
    const e = validateNewEntry(base, TD);
    expect(e).to.deep.include({
      spiffeId: base.spiffe_id,
      parentId: base.parent_id,
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      dnsNames: [],
      hint: '',
      admin: false,
      downstream: false,
      federatesWith: [],
      expiresAt: null,
    });
    expect(e.selectors).to.deep.equal([{ type: 'unix', value: 'uid:1000' }]);
  });

  it('normalizes selectors, DNS names and federated trust domains', () => {
    const e = validateNewEntry(
      {
        ...base,
        selectors: [{ type: 'unix', value: 'uid:1000' }, { type: 'unix', value: 'gid:5' }, { type: 'unix', value: 'uid:1000' }],
        dns_names: ['Web.Example.org', 'web.example.org', '*.svc.local'],
        federates_with: ['spiffe://partner.org', 'other.org', 'partner.org'],
      },
      TD,
    );
    expect(e.selectors).to.deep.equal([{ type: 'unix', value: 'gid:5' }, { type: 'unix', value: 'uid:1000' }]);
    expect(e.dnsNames).to.deep.equal(['web.example.org', '*.svc.local']);
    expect(e.federatesWith).to.deep.equal(['other.org', 'partner.org']);
  });

  const refusals: Array<[string, Record<string, unknown>, string]> = [
    ['malformed SPIFFE ID', { spiffe_id: 'spiffe://example.org/a//b' }, 'ERR_SPIFFEID_PATH'],
    ['upper-case trust domain', { spiffe_id: 'spiffe://Example.org/a' }, 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
    ['foreign trust domain', { spiffe_id: 'spiffe://other.org/a' }, 'ERR_SPIFFEID_NOT_MEMBER'],
    ['root ID', { spiffe_id: 'spiffe://example.org' }, 'ERR_SPIFFEID_PATH'],
    ['reserved /writ', { spiffe_id: 'spiffe://example.org/writ' }, 'ERR_SPIFFEID_RESERVED'],
    ['reserved /writ/x', { spiffe_id: 'spiffe://example.org/writ/agent/x' }, 'ERR_SPIFFEID_RESERVED'],
    ['parent in another trust domain', { parent_id: 'spiffe://other.org/writ/agent/x' }, 'ERR_SPIFFEID_NOT_MEMBER'],
    ['no selectors', { selectors: [] }, 'ERR_SELECTOR_INVALID'],
    ['selector type with colon', { selectors: [{ type: 'un:ix', value: 'x' }] }, 'ERR_SELECTOR_INVALID'],
    ['selector without value', { selectors: [{ type: 'unix', value: '' }] }, 'ERR_SELECTOR_INVALID'],
    ['negative TTL', { x509_svid_ttl: -1 }, 'ERR_TTL_INVALID'],
    ['fractional TTL', { jwt_svid_ttl: 1.5 }, 'ERR_TTL_INVALID'],
    ['string TTL', { x509_svid_ttl: '1h' }, 'ERR_TTL_INVALID'],
    ['huge TTL', { x509_svid_ttl: 10 ** 12 }, 'ERR_TTL_INVALID'],
    ['bad DNS name', { dns_names: ['bad_name.example'] }, 'ERR_DNS_NAME_INVALID'],
    ['hint too long', { hint: 'h'.repeat(1025) }, 'ERR_ENTRY_INVALID'],
    ['federates with itself', { federates_with: ['example.org'] }, 'ERR_ENTRY_INVALID'],
    ['unknown field', { colour: 'blue' }, 'ERR_ENTRY_INVALID'],
    ['server-set field', { revision: 3 }, 'ERR_ENTRY_INVALID'],
    ['bad id', { id: 'has space' }, 'ERR_ENTRY_INVALID'],
    ['admin not boolean', { admin: 'yes' }, 'ERR_ENTRY_INVALID'],
    ['expiry not a number', { expires_at: 'tomorrow' }, 'ERR_ENTRY_INVALID'],
  ];
  for (const [name, change, code] of refusals) {
    it(`refuses ${name} with ${code}`, () => {
      expect(codeOf(() => validateNewEntry({ ...base, ...change }, TD, 4))).to.equal(code);
    });
  }

  it('names the batch index and the field in the sentence', () => {
    try {
      validateNewEntry({ ...base, x509_svid_ttl: -5 }, TD, 7);
      expect.fail('accepted');
    } catch (e) {
      expect((e as WritError).message).to.match(/^entry 7: x509_svid_ttl: /);
      expect((e as WritError).details).to.deep.equal({ field: 'x509_svid_ttl' });
    }
  });

  it('validates an update as a patch of the given fields only', () => {
    expect(validateEntryUpdate({ id: 'abc', x509_svid_ttl: 60 }, TD)).to.deep.equal({ id: 'abc', patch: { x509SvidTtl: 60 } });
    expect(codeOf(() => validateEntryUpdate({ id: 'abc' }, TD))).to.equal('ERR_ENTRY_INVALID');
    expect(codeOf(() => validateEntryUpdate({ x509_svid_ttl: 60 }, TD))).to.equal('ERR_ENTRY_INVALID');
    expect(codeOf(() => validateEntryUpdate({ id: 'abc', spiffe_id: 'spiffe://example.org/writ/x' }, TD))).to.equal('ERR_SPIFFEID_RESERVED');
  });

  it('validates filters', () => {
    expect(validateEntryFilter({ selectors: { set: [{ type: 'unix', value: 'uid:1' }] } })).to.deep.equal({
      selectors: { set: [{ type: 'unix', value: 'uid:1' }], match: 'superset' },
    });
    expect(codeOf(() => validateEntryFilter({ selectors: { set: [{ type: 'unix', value: 'uid:1' }], match: 'most' } }))).to.equal('ERR_FILTER_INVALID');
    expect(codeOf(() => validateEntryFilter({ nope: 1 }))).to.equal('ERR_FILTER_INVALID');
    expect(codeOf(() => validateEntryFilter({ spiffe_id: 'http://x' }))).to.equal('ERR_SPIFFEID_SCHEME');
  });
});
