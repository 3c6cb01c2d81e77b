/**
 * `writ api fetch x509|jwt`, `writ api validate jwt`, `writ api watch`: the Workload API from the
 * command line, with the names and flags users know from `spire-agent api`, in --kebab-case. The
 * endpoint is --socket-path (a path or a unix:// / tcp:// address), else SPIFFE_ENDPOINT_SOCKET,
 * else the agent's default socket.
 */
import { Option, type Command } from 'commander';
import { join } from 'node:path';
import { DEFAULT_AGENT_SOCKET } from '../agent/config.js';
import { WritError } from '../errors.js';
import { WorkloadApiClient } from '../workloadapi/index.js';
import type { X509Svid } from '../svid/index.js';
import { encodePem } from '../bundle/index.js';
import { collect, type CliContext } from './context.js';
import { writeFilesAtomically, type OutputFile } from './io.js';

interface ApiFlags {
  socketPath?: string;
  output: 'pretty' | 'json';
  timeout: string;
}

function addressOf(f: ApiFlags, env: NodeJS.ProcessEnv): string {
  const raw = f.socketPath ?? env.SPIFFE_ENDPOINT_SOCKET ?? DEFAULT_AGENT_SOCKET;
  return /^[a-z]+:/.test(raw) ? raw : `unix://${raw.startsWith('/') ? '' : '/'}${raw}`;
}

function clientFor(f: ApiFlags, env: NodeJS.ProcessEnv): WorkloadApiClient {
  const t = Number(f.timeout);
  if (!Number.isFinite(t) || t <= 0) throw new WritError('ERR_INPUT_INVALID', `--timeout must be a number of seconds above zero; got "${f.timeout}".`);
  return new WorkloadApiClient({ address: addressOf(f, env), timeoutMs: t * 1000 });
}

function common(cmd: Command): Command {
  return cmd
    .option('--socket-path <path>', `Workload API socket or address (default $SPIFFE_ENDPOINT_SOCKET or ${DEFAULT_AGENT_SOCKET})`)
    .option('--timeout <seconds>', 'how long to wait for an answer', '5')
    .addOption(new Option('--output <format>', 'output format').choices(['pretty', 'json']).default('pretty'));
}

function describeSvid(s: X509Svid): string {
  const leaf = s.leaf;
  const lines = [`SPIFFE ID:        ${s.id.toString()}`, `SVID valid after: ${new Date(leaf.validFrom).toISOString()}`, `SVID valid until: ${new Date(leaf.validTo).toISOString()}`];
  if (s.hint) lines.push(`Hint:             ${s.hint}`);
  s.parsed.slice(1).forEach((c, i) => lines.push(`Intermediate #${i + 1} valid until: ${new Date(c.validTo).toISOString()}`));
  return lines.join('\n');
}

