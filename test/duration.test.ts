import { expect } from 'chai';
import fc from 'fast-check';
import { formatDuration, parseDurationSeconds } from '../src/duration.js';
import { WritError } from '../src/errors.js';

describe('duration', () => {
  const cases: Array<[string | number, number]> = [
    ['90s', 90], ['5m', 300], ['1h', 3600], ['1h30m', 5400], ['7d', 604800], ['300', 300], [0, 0], ['1500ms', 1], [' 2m ', 120],
  ];
  for (const [input, want] of cases) {
    it(`parses ${JSON.stringify(input)} as ${want} s`, () => expect(parseDurationSeconds(input)).to.equal(want));
  }
  for (const input of ['', 'soon', '5x', '-5m', '1.5h', 'm5', '5m junk', -1, 1.5, '9'.repeat(80)]) {
    it(`refuses ${JSON.stringify(input)} with ERR_TTL_INVALID naming the field`, () => {
      try {
        parseDurationSeconds(input, '--ttl');
        expect.fail('accepted');
      } catch (e) {
        expect(e).to.be.instanceOf(WritError);
        expect((e as WritError).code).to.equal('ERR_TTL_INVALID');
        expect((e as WritError).message).to.match(/^--ttl /);
      }
    });
  }
  it('property: format then parse is the identity on whole seconds', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 ** 9 }), (s) => {
      expect(parseDurationSeconds(formatDuration(s))).to.equal(s);
    }));
  });
});
