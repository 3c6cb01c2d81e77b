/**
 * Federation: relationships with foreign trust domains, fetching their bundles from bundle
 * endpoints (https_web and https_spiffe profiles) on a schedule, and the checks every foreign
 * bundle passes before it is stored.
 */
export { checkAuthorities, freshness, parseFetchedBundle, parseOperatorBundle, type BundleFormat, type Freshness } from './bundles.js';
export { DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_MAX_BUNDLE_BYTES, MAX_REDIRECTS, fetchBundleDocument, type FetchOptions, type FetchTarget, type FetchedBody } from './fetch.js';
export { DEFAULT_POLL_SECONDS, FederationPoller, MIN_POLL_SECONDS, POLLS_PER_REFRESH_HINT, pollInterval, type FederationPollerOptions } from './poller.js';
export { heldBundle, refreshRelationship, type RefreshDeps, type RefreshOutcome } from './refresh.js';
export {
  PROFILES,
  checkEndpointUrl,
  foreignTrustDomain,
  relationshipToJson,
  validateNewRelationship,
  validateRelationshipPatch,
  type RelationshipJson,
} from './relationship.js';
export { loadFederationCa } from './cafile.js';
