/**
 * Loads the Cedar engine (@cedar-policy/cedar-wasm) on first use. On Node the package's
 * `./nodejs` export is the one that works: a CommonJS module that reads and instantiates its
 * WASM synchronously when imported; the package root (`.`) is a bundler build that imports a
 * `.wasm` file, which Node refuses ("Unknown file extension .wasm"). Importing it lazily keeps
 * the library entry cheap for services that never evaluate a policy.
 */
import { WritError } from '../errors.js';

export type CedarModule = typeof import('@cedar-policy/cedar-wasm/nodejs');

let loading: Promise<CedarModule> | undefined;

export function loadCedar(): Promise<CedarModule> {
  loading ??= import('@cedar-policy/cedar-wasm/nodejs').then(
    (m) => m as CedarModule,
    (e: unknown) => {
      loading = undefined;
      throw new WritError('ERR_POLICY_ENGINE', 'The Cedar policy engine could not be loaded.', { cause: e });
    },
  );
  return loading;
}
