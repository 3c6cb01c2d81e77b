/**
 * Selectors: `type:value`, where type names the attestor (free of ':') and value may contain ':'
 * (for example `unix:uid:1000`). Parsed identically by the CLI, the admin API and the agent.
 */
import { WritError } from '../errors.js';
import type { Selector } from '../datastore/types.js';

export const MAX_SELECTOR_LENGTH = 1024;

function printable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** Checks a {type, value} pair; `where` prefixes the sentence (for example "entry 3"). */
export function validateSelector(sel: Selector, where = 'selector'): Selector {
  if (typeof sel !== 'object' || sel === null || typeof sel.type !== 'string' || typeof sel.value !== 'string') {
    throw new WritError('ERR_SELECTOR_INVALID', `${where}: a selector needs a string type and a string value.`);
  }
  const { type, value } = sel;
  if (type.length === 0) throw new WritError('ERR_SELECTOR_INVALID', `${where}: selector type is empty.`);
  if (type.includes(':')) throw new WritError('ERR_SELECTOR_INVALID', `${where}: selector type "${type.slice(0, 64)}" must not contain ':'.`);
  if (/\s/.test(type)) throw new WritError('ERR_SELECTOR_INVALID', `${where}: selector type "${type.slice(0, 64)}" must not contain spaces.`);
  if (value.length === 0) throw new WritError('ERR_SELECTOR_INVALID', `${where}: selector "${type}" has an empty value.`);
  if (type.length + 1 + value.length > MAX_SELECTOR_LENGTH) {
    throw new WritError('ERR_SELECTOR_INVALID', `${where}: selector is longer than ${MAX_SELECTOR_LENGTH} characters.`);
  }
  if (!printable(type) || !printable(value)) {
    throw new WritError('ERR_SELECTOR_INVALID', `${where}: selector contains control characters.`);
  }
  return { type, value };
}

/** Parses `type:value`. */
export function parseSelector(s: string, where = 'selector'): Selector {
  if (typeof s !== 'string') throw new WritError('ERR_SELECTOR_INVALID', `${where}: a selector must be a string of the form type:value.`);
  const i = s.indexOf(':');
  if (i < 0) {
    throw new WritError('ERR_SELECTOR_INVALID', `${where}: "${s.slice(0, 64)}" is not of the form type:value (for example unix:uid:1000).`);
  }
  return validateSelector({ type: s.slice(0, i), value: s.slice(i + 1) }, where);
}

export function formatSelector(sel: Selector): string {
  return `${sel.type}:${sel.value}`;
}

export function compareSelectors(a: Selector, b: Selector): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return 0;
}

/** Sorted, without duplicates. */
export function normalizeSelectors(sels: Selector[]): Selector[] {
  const sorted = [...sels].sort(compareSelectors);
  return sorted.filter((s, i) => i === 0 || compareSelectors(s, sorted[i - 1] as Selector) !== 0);
}

/** True when every selector of `required` is in `have` (the workload matching rule). */
export function selectorsSubsetOf(required: Selector[], have: Selector[]): boolean {
  const set = new Set(have.map(formatSelector));
  return required.every((s) => set.has(formatSelector(s)));
}
