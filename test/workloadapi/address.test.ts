/**
 * Workload API endpoint addresses: the cases of go-spiffe's addr_test.go (the same strings are
 * accepted and refused), the rules of the Workload Endpoint standard §4, SPIFFE_ENDPOINT_SOCKET,
 * and property tests: the parser throws only WritError, and every valid form round-trips.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { isWritError } from '../../src/errors.js';
import { ENDPOINT_ENV, endpointFromEnv, parseEndpointAddress, resolveEndpoint } from '../../src/workloadapi/index.js';

function refusal(addr: string): { code: string; message: string } {
  try {
    parseEndpointAddress(addr);
  } catch (e) {
    if (!isWritError(e)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error(`${JSON.stringify(addr)} was accepted`);
}

describe('workloadapi: endpoint addresses', () => {
  const accepted: Array<[string, Record<string, unknown>]> = [
    ['unix:///tmp/agent.sock', { kind: 'unix', path: '/tmp/agent.sock', target: 'unix:///tmp/agent.sock' }],
    ['unix:/tmp/agent.sock', { kind: 'unix', path: '/tmp/agent.sock', target: 'unix:///tmp/agent.sock' }],
    ['UNIX:///run/spire/api.sock', { kind: 'unix', path: '/run/spire/api.sock' }],
    ['unix:///tmp/a%20b.sock', { kind: 'unix', path: '/tmp/a b.sock', target: 'unix:///tmp/a b.sock' }],
    ['unix:////double/slash', { kind: 'unix', path: '//double/slash', target: 'unix:////double/slash' }],
    ['unix:///', { kind: 'unix', path: '/' }],
    ['tcp://1.2.3.4:5', { kind: 'tcp', host: '1.2.3.4', port: 5, target: 'ipv4:1.2.3.4:5' }],
    ['tcp://127.0.0.1:8000', { kind: 'tcp', host: '127.0.0.1', port: 8000, target: 'ipv4:127.0.0.1:8000' }],
    ['TCP://127.0.0.1:65535', { kind: 'tcp', host: '127.0.0.1', port: 65535 }],
    ['tcp://[::1]:8000', { kind: 'tcp', host: '::1', port: 8000, target: 'ipv6:[::1]:8000' }],
    ['tcp://[fe80::1:2]:443', { kind: 'tcp', host: 'fe80::1:2', port: 443, target: 'ipv6:[fe80::1:2]:443' }],
  ];
  for (const [addr, want] of accepted) {
    it(`accepts ${addr}`, () => {
      const got = parseEndpointAddress(addr);
      expect(got).to.include(want);
      expect(got.address).to.equal(addr);
    });
  }

  // [address, a piece of the sentence that says what is wrong]
  const refused: Array<[string, string]> = [
    ['\t', 'control character'],
    ['unix:///tmp/a\nb', 'control character'],
    ['blah', 'no "unix" or "tcp" scheme'],
    ['/tmp/agent.sock', 'write unix:///tmp/agent.sock'],
    [':foo', 'no scheme'],
    ['http://127.0.0.1:80', 'scheme "http"'],
    ['npipe:pipe', 'scheme "npipe"'],
    ['unix:opaque', 'opaque'],
    ['unix:', 'no socket path'],
    ['unix://', 'no socket path'],
    ['unix://foo?whatever', 'query'],
    ['unix://foo#whatever', 'fragment'],
    ['unix://john:doe@foo/path', 'user info'],
    ['unix://foo', 'no authority'],
    ['unix://localhost/tmp/agent.sock', 'names the host "localhost"'],
    ['unix:///tmp/agent.sock?x=1', 'query'],
    ['unix:///tmp/agent.sock?', 'query'],
    ['unix:///tmp/agent.sock#frag', 'fragment'],
    ['unix:///tmp/agent.sock#', 'fragment'],
    ['unix:///tmp/x%zz', 'two hex digits'],
    ['unix:///tmp/%00x', 'NUL'],
    ['tcp:opaque', 'tcp://<IP>:<port>'],
    ['tcp://', 'no host'],
    ['tcp:/1.2.3.4:5', 'no host'],
    ['tcp://1.2.3.4:5/path', 'path'],
    ['tcp://1.2.3.4:5/', 'path'],
    ['tcp://foo?whatever', 'query'],
    ['tcp://foo#whatever', 'fragment'],
    ['tcp://john:doe@foo:8000/path', 'user info'],
    ['tcp://1.2.3.4:5?', 'query'],
    ['tcp://foo:8000', 'not an IP'],
    ['tcp://localhost:8000', 'not an IP'],
    ['tcp://01.2.3.4:80', 'not an IP'],
    ['tcp://1.2.3.4', 'no port'],
    ['tcp://1.2.3.4:', 'no port'],
    ['tcp://1.2.3.4:http', 'not a number'],
    ['tcp://1.2.3.4:0', 'outside 1 to 65535'],
    ['tcp://1.2.3.4:65536', 'outside 1 to 65535'],
    ['tcp://::1:8000', 'without brackets'],
    ['tcp://[::1]', 'no port'],
    ['tcp://[1.2.3.4]:80', 'not an IPv6'],
    ['tcp://[fe80::1%25eth0]:80', 'not an IPv6'],
    ['tcp://[::1:80', 'not an IPv6'],
    ['tcp://[::1]x:80', 'after the IPv6 host'],
  ];
  for (const [addr, what] of refused) {
    it(`refuses ${JSON.stringify(addr)} (${what})`, () => {
      const r = refusal(addr);
      expect(r.code).to.equal('ERR_WORKLOADAPI_ENDPOINT');
      expect(r.message).to.include(what);
      expect(r.message).to.match(/\.$/);
    });
  }

  it('refuses the empty string', () => {
    expect(refusal('')).to.deep.equal({ code: 'ERR_WORKLOADAPI_ENDPOINT', message: 'The Workload API address is empty.' });
  });

  describe('SPIFFE_ENDPOINT_SOCKET', () => {
    it('reads the address from the environment', () => {
      expect(endpointFromEnv({ [ENDPOINT_ENV]: 'unix:///run/agent.sock' })).to.include({ kind: 'unix', path: '/run/agent.sock' });
    });

    it('says to set it or pass an address when it is missing or empty', () => {
      for (const env of [{}, { [ENDPOINT_ENV]: '' }]) {
        const run = (): unknown => endpointFromEnv(env);
        expect(run).to.throw(/SPIFFE_ENDPOINT_SOCKET is not set.*or pass an address/).with.property('code', 'ERR_WORKLOADAPI_ENDPOINT');
      }
    });

    it('refuses an invalid value like an explicit address', () => {
      expect(() => endpointFromEnv({ [ENDPOINT_ENV]: 'tcp://localhost:1' })).to.throw(/not an IP/);
    });

    it('prefers an explicit address', () => {
      expect(resolveEndpoint('tcp://10.0.0.1:9', { [ENDPOINT_ENV]: 'unix:///x' })).to.include({ kind: 'tcp', host: '10.0.0.1', port: 9 });
      expect(resolveEndpoint(undefined, { [ENDPOINT_ENV]: 'unix:///x' })).to.include({ kind: 'unix', path: '/x' });
    });
  });

  describe('properties', () => {
    const uriish = fc.tuple(
      fc.constantFrom('', 'unix:', 'unix:/', 'unix://', 'unix:///', 'tcp:', 'tcp://', 'tcp://[', 'TCP://1.2.3.4:', 'x:'),
      fc.string({ unit: fc.constantFrom(...'/:@?#[]%0123456789abcfx.-_ \u0000é'.split('')), maxLength: 30 }),
    ).map(([a, b]) => a + b);

    it('throws only ERR_WORKLOADAPI_ENDPOINT, with one sentence, on any string', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), uriish), (s) => {
          try {
            const r = parseEndpointAddress(s);
            expect(r.kind === 'unix' || r.kind === 'tcp').to.equal(true);
          } catch (e) {
            if (!isWritError(e)) throw e;
            expect(e.code).to.equal('ERR_WORKLOADAPI_ENDPOINT');
            expect(e.message).to.match(/\.$/);
          }
        }),
        { numRuns: 3000 },
      );
    });

    it('accepts every absolute socket path in both unix forms', () => {
      const segment = fc.string({ unit: fc.constantFrom(...'abcxyz0123456789-_.~'.split('')), minLength: 1, maxLength: 12 });
      fc.assert(
        fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segs) => {
          const path = '/' + segs.join('/');
          for (const addr of [`unix://${path}`, `unix:${path}`]) {
            const r = parseEndpointAddress(addr);
            expect(r).to.include({ kind: 'unix', path, target: `unix://${path}` });
          }
        }),
      );
    });

    it('accepts every IPv4 and bracketed IPv6 address with a port', () => {
      fc.assert(
        fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
          const v6 = ip.includes(':');
          const r = parseEndpointAddress(v6 ? `tcp://[${ip}]:${port}` : `tcp://${ip}:${port}`);
          expect(r).to.include({ kind: 'tcp', host: ip, port, target: v6 ? `ipv6:[${ip}]:${port}` : `ipv4:${ip}:${port}` });
        }),
      );
    });

    it('refuses a tcp address with anything after the port', () => {
      fc.assert(
        fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.constantFrom('/', '/x', '?', '?a=b', '#', '#f'), (ip, port, tail) => {
          expect(refusal(`tcp://${ip}:${port}${tail}`).code).to.equal('ERR_WORKLOADAPI_ENDPOINT');
        }),
      );
    });
  });
});
