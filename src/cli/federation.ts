/**
 * `writ federation create|update|list|show|delete|refresh`, with the flags SREs know from
 * `spire-server federation ...` in --kebab-case (`--bundle-endpoint-profile`, or `--profile` for
 * short). `--trust-domain-bundle-path` (and `--trust-domain-bundle-format pem|spiffe`) gives the
 * bootstrap bundle an https_spiffe endpoint that serves its own trust domain is first checked
 * against. `refresh` fetches at once, prints the result, and exits non-zero if it was refused.
 */
import { Option, type Command } from 'commander';
import { WritError, isErrorCode } from '../errors.js';
import type { RelationshipJson } from '../server/federation/relationship.js';
import { readBundleFile } from './bundle.js';
import type { CliContext } from './context.js';

interface RelationshipFlags {
  trustDomain: string;
  bundleEndpointUrl?: string;
  bundleEndpointProfile?: string;
  profile?: string;
  endpointSpiffeId?: string;
  trustDomainBundlePath?: string;
  trustDomainBundleFormat: 'pem' | 'spiffe';
}

interface RefreshJson {
  trust_domain: string;
  at: number;
  ok: boolean;
  result: 'updated' | 'unchanged' | 'refused';
  code?: string;
  message: string;
  sequence?: number;
  next_refresh_at?: number;
}

const time = (s: number) => new Date(s * 1000).toISOString();

export function printRelationship(r: RelationshipJson): string {
  const lines = [
    `Trust domain              : ${r.trust_domain}`,
    `Bundle endpoint URL       : ${r.bundle_endpoint_url}`,
    `Bundle endpoint profile   : ${r.bundle_endpoint_profile}`,
  ];
  if (r.endpoint_spiffe_id) lines.push(`Endpoint SPIFFE ID        : ${r.endpoint_spiffe_id}`);
  const s = r.last_refresh;
  if (!s) lines.push('Last refresh              : never');
  else {
    lines.push(`Last refresh              : ${time(s.at)} ${s.ok ? 'ok' : `FAILED ${s.code ?? ''}`.trimEnd()}`);
    lines.push(`Last refresh result       : ${s.message}`);
  }
  if (s?.sequence !== undefined) lines.push(`Bundle sequence           : ${s.sequence}`);
  if (r.next_refresh_at !== undefined) lines.push(`Next refresh              : ${time(r.next_refresh_at)}`);
  return `${lines.join('\n')}\n`;
}

function profileOf(f: RelationshipFlags): string | undefined {
  if (f.profile !== undefined && f.bundleEndpointProfile !== undefined && f.profile !== f.bundleEndpointProfile) {
    throw new WritError('ERR_INPUT_INVALID', '--profile and --bundle-endpoint-profile name different profiles; give one.');
  }
  return f.bundleEndpointProfile ?? f.profile;
}

function requestOf(f: RelationshipFlags, ctx: CliContext): Record<string, unknown> {
  const out: Record<string, unknown> = { trust_domain: f.trustDomain };
  if (f.bundleEndpointUrl !== undefined) out.bundle_endpoint_url = f.bundleEndpointUrl;
  const profile = profileOf(f);
  if (profile !== undefined) out.bundle_endpoint_profile = profile;
  if (f.endpointSpiffeId !== undefined) out.endpoint_spiffe_id = f.endpointSpiffeId;
  if (f.trustDomainBundlePath !== undefined) out.trust_domain_bundle = { format: f.trustDomainBundleFormat, data: readBundleFile(f.trustDomainBundlePath, ctx.io) };
  return out;
}

