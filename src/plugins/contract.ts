/**
 * The plugin contract. A plugin is a declaration: a type (what slot it fills, for example
 * "node_attestor"), a name (what the config calls it, for example "join_token"), a zod schema for
 * its config, and an async factory. The catalog (catalog.ts) validates each configured plugin's
 * config with the schema before anything is created, then calls create() in order; an instance may
 * have close(), which the catalog calls in reverse order on shutdown or when a later create() fails.
 */
import type { z } from 'zod';
import type { Clock, RandomSource } from '../clock.js';
import type { DataStore, Selector } from '../datastore/index.js';
import type { Logger } from '../log.js';
import { validateSelector } from '../registry/index.js';

/** The plugin types the built-in catalogs know. Other slots may use other strings. */
export const NODE_ATTESTOR = 'node_attestor';
export const WORKLOAD_ATTESTOR = 'workload_attestor';
export type NodeAttestorType = typeof NODE_ATTESTOR;
export type WorkloadAttestorType = typeof WORKLOAD_ATTESTOR;

/**
 * What every plugin is given at creation. The logger is already a child bound to the plugin's type
 * and name. Server-side node attestors also get `store`; composition roots may pass more fields.
 */
export interface PluginDeps {
  logger: Logger;
  clock: Clock;
  /** Randomness for nonces and keys; plugins fall back to node:crypto when absent. */
  random?: RandomSource;
  /** The trust domain name (no scheme), for example "example.org". */
  trustDomain: string;
  /** The datastore, for server-side node attestors (join_token consumes tokens through it). */
  store?: Pick<DataStore, 'consumeJoinToken'>;
}

/** Anything a plugin instance may hold open; close() is awaited by the catalog. */
export interface Closable {
  close?(): Promise<void> | void;
}

export interface PluginDeclaration<TType extends string, TConfig, TInstance> {
  readonly type: TType;
  readonly name: string;
  /** One sentence for `writ plugins` listings and the docs. */
  readonly description: string;
  /** Validates (and may default or transform) the raw config; configs should be `.strict()`. */
  readonly configSchema: z.ZodType<TConfig, z.ZodTypeDef, unknown>;
  /** Builds the instance from the validated config. Throw WritError (usually ERR_PLUGIN_CONFIG) on failure. */
  create(config: TConfig, deps: PluginDeps): Promise<TInstance>;
}

/**
 * A declaration of any config type, as the catalog handles it. Method parameters are bivariant in
 * TypeScript, so every PluginDeclaration<T, C, I> is assignable to this.
 */
export type AnyPluginDeclaration = PluginDeclaration<string, unknown, unknown>;

/** The instance type a declaration union D produces for plugin type T. */
export type InstanceOf<D, T extends string> = D extends { readonly type: T; create(config: never, deps: PluginDeps): Promise<infer I> } ? I : never;

/** One configured plugin, as it comes out of the server or agent config file. */
export interface ConfiguredPlugin {
  type: string;
  name: string;
  /** The raw plugin_data; validated by the plugin's configSchema. */
  config: unknown;
}

/** Helper that keeps literal types when declaring a plugin. */
export function declarePlugin<TType extends string, TConfig, TInstance>(
  declaration: PluginDeclaration<TType, TConfig, TInstance>,
): PluginDeclaration<TType, TConfig, TInstance> {
  return declaration;
}

/**
 * Drops (and logs, without the value) selectors the registry would refuse: empty values, control
 * characters, longer than the selector limit. A missing selector can only make fewer entries match.
 */
export function keepValidSelectors(selectors: readonly Selector[], logger: Logger): Selector[] {
  const out: Selector[] = [];
  const seen = new Set<string>();
  for (const s of selectors) {
    try {
      validateSelector(s);
    } catch {
      logger.warn({ selector_type: s.type, value_length: s.value.length }, 'selector dropped: not a valid selector value');
      continue;
    }
    const k = `${s.type}:${s.value}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(s);
  }
  return out;
}