export function registerApiCommands(program: Command, ctx: CliContext, env: NodeJS.ProcessEnv): void {
  const api = program.command('api').description('the Workload API of the local agent');
  const fetch = api.command('fetch').description('fetch SVIDs');

  common(fetch.command('x509').description('fetch the X509-SVIDs of this process and its bundles').option('--write <dir>', 'write svid.N.pem, svid.N.key (0600), bundle.N.pem and federated_bundle.N.M.pem'))
    .action(async (f: ApiFlags & { write?: string }) => {
      const client = clientFor(f, env);
      try {
        const t0 = performance.now();
        const c = await client.fetchX509Context();
        const ms = (performance.now() - t0).toFixed(1);
        if (f.write !== undefined) {
          const files: OutputFile[] = [];
          c.svids.forEach((s, i) => {
            files.push({ path: join(f.write!, `svid.${i}.pem`), data: s.chainPem(), mode: 0o644 });
            files.push({ path: join(f.write!, `svid.${i}.key`), data: s.privateKeyPem() ?? '', mode: 0o600 });
            const own = c.bundles.getX509BundleForTrustDomain(s.id.trustDomain);
            files.push({ path: join(f.write!, `bundle.${i}.pem`), data: own.authorities().map((d) => encodePem('CERTIFICATE', d)).join(''), mode: 0o644 });
            c.bundles
              .bundles()
              .filter((b) => !b.trustDomain.equals(s.id.trustDomain))
              .forEach((b, j) => files.push({ path: join(f.write!, `federated_bundle.${i}.${j}.pem`), data: b.x509Authorities.map((d) => encodePem('CERTIFICATE', d)).join(''), mode: 0o644 }));
          });
          c.crls.forEach((d, i) => files.push({ path: join(f.write!, `crl.${i}.pem`), data: encodePem('X509 CRL', d), mode: 0o644 }));
          writeFilesAtomically(files);
        }
        if (f.output === 'json') {
          ctx.io.out(
            JSON.stringify(
              {
                svids: c.svids.map((s) => ({ spiffe_id: s.id.toString(), hint: s.hint ?? '', expires_at: Math.floor(s.expiresAt.getTime() / 1000), chain_pem: s.chainPem() })),
                trust_domains: c.bundles.trustDomainNames(),
                crls: c.crls.length,
              },
              null,
              2,
            ),
          );
        } else {
          ctx.io.out(`Received ${c.svids.length} ${c.svids.length === 1 ? 'svid' : 'svids'} after ${ms} ms\n\n${c.svids.map(describeSvid).join('\n\n')}\n`);
          if (f.write !== undefined) ctx.io.out(`Written to ${f.write}\n`);
        }
      } finally {
        client.close();
      }
    });

  common(
    fetch
      .command('jwt')
      .description('fetch a JWT-SVID for an audience')
      .option('--audience <aud>', 'audience (repeat; the first is the main one)', collect, [])
      .option('--spiffe-id <id>', 'ask for this identity only'),
  ).action(async (f: ApiFlags & { audience: string[]; spiffeId?: string }) => {
    if (f.audience.length === 0) throw new WritError('ERR_INPUT_INVALID', 'fetch jwt needs at least one --audience.');
    const client = clientFor(f, env);
    try {
      const svids = await client.fetchJwtSvids({ audience: f.audience, ...(f.spiffeId ? { spiffeId: f.spiffeId } : {}) });
      if (f.output === 'json') ctx.io.out(JSON.stringify({ svids: svids.map((s) => ({ spiffe_id: s.id.toString(), svid: s.token, expires_at: Math.floor(s.expiry.getTime() / 1000) })) }, null, 2));
      else for (const s of svids) ctx.io.out(`token(${s.id.toString()}):\n\t${s.token}\n`);
    } finally {
      client.close();
    }
  });

  common(api.command('validate').command('jwt').description('validate a JWT-SVID for an audience').requiredOption('--audience <aud>', 'the audience the token must carry').requiredOption('--svid <token>', 'the token'))
    .action(async (f: ApiFlags & { audience: string; svid: string }) => {
      const client = clientFor(f, env);
      try {
        const v = await client.validateJwtSvid(f.svid, f.audience);
        if (f.output === 'json') ctx.io.out(JSON.stringify({ spiffe_id: v.spiffeId.toString(), claims: v.claims }, null, 2));
        else ctx.io.out(`SVID is valid.\nSPIFFE ID : ${v.spiffeId.toString()}\nClaims    : ${JSON.stringify(v.claims)}\n`);
      } finally {
        client.close();
      }
    });

  common(api.command('watch').description('print every X509-SVID update until interrupted').option('--count <n>', 'stop after n updates')).action(
    async (f: ApiFlags & { count?: string }) => {
      const client = clientFor(f, env);
      const limit = f.count === undefined ? Infinity : Number(f.count);
      let seen = 0;
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          w.stop();
          client.close();
          resolve();
        };
        const w = client.watchX509Context(
          (c) => {
            seen++;
            const line = { received_at: new Date().toISOString(), svids: c.svids.map((s) => ({ spiffe_id: s.id.toString(), serial: s.leaf.serialNumber.toLowerCase(), expires_at: s.expiresAt.toISOString() })) };
            ctx.io.out(f.output === 'json' ? JSON.stringify(line) : `Update ${seen}: ${line.svids.map((s) => `${s.spiffe_id} serial ${s.serial} until ${s.expires_at}`).join('; ')}`);
            if (seen >= limit) stop();
          },
          (e) => {
            ctx.io.err(`${e.code}: ${e.message}`);
            if (e.code === 'ERR_WORKLOAD_HEADER' || e.code === 'ERR_INPUT_INVALID') {
              w.stop();
              client.close();
              reject(e);
            }
          },
        );
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    },
  );
}
