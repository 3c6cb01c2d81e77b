/**
 * The plugins engine's public face: the plugin contract, the catalog, the node attestor pairs
 * (join_token, x509pop) and the workload attestors (unix, cgroup), plus the declaration lists the
 * server and the agent hand to loadPlugins(). docs/plugins.md documents all of it.
 *
 * Server:
 *   const plugins = await loadPlugins(SERVER_PLUGINS, config.plugins, { logger, clock, trustDomain, store });
 *   const attestor = plugins.get(NODE_ATTESTOR, request.type);      // ServerNodeAttestor | undefined
 *   const result = await attestor.attest(request.payload, (data) => askAgent(data));
 *   // agent ID: spiffe://<td>/writ/agent/<result.agentPath>
 *
 * Agent:
 *   const plugins = await loadPlugins(AGENT_PLUGINS, config.plugins, { logger, clock, trustDomain });
 *   const node = plugins.all(NODE_ATTESTOR)[0];                      // AgentNodeAttestor
 *   const workload = plugins.all(WORKLOAD_ATTESTOR);                 // WorkloadAttestor[]
 *   ...
 *   await plugins.close();
 */
import { cgroupPlugin } from './workloadattestor/cgroup.js';
import { joinTokenAgentPlugin, joinTokenServerPlugin } from './nodeattestor/join_token.js';
import { unixPlugin } from './workloadattestor/unix.js';
import { x509PopAgentPlugin, x509PopServerPlugin } from './nodeattestor/x509pop.js';

export {
  NODE_ATTESTOR,
  WORKLOAD_ATTESTOR,
  declarePlugin,
  keepValidSelectors,
  type AnyPluginDeclaration,
  type Closable,
  type ConfiguredPlugin,
  type InstanceOf,
  type NodeAttestorType,
  type PluginDeclaration,
  type PluginDeps,
  type WorkloadAttestorType,
} from './contract.js';
export { loadPlugins, type Catalog, type LoadedPlugin } from './catalog.js';
export { attestationError, expectObject, type AgentNodeAttestor, type NodeAttestationResult, type ServerNodeAttestor } from './nodeattestor/types.js';
export { JOIN_TOKEN, hashJoinToken, joinTokenAgentPlugin, joinTokenId, joinTokenServerPlugin, type JoinTokenPayload } from './nodeattestor/join_token.js';
export { DEFAULT_AGENT_PATH_TEMPLATE, X509POP, x509PopAgentPlugin, x509PopServerPlugin, type X509PopPayload } from './nodeattestor/x509pop.js';
export { X509POP_CONTEXT, type X509PopChallenge, type X509PopResponse } from './nodeattestor/x509pop-pop.js';
export { checkPid, readProcFile, workloadError, type ProcessFacts, type WorkloadAttestor } from './workloadattestor/types.js';
export { UNIX, unixPlugin, type UnixConfig } from './workloadattestor/unix.js';
export { CGROUP, cgroupPlugin, type CgroupConfig } from './workloadattestor/cgroup.js';

/** What a server can load: the server halves of the node attestors. */
export const SERVER_PLUGINS = [joinTokenServerPlugin, x509PopServerPlugin] as const;

/** What an agent can load: the agent halves of the node attestors and the workload attestors. */
export const AGENT_PLUGINS = [joinTokenAgentPlugin, x509PopAgentPlugin, unixPlugin, cgroupPlugin] as const;

export type ServerPluginDeclaration = (typeof SERVER_PLUGINS)[number];
export type AgentPluginDeclaration = (typeof AGENT_PLUGINS)[number];
