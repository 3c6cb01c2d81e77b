/**
 * `writ bundle show|list|set|delete`, as `spire-server bundle ...`: `show` prints this trust
 * domain's bundle (or its CRLs); `list`, `set` and `delete` manage the bundles of foreign trust
 * domains (`--id partner.org` or `--id spiffe://partner.org`). The own bundle cannot be set or
 * deleted; a bundle a federation relationship still fetches is deleted only with --force.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { WritError } from '../errors.js';
import type { CliContext } from './context.js';
import { toPem, type Io } from './io.js';

export const MAX_BUNDLE_FILE_BYTES = 1024 * 1024;

interface ForeignBundleJson {
  trust_domain: string;
  sequence: number;
  spiffe_sequence?: number;
  refresh_hint?: number;
  updated_at: number;
  federated: boolean;
  x509_authorities: number;
  jwt_authorities: number;
  spiffe: unknown;
  pem: string;
}

/** Reads a bundle file, or standard input for "-" (at most 1 MiB). */
export function readBundleFile(path: string, io: Io): string {
  let buf: Buffer;
  try {
    buf = path === '-' ? io.readStdin() : readFileSync(path);
  } catch (e) {
    throw new WritError('ERR_INPUT_READ', `Cannot read ${path === '-' ? 'standard input' : path} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  if (buf.length > MAX_BUNDLE_FILE_BYTES) throw new WritError('ERR_INPUT_INVALID', `${path === '-' ? 'Standard input' : path} is larger than 1 MiB.`);
  if (buf.length === 0) throw new WritError('ERR_INPUT_INVALID', `${path === '-' ? 'Standard input' : path} is empty.`);
  return buf.toString('utf8');
}

const banner = (td: string) => `****************************************\n* ${td}\n****************************************\n`;

function printForeign(b: ForeignBundleJson, format: 'pem' | 'spiffe'): string {
  const body = format === 'pem' ? b.pem || '(no X.509 authorities)\n' : `${JSON.stringify(b.spiffe, null, 2)}\n`;
  return `${banner(b.trust_domain)}${body}`;
}

export function registerBundleCommands(program: Command, ctx: CliContext): void {
  const bundle = program.command('bundle').description('trust bundles: this trust domain\'s, and those of federated trust domains');
  const format = () => new Option('--format <format>', 'pem or spiffe (SPIFFE bundle JSON)').choices(['pem', 'spiffe']).default('pem');

  ctx
    .common(
      bundle
        .command('show')
        .description('print this trust domain\'s bundle, or its certificate revocation lists')
        .addOption(new Option('--format <format>', 'pem, spiffe (SPIFFE bundle JSON) or crl (PEM CRLs of the signing CAs)').choices(['pem', 'spiffe', 'crl']).default('pem')),
    )
    .action(async (f: { format: 'pem' | 'spiffe' | 'crl' }) => {
      if (f.format === 'crl') {
        const res = await ctx.client().get<{ crls: Array<{ issuer_ski: string; der: string; next_update: number }> }>('/v1/crl');
        if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
        else ctx.io.out(res.crls.map((c) => toPem('X509 CRL', Buffer.from(c.der, 'base64'))).join(''));
        return;
      }
      const res = await ctx.client().get<{ trust_domain: string; sequence: number; spiffe: unknown; pem: string }>('/v1/bundle');
      if (f.format === 'spiffe') ctx.io.out(JSON.stringify(res.spiffe, null, 2));
      else ctx.io.out(res.pem);
    });

  ctx
    .common(bundle.command('list').description('list the bundles of foreign trust domains').option('--id <trust-domain>', 'only this trust domain').addOption(format()))
    .action(async (f: { id?: string; format: 'pem' | 'spiffe' }) => {
      const res = await ctx.client().post<{ bundles: ForeignBundleJson[] }>('/v1/bundles/list', f.id !== undefined ? { trust_domain: f.id } : {});
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else if (res.bundles.length === 0) ctx.io.out('No foreign bundles.\n');
      else ctx.io.out(res.bundles.map((b) => printForeign(b, f.format)).join('\n'));
    });

  ctx
    .common(
      bundle
        .command('set')
        .description('create or replace the bundle of a foreign trust domain')
        .requiredOption('--id <trust-domain>', 'the foreign trust domain, e.g. partner.org')
        .option('--path <file>', 'the bundle file, or - for standard input (default: standard input)')
        .addOption(format()),
    )
    .action(async (f: { id: string; path?: string; format: 'pem' | 'spiffe' }) => {
      const data = readBundleFile(f.path ?? '-', ctx.io);
      const res = await ctx.client().post<{ bundle: ForeignBundleJson }>('/v1/bundles/set', { trust_domain: f.id, format: f.format, data });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else {
        const b = res.bundle;
        ctx.io.out(`Bundle set for ${b.trust_domain}: ${b.x509_authorities} X.509 and ${b.jwt_authorities} JWT authorities (store sequence ${b.sequence}).\n`);
      }
    });

  ctx
    .common(
      bundle
        .command('delete')
        .description('delete the bundle of a foreign trust domain')
        .requiredOption('--id <trust-domain>', 'the foreign trust domain')
        .option('--force', 'delete even though a federation relationship still fetches it (it comes back at the next refresh)'),
    )
    .action(async (f: { id: string; force?: boolean }) => {
      const res = await ctx.client().post<{ deleted: string }>('/v1/bundles/delete', { trust_domain: f.id, ...(f.force ? { force: true } : {}) });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else ctx.io.out(`Bundle of ${res.deleted} deleted.\n`);
    });
}
