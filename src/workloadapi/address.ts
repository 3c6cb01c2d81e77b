/**
 * Workload API endpoint addresses (SPIFFE Workload Endpoint §4), parsed as go-spiffe does
 * (workloadapi/addr.go, addr_posix.go): `unix:///abs/path` or `unix:/abs/path`, and
 * `tcp://<IP>:<port>` with nothing else. The URI is split the way Go's net/url splits it, so the
 * same strings are accepted and refused; each refusal is ERR_WORKLOADAPI_ENDPOINT naming the fault.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { WritError } from '../errors.js';

export type EndpointAddress =
  | { kind: 'unix'; /** Absolute socket path, percent-decoded. */ path: string; /** The grpc-js target. */ target: string; address: string }
  | { kind: 'tcp'; /** IPv4 or IPv6 (without brackets). */ host: string; port: number; target: string; address: string };

/** The environment variable that names the Workload API endpoint. */
export const ENDPOINT_ENV = 'SPIFFE_ENDPOINT_SOCKET';

interface UriParts {
  scheme: string;
  opaque: string | undefined;
  userinfo: string | undefined;
  host: string | undefined;
  path: string;
  query: string | undefined;
  fragment: string | undefined;
}

/** Shows an untrusted address in a sentence: quoted, and cut when long. */
function show(addr: string): string {
  return JSON.stringify(addr.length > 100 ? `${addr.slice(0, 100)}…` : addr);
}

function refuse(addr: string, why: string): WritError {
  return new WritError('ERR_WORKLOADAPI_ENDPOINT', `The Workload API address ${show(addr)} ${why}.`, { details: { address: addr.slice(0, 200) } });
}

/** Percent-decodes like Go's url.unescape: every % must start a two-digit hex escape. */
function unescape(addr: string, s: string): string {
  if (!s.includes('%')) return s;
  if (/%(?![0-9A-Fa-f]{2})/.test(s)) throw refuse(addr, 'is not a valid URI (a "%" is not followed by two hex digits)');
  return Buffer.from(s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
}

/** Splits a URI as Go's url.Parse does (scheme lower-cased; authority only after "//"). */
function splitUri(addr: string): UriParts {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(addr)) throw refuse(addr, 'is not a valid URI (it contains a control character)');
  const hash = addr.indexOf('#');
  const fragment = hash === -1 ? undefined : addr.slice(hash + 1);
  let rest = hash === -1 ? addr : addr.slice(0, hash);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(rest);
  if (!m) {
    if (rest.startsWith(':')) throw refuse(addr, 'is not a valid URI (it has no scheme before ":")');
    const hint = addr.startsWith('/') ? `; write unix://${addr}` : '';
    throw refuse(addr, `has no "unix" or "tcp" scheme${hint}`);
  }
  const scheme = m[1]!.toLowerCase();
  rest = rest.slice(m[0].length);
  const q = rest.indexOf('?');
  const query = q === -1 ? undefined : rest.slice(q + 1);
  if (q !== -1) rest = rest.slice(0, q);
  const parts: UriParts = { scheme, opaque: undefined, userinfo: undefined, host: undefined, path: '', query, fragment };
  if (!rest.startsWith('/')) {
    parts.opaque = rest;
    return parts;
  }
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    let authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    rest = slash === -1 ? '' : rest.slice(slash);
    const at = authority.lastIndexOf('@');
    if (at !== -1) {
      parts.userinfo = authority.slice(0, at);
      authority = authority.slice(at + 1);
    }
    parts.host = authority;
  }
  parts.path = unescape(addr, rest);
  return parts;
}

