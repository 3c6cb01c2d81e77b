/**
 * Shared helpers of the datastore contract suite: the backend opener type, a per-test store
 * hook, entry fixtures and an assertion for WritError codes.
 */
import { expect } from 'chai';
import type { ErrorCode } from '../../src/errors.js';
import { WritError } from '../../src/errors.js';
import type { DataStore, EntryFilter, NewEntry, RegistrationEntry, Selector } from '../../src/datastore/index.js';

/** Opens a fresh, empty store of the backend under test; cleanup closes it and removes its data. */
export type OpenStore = () => Promise<{ store: DataStore; cleanup(): Promise<void> }>;

/** Registers beforeEach/afterEach hooks giving each test a fresh store; call inside a describe. */
export function useStore(open: OpenStore): () => DataStore {
  let ctx: Awaited<ReturnType<OpenStore>> | undefined;
  beforeEach(async () => {
    ctx = await open();
  });
  afterEach(async () => {
    const c = ctx;
    ctx = undefined;
    if (c) await c.cleanup();
  });
  return () => {
    if (!ctx) throw new Error('the store is not open');
    return ctx.store;
  };
}

export const TD = 'spiffe://example.org';

/** `type:value` strings to selectors; the value may contain ':'. */
export function sels(...list: string[]): Selector[] {
  return list.map((s) => {
    const i = s.indexOf(':');
    return { type: s.slice(0, i), value: s.slice(i + 1) };
  });
}

let counter = 0;

/** A valid new entry with a unique SPIFFE ID unless overridden. */
export function newEntry(overrides: Partial<NewEntry> = {}): NewEntry {
  counter += 1;
  return {
    spiffeId: `${TD}/workload/w${counter}`,
    parentId: `${TD}/agent/a1`,
    selectors: sels('unix:uid:1000'),
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    hint: '',
    admin: false,
    downstream: false,
    federatesWith: [],
    expiresAt: null,
    ...overrides,
  };
}

/** Expects the promise to reject with a WritError of this code (and message, when given). */
export async function expectWritError(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<WritError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}`).to.be.instanceOf(WritError);
  const e = caught as WritError;
  expect(e.code).to.equal(code);
  if (message) expect(e.message).to.match(message);
  return e;
}

/** Every entry matching the filter, across all pages. */
export async function listAll(store: DataStore, filter: EntryFilter = {}, pageSize = 1000): Promise<RegistrationEntry[]> {
  const out: RegistrationEntry[] = [];
  let pageToken: string | undefined;
  for (;;) {
    const page = await store.listEntries(filter, pageToken === undefined ? { pageSize } : { pageSize, pageToken });
    out.push(...page.entries);
    if (page.nextPageToken === undefined) return out;
    pageToken = page.nextPageToken;
  }
}

/** The store's current change counter. */
export async function revisionOf(store: DataStore): Promise<number> {
  return (await store.entryChangesSince(Number.MAX_SAFE_INTEGER)).revision;
}
