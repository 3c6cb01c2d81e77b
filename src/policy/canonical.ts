/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON value that the audit
 * chain hashes and the delegation record carries.
 *
 * - object members sorted by their names as UTF-16 code unit sequences, no whitespace;
 * - strings escaped as ECMAScript's JSON.stringify does (which RFC 8785 §3.2.2.2 adopts);
 * - numbers in ECMAScript Number-to-String form (RFC 8785 §3.2.2.3), -0 as 0;
 * - refused (ERR_CANONICAL_JSON): NaN and ±Infinity, undefined (also as a member or array
 *   element), bigint, functions, symbols, lone surrogates in strings or names (I-JSON, RFC 7493),
 *   anything but plain objects and arrays (Date, Map, Buffer, class instances), cycles, and
 *   nesting deeper than MAX_DEPTH.
 */
import { WritError } from '../errors.js';

/** A JSON value as JCS accepts it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export const MAX_DEPTH = 64;

const LONE_SURROGATE = /\p{Cs}/u;

function refuse(sentence: string, path: string): never {
  throw new WritError('ERR_CANONICAL_JSON', sentence, { details: { path } });
}

function str(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) refuse('A string holds a lone surrogate, which JSON canonicalization refuses.', path);
  return JSON.stringify(s);
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function encode(v: unknown, path: string, depth: number, stack: Set<object>, out: string[]): void {
  switch (typeof v) {
    case 'string':
      out.push(str(v, path));
      return;
    case 'number':
      if (!Number.isFinite(v)) refuse('A number is not finite, which JSON cannot express.', path);
      out.push(JSON.stringify(v)); // ECMAScript Number::toString; -0 becomes "0"
      return;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'object':
      break;
    default:
      refuse(`A value of type ${typeof v} cannot be canonicalized as JSON.`, path);
  }
  if (v === null) {
    out.push('null');
    return;
  }
  if (depth >= MAX_DEPTH) refuse(`The value nests deeper than ${MAX_DEPTH} levels.`, path);
  if (stack.has(v)) refuse('The value contains a cycle.', path);
  stack.add(v);
  if (Array.isArray(v)) {
    out.push('[');
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.push(',');
      if (!(i in v)) refuse('An array has a hole.', `${path}[${i}]`);
      encode(v[i], `${path}[${i}]`, depth + 1, stack, out);
    }
    out.push(']');
  } else {
    if (!isPlainObject(v)) refuse('Only plain objects and arrays can be canonicalized as JSON.', path);
    if (Object.getOwnPropertySymbols(v).length > 0) refuse('An object has symbol keys.', path);
    // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
    const keys = Object.keys(v).sort();
    const rec = v as Record<string, unknown>;
    out.push('{');
    keys.forEach((k, i) => {
      if (i > 0) out.push(',');
      const p = `${path}.${k}`;
      const member = rec[k];
      if (member === undefined) refuse('An object member is undefined.', p);
      out.push(str(k, p), ':');
      encode(member, p, depth + 1, stack, out);
    });
    out.push('}');
  }
  stack.delete(v);
}

/** The RFC 8785 canonical text of `value`; throws ERR_CANONICAL_JSON for what JSON cannot hold. */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  encode(value, '$', 0, new Set(), out);
  return out.join('');
}

/** The canonical text as UTF-8 bytes. */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