function relationshipFlags(cmd: Command): Command {
  const profiles = ['https_web', 'https_spiffe'];
  return cmd
    .requiredOption('--trust-domain <td>', 'the foreign trust domain, e.g. partner.org')
    .option('--bundle-endpoint-url <url>', 'https URL of the foreign bundle endpoint')
    .addOption(new Option('--bundle-endpoint-profile <profile>', 'how the endpoint authenticates').choices(profiles))
    .addOption(new Option('--profile <profile>', 'the same as --bundle-endpoint-profile').choices(profiles))
    .option('--endpoint-spiffe-id <id>', 'https_spiffe: the SPIFFE ID the endpoint must present')
    .option('--trust-domain-bundle-path <file>', 'bootstrap bundle of the trust domain (- for standard input)')
    .addOption(new Option('--trust-domain-bundle-format <format>', 'format of the bootstrap bundle').choices(['pem', 'spiffe']).default('pem'));
}

export function registerFederationCommands(program: Command, ctx: CliContext): void {
  const fed = program.command('federation').description('federation relationships: where the bundles of foreign trust domains are fetched from');

  ctx.common(relationshipFlags(fed.command('create').description('create a federation relationship'))).action(async (f: RelationshipFlags) => {
    const req = requestOf(f, ctx);
    if (req.bundle_endpoint_url === undefined) throw new WritError('ERR_INPUT_INVALID', '--bundle-endpoint-url is required.');
    if (req.bundle_endpoint_profile === undefined) throw new WritError('ERR_INPUT_INVALID', '--bundle-endpoint-profile (https_web or https_spiffe) is required.');
    const res = await ctx.client().post<{ relationship: RelationshipJson }>('/v1/federation/create', req);
    if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
    else ctx.io.out(`Federation relationship created:\n\n${printRelationship(res.relationship)}`);
  });

  ctx.common(relationshipFlags(fed.command('update').description('change a federation relationship (only the flags given)'))).action(async (f: RelationshipFlags) => {
    const res = await ctx.client().post<{ relationship: RelationshipJson }>('/v1/federation/update', requestOf(f, ctx));
    if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
    else ctx.io.out(`Federation relationship updated:\n\n${printRelationship(res.relationship)}`);
  });

  ctx.common(fed.command('list').description('list federation relationships')).action(async () => {
    const res = await ctx.client().post<{ relationships: RelationshipJson[] }>('/v1/federation/list', {});
    if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
    else {
      const n = res.relationships.length;
      ctx.io.out(`Found ${n} federation ${n === 1 ? 'relationship' : 'relationships'}${n ? '\n\n' : '\n'}${res.relationships.map(printRelationship).join('\n')}`);
    }
  });

  ctx.common(fed.command('show').description('show one federation relationship').requiredOption('--trust-domain <td>', 'the foreign trust domain')).action(async (f: { trustDomain: string }) => {
    const res = await ctx.client().post<{ relationship: RelationshipJson }>('/v1/federation/show', { trust_domain: f.trustDomain });
    if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
    else ctx.io.out(printRelationship(res.relationship));
  });

  ctx.common(fed.command('delete').description('delete a federation relationship (the bundle is kept; see `writ bundle delete`)').requiredOption('--trust-domain <td>', 'the foreign trust domain')).action(
    async (f: { trustDomain: string }) => {
      const res = await ctx.client().post<{ deleted: string }>('/v1/federation/delete', { trust_domain: f.trustDomain });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else ctx.io.out(`Federation relationship with ${res.deleted} deleted.\n`);
    },
  );

  ctx.common(fed.command('refresh').description('fetch the bundle now and print the result').requiredOption('--trust-domain <td>', 'the foreign trust domain')).action(async (f: { trustDomain: string }) => {
    const res = await ctx.client().post<{ result: RefreshJson; relationship?: RelationshipJson }>('/v1/federation/refresh', { trust_domain: f.trustDomain });
    const r = res.result;
    if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
    else if (r.ok) ctx.io.out(`${r.message}\n${r.next_refresh_at !== undefined ? `Next refresh: ${time(r.next_refresh_at)}\n` : ''}`);
    if (!r.ok) throw new WritError(isErrorCode(r.code) ? r.code : 'ERR_FEDERATION_FETCH', r.message);
  });
}
