/**
 * `writ entry create|update|show|count|delete`: the flags SREs know from `spire-server entry`,
 * in --kebab-case. Validation happens on the server; a batch is all or nothing.
 */
import type { Command } from 'commander';
import { WritError } from '../errors.js';
import { parseDurationSeconds, formatDuration } from '../duration.js';
import { parseSelector, formatSelector, type EntryJson } from '../registry/index.js';
import { parseSpiffeId } from '../spiffeid/index.js';
import { readJsonInput } from './io.js';
import { collect, type CliContext } from './context.js';

interface EntryFlags {
  entryId?: string;
  spiffeId?: string;
  parentId?: string;
  node?: boolean;
  selector?: string[];
  x509SvidTtl?: string;
  jwtSvidTtl?: string;
  dns?: string[];
  federatesWith?: string[];
  admin?: boolean;
  downstream?: boolean;
  entryExpiry?: string;
  hint?: string;
  data?: string;
}

interface FilterFlags {
  entryId?: string[];
  spiffeId?: string;
  parentId?: string;
  selector?: string[];
  matchSelectorsOn?: string;
  federatesWith?: string[];
  matchFederatesWithOn?: string;
  downstream?: boolean;
  hint?: string;
}

function expiryOf(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new WritError('ERR_INPUT_INVALID', `--entry-expiry must be Unix seconds or an RFC 3339 time; got "${v}".`);
  return Math.floor(t / 1000);
}

/** Builds the JSON of one entry from flags; only flags that were given appear. */
function entryFromFlags(f: EntryFlags, trustDomainOf: () => string | undefined): Record<string, unknown> {
  const e: Record<string, unknown> = {};
  if (f.entryId !== undefined) e.id = f.entryId;
  if (f.spiffeId !== undefined) e.spiffe_id = f.spiffeId;
  if (f.node) {
    if (f.parentId !== undefined) throw new WritError('ERR_INPUT_INVALID', 'Give either --node or --parent-id, not both.');
    const td = trustDomainOf();
    if (!td) throw new WritError('ERR_INPUT_INVALID', '--node needs --spiffe-id to know the trust domain.');
    e.parent_id = `spiffe://${td}/writ/server`;
  } else if (f.parentId !== undefined) e.parent_id = f.parentId;
  if (f.selector?.length) e.selectors = f.selector.map((s, i) => parseSelector(s, `--selector ${i + 1}`));
  if (f.x509SvidTtl !== undefined) e.x509_svid_ttl = parseDurationSeconds(f.x509SvidTtl, '--x509-svid-ttl');
  if (f.jwtSvidTtl !== undefined) e.jwt_svid_ttl = parseDurationSeconds(f.jwtSvidTtl, '--jwt-svid-ttl');
  if (f.dns?.length) e.dns_names = f.dns;
  if (f.federatesWith?.length) e.federates_with = f.federatesWith;
  if (f.admin) e.admin = true;
  if (f.downstream) e.downstream = true;
  if (f.entryExpiry !== undefined) e.expires_at = expiryOf(f.entryExpiry);
  if (f.hint !== undefined) e.hint = f.hint;
  return e;
}

function entriesFromData(path: string, ctx: CliContext): unknown[] {
  const doc = readJsonInput(path, ctx.io);
  if (!Array.isArray(doc.entries)) throw new WritError('ERR_INPUT_INVALID', `${path} must hold {"entries": [...]}.`);
  return doc.entries as unknown[];
}

function onlyData(f: EntryFlags): void {
  const { data: _d, ...all } = f as EntryFlags & { output?: string; socketPath?: string };
  const { output: _o, socketPath: _s, ...rest } = all;
  const given = Object.entries(rest).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (given.length > 0) throw new WritError('ERR_INPUT_INVALID', '--data cannot be combined with other entry flags.');
}

