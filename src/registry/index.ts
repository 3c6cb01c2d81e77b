export { parseSelector, validateSelector, formatSelector, normalizeSelectors, compareSelectors, selectorsSubsetOf, MAX_SELECTOR_LENGTH } from './selector.js';
export { validateNewEntry, validateEntryUpdate, validateDnsNames, checkEntryId, entryToJson, RESERVED_PATH, MAX_HINT_BYTES, MAX_TTL_SECONDS } from './entry.js';
export type { EntryJson } from './entry.js';
export { validateEntryFilter } from './filter.js';
export type { EntryFilterJson } from './filter.js';
