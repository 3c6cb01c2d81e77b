/**
 * One refresh of one federation relationship: pick the bundle that authenticates an https_spiffe
 * endpoint (the latest held bundle of the endpoint ID's trust domain: the operator's bootstrap
 * bundle first, then always the last one fetched), fetch, check, decide by spiffe_sequence, store
 * under the relationship's trust domain only, and record the outcome in the relationship's status.
 * Every refusal carries an ERR_FEDERATION_* code; it is logged with the URL, never with the body.
 */
import { SpiffeBundle, type X509Bundle } from '../../bundle/index.js';
import type { Clock } from '../../clock.js';
import type { DataStore, FederationRelationship } from '../../datastore/index.js';
import { WritError, isWritError, type ErrorCode } from '../../errors.js';
import type { Logger } from '../../log.js';
import { parseSpiffeId, parseTrustDomain, type TrustDomain } from '../../spiffeid/index.js';
import { freshness, parseFetchedBundle } from './bundles.js';
import { fetchBundleDocument, type FetchOptions, type FetchTarget } from './fetch.js';

export interface RefreshDeps {
  datastore: DataStore;
  clock: Clock;
  logger: Logger;
  /** Timeouts, size cap and extra CAs; `now` and `signal` are filled in here. */
  fetch?: Omit<FetchOptions, 'now' | 'signal'>;
  signal?: AbortSignal;
}

export interface RefreshOutcome {
  trustDomain: string;
  /** Unix seconds. */
  at: number;
  ok: boolean;
  /** updated: a new bundle was stored; unchanged: the held one is current; refused: see code. */
  result: 'updated' | 'unchanged' | 'refused';
  code?: ErrorCode;
  message: string;
  /** spiffe_sequence of the bundle held after the attempt. */
  sequence: number | null;
  /** spiffe_refresh_hint (seconds) of the bundle held after the attempt. */
  refreshHint: number | undefined;
}

/** The stored bundle of a trust domain, or undefined when there is none or it no longer parses. */
export async function heldBundle(datastore: DataStore, td: TrustDomain, logger: Logger): Promise<SpiffeBundle | undefined> {
  const rec = await datastore.getBundle(td.name);
  if (!rec) return undefined;
  try {
    return SpiffeBundle.parse(td, rec.document);
  } catch (e) {
    logger.warn({ event: 'federation.held_bundle_invalid', trust_domain: td.name, code: isWritError(e) ? e.code : undefined }, 'the stored bundle does not parse; treating it as absent');
    return undefined;
  }
}

async function endpointBundle(rel: FederationRelationship, td: TrustDomain, held: SpiffeBundle | undefined, deps: RefreshDeps): Promise<X509Bundle> {
  const id = parseSpiffeId(rel.endpointSpiffeId ?? '');
  const etd = id.trustDomain;
  const source = etd.equals(td) ? held : await heldBundle(deps.datastore, etd, deps.logger);
  const x509 = source?.x509Bundle();
  if (!x509 || x509.isEmpty()) {
    const how = etd.equals(td) ? 'give a bootstrap bundle with `writ federation update --trust-domain-bundle-path` or `writ bundle set`' : `store the bundle of ${etd.name} first`;
    throw new WritError('ERR_FEDERATION_NO_ENDPOINT_BUNDLE', `There is no X.509 bundle of ${etd.name} to authenticate the endpoint ${id.toString()}; ${how}.`, {
      details: { trust_domain: etd.name },
    });
  }
  return x509;
}

function describe(seq: number | undefined): string {
  return seq === undefined ? 'without a spiffe_sequence' : `with spiffe_sequence ${seq}`;
}

export async function refreshRelationship(rel: FederationRelationship, deps: RefreshDeps): Promise<RefreshOutcome> {
  const { datastore, clock, logger } = deps;
  const td = parseTrustDomain(rel.trustDomain);
  const at = Math.floor(clock.nowMs() / 1000);
  let held = await heldBundle(datastore, td, logger);
  let outcome: RefreshOutcome;
  try {
    const target: FetchTarget = { trustDomain: td, url: rel.bundleEndpointUrl, profile: rel.profile };
    if (rel.profile === 'https_spiffe') {
      target.endpointSpiffeId = rel.endpointSpiffeId ?? '';
      target.endpointBundle = await endpointBundle(rel, td, held, deps);
    }
    const got = await fetchBundleDocument(target, { ...deps.fetch, now: () => clock.now(), ...(deps.signal ? { signal: deps.signal } : {}) });
    const fetched = parseFetchedBundle(td, got.body, new URL(got.url).origin);
    const f = freshness(held, fetched);
    if (f.reason === 'stale') throw f.error;
    if (f.store) {
      // A relationship deleted while its fetch ran stores nothing.
      if (!(await datastore.getFederation(rel.trustDomain))) throw new WritError('ERR_FEDERATION_NOT_FOUND', `The relationship with ${rel.trustDomain} was deleted during its refresh.`);
      await datastore.setBundle(td.name, fetched.marshal(), fetched.refreshHint ?? 0, Math.floor(clock.nowMs() / 1000));
      held = fetched;
      outcome = { trustDomain: td.name, at, ok: true, result: 'updated', message: `Stored the bundle of ${td.name} ${describe(fetched.sequenceNumber)} from ${got.url}.`, sequence: null, refreshHint: undefined };
      logger.info({ event: 'federation.bundle_updated', trust_domain: td.name, url: got.url, spiffe_sequence: fetched.sequenceNumber, redirects: got.redirects }, outcome.message);
    } else {
      outcome = { trustDomain: td.name, at, ok: true, result: 'unchanged', message: `The bundle of ${td.name} at ${got.url} is unchanged (${describe(held?.sequenceNumber).replace(/^with /, '')}).`, sequence: null, refreshHint: undefined };
      logger.debug({ event: 'federation.bundle_unchanged', trust_domain: td.name, url: got.url, reason: f.reason }, outcome.message);
    }
  } catch (e) {
    const err = isWritError(e) ? e : new WritError('ERR_FEDERATION_FETCH', `The refresh of ${td.name} failed unexpectedly.`, { cause: e });
    if (!isWritError(e)) logger.error({ event: 'federation.refresh_error', trust_domain: td.name, err: e }, 'federation refresh failed unexpectedly');
    outcome = { trustDomain: td.name, at, ok: false, result: 'refused', code: err.code, message: err.message, sequence: null, refreshHint: undefined };
    logger.warn({ event: 'federation.refresh_refused', trust_domain: td.name, url: rel.bundleEndpointUrl, code: err.code, details: err.details }, err.message);
  }
  outcome.sequence = held?.sequenceNumber ?? null;
  outcome.refreshHint = held?.refreshHint;
  if (outcome.code !== 'ERR_FEDERATION_NOT_FOUND') {
    await datastore.setFederationStatus(td.name, { at, ok: outcome.ok, code: outcome.code ?? null, message: outcome.message, sequence: outcome.sequence });
  }
  return outcome;
}