function filterFromFlags(f: FilterFlags): Record<string, unknown> {
  const filter: Record<string, unknown> = {};
  if (f.entryId?.length) filter.ids = f.entryId;
  if (f.spiffeId !== undefined) filter.spiffe_id = f.spiffeId;
  if (f.parentId !== undefined) filter.parent_id = f.parentId;
  if (f.selector?.length) {
    filter.selectors = { set: f.selector.map((s, i) => parseSelector(s, `--selector ${i + 1}`)), match: f.matchSelectorsOn ?? 'superset' };
  } else if (f.matchSelectorsOn !== undefined) throw new WritError('ERR_INPUT_INVALID', '--match-selectors-on needs at least one --selector.');
  if (f.federatesWith?.length) {
    filter.federates_with = { trust_domains: f.federatesWith, match: f.matchFederatesWithOn ?? 'superset' };
  } else if (f.matchFederatesWithOn !== undefined) throw new WritError('ERR_INPUT_INVALID', '--match-federates-with-on needs at least one --federates-with.');
  if (f.downstream) filter.downstream = true;
  if (f.hint !== undefined) filter.hint = f.hint;
  return filter;
}

function ttlText(s: number): string {
  return s === 0 ? 'default' : `${s} (${formatDuration(s)})`;
}

export function printEntry(e: Required<EntryJson>): string {
  const lines = [
    `Entry ID         : ${e.id}`,
    `SPIFFE ID        : ${e.spiffe_id}`,
    `Parent ID        : ${e.parent_id}`,
    `Revision         : ${e.revision}`,
    `X509-SVID TTL    : ${ttlText(e.x509_svid_ttl)}`,
    `JWT-SVID TTL     : ${ttlText(e.jwt_svid_ttl)}`,
  ];
  if (e.expires_at !== null) lines.push(`Entry expiry     : ${new Date(e.expires_at * 1000).toISOString()}`);
  for (const s of e.selectors) lines.push(`Selector         : ${formatSelector(s)}`);
  for (const t of e.federates_with) lines.push(`FederatesWith    : ${t}`);
  for (const d of e.dns_names) lines.push(`DNS name         : ${d}`);
  if (e.admin) lines.push('Admin            : true');
  if (e.downstream) lines.push('Downstream       : true');
  if (e.hint) lines.push(`Hint             : ${e.hint}`);
  return `${lines.join('\n')}\n`;
}

function printEntries(ctx: CliContext, verb: string, entries: Array<Required<EntryJson>>): void {
  if (ctx.json()) {
    ctx.io.out(JSON.stringify({ entries }, null, 2));
    return;
  }
  const n = entries.length;
  ctx.io.out(`${verb} ${n} ${n === 1 ? 'entry' : 'entries'}\n`);
  for (const e of entries) ctx.io.out(printEntry(e));
}

function entryFlags(cmd: Command): Command {
  return cmd
    .option('--entry-id <id>', 'entry id (generated when absent)')
    .option('--spiffe-id <id>', 'SPIFFE ID the entry issues')
    .option('--parent-id <id>', 'SPIFFE ID of the agent or node alias that may serve it')
    .option('--node', 'make this a node alias entry (parent is the server)')
    .option('--selector <type:value>', 'selector (repeat for several); all must match the workload', collect, [])
    .option('--x509-svid-ttl <duration>', 'X509-SVID lifetime, e.g. 30m; 0 = server default')
    .option('--jwt-svid-ttl <duration>', 'JWT-SVID lifetime, e.g. 5m; 0 = server default')
    .option('--dns <name>', 'DNS name SAN (repeat; the first is also the CN)', collect, [])
    .option('--federates-with <trust-domain>', 'foreign trust domain whose bundle the workload gets (repeat)', collect, [])
    .option('--admin', 'SVIDs of this entry may call the admin API')
    .option('--downstream', 'the entry is a downstream writ server')
    .option('--entry-expiry <time>', 'Unix seconds or RFC 3339 time after which the entry is pruned')
    .option('--hint <text>', 'hint for workloads choosing among SVIDs')
    .option('--data <file>', 'JSON file ({"entries":[...]}) for a batch; - for standard input');
}

function filterFlags(cmd: Command): Command {
  return cmd
    .option('--entry-id <id>', 'entry id (repeat)', collect, [])
    .option('--spiffe-id <id>', 'SPIFFE ID')
    .option('--parent-id <id>', 'parent ID')
    .option('--selector <type:value>', 'selector (repeat)', collect, [])
    .option('--match-selectors-on <mode>', 'exact | subset | superset | any (default superset)')
    .option('--federates-with <trust-domain>', 'trust domain (repeat)', collect, [])
    .option('--match-federates-with-on <mode>', 'exact | subset | superset | any (default superset)')
    .option('--downstream', 'only downstream entries')
    .option('--hint <text>', 'entries with this hint');
}

