import { expect } from 'chai';
import fc from 'fast-check';
import { WritError } from '../../src/errors.js';
import { formatSelector, normalizeSelectors, parseSelector, selectorsSubsetOf } from '../../src/registry/index.js';

describe('registry/selector', () => {
  const good: Array<[string, string, string]> = [
    ['unix:uid:1000', 'unix', 'uid:1000'],
    ['x509pop:subject:cn:host-1', 'x509pop', 'subject:cn:host-1'],
    ['k8s:ns:default', 'k8s', 'ns:default'],
    ['a:b', 'a', 'b'],
  ];
  for (const [input, type, value] of good) {
    it(`parses ${input}`, () => {
      expect(parseSelector(input)).to.deep.equal({ type, value });
      expect(formatSelector(parseSelector(input))).to.equal(input);
    });
  }

  const bad: Array<[string, RegExp]> = [
    ['unix', /not of the form type:value/],
    [':uid:1000', /type is empty/],
    ['unix:', /empty value/],
    ['un ix:uid:1', /spaces/],
    ['unix:uid:\u0001', /control characters/],
    [`unix:${'x'.repeat(1100)}`, /longer than 1024/],
  ];
  for (const [input, why] of bad) {
    it(`refuses ${JSON.stringify(input.slice(0, 20))} with ERR_SELECTOR_INVALID`, () => {
      try {
        parseSelector(input);
        expect.fail('accepted');
      } catch (e) {
        expect(e).to.be.instanceOf(WritError);
        expect((e as WritError).code).to.equal('ERR_SELECTOR_INVALID');
        expect((e as WritError).message).to.match(why);
      }
    });
  }

  it('normalizes: sorted and without duplicates', () => {
    const s = normalizeSelectors([parseSelector('unix:uid:1'), parseSelector('docker:x:y'), parseSelector('unix:uid:1')]);
    expect(s.map(formatSelector)).to.deep.equal(['docker:x:y', 'unix:uid:1']);
  });

  it('subset matching is the workload rule', () => {
    const have = ['unix:uid:1000', 'unix:gid:1000', 'unix:user:alice'].map((s) => parseSelector(s));
    expect(selectorsSubsetOf([parseSelector('unix:uid:1000')], have)).to.equal(true);
    expect(selectorsSubsetOf([parseSelector('unix:uid:1000'), parseSelector('unix:gid:1000')], have)).to.equal(true);
    expect(selectorsSubsetOf([parseSelector('unix:uid:1000'), parseSelector('unix:gid:0')], have)).to.equal(false);
  });

  it('property: parse(format(s)) = s for any valid selector, and anything else is a WritError', () => {
    const typeArb = fc.stringMatching(/^[a-z0-9_-]{1,16}$/);
    const valueArb = fc.stringMatching(/^[a-zA-Z0-9:._/-]{1,64}$/);
    fc.assert(fc.property(typeArb, valueArb, (type, value) => {
      const s = parseSelector(`${type}:${value}`);
      expect(s).to.deep.equal({ type, value });
    }));
    fc.assert(fc.property(fc.string(), (input) => {
      try {
        parseSelector(input);
      } catch (e) {
        expect(e).to.be.instanceOf(WritError);
      }
    }));
  });
});
