/**
 * The plugin catalog with small real declarations defined here: config validation errors name
 * the plugin and the field, unknown and duplicate plugins are refused, a failing create() closes
 * the plugins already created in reverse order, close() runs in reverse order once, and the
 * built-in SERVER_PLUGINS / AGENT_PLUGINS lists load through it.
 */
import { expect } from 'chai';
import { z } from 'zod';
import { ManualClock } from '../../src/clock.js';
import { WritError } from '../../src/errors.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { AGENT_PLUGINS, SERVER_PLUGINS, declarePlugin, loadPlugins, type AgentNodeAttestor, type PluginDeps, type ServerNodeAttestor, type WorkloadAttestor } from '../../src/plugins/index.js';
import { failure } from './helpers.js';

interface Greeter {
  greet(): string;
  close(): Promise<void>;
}

const events: string[] = [];

function greeter(name: string, opts: { fail?: unknown; closeFails?: boolean } = {}) {
  const schema = z.object({ greeting: z.string().min(1), times: z.number().int().positive().default(1), nested: z.object({ level: z.enum(['a', 'b']) }).optional() }).strict();
  return declarePlugin({
    type: 'greeter',
    name,
    description: `A test greeter called ${name}.`,
    configSchema: schema,
    async create(config: z.infer<typeof schema>, deps: PluginDeps): Promise<Greeter> {
      if (opts.fail !== undefined) {
        events.push(`create-failed:${name}`);
        throw opts.fail;
      }
      events.push(`create:${name}`);
      deps.logger.debug('created');
      return {
        greet: () => `${config.greeting.repeat(config.times)} from ${name}`,
        close: async () => {
          events.push(`close:${name}`);
          if (opts.closeFails) throw new Error('close broke');
        },
      };
    },
  });
}

const counter = declarePlugin({
  type: 'counter',
  name: 'plain',
  description: 'A counter without close().',
  configSchema: z.object({ start: z.number().default(0) }).strict(),
  async create(config: { start: number }) {
    return { value: config.start };
  },
});

const logs: string[] = [];
const recordingLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (o, m) => void logs.push(`${JSON.stringify(o)} ${m ?? ''}`),
  error: () => undefined,
  child: () => recordingLogger,
};
const deps: PluginDeps = { logger: recordingLogger, clock: new ManualClock(), trustDomain: 'example.org' };

