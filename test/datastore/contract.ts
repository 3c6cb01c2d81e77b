/**
 * The shared DataStore contract suite, written once for every backend: SQLite runs it in
 * sqlite.test.ts, and a PostgreSQL backend calls runDataStoreContract the same way. `open` must
 * return a fresh, empty store each time; `cleanup` closes it (close is idempotent) and removes
 * whatever it created. The parts live beside this file; the store's lifecycle is checked here.
 */
import { expect } from 'chai';
import { entryWriteContract } from './contract-entries.js';
import { entryFilterContract } from './contract-filters.js';
import { federationContract } from './contract-federation.js';
import { expectWritError, newEntry, type OpenStore } from './contract-helpers.js';
import { recordsContract } from './contract-records.js';
import { tasksContract } from './contract-tasks.js';

export type { OpenStore } from './contract-helpers.js';

function lifecycleContract(open: OpenStore): void {
  describe('lifecycle', () => {
    it('answers ping while open', async () => {
      const { store, cleanup } = await open();
      try {
        await store.ping();
        expect(await store.countEntries()).to.equal(0, 'a fresh store is empty');
      } finally {
        await cleanup();
      }
    });

    it('closes idempotently and refuses calls after close with ERR_DATASTORE', async () => {
      const { store, cleanup } = await open();
      try {
        await store.createEntries([newEntry()]);
        await store.close();
        await store.close();
        await expectWritError(store.ping(), 'ERR_DATASTORE');
        await expectWritError(store.countEntries(), 'ERR_DATASTORE');
        await expectWritError(store.createEntries([newEntry()]), 'ERR_DATASTORE');
      } finally {
        await cleanup();
      }
    });
  });
}

export function runDataStoreContract(name: string, open: OpenStore): void {
  describe(`DataStore contract: ${name}`, () => {
    lifecycleContract(open);
    entryWriteContract(open);
    entryFilterContract(open);
    recordsContract(open);
    federationContract(open);
    tasksContract(open);
  });
}
