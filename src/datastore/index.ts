/**
 * The datastore engine's only public face: the DataStore contract (types.ts), the backend
 * configuration, and openDataStore, which opens (and migrates) the configured backend.
 * SQLite is the embedded default; a PostgreSQL backend joins the DataStoreConfig union later.
 */
import type { Clock } from '../clock.js';
import { WritError } from '../errors.js';
import type { Logger } from '../log.js';
import { SqliteDataStore } from './sqlite.js';
import type { DataStore } from './types.js';

export type * from './types.js';
export { SqliteDataStore } from './sqlite.js';
export type { SqliteDeps } from './sqlite.js';
export { SCHEMA_VERSION as SQLITE_SCHEMA_VERSION } from './sqlite-migrations.js';
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './sqlite-query.js';

/** Which backend to open; `path` is the SQLite file (":memory:" for a throwaway store). */
export type DataStoreConfig = { type: 'sqlite'; path: string };

export interface DataStoreDeps {
  clock: Clock;
  logger: Logger;
}

/** Opens the configured datastore, creating and migrating its schema; fails with ERR_DATASTORE. */
export async function openDataStore(config: DataStoreConfig, deps: DataStoreDeps): Promise<DataStore> {
  switch (config.type) {
    case 'sqlite':
      return SqliteDataStore.open(config.path, deps);
  }
  const type: unknown = (config as { type?: unknown }).type;
  throw new WritError('ERR_DATASTORE', `The datastore type "${String(type)}" is not supported; use sqlite.`);
}