export function registerEntryCommands(program: Command, ctx: CliContext): void {
  const entry = program.command('entry').description('manage registration entries');

  ctx.common(entryFlags(entry.command('create').description('create one entry from flags, or a batch with --data'))).action(async (f: EntryFlags) => {
    let entries: unknown[];
    if (f.data !== undefined) {
      onlyData(f);
      entries = entriesFromData(f.data, ctx);
    } else {
      if (f.entryId === undefined && f.spiffeId === undefined) throw new WritError('ERR_INPUT_INVALID', 'entry create needs --spiffe-id (or --data).');
      if (!f.node && f.parentId === undefined) throw new WritError('ERR_INPUT_INVALID', 'entry create needs --parent-id or --node.');
      if (!f.selector?.length) throw new WritError('ERR_INPUT_INVALID', 'entry create needs at least one --selector.');
      entries = [entryFromFlags(f, () => (f.spiffeId ? parseSpiffeId(f.spiffeId).trustDomain.name : undefined))];
    }
    const res = await ctx.client().post<{ entries: Array<Required<EntryJson>> }>('/v1/entries/create', { entries });
    printEntries(ctx, 'Created', res.entries);
  });

  ctx.common(entryFlags(entry.command('update').description('change fields of an entry (by --entry-id), or a batch with --data'))).action(async (f: EntryFlags) => {
    let entries: unknown[];
    if (f.data !== undefined) {
      onlyData(f);
      entries = entriesFromData(f.data, ctx);
    } else {
      if (f.entryId === undefined) throw new WritError('ERR_INPUT_INVALID', 'entry update needs --entry-id (or --data).');
      entries = [entryFromFlags(f, () => (f.spiffeId ? parseSpiffeId(f.spiffeId).trustDomain.name : undefined))];
    }
    const res = await ctx.client().post<{ entries: Array<Required<EntryJson>> }>('/v1/entries/update', { entries });
    printEntries(ctx, 'Updated', res.entries);
  });

  ctx
    .common(
      entry
        .command('delete')
        .description('delete entries by --entry-id, or a batch with --file')
        .option('--entry-id <id>', 'entry id (repeat)', collect, [])
        .option('--file <file>', 'JSON file ({"ids":[...]}); - for standard input'),
    )
    .action(async (f: { entryId: string[]; file?: string }) => {
      let ids: unknown[] = f.entryId;
      if (f.file !== undefined) {
        if (ids.length) throw new WritError('ERR_INPUT_INVALID', '--file cannot be combined with --entry-id.');
        const doc = readJsonInput(f.file, ctx.io);
        if (!Array.isArray(doc.ids)) throw new WritError('ERR_INPUT_INVALID', `${f.file} must hold {"ids": [...]}.`);
        ids = doc.ids as unknown[];
      }
      if (ids.length === 0) throw new WritError('ERR_INPUT_INVALID', 'entry delete needs --entry-id or --file.');
      const res = await ctx.client().post<{ entries: Array<Required<EntryJson>> }>('/v1/entries/delete', { ids });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else ctx.io.out(`Deleted ${res.entries.length} ${res.entries.length === 1 ? 'entry' : 'entries'}: ${res.entries.map((e) => e.id).join(', ')}\n`);
    });

  ctx.common(filterFlags(entry.command('show').description('list entries matching the filters'))).action(async (f: FilterFlags) => {
    const filter = filterFromFlags(f);
    const all: Array<Required<EntryJson>> = [];
    let token: string | undefined;
    do {
      const res = await ctx.client().post<{ entries: Array<Required<EntryJson>>; next_page_token?: string }>('/v1/entries/list', {
        filter,
        page_size: 1000,
        ...(token ? { page_token: token } : {}),
      });
      all.push(...res.entries);
      token = res.next_page_token;
    } while (token);
    printEntries(ctx, 'Found', all);
  });

  ctx.common(filterFlags(entry.command('count').description('count entries matching the filters'))).action(async (f: FilterFlags) => {
    const res = await ctx.client().post<{ count: number }>('/v1/entries/count', { filter: filterFromFlags(f) });
    if (ctx.json()) ctx.io.out(JSON.stringify(res));
    else ctx.io.out(`${res.count} registration ${res.count === 1 ? 'entry' : 'entries'}\n`);
  });
}
