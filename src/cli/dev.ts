/**
 * `writ dev` (what `npm start` runs): a server and an agent in one process for trying writ on one
 * machine. The server keeps its datastore and CA keys under ./data, the agent its state under
 * ./data/agent; the agent attests with a fresh join token that also makes it the node alias
 * spiffe://example.org/host/dev, so entries parented to that alias survive agent re-attestation.
 */
import type { Command } from 'commander';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { validateAgentConfig } from '../agent/config.js';
import { WritAgent } from '../agent/agent.js';
import { writeFileAtomic } from '../ca/diskkeys.js';
import { validateServerConfig } from '../server/config.js';
import { WritServer } from '../server/server.js';
import { WritError } from '../errors.js';
import type { CliContext } from './context.js';
import { makeLogger } from './server.js';
import { mkdirSync } from 'node:fs';

export const DEV_TRUST_DOMAIN = 'example.org';
export const DEV_ALIAS = `spiffe://${DEV_TRUST_DOMAIN}/host/dev`;

interface DevFlags {
  dataDir: string;
  socketPath?: string;
  healthPort: string;
  nodePort: string;
  bundlePort: string;
  agentSocket: string;
}

export function registerDevCommand(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  program
    .command('dev')
    .description('development mode (npm start): a server and an agent on ./data with the trust domain example.org')
    .option('--data-dir <dir>', 'where the datastore, CA keys and agent state live', './data')
    .option('--socket-path <path>', 'admin socket')
    .option('--health-port <port>', 'health/metrics port on 127.0.0.1', '8089')
    .option('--node-port <port>', 'node API port on 127.0.0.1 (agents connect here)', '8081')
    .option('--bundle-port <port>', 'SPIFFE bundle endpoint (https_spiffe) port on 127.0.0.1; "off" for none', '8443')
    .option('--agent-socket <path>', 'Workload API socket of the agent', '/tmp/writ-agent/public/api.sock')
    .action(async (f: DevFlags) => {
      const logger = makeLogger('info', 'writ-dev');
      const serverConfig = validateServerConfig(
        {
          trust_domain: DEV_TRUST_DOMAIN,
          data_dir: f.dataDir,
          log_level: 'info',
          health: { port: Number(f.healthPort) },
          node_api: { port: Number(f.nodePort) },
          ...(f.bundlePort === 'off' ? {} : { bundle_endpoint: { enabled: true, port: Number(f.bundlePort), profile: 'https_spiffe' } }),
          ...(f.socketPath ? { admin: { socket_path: f.socketPath } } : {}),
        },
        'writ dev',
      );
      const server = await WritServer.start(serverConfig, { logger: logger.child({ component: 'server' }) });
      let agent: WritAgent | undefined;
      try {
        const token = randomBytes(24).toString('base64url');
        const now = Math.floor(Date.now() / 1000);
        await server.ctx.datastore.createJoinToken({ tokenHash: createHash('sha256').update(token).digest('hex'), expiresAt: now + 600, spiffeId: DEV_ALIAS, createdAt: now, usedAt: null });
        const agentDir = join(serverConfig.dataDir, 'agent');
        mkdirSync(agentDir, { recursive: true, mode: 0o700 });
        const bundlePath = join(agentDir, 'bootstrap-bundle.pem');
        writeFileAtomic(bundlePath, server.ctx.bundlePem(), 0o644, agentDir);
        const agentConfig = validateAgentConfig(
          {
            trust_domain: DEV_TRUST_DOMAIN,
            data_dir: agentDir,
            server_address: `127.0.0.1:${server.nodeApiAddress!.port}`,
            trust_bundle_path: bundlePath,
            socket_path: f.agentSocket,
            node_attestor: { name: 'join_token', config: { token } },
            workload_attestors: [{ name: 'unix', config: { discover_workload_path: true } }],
          },
          'writ dev',
        );
        let fatal: (code: number) => void = () => undefined;
        const done = new Promise<number>((r) => (fatal = r));
        agent = await WritAgent.start(agentConfig, { logger: logger.child({ component: 'agent' }), onFatal: () => fatal(1) });
        const ready = await Promise.race([agent.ready.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000).unref())]);
        if (!ready) throw new WritError('ERR_AGENT_NOT_READY', 'The development agent did not attest within 30 s; see the log above.');
        const flag = f.socketPath ? ` --socket-path ${server.adminSocketPath}` : '';
        const apiFlag = f.agentSocket === '/tmp/writ-agent/public/api.sock' ? '' : ` --socket-path ${f.agentSocket}`;
        const uid = process.getuid?.() ?? 1000;
        ctx.io.err(
          [
            '',
            `writ is running: trust domain ${DEV_TRUST_DOMAIN}, data in ${serverConfig.dataDir}`,
            `  server: admin socket ${server.adminSocketPath}, node API 127.0.0.1:${server.nodeApiAddress?.port}, health http://127.0.0.1:${server.healthAddress?.port}/ready`,
            ...(server.bundleEndpointAddress
              ? [`  bundle endpoint: https://127.0.0.1:${server.bundleEndpointAddress.port}/ (https_spiffe, served as spiffe://${DEV_TRUST_DOMAIN}/writ/server; also /bundle.pem, /crl, /.well-known/openid-configuration)`]
              : []),
            `  agent:  ${agent.identity?.spiffeId} (node alias ${DEV_ALIAS}), Workload API unix://${f.agentSocket}`,
            'In another terminal, register this user as a workload and fetch its identity:',
            `  npx writ entry create${flag} --parent-id ${DEV_ALIAS} --spiffe-id spiffe://${DEV_TRUST_DOMAIN}/agent/summarizer --selector unix:uid:${uid}`,
            `  npx writ api fetch x509${apiFlag} --write ./svid`,
            `  npx writ api fetch jwt${apiFlag} --audience billing`,
            `  npx writ api watch${apiFlag}`,
            `  SPIFFE_ENDPOINT_SOCKET=unix://${f.agentSocket} <any SPIFFE client>`,
            `Admin: npx writ entry show${flag}, npx writ agent list${flag}, npx writ bundle show${flag} --format spiffe`,
            'Stop with Ctrl-C.',
            '',
          ].join('\n'),
        );
        const stop = (signal: string) => {
          logger.info({ event: 'signal', signal }, `received ${signal}, shutting down`);
          fatal(0);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
        setExit(await done);
      } finally {
        await agent?.stop();
        await server.stop();
      }
    });
}
