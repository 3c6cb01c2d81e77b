/**
 * The plugin catalog: turns the configured plugins of a server or agent into running instances.
 * Every config is validated against its plugin's schema before any plugin is created (so a typo
 * starts nothing); plugins are then created in configured order, and if one fails, every plugin
 * already created is closed in reverse order before the error is rethrown.
 */
import type { z } from 'zod';
import { WritError, isWritError } from '../errors.js';
import type { AnyPluginDeclaration, Closable, ConfiguredPlugin, InstanceOf, PluginDeps } from './contract.js';

export interface LoadedPlugin<I = unknown> {
  type: string;
  name: string;
  instance: I;
}

export interface Catalog<D extends AnyPluginDeclaration> {
  /** The instance configured as (type, name), or undefined when that plugin is not configured. */
  get<T extends D['type']>(type: T, name: string): InstanceOf<D, T> | undefined;
  /** Like get, but an unconfigured plugin is ERR_PLUGIN_UNKNOWN naming the configured ones. */
  require<T extends D['type']>(type: T, name: string): InstanceOf<D, T>;
  /** Every configured instance of a type, in configured order. */
  all<T extends D['type']>(type: T): Array<InstanceOf<D, T>>;
  /** The configured names of a type, in configured order. */
  names(type: D['type']): string[];
  /** Closes every instance in reverse order; failures are logged, never thrown. Idempotent. */
  close(): Promise<void>;
}

const key = (type: string, name: string): string => `${type}\u0000${name}`;

function lowerFirst(s: string): string {
  return /^[A-Z][a-z]/.test(s) ? s[0]!.toLowerCase() + s.slice(1) : s;
}

function describeIssue(issue: z.ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined' ? 'it is required' : `expected ${issue.expected}, received ${issue.received}`;
    case 'invalid_enum_value':
      return `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
    case 'invalid_literal':
      return `expected ${JSON.stringify(issue.expected)}`;
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    default:
      // Zod's own sentences never echo the value for these codes; custom messages are ours.
      return lowerFirst(issue.message.replace(/[.\s]+$/, ''));
  }
}

/** ERR_PLUGIN_CONFIG for the first issue, as one sentence naming the plugin and the field path. */
function configError(type: string, name: string, error: z.ZodError): WritError {
  const issue = error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join('.') : '';
  const where = path ? `field "${path}"` : 'config';
  const why = issue ? describeIssue(issue) : 'it is not valid';
  return new WritError('ERR_PLUGIN_CONFIG', `The ${type} plugin "${name}" has an invalid ${where}: ${why}.`, {
    details: { type, name, path, issues: error.issues.map((i) => ({ path: i.path.join('.'), code: i.code })) },
  });
}

async function closeAll(loaded: readonly LoadedPlugin[], deps: PluginDeps): Promise<void> {
  for (const p of [...loaded].reverse()) {
    const inst = p.instance as Closable | null | undefined;
    if (typeof inst?.close !== 'function') continue;
    try {
      await inst.close();
    } catch (e) {
      deps.logger.warn({ plugin_type: p.type, plugin: p.name, err: e instanceof Error ? e.message : String(e) }, 'plugin close failed');
    }
  }
}

/**
 * Loads `configured` plugins from `declarations`. Throws ERR_PLUGIN_UNKNOWN for a plugin nobody
 * declares, ERR_PLUGIN_CONFIG for a duplicate or an invalid config, and whatever a create() throws
 * (non-WritErrors are wrapped in ERR_PLUGIN_CONFIG) after closing the plugins already created.
 */
export async function loadPlugins<D extends AnyPluginDeclaration>(
  declarations: readonly D[],
  configured: readonly ConfiguredPlugin[],
  deps: PluginDeps,
): Promise<Catalog<D>> {
  const declared = new Map<string, D>();
  for (const d of declarations) {
    if (declared.has(key(d.type, d.name))) throw new WritError('ERR_INTERNAL', `The ${d.type} plugin "${d.name}" is declared twice.`);
    declared.set(key(d.type, d.name), d);
  }

  // Phase 1: resolve and validate everything; nothing has been started yet.
  const plan: Array<{ decl: D; config: unknown }> = [];
  const seen = new Set<string>();
  for (const c of configured) {
    const decl = declared.get(key(c.type, c.name));
    if (!decl) {
      const known = declarations.filter((d) => d.type === c.type).map((d) => `"${d.name}"`);
      const list = known.length > 0 ? `known ${c.type} plugins are ${known.join(', ')}` : `no ${c.type} plugins are known`;
      throw new WritError('ERR_PLUGIN_UNKNOWN', `There is no ${c.type} plugin named "${c.name}"; ${list}.`, {
        details: { type: c.type, name: c.name, known: declarations.filter((d) => d.type === c.type).map((d) => d.name) },
      });
    }
    if (seen.has(key(c.type, c.name))) {
      throw new WritError('ERR_PLUGIN_CONFIG', `The ${c.type} plugin "${c.name}" is configured more than once.`, { details: { type: c.type, name: c.name } });
    }
    seen.add(key(c.type, c.name));
    const parsed = decl.configSchema.safeParse(c.config ?? {});
    if (!parsed.success) throw configError(c.type, c.name, parsed.error);
    plan.push({ decl, config: parsed.data });
  }

  // Phase 2: create in order; on failure, roll back what was started.
  const loaded: LoadedPlugin[] = [];
  for (const { decl, config } of plan) {
    const logger = deps.logger.child({ plugin_type: decl.type, plugin: decl.name });
    try {
      loaded.push({ type: decl.type, name: decl.name, instance: await decl.create(config, { ...deps, logger }) });
    } catch (e) {
      await closeAll(loaded, deps);
      if (isWritError(e)) throw e;
      throw new WritError('ERR_PLUGIN_CONFIG', `The ${decl.type} plugin "${decl.name}" failed to start.`, { cause: e, details: { type: decl.type, name: decl.name } });
    }
    logger.debug('plugin loaded');
  }

  const byKey = new Map(loaded.map((p) => [key(p.type, p.name), p]));
  let closed: Promise<void> | undefined;
  const catalog: Catalog<D> = {
    get: (type, name) => byKey.get(key(type, name))?.instance as InstanceOf<D, typeof type> | undefined,
    require(type, name) {
      const p = byKey.get(key(type, name));
      if (p) return p.instance as InstanceOf<D, typeof type>;
      const names = catalog.names(type).map((n) => `"${n}"`);
      const list = names.length > 0 ? `configured ${type} plugins are ${names.join(', ')}` : `no ${type} plugins are configured`;
      throw new WritError('ERR_PLUGIN_UNKNOWN', `The ${type} plugin "${name}" is not configured; ${list}.`, { details: { type, name } });
    },
    all: (type) => loaded.filter((p) => p.type === type).map((p) => p.instance as InstanceOf<D, typeof type>),
    names: (type) => loaded.filter((p) => p.type === type).map((p) => p.name),
    close: () => (closed ??= closeAll(loaded, deps)),
  };
  return catalog;
}