describe('plugins: catalog', () => {
  beforeEach(() => {
    events.length = 0;
    logs.length = 0;
  });

  it('creates plugins in order with validated (defaulted) config and finds them by type and name', async () => {
    const decls = [greeter('one'), greeter('two'), counter];
    const cat = await loadPlugins(decls, [
      { type: 'greeter', name: 'two', config: { greeting: 'hi', times: 2 } },
      { type: 'greeter', name: 'one', config: { greeting: 'yo' } },
      { type: 'counter', name: 'plain', config: undefined },
    ], deps);
    expect(events).to.deep.equal(['create:two', 'create:one']);
    const one = cat.get('greeter', 'one') as Greeter | undefined;
    expect(one?.greet()).to.equal('yo from one');
    expect(cat.all('greeter').map((g) => (g as Greeter).greet())).to.deep.equal(['hihi from two', 'yo from one']);
    expect(cat.names('greeter')).to.deep.equal(['two', 'one']);
    expect(cat.get('greeter', 'three')).to.equal(undefined);
    expect((cat.require('counter', 'plain') as { value: number }).value).to.equal(0);
    const err = (() => {
      try {
        cat.require('greeter', 'three');
      } catch (e) {
        return e as WritError;
      }
      throw new Error('expected a throw');
    })();
    expect(err.code).to.equal('ERR_PLUGIN_UNKNOWN');
    expect(err.message).to.include('"two"').and.include('"one"');
    await cat.close();
    await cat.close();
    expect(events.slice(2)).to.deep.equal(['close:one', 'close:two']);
  });

  const invalid: Array<[string, unknown, string]> = [
    ['a missing field', {}, 'field "greeting": it is required.'],
    ['a field of the wrong type', { greeting: 5 }, 'field "greeting": expected string, received number.'],
    ['a nested field', { greeting: 'x', nested: { level: 'c' } }, 'field "nested.level": expected one of "a", "b".'],
    ['an unknown key', { greeting: 'x', greting: 'y' }, 'config: unknown key "greting".'],
    ['a number out of range', { greeting: 'x', times: 0 }, 'field "times": '],
    ['a config that is not an object', 'hello', 'config: expected object, received string.'],
  ];
  for (const [what, config, tail] of invalid) {
    it(`refuses ${what} with ERR_PLUGIN_CONFIG naming the plugin and the field, creating nothing`, async () => {
      const err = await failure(loadPlugins([greeter('one'), greeter('two')], [
        { type: 'greeter', name: 'one', config: { greeting: 'fine' } },
        { type: 'greeter', name: 'two', config },
      ], deps));
      expect(err.code).to.equal('ERR_PLUGIN_CONFIG');
      expect(err.message).to.match(/^The greeter plugin "two" has an invalid /);
      expect(err.message).to.include(tail);
      expect(err.message.match(/\.\s/g)).to.equal(null, 'one sentence');
      expect(events).to.deep.equal([], 'nothing is created before every config is valid');
    });
  }

  it('refuses an unknown plugin with ERR_PLUGIN_UNKNOWN listing the known names', async () => {
    const err = await failure(loadPlugins([greeter('one'), greeter('two')], [{ type: 'greeter', name: 'three', config: {} }], deps));
    expect(err.code).to.equal('ERR_PLUGIN_UNKNOWN');
    expect(err.message).to.equal('There is no greeter plugin named "three"; known greeter plugins are "one", "two".');
    const none = await failure(loadPlugins([greeter('one')], [{ type: 'shouter', name: 'one', config: {} }], deps));
    expect(none.code).to.equal('ERR_PLUGIN_UNKNOWN');
    expect(none.message).to.include('no shouter plugins are known');
  });

  it('refuses a plugin configured twice', async () => {
    const err = await failure(loadPlugins([greeter('one')], [
      { type: 'greeter', name: 'one', config: { greeting: 'a' } },
      { type: 'greeter', name: 'one', config: { greeting: 'b' } },
    ], deps));
    expect(err.code).to.equal('ERR_PLUGIN_CONFIG');
    expect(err.message).to.equal('The greeter plugin "one" is configured more than once.');
    expect(events).to.deep.equal([]);
  });

  it('refuses a declaration list that declares one plugin twice', async () => {
    const err = await failure(loadPlugins([greeter('one'), greeter('one')], [], deps));
    expect(err.code).to.equal('ERR_INTERNAL');
  });

  it('closes the plugins already created, in reverse order, when a create fails, and rethrows its WritError', async () => {
    const boom = new WritError('ERR_PLUGIN_CONFIG', 'The greeter plugin "four" can not reach its backend.');
    const decls = [greeter('one'), greeter('two', { closeFails: true }), greeter('three'), greeter('four', { fail: boom }), greeter('five')];
    const err = await failure(loadPlugins(decls, ['one', 'two', 'three', 'four', 'five'].map((name) => ({ type: 'greeter', name, config: { greeting: 'x' } })), deps));
    expect(err).to.equal(boom);
    expect(events).to.deep.equal(['create:one', 'create:two', 'create:three', 'create-failed:four', 'close:three', 'close:two', 'close:one']);
    expect(logs.join('\n')).to.include('close broke').and.include('"plugin":"two"');
  });

  it('wraps a non-WritError thrown by create in ERR_PLUGIN_CONFIG with the cause kept', async () => {
    const cause = new TypeError('socket exploded');
    const err = await failure(loadPlugins([greeter('one'), greeter('two', { fail: cause })], [
      { type: 'greeter', name: 'one', config: { greeting: 'x' } },
      { type: 'greeter', name: 'two', config: { greeting: 'x' } },
    ], deps));
    expect(err.code).to.equal('ERR_PLUGIN_CONFIG');
    expect(err.message).to.equal('The greeter plugin "two" failed to start.');
    expect(err.cause).to.equal(cause);
    expect(events).to.deep.equal(['create:one', 'create-failed:two', 'close:one']);
  });

  it('loads the built-in agent and server lists with typed lookups', async () => {
    const agent = await loadPlugins(AGENT_PLUGINS, [
      { type: 'node_attestor', name: 'join_token', config: { token: 'abcdefghijklmnopqrstuvwxyz012345' } },
      { type: 'workload_attestor', name: 'unix', config: {} },
      { type: 'workload_attestor', name: 'cgroup', config: {} },
    ], { ...deps, logger: silentLogger });
    const node: AgentNodeAttestor = agent.require('node_attestor', 'join_token');
    expect(await node.payload()).to.deep.equal({ token: 'abcdefghijklmnopqrstuvwxyz012345' });
    const workload: WorkloadAttestor[] = agent.all('workload_attestor');
    expect(workload.map((w) => w.name)).to.deep.equal(['unix', 'cgroup']);
    await agent.close();

    const store = { consumeJoinToken: () => Promise.reject(new Error('not used')) };
    const server = await loadPlugins(SERVER_PLUGINS, [{ type: 'node_attestor', name: 'join_token', config: {} }], { ...deps, store });
    const attestor: ServerNodeAttestor | undefined = server.get('node_attestor', 'join_token');
    expect(attestor?.name).to.equal('join_token');
    // @ts-expect-error a server catalog has no workload attestors
    server.get('workload_attestor', 'unix');
    await server.close();
  });

  it('refuses the server join_token plugin without a datastore', async () => {
    const err = await failure(loadPlugins(SERVER_PLUGINS, [{ type: 'node_attestor', name: 'join_token', config: {} }], deps));
    expect(err.code).to.equal('ERR_PLUGIN_CONFIG');
    expect(err.message).to.include('datastore');
  });
});
