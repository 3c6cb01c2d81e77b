import { expect } from 'chai';
import fc from 'fast-check';
import { isWritError } from '../../src/errors.js';
import { canonicalJson } from '../../src/policy/index.js';

/** A deep copy of a JSON value with every object's members inserted in reverse order. */
function reversedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversedKeys);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).reverse()) Object.defineProperty(out, k, { value: reversedKeys((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return v;
}

function refusal(v: unknown): string | undefined {
  try {
    canonicalJson(v);
    return undefined;
  } catch (e) {
    return isWritError(e) ? e.code : `not coded: ${String(e)}`;
  }
}

describe('policy/canonical: RFC 8785 JSON canonicalization', () => {
  it('matches the RFC 8785 §3.2.2 example (literals, numbers, string escapes)', () => {
    const input = JSON.parse('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}');
    expect(canonicalJson(input)).to.equal('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('sorts member names by UTF-16 code units (RFC 8785 §3.2.3 example)', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    const names = Object.keys(JSON.parse(canonicalJson(input)) as object);
    // JSON.parse puts "1" first (an array index) whatever the text order, so read the order from the text.
    const text = canonicalJson(input);
    const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) => text.indexOf(JSON.stringify(k) + ':'));
    expect(order).to.deep.equal([...order].sort((a, b) => a - b));
    expect(names).to.have.length(7);
  });

  const numbers: [number, string][] = [
    [0, '0'],
    [-0, '0'],
    [1, '1'],
    [-1.5, '-1.5'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [123456789012345680000, '123456789012345680000'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    [5e-324, '5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
  ];
  for (const [n, s] of numbers) {
    it(`writes the number ${s} in ECMAScript form`, () => expect(canonicalJson(n)).to.equal(s));
  }

  class Thing {
    a = 1;
  }
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  let deep: unknown = 1;
  for (let i = 0; i < 70; i++) deep = [deep];
  const refused: [string, unknown][] = [
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity in an array', [1, -Infinity]],
    ['undefined', undefined],
    ['an undefined member', { a: undefined }],
    ['an undefined element', [undefined]],
    ['an array hole', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a bigint', 1n],
    ['a function', () => 1],
    ['a symbol', Symbol('x')],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a Buffer', Buffer.from('x')],
    ['a class instance', new Thing()],
    ['a cycle', cyclic],
    ['a lone surrogate in a string', 'a\ud800b'],
    ['a lone surrogate in a name', { '\udc00': 1 }],
    ['symbol keys', { [Symbol('k')]: 1 }],
    ['nesting deeper than the limit', deep],
  ];
  for (const [what, v] of refused) {
    it(`refuses ${what} with ERR_CANONICAL_JSON`, () => expect(refusal(v)).to.equal('ERR_CANONICAL_JSON'));
  }

  it('accepts objects without a prototype and keeps a repeated (non-cyclic) subobject', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o.b = 1;
    o.a = [true];
    const shared = { x: 1 };
    expect(canonicalJson(o)).to.equal('{"a":[true],"b":1}');
    expect(canonicalJson({ p: shared, q: shared })).to.equal('{"p":{"x":1},"q":{"x":1}}');
  });

  it('round-trips any JSON value and is idempotent (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const c = canonicalJson(v);
        expect(JSON.parse(c)).to.deep.equal(JSON.parse(JSON.stringify(v)));
        expect(canonicalJson(JSON.parse(c))).to.equal(c);
        expect(c.replace(/"(?:[^"\\]|\\.)*"/g, '""')).to.not.match(/\s/); // no whitespace outside strings
      }),
      { numRuns: 500 },
    );
  });

  it('does not depend on member insertion order (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(reversedKeys(v))).to.equal(canonicalJson(v));
      }),
      { numRuns: 500 },
    );
  });

  it('writes every finite double so that it parses back to the same number (property)', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        const c = canonicalJson(n);
        expect(Number(c)).to.equal(n === 0 ? 0 : n);
        expect(c).to.equal(Object.is(n, -0) ? '0' : String(n));
      }),
      { numRuns: 1000 },
    );
  });
});