/** Port text after the host: digits only, 1..65535. */
function parsePort(addr: string, text: string | undefined): number {
  if (text === undefined || text === '') throw refuse(addr, 'has no port; a tcp address is tcp://<IP>:<port>');
  if (!/^[0-9]+$/.test(text)) throw refuse(addr, `has the port ${JSON.stringify(text.slice(0, 20))}, which is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw refuse(addr, `has the port ${text.slice(0, 20)}, outside 1 to 65535`);
  return port;
}

function parseTcp(addr: string, u: UriParts): EndpointAddress {
  if (u.opaque) throw refuse(addr, 'is not a tcp URI with an authority; write tcp://<IP>:<port>');
  if (u.userinfo !== undefined) throw refuse(addr, 'must not include user info');
  if (u.host === undefined || u.host === '') throw refuse(addr, 'has no host; a tcp address is tcp://<IP>:<port>');
  if (u.path !== '') throw refuse(addr, 'must not include a path');
  if (u.query !== undefined) throw refuse(addr, 'must not include a query');
  if (u.fragment !== undefined) throw refuse(addr, 'must not include a fragment');
  const h = u.host;
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    const ip = close === -1 ? '' : h.slice(1, close);
    if (close === -1 || ip.includes('%') || !isIPv6(ip)) throw refuse(addr, 'has a bracketed host that is not an IPv6 address');
    const after = h.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw refuse(addr, 'has characters after the IPv6 host that are not a port');
    const port = parsePort(addr, after === '' ? undefined : after.slice(1));
    return { kind: 'tcp', host: ip, port, target: `ipv6:[${ip}]:${port}`, address: addr };
  }
  const colon = h.lastIndexOf(':');
  const ip = colon === -1 ? h : h.slice(0, colon);
  if (!isIPv4(ip)) {
    const why = ip.includes(':') && isIPv6(ip) ? 'has an IPv6 host without brackets; write tcp://[<IPv6>]:<port>' : 'has a host that is not an IP address; the tcp host must be an IP';
    throw refuse(addr, why);
  }
  const port = parsePort(addr, colon === -1 ? undefined : h.slice(colon + 1));
  return { kind: 'tcp', host: ip, port, target: `ipv4:${ip}:${port}`, address: addr };
}

function parseUnix(addr: string, u: UriParts): EndpointAddress {
  if (u.opaque) throw refuse(addr, 'is an opaque unix URI; write unix:///absolute/path');
  if (u.userinfo !== undefined) throw refuse(addr, 'must not include user info');
  if (!u.host && u.path === '') throw refuse(addr, 'has no socket path; write unix:///absolute/path');
  if (u.query !== undefined) throw refuse(addr, 'must not include a query');
  if (u.fragment !== undefined) throw refuse(addr, 'must not include a fragment');
  // go-spiffe passes unix://host through to gRPC, which refuses it; the standard allows no authority.
  if (u.host) throw refuse(addr, `names the host ${JSON.stringify(u.host.slice(0, 40))}; a unix address has no authority (write unix:///absolute/path)`);
  if (u.path.includes('\0')) throw refuse(addr, 'has a socket path with a NUL byte');
  // "unix://" + absolute path: grpc-js reads an empty authority and keeps every slash of the path.
  return { kind: 'unix', path: u.path, target: `unix://${u.path}`, address: addr };
}

/** Parses a Workload API address; throws ERR_WORKLOADAPI_ENDPOINT with one sentence naming the fault. */
export function parseEndpointAddress(addr: string): EndpointAddress {
  if (typeof addr !== 'string' || addr === '') throw new WritError('ERR_WORKLOADAPI_ENDPOINT', 'The Workload API address is empty.');
  const u = splitUri(addr);
  if (u.scheme === 'tcp') return parseTcp(addr, u);
  if (u.scheme === 'unix') return parseUnix(addr, u);
  throw refuse(addr, `has the scheme "${u.scheme.slice(0, 20)}"; only "unix" and "tcp" are supported`);
}

/** The endpoint named by SPIFFE_ENDPOINT_SOCKET; ERR_WORKLOADAPI_ENDPOINT when it is unset or invalid. */
export function endpointFromEnv(env: NodeJS.ProcessEnv = process.env): EndpointAddress {
  const addr = env[ENDPOINT_ENV];
  if (addr === undefined || addr === '') {
    throw new WritError(
      'ERR_WORKLOADAPI_ENDPOINT',
      `${ENDPOINT_ENV} is not set; set it to the Workload API address (for example unix:///tmp/spire-agent/public/api.sock) or pass an address.`,
    );
  }
  return parseEndpointAddress(addr);
}

/** An explicit address if given, else SPIFFE_ENDPOINT_SOCKET. */
export function resolveEndpoint(address?: string, env: NodeJS.ProcessEnv = process.env): EndpointAddress {
  return address === undefined ? endpointFromEnv(env) : parseEndpointAddress(address);
}
